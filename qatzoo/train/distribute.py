"""Data-parallel training through ``tf.distribute`` (``trainer.strategy``).

* ``none`` (default): no strategy; every code path is the single-device one.
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local devices - every GPU, or every
  logical CPU when there is no GPU. ``QATZOO_LOGICAL_CPUS=N`` splits the CPU into ``N`` logical
  devices first (how the tests run two replicas on one CPU).
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy``, configured by the standard
  ``TF_CONFIG`` environment variable (README, "Data-parallel training").

``schedule.batch_size`` stays the *global* batch: step ``s`` still trains on
``loop.batch_indices(n, batch_size, seed, s)``, split into one contiguous shard per replica
(:func:`shard`), so steps per epoch, data order and checkpoint numbering do not depend on the
number of replicas. The model, the optimizer and the checkpoint are created under
:func:`scope`; the device set-up must run before TensorFlow initialises its devices. After each
step the quantizer ranges of all replicas are made those of the global batch
(:func:`synchronize_ranges`).
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import contextlib
import json
import os

import numpy as np
import tensorflow as tf

from qatzoo.errors import ConfigError

STRATEGIES = ("none", "mirrored", "multi_worker")
#: Split the (first) CPU into this many logical devices before TensorFlow initialises (mirrored on a CPU).
LOGICAL_CPUS_ENV = "QATZOO_LOGICAL_CPUS"


def make_strategy(name: str, loop: str = "tape") -> tf.distribute.Strategy | None:
    """The ``tf.distribute`` strategy for ``trainer.strategy=name`` (None for ``none``).

    Call it before any TensorFlow op has run (logical devices and collective ops are configured at
    start-up). Raises :class:`ConfigError` with one line for a set-up that cannot work, such as
    ``trainer.loop=fit`` with ``multi_worker``.
    """
    if name == "none":
        return None
    if name not in STRATEGIES:
        raise ConfigError(f"trainer.strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "multi_worker" and loop == "fit":
        raise ConfigError(
            "trainer.loop=fit with trainer.strategy=multi_worker is not supported: Keras' BackupAndRestore "
            "resumes every worker from the chief's backup, which needs one run directory shared by all "
            "workers (each worker writes its own); use trainer.loop=tape, which resumes each worker from "
            "its own checkpoints"
        )
    _split_cpu(os.environ.get(LOGICAL_CPUS_ENV))
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # MirroredStrategy() alone takes CPU:0 only; the logical CPUs are replicas too.
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    _check_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


def _split_cpu(value: str | None) -> None:
    if not value:
        return
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"{LOGICAL_CPUS_ENV}: expected a positive integer, got {value!r}")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:  # TensorFlow already initialised its devices
        raise ConfigError(f"{LOGICAL_CPUS_ENV}: cannot split the CPU now ({error})") from error


def _check_tf_config(text: str | None) -> None:
    where = "trainer.strategy=multi_worker"
    if not text:
        raise ConfigError(
            f"{where}: TF_CONFIG is not set; set it on every worker to "
            '{"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": I}}'
        )
    try:
        spec = json.loads(text)
        workers = spec["cluster"]["worker"]
        task = spec["task"]
        ok = isinstance(workers, list) and workers and task["type"] in ("worker", "chief") and int(task["index"]) >= 0
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(
            f"{where}: TF_CONFIG must hold cluster.worker (a list of host:port) and task.type/task.index; got {text}"
        )


def scope(strategy: tf.distribute.Strategy | None):
    """``strategy.scope()``, or a context that does nothing (strategy ``none``)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def num_replicas(strategy: tf.distribute.Strategy | None) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def num_workers(strategy: tf.distribute.Strategy | None) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return max(1, sum(len(jobs.get(job, [])) for job in ("chief", "worker")))


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process is the chief (task ``chief``, or worker 0 when there is none): the one that logs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def describe(strategy: tf.distribute.Strategy | None, name: str) -> dict:
    """What metrics.json records: the strategy, replicas in sync, workers and this process's devices."""
    out = {"strategy": name, "num_replicas_in_sync": num_replicas(strategy), "num_workers": num_workers(strategy)}
    if strategy is not None:
        out["devices"] = list(strategy.extended.worker_devices)
    return out


def range_variables(model) -> list[tf.Variable]:
    """The quantizer range variables a training step updates: the model's non-trainable float
    ``*_min`` / ``*_max`` variables (ours and tfmot's: activations, kernels, the input)."""
    found = []
    for variable in model.non_trainable_variables:
        name = variable.name.split(":")[0]
        if tf.as_dtype(variable.dtype).is_floating and name.endswith(("_min", "_max")):  # Keras 3: a str dtype
            found.append(variable)
    return found


def synchronize_ranges(variables: list[tf.Variable]):
    """In replica context, after a training step: give every replica the range of the global batch.

    Quantizer ranges keep TensorFlow's default aggregation (``NONE``): in a step each replica
    updates its own copy from its part of the batch, with no cross-replica call inside the model.
    (An aggregation would put a merge call inside the layers' ``call``; MirroredStrategy then
    interleaves the replica threads, and tfmot's wrapper - which sets the quantized kernels as
    attributes of the shared layer - hands one replica the other's kernels: the custom Attention
    layer got no gradients.) Every estimator here moves a bound monotonically with the batch's
    bound - EMA ``d * old + (1 - d) * batch``, last value, running min/max, kernel ranges (the same in
    every replica) - so the minimum over replicas of the updated ``*_min`` (maximum of ``*_max``) is
    exactly the update a single device makes from the whole batch. One all-gather per step.
    """
    if not variables:
        return
    context = tf.distribute.get_replica_context()
    sign = [(-1.0 if v.name.split(":")[0].endswith("_max") else 1.0) for v in variables]
    flat = tf.concat(
        [s * tf.reshape(tf.convert_to_tensor(v), [-1]) for s, v in zip(sign, variables, strict=True)], axis=0
    )
    low = tf.reduce_min(context.all_gather(flat[None], axis=0), axis=0)
    offset = 0
    for s, v in zip(sign, variables, strict=True):  # run in a tf.function: the assigns run in order
        size = int(np.prod(v.shape))
        v.assign(s * tf.reshape(low[offset : offset + size], v.shape))
        offset += size


def gather_ints(strategy: tf.distribute.Strategy, value: int) -> list[int]:
    """``value`` as every replica of every worker has it. A collective: every worker must call it."""
    values = strategy.experimental_distribute_values_from_function(lambda _: tf.constant([value], tf.int64))
    return [int(v) for v in strategy.gather(values, axis=0).numpy()]


def shard(strategy: tf.distribute.Strategy, *arrays: np.ndarray):
    """One global batch as per-replica values: replica ``r`` (of all workers) gets the ``r``-th
    contiguous part (``numpy.array_split``; the parts differ by at most one example)."""
    count = strategy.num_replicas_in_sync

    def part(context: tf.distribute.experimental.ValueContext):
        i = context.replica_id_in_sync_group
        return tuple(tf.convert_to_tensor(np.array_split(a, count)[i]) for a in arrays)

    return strategy.experimental_distribute_values_from_function(part)
