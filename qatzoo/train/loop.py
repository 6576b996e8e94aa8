"""The training loop: an explicit GradientTape step loop with step-level, bit-exact resume.

Why not ``Model.fit``: Keras' BackupAndRestore cannot resume mid-epoch bit-exactly. Here the whole
training state lives in one ``tf.train.Checkpoint`` - weights, optimizer slots and step count,
quantizer ranges and the dropout state (the engine's ``checkpoint_state``: on Keras 3 every model variable,
ranges and SeedGenerator states included, which the checkpoint would not reach; on tf_keras the layers'
``tf.random.Generator`` state, see ``_seed`` in the trainer) - and the data position is a pure
function of the step: epoch ``e`` visits the training set in the order
``numpy.random.default_rng([seed, e]).permutation(n)``. Restoring step ``s`` and running on gives the
same weights, to the bit, as never having stopped.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from qatzoo.checkpoints import newest_readable, unreadable_reason
from qatzoo.data.splits import Splits
from qatzoo.errors import TrainingError
from qatzoo.keras import keras
from qatzoo.quant.schemes import engine_module
from qatzoo.quiet import LOUD
from qatzoo.task import Task
from qatzoo.train import distribute

EPOCH_LINES = 10  # below trainer.verbose=3, about this many epoch lines per phase at most (all are logged)


@dataclass(frozen=True)
class Phase:
    """One training phase: its name (``float`` or ``qat``), length and learning rate, and what it keeps on disk.

    ``keep_checkpoints``: the newest resumable checkpoints kept (weights, optimizer slots, step, dropout
    generators; each about three times the float weights); multi-worker runs need two, to go back one
    step when a kill landed between two workers' saves. ``epoch_weights``: also keep each epoch's weights
    as ``<phase>-NNN.h5`` (a starting point for ``trainer.init_checkpoint``); off by default, they add up.
    ``verbose``: ``trainer.verbose``, which epochs get a printed line (``prints_epoch``).
    ``config_hash``: the run's config hash; with the name it is the :attr:`tag` every checkpoint of the phase
    carries, so a checkpoint of the other phase or of another run (copied in by mistake) is refused.
    """

    name: str
    epochs: int
    lr: float
    batch_size: int
    seed: int
    checkpoint_every_steps: int = 0
    verbose: int = 2
    keep_checkpoints: int = 2
    epoch_weights: bool = False
    config_hash: str = ""

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.config_hash}"


def prints_epoch(epoch: int, epochs: int, verbose: int) -> bool:
    """Whether epoch ``epoch`` (from 1) of ``epochs`` gets its printed line at ``verbose``.

    Below ``LOUD`` a long phase prints its first and last epoch and every k-th between, about
    ``EPOCH_LINES`` in all, so a run fits on a screen; the logger still records every epoch.
    """
    if not verbose:
        return False
    every = 1 if verbose >= LOUD else math.ceil(epochs / EPOCH_LINES)
    return epoch in (1, epochs) or epoch % every == 0


def loss_for(task: Task, reduction: str | None = None, probabilities: bool = False) -> keras.losses.Loss:
    """The training loss of a task: cross-entropy on logits (on probabilities for a model whose output is a
    softmax, see :func:`outputs_probabilities`), or mean squared error.

    ``reduction="none"``: per example, as custom loops under a strategy need.
    """
    kwargs = {} if reduction is None else {"reduction": reduction}
    if task.classification:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities, **kwargs)
    return keras.losses.MeanSquaredError(**kwargs)


def outputs_probabilities(model: keras.Model) -> bool:
    """Whether ``model`` (float or QAT-wrapped) ends in a softmax, as a user's model often does (the project's
    own end in logits). Keras finds the logits under a bare softmax output itself, but not under the QAT
    model's output quantizer: there, cross-entropy "from logits" would be taken of probabilities."""
    layer = model.layers[-1] if model.layers else None
    layer = getattr(layer, "layer", layer)  # a QAT wrapper's layer
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    activation = getattr(activation, "activation", activation)  # tfmot wraps a layer's activation
    return getattr(activation, "__name__", None) == "softmax"


def make_train_step(model: keras.Model, optimizer, loss_fn, jit_compile: bool = False):
    """``train_step(x, y) -> loss``: forward, backward and the optimizer update of one batch (one device).

    The trainer's step; the benchmark times this same function (with ``jit_compile`` for its XLA columns).
    """

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            predictions = model(x, training=True)
            loss = loss_fn(y, predictions)
            if model.losses:
                loss += tf.add_n(model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    return train_step


def epoch_line(phase: Phase, epoch: int, logs: dict, task: Task, seconds: float, eta: float) -> str:
    """One epoch's printed line, its validation metric in the reported unit (``80.20%``, ``0.3966 ppm``)."""
    value = logs[f"val_{task.metric}"]
    return (
        f"[qatzoo] {phase.name} epoch {epoch}/{phase.epochs} - loss: {logs['loss']:.4f} - val {task.metric}: "
        f"{task.format(value)} - {seconds:.1f}s - ETA {eta:.0f}s"
    )


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s visiting order (cached: a 55,000-example permutation costs 0.5 ms a step)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    order.flags.writeable = False
    return order


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The training examples of global ``step``: a pure function of (n, batch size, seed, step)."""
    steps = math.ceil(n / batch_size)
    epoch, k = divmod(step, steps)
    return _epoch_order(n, seed, epoch)[k * batch_size : (k + 1) * batch_size]


def run_phase(
    model: keras.Model,
    data: Splits,
    phase: Phase,
    ckpt_dir: Path,
    logger,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Train ``model`` for one phase, resuming from ``ckpt_dir/<phase>`` if a checkpoint is there.

    Returns ``{"resumed_from_step": int, "steps": int}``. Checkpoints: every
    ``checkpoint_every_steps`` steps (0: only at epoch ends) and at each epoch end, the newest
    ``keep_checkpoints`` kept; with ``epoch_weights`` each epoch's weights are also kept as
    ``<phase>-NNN.h5`` (a starting point for ``trainer.init_checkpoint``).

    With a ``tf.distribute`` ``strategy`` (``model`` must have been built under its scope) the
    optimizer, the step counter and the checkpoint are created under that scope too, and each step's
    global batch (the same ``batch_indices`` as without) is split across the replicas: every replica
    scales its summed loss by the global batch size, the gradients are summed across replicas, and
    the logged loss is that sum - the global batch's mean, as without a strategy.
    """
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / phase.batch_size)
    total = phase.epochs * steps_per_epoch
    loss_fn = loss_for(data.task, probabilities=outputs_probabilities(model))
    tag = tf.Variable(phase.tag, trainable=False, name="tag")  # a string on the host, outside any strategy
    with distribute.scope(strategy):
        optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(phase.lr, max(total, 1)))
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        optimizer.build(model.trainable_variables)  # slots exist before restore, so they are restored too
        state = engine_module().checkpoint_state(model)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, tag=tag, **state)
    found = _set_aside_unreadable_state(ckpt_dir / phase.name, phase.name)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir / phase.name), max_to_keep=phase.keep_checkpoints)
    latest = newest_readable(found or manager.checkpoints, phase.name, phase.tag)
    if distribute.num_workers(strategy) > 1:
        latest = _common_checkpoint(strategy, manager, phase.name, latest)
    if latest:
        checkpoint.restore(latest).expect_partial()
    start = int(step.numpy())
    if start >= total:
        return {"resumed_from_step": start, "steps": total}
    if start:
        print(f"[qatzoo] {phase.name} phase: resuming at step {start} of {total} from {latest}")
    else:
        print(f"[qatzoo] {phase.name} phase: {phase.epochs} epochs x {steps_per_epoch} steps")

    train_step = make_train_step(model, optimizer, loss_fn)

    if strategy is not None:
        train_step = _distributed_train_step(model, optimizer, data.task, strategy)

    @tf.function(reduce_retracing=True)
    def predict_step(x):
        return model(x, training=False)

    def predict(x):
        return np.concatenate([predict_step(x[i : i + 256]).numpy() for i in range(0, len(x), 256)])

    bar = tqdm(total=total, initial=start, desc=f"{phase.name}", unit="step", disable=None, leave=False)
    epoch_loss, epoch_start, began = [], time.perf_counter(), time.perf_counter()
    for s in range(start, total):
        idx = batch_indices(n, phase.batch_size, phase.seed, s)
        loss = float(train_step(data.x_train[idx], data.y_train[idx]))
        if not math.isfinite(loss):
            bar.close()
            kept = (
                f"the last good checkpoint is {manager.latest_checkpoint}"
                if manager.latest_checkpoint
                else "no checkpoint was saved yet"
            )
            knob = "lr" if phase.name == "float" else "qat_lr"
            raise TrainingError(
                f"{phase.name} phase: the loss became {loss} at step {s + 1}; {kept}; lower schedule.{knob}"
            )
        epoch_loss.append(loss)
        step.assign(s + 1)
        bar.update(1)
        epoch, k = divmod(s + 1, steps_per_epoch)
        if k == 0:
            logs = {
                "loss": float(np.mean(epoch_loss)),
                # In the reported unit (accuracy in %, MAE in ppm), as in metrics.json.
                f"val_{data.task.metric}": data.task.score(data.y_val, predict(data.x_val)),
            }
            manager.save(checkpoint_number=s + 1)
            if phase.epoch_weights:
                _save_weights(model, ckpt_dir / f"{phase.name}-{epoch:03d}.h5")
            logger.log(phase.name, epoch, logs)
            if prints_epoch(epoch, phase.epochs, phase.verbose):
                done = s + 1 - start
                eta = (time.perf_counter() - began) / done * (total - s - 1)
                tqdm.write(epoch_line(phase, epoch, logs, data.task, time.perf_counter() - epoch_start, eta))
            epoch_loss, epoch_start = [], time.perf_counter()
        elif phase.checkpoint_every_steps and (s + 1) % phase.checkpoint_every_steps == 0:
            manager.save(checkpoint_number=s + 1)
    bar.close()
    return {"resumed_from_step": start, "steps": total}


def _set_aside_unreadable_state(directory: Path, name: str) -> list[str]:
    """When the manager's list of checkpoints (``checkpoint``, a text file) cannot be parsed, set it aside (one
    line) and return the checkpoints found on disk, oldest first; else ``[]`` (the manager's list holds)."""
    state = directory / "checkpoint"
    if not state.is_file():
        return []
    try:
        tf.train.get_checkpoint_state(str(directory))
        return []
    except Exception as error:  # noqa: BLE001 - UnicodeDecodeError, text_format.ParseError, ...
        state.replace(directory / "checkpoint.unreadable")
        found = sorted(directory.glob("ckpt-*.index"), key=lambda p: int(p.stem.rpartition("-")[2] or 0))
        print(
            f"[qatzoo] {name} phase: the checkpoint list {state} is unreadable ({unreadable_reason(error)}); "
            f"set aside as checkpoint.unreadable, using the {len(found)} checkpoint(s) on disk"
        )
        return [str(p.with_suffix("")) for p in found]


def _common_checkpoint(
    strategy: tf.distribute.Strategy, manager: tf.train.CheckpointManager, name: str, latest: str | None
):
    """Multi-worker: the checkpoint this worker resumes from, the newest step *every* worker saved.

    Each worker checkpoints its own run directory at the same steps (checkpoint number = step).
    Training is synchronous, so a kill can land between two workers' saves and leave one worker a
    checkpoint ahead; that worker goes back to its previous checkpoint (``keep_checkpoints`` >= 2) or, when
    another worker has none yet, starts the phase afresh. All workers then run the same steps.
    """

    def number(path: str | None) -> int:
        return int(path.rsplit("-", 1)[1]) if path else 0

    mine = number(latest)
    common = min(distribute.gather_ints(strategy, mine))
    if common == mine:
        return latest
    if common == 0:
        print(f"[qatzoo] {name} phase: another worker has no checkpoint yet; starting this phase afresh")
        return None
    for path in manager.checkpoints:
        if number(path) == common:
            print(f"[qatzoo] {name} phase: going back to step {common}, the newest step every worker saved")
            return path
    raise TrainingError(
        f"{name} phase: this worker's checkpoints ({', '.join(manager.checkpoints)}) do not include step {common}, "
        "the newest step every worker saved; resume all workers from the same run state"
    )


def _distributed_train_step(model: keras.Model, optimizer, task: Task, strategy: tf.distribute.Strategy):
    """``train_step(x, y) -> global mean loss`` for one global batch, run on every replica of ``strategy``."""
    per_example = loss_for(task, reduction="none", probabilities=outputs_probabilities(model))
    ranges = distribute.range_variables(model)

    def replica_step(x, y, global_size):
        with tf.GradientTape() as tape:
            predictions = model(x, training=True)
            # Summed over this replica's part, divided by the global batch: the replicas' gradients
            # add up to the gradient of the global batch's mean loss (uneven parts included).
            loss = tf.nn.compute_average_loss(per_example(y, predictions), global_batch_size=global_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        distribute.synchronize_ranges(ranges)  # after the model: each replica updated its own ranges
        return loss

    @tf.function(reduce_retracing=True)
    def step(x, y, global_size):
        losses = strategy.run(replica_step, args=(x, y, global_size))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def train_step(x: np.ndarray, y: np.ndarray):
        return step(*distribute.shard(strategy, x, y), tf.constant(len(x), tf.int64))

    return train_step


def _save_weights(model: keras.Model, path: Path) -> None:
    path = engine_module().weights_file(path)
    tmp = path.with_name(f".{path.stem}.tmp{''.join(path.suffixes)}")
    model.save_weights(str(tmp))
    os.replace(tmp, path)
