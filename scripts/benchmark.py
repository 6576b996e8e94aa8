"""Benchmark every shipped recipe side by side, in one run, and write the tables and a chart.

    python scripts/benchmark.py                          # all recipes -> scripts/benchmark/results.{md,csv,png}
    python scripts/benchmark.py mnist_cnn_int8           # some
    python scripts/benchmark.py --batch-sweep 32,256     # also LiteRT latency per example at larger batches
    python scripts/benchmark.py --save-models DIR        # also keep the .tflite files it measured
    python scripts/benchmark.py --loop FILE.tflite [--no-amx] [--seconds 20]
                                                         # invoke one model in a loop, e.g. under `perf record -g`

For each recipe, on this machine as it is:
- training step time (median of ``--steps`` steps after warm-up, the trainer's compiled step),
  measured in interleaved rounds so that every variant sees the same machine load: float model, this
  project's QAT model, plain ``tfmot.quantization.keras.quantize_model`` where it applies (it refuses
  the custom attention and layer-norm layers), and the float and QAT steps compiled with XLA
  (``tf.function(jit_compile=True)``, what a ``jit_compile`` switch in ``qatzoo/train/loop.py`` would
  run);
- LiteRT latency of the float and the int8 .tflite at batch 1, 1 thread and all cores (median of at
  least ``--runs`` invokes after warm-up, float and int8 in alternating blocks of at least 50 ms), each
  setting measured in a fresh child process:
  * ``xnnpack``: ``qatzoo.export.litert.interpreter`` as it is, the XNNPACK delegate (as deployed and as
    evaluated);
  * ``no AMX``: the same, in a process that may not use Intel AMX tiles (a seccomp filter refuses
    ``arch_prctl(ARCH_REQ_XCOMP_PERM)``, so XNNPACK falls back to its AVX512-VNNI int8 kernels). Only on
    an x86-64 Linux CPU with AMX; elsewhere XNNPACK has no AMX kernels to pick and the column is "-".
    XNNPACK picks AMX int8 kernels whenever the CPU has them; their 16x64 tiles waste most of the work on
    layers with 16-32 channels, so on such CPUs int8 runs slower than float. Outputs are bit-identical
    either way;
  * ``builtin``: builtin kernels only, no delegate (1 thread; a diagnostic, not a deployment choice:
    its int8 rounding differs from XNNPACK's);
  and, for the int8 model, how many XNNPACK partitions it splits into and which ops XNNPACK leaves to
  builtin kernels (int8 BATCH_MATMUL, SOFTMAX, GELU and the layer-norm ops run outside it);
- file sizes (both files as the trainer writes them);
- the accuracy triple float / PTQ int8 / QAT int8 as published in zoo/index.json (measured in LiteRT
  on the full test split when the model was published).
Latency and step time do not depend on the trained values of the weights, so the models here are
built from the recipe's config and calibrated on real training inputs, not trained. Ratios are
measured side by side in one process; absolute numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from qatzoo.config import recipe_names  # noqa: E402

OUT = REPO / "scripts" / "benchmark"
MODES = ("xnnpack", "noamx", "builtin")  # LiteRT settings measured, see the module docstring
BLOCK_S = 0.05  # shortest block of invokes of one model before switching to the other (seconds)


def _cfg(recipe: str, data_dir: str | None):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from qatzoo.config import CONF_DIR, register_recipes

    register_recipes()
    GlobalHydra.instance().clear()
    overrides = [f"recipe={recipe}"] + ([f"paths.data_dir={data_dir}"] if data_dir else [])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    GlobalHydra.instance().clear()
    return cfg


# ---------------------------------------------------------------------------------------------------
# Training step


def step_times(variants: dict, data, batch_size: int, steps: int, rounds: int = 5) -> dict[str, float | None]:
    """Median seconds of one training step (forward, backward, Adam update) of each variant.

    ``variants`` maps a name to ``(model, jit_compile)``. The steps run in ``rounds`` interleaved
    rounds (every variant a share of ``steps`` per round), so a change in machine load hits all of them
    alike. A variant that fails to build or compile gets ``None``.
    """
    import tensorflow as tf

    from qatzoo.keras import keras
    from qatzoo.train.loop import _loss_and_metric, batch_indices

    loss_fn, _ = _loss_and_metric(data.task)

    def compiled(model, jit):
        optimizer = keras.optimizers.Adam(1e-4)

        @tf.function(reduce_retracing=True, jit_compile=jit)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            optimizer.apply_gradients(
                zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
            )
            return loss

        return train_step

    n = len(data.x_train)
    batches = [
        (tf.constant(data.x_train[idx]), tf.constant(data.y_train[idx]))
        for idx in (batch_indices(n, batch_size, 0, s) for s in range(max(steps, 1)))
    ]
    fns = {}
    for name, (model, jit) in variants.items():
        try:
            fn = compiled(model, jit)
            for x, y in batches[:5]:  # warm-up: tracing, XLA compilation, first allocations
                float(fn(x, y))
            fns[name] = fn
        except Exception as error:  # noqa: BLE001 - reported as a missing number
            print(f"[benchmark]   {name} step failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
    times = {name: [] for name in fns}
    per_round = max(1, steps // rounds)
    for r in range(rounds):
        for name, fn in fns.items():
            for i in range(per_round):
                x, y = batches[(r * per_round + i) % len(batches)]
                start = time.perf_counter()
                float(fn(x, y))
                times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]) if name in times else None) for name in variants}


# ---------------------------------------------------------------------------------------------------
# LiteRT latency (measured in child processes: see _latency_worker)


def cpu_has_amx() -> bool:
    """Whether this is an x86-64 Linux CPU with AMX int8 tiles (which XNNPACK would use)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return os.uname().machine == "x86_64" and " amx_int8" in flags


def deny_amx() -> bool:
    """Refuse Intel AMX to this process: after this, ``arch_prctl(ARCH_REQ_XCOMP_PERM, ...)`` fails
    with EPERM, so XNNPACK (which asks for that permission when it starts) uses its AVX512-VNNI
    kernels instead of AMX. Irreversible for the process and its children: run it only in a child
    process made for the purpose, before anything creates an XNNPACK delegate. Returns whether the
    permission is now refused (checked with the call itself)."""
    import ctypes

    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return False
    sys_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata = 158, 0x1023, 18

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    program = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 5, 0xC000003E),  # AUDIT_ARCH_X86_64, else allow
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jeq, 0, 3, sys_arch_prctl),
        (ld, 0, 0, 16),  # seccomp_data.args[0] (low half)
        (jeq, 0, 1, arch_req_xcomp_perm),
        (ret, 0, 0, 0x00050000 | 1),  # SECCOMP_RET_ERRNO | EPERM
        (ret, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
    ]
    filters = (SockFilter * len(program))(*[SockFilter(*i) for i in program])
    prog = SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, None, 0, 0) or libc.prctl(
        pr_set_seccomp, seccomp_mode_filter, ctypes.cast(ctypes.pointer(prog), ctypes.c_void_p), 0, 0
    ):
        return False
    libc.syscall.restype = ctypes.c_long
    return (
        libc.syscall(
            ctypes.c_long(sys_arch_prctl), ctypes.c_long(arch_req_xcomp_perm), ctypes.c_long(xfeature_xtiledata)
        )
        != 0
    )


def xnnpack_coverage(it) -> tuple[int, list[str]]:
    """For an allocated LiteRT interpreter with the default delegate: the number of XNNPACK partitions
    and the ops left outside them (run by builtin kernels, between partitions).

    The interpreter lists the model's ops and then one DELEGATE node per partition; an op is inside a
    partition if it writes a partition's output, or if everything it writes is read only by ops inside.
    """
    ops = it._get_ops_details()  # noqa: SLF001 - the only view of the delegated graph in the Python API
    parts = [o for o in ops if o["op_name"] == "DELEGATE"]
    own = [o for o in ops if o["op_name"] != "DELEGATE"]
    part_in = {int(t) for p in parts for t in p["inputs"]}
    part_out = {int(t) for p in parts for t in p["outputs"]}
    model_out = {int(d["index"]) for d in it.get_output_details()}
    readers = collections.defaultdict(set)
    for o in own:
        for t in o["inputs"]:
            if t >= 0:
                readers[int(t)].add(o["index"])
    inside = {o["index"] for o in own if part_out & {int(t) for t in o["outputs"]}}
    grew = True
    while grew:
        grew = False
        for o in own:
            outs = {int(t) for t in o["outputs"]}
            if o["index"] in inside or not outs or outs & (part_in | model_out):
                continue
            if all(readers[t] and readers[t] <= inside for t in outs):
                inside.add(o["index"])
                grew = True
    return len(parts), [o["op_name"] for o in own if o["index"] not in inside]


def _latency_worker(spec_path: str) -> int:
    """Child process: measure the models of a spec (JSON) and print the result as one JSON line."""
    import numpy as np

    spec = json.loads(Path(spec_path).read_text())
    result = {}
    if spec["mode"] == "noamx":
        result["amx_denied"] = deny_amx()
        if not result["amx_denied"]:
            print(json.dumps(result))
            return 0
    from qatzoo.export.litert import interpreter  # after deny_amx: nothing has started XNNPACK yet

    sample = np.load(spec["sample"])
    delegates = spec["mode"] != "builtin"
    for threads in spec["threads"]:
        its = {}
        for name, path in spec["models"].items():
            it = interpreter(path, num_threads=threads, delegates=delegates)
            inp = it.get_input_details()[0]
            x = sample if sample.shape == tuple(inp["shape"]) else sample[None]  # one example, or a batch
            if inp["dtype"] != np.float32:
                scale, zero = inp["quantization"]
                x = np.clip(np.round(x / scale + zero), -128, 127)
            it.set_tensor(inp["index"], x.astype(inp["dtype"]))
            for _ in range(20):  # warm-up
                it.invoke()
            its[name] = it
            if delegates and threads == spec["threads"][0]:
                result[f"partitions_{name}"], result[f"outside_{name}"] = xnnpack_coverage(it)
        times = {name: [] for name in its}
        per_round = max(1, spec["runs"] // spec["rounds"])
        for _ in range(spec["rounds"]):  # float and int8 in alternating blocks: both see the same load
            for name, it in its.items():
                # A block lasts at least BLOCK_S: on the 2-core Xeon of the README, switching between
                # the float kernels and XNNPACK's AVX512-VNNI int8 kernels every ~3 ms (blocks of 100
                # invokes) slowed the float invokes by 14% (28.2 vs 24.8 us; blocks of 500: no effect),
                # which a model deployed alone would not see.
                block, began = 0, time.perf_counter()
                while block < per_round or time.perf_counter() - began < BLOCK_S:
                    start = time.perf_counter()
                    it.invoke()
                    times[name].append(time.perf_counter() - start)
                    block += 1
        for name in its:
            result[f"{name}_{threads}t_us"] = statistics.median(times[name]) * 1e6
        del its
    print(json.dumps(result))
    return 0


def latencies(files: dict[str, bytes], sample, mode: str, threads: list[int], runs: int) -> dict:
    """Run :func:`_latency_worker` in a fresh Python process for one LiteRT ``mode``."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="qatzoo-bench-") as tmp:
        models = {}
        for name, blob in files.items():
            (Path(tmp) / f"{name}.tflite").write_bytes(blob)
            models[name] = str(Path(tmp) / f"{name}.tflite")
        np.save(Path(tmp) / "sample.npy", sample)
        spec = {"mode": mode, "models": models, "sample": str(Path(tmp) / "sample.npy"), "threads": threads}
        spec.update(runs=runs, rounds=5)
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        done = subprocess.run(
            [sys.executable, __file__, "--latency-worker", str(Path(tmp) / "spec.json")],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"latency worker ({mode}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _convert_at_batch(model, batch: int, representative=None) -> bytes:
    """A .tflite of ``model`` with a fixed batch of ``batch`` (the shipped files have batch 1). With
    ``representative`` (an array of inputs), the full-integer int8 file, with the converter settings of
    ``qatzoo.export.tflite.to_int8_tflite``; for the batch sweep only."""
    import numpy as np
    import tensorflow as tf

    from qatzoo.export.tflite import strip_names

    spec = tf.TensorSpec((batch, *model.input_shape[1:]), tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    if representative is not None:
        reps = np.resize(representative, (max(len(representative), batch), *representative.shape[1:]))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [reps[i : i + batch].astype(np.float32)] for i in range(0, len(reps) - batch + 1, batch)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return strip_names(converter.convert())


# ---------------------------------------------------------------------------------------------------
# File size


def size_breakdown(blob: bytes) -> dict[str, int]:
    """Where the bytes of a .tflite go: constant data by type, the number of quantization entries
    (each a float32 scale and an int64 zero point, one per tensor or per channel), and the rest
    (graph, tensor and quantization tables, metadata)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    names = {0: "float32", 2: "int32", 9: "int8"}
    out = collections.Counter()
    seen = set()
    for graph in model.subgraphs:
        for t in graph.tensors:
            data = model.buffers[t.buffer].data
            if data is not None and t.buffer not in seen:
                seen.add(t.buffer)
                out[f"bytes_{names.get(t.type, 'other')}"] += len(data)
            if t.quantization is not None and t.quantization.scale is not None:
                out["quant_entries"] += len(t.quantization.scale)
    out["bytes_rest"] = len(blob) - sum(v for k, v in out.items() if k.startswith("bytes_"))
    return dict(out)


def _int8_dense_per_tensor(qat, sample) -> bytes:
    """The int8 file as ``to_int8_tflite`` writes it, but with the converter told to keep fully
    connected weights per tensor (``_experimental_disable_per_channel_quantization_for_dense_layers``):
    QAT trains them per tensor, yet the converter re-quantizes the attention output projection per
    channel. For the size table only (the trainer does not export this)."""
    from unittest import mock

    from qatzoo.export import tflite

    original = tflite._converter

    def converter(model):
        c = original(model)
        c._experimental_disable_per_channel_quantization_for_dense_layers = True
        return c

    with mock.patch.object(tflite, "_converter", converter):
        return tflite.to_int8_tflite(qat, lambda: sample)


# ---------------------------------------------------------------------------------------------------


def bench(recipe: str, args) -> dict:
    import numpy as np
    import tensorflow_model_optimization as tfmot
    from hydra.utils import instantiate

    from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
    from qatzoo.keras import keras
    from qatzoo.quant.schemes import scheme
    from qatzoo.train.trainer import _kwargs

    cfg = _cfg(recipe, args.data_dir)
    keras.utils.set_random_seed(0)
    data = instantiate(_kwargs(cfg.data, drop=("task",)))
    model = instantiate(_kwargs(cfg.arch), input_shape=data.input_shape, num_outputs=data.num_outputs)
    sample = data.representative(256, 0)
    qat = scheme("int8", qat=True, int8=True).quantize(model, sample)
    batch = cfg.schedule.batch_size
    row = {"recipe": recipe, "params": model.count_params(), "batch": batch}
    variants = {"float": (model, False), "qat": (qat, False)}
    try:
        variants["tfmot"] = (tfmot.quantization.keras.quantize_model(model), False)
    except Exception as error:  # noqa: BLE001 - reported in the table
        row["tfmot_note"] = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
    if args.xla:
        variants.update(float_xla=(model, True), qat_xla=(qat, True))
    for name, seconds in step_times(variants, data, batch, args.steps).items():
        row[f"step_{name}_ms"] = None if seconds is None else seconds * 1e3
    row.setdefault("step_tfmot_ms", None)

    files = {"float": strip_names(to_float_tflite(model)), "int8": strip_names(to_int8_tflite(qat, lambda: sample))}
    row["size_float"], row["size_int8"] = len(files["float"]), len(files["int8"])
    row.update({f"int8_{k}": v for k, v in size_breakdown(files["int8"]).items()})
    row["size_int8_dense_per_tensor"] = len(strip_names(_int8_dense_per_tensor(qat, sample)))
    if args.save_models:
        for name, blob in files.items():
            Path(args.save_models, f"{recipe}_{name}.tflite").write_bytes(blob)
    cores = os.cpu_count() or 1
    threads = sorted({1, cores})
    x0 = np.asarray(data.x_test[0], np.float32)
    for mode in MODES:
        if mode == "noamx" and not cpu_has_amx():
            continue
        lat = latencies(files, x0, mode, [1] if mode == "builtin" else threads, args.runs)
        if mode == "noamx":
            row["amx_denied"] = lat.get("amx_denied", False)
        for key, value in lat.items():
            if key.endswith("_us"):
                row[f"lat_{mode}_{key}"] = value
        if mode == "xnnpack":
            row["xnnpack_partitions_float"] = lat["partitions_float"]
            row["xnnpack_partitions_int8"] = lat["partitions_int8"]
            outside = collections.Counter(lat["outside_int8"])
            row["outside_xnnpack_int8"] = ", ".join(f"{op} x{n}" for op, n in sorted(outside.items())) or "-"

    for b in args.batch_sweep:
        big = {"float": _convert_at_batch(model, b), "int8": _convert_at_batch(qat, b, sample)}
        xb = np.resize(np.asarray(data.x_test[:b], np.float32), (b, *data.x_test.shape[1:]))
        for mode in ("xnnpack", "noamx") if cpu_has_amx() else ("xnnpack",):
            lat = latencies(big, xb, mode, [1], max(20, args.runs // b))
            for name in ("float", "int8"):
                if f"{name}_1t_us" in lat:
                    row[f"sweep_b{b}_{mode}_{name}_us_per_example"] = lat[f"{name}_1t_us"] / b

    published = {e["name"]: e for e in json.loads((REPO / "zoo" / "index.json").read_text())["models"]}
    if recipe in published:
        e = published[recipe]
        row.update(
            metric=e["metric"],
            float=e["metrics"]["float"],
            ptq_int8=e["metrics"]["ptq_int8"],
            qat_int8=e["metrics"][e["int8_model"]],
        )
    return row


def _ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def _num(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def write(rows: list[dict], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(OUT / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)

    amx = any("lat_noamx_int8_1t_us" in r for r in rows)
    g = lambda r, k: r.get(k)  # noqa: E731
    lines = [
        "# Benchmark",
        "",
        f"`{' '.join(['python scripts/benchmark.py', *sys.argv[1:]])}` on {cores} CPU cores ({_cpu_name()}); medians; every ratio is measured side "
        "by side in one run (training steps in interleaved rounds; float and int8 invokes in alternating blocks "
        "of at least 50 ms in one process per LiteRT setting). Targets: QAT step <= 1.3x float, int8 latency <= 0.6x float (CNN), int8 file <= 0.28x float.",
        "",
        "## Summary",
        "",
        "| recipe | step QAT/float | LiteRT int8/float, 1 thread (XNNPACK as deployed) "
        + ("| same, XNNPACK without AMX " if amx else "")
        + "| size int8/float | float / PTQ int8 / QAT int8 (published) |",
        "|---|---|---|" + ("---|" if amx else "") + "---|---|",
    ]
    for r in rows:
        triple = f"{r['float']:.4g} / {r['ptq_int8']:.4g} / {r['qat_int8']:.4g} {r['metric']}" if "metric" in r else "-"
        lines.append(
            f"| {r['recipe']} | {_ratio(g(r, 'step_qat_ms'), g(r, 'step_float_ms'))} "
            f"| {_ratio(g(r, 'lat_xnnpack_int8_1t_us'), g(r, 'lat_xnnpack_float_1t_us'))} "
            + (f"| {_ratio(g(r, 'lat_noamx_int8_1t_us'), g(r, 'lat_noamx_float_1t_us'))} " if amx else "")
            + f"| {r['size_int8'] / r['size_float']:.3f}x | {triple} |"
        )
    lines += [
        "",
        "## Training step (ms, batch of the recipe)",
        "",
        "| recipe | batch | float | QAT | QAT/float | plain tfmot | float, XLA | QAT, XLA | QAT XLA / float |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tfmot = _num(g(r, "step_tfmot_ms")) if g(r, "step_tfmot_ms") else "n/a (custom layers)"
        lines.append(
            f"| {r['recipe']} | {r['batch']} | {_num(g(r, 'step_float_ms'))} | {_num(g(r, 'step_qat_ms'))} "
            f"| {_ratio(g(r, 'step_qat_ms'), g(r, 'step_float_ms'))} | {tfmot} | {_num(g(r, 'step_float_xla_ms'))} "
            f"| {_num(g(r, 'step_qat_xla_ms'))} | {_ratio(g(r, 'step_qat_xla_ms'), g(r, 'step_float_ms'))} |"
        )
    header = "| recipe | setting | threads | float (us) | int8 (us) | int8/float |"
    lines += ["", "## LiteRT latency, batch 1 (us per invoke)", "", header, "|---|---|---|---|---|---|"]
    names = {"xnnpack": "XNNPACK (as deployed)", "noamx": "XNNPACK without AMX", "builtin": "builtin kernels only"}
    for r in rows:
        for mode in MODES:
            for t in sorted({1, cores}):
                f_, q_ = g(r, f"lat_{mode}_float_{t}t_us"), g(r, f"lat_{mode}_int8_{t}t_us")
                if f_ is None:
                    continue
                lines.append(f"| {r['recipe']} | {names[mode]} | {t} | {f_:.1f} | {q_:.1f} | {_ratio(q_, f_)} |")
    lines += [
        "",
        "## How XNNPACK takes the int8 graph",
        "",
        "| recipe | XNNPACK partitions, float | XNNPACK partitions, int8 | int8 ops left to builtin kernels |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r.get('xnnpack_partitions_float', '-')} | {r.get('xnnpack_partitions_int8', '-')} "
            f"| {r.get('outside_xnnpack_int8', '-')} |"
        )
    if args.batch_sweep:
        lines += [
            "",
            "## Batch sweep (us per example, 1 thread)",
            "",
            "| recipe | batch | setting | float | int8 | int8/float |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            for b in [1, *args.batch_sweep]:
                for mode in ("xnnpack", "noamx"):
                    if b == 1:
                        f_, q_ = g(r, f"lat_{mode}_float_1t_us"), g(r, f"lat_{mode}_int8_1t_us")
                    else:
                        f_ = g(r, f"sweep_b{b}_{mode}_float_us_per_example")
                        q_ = g(r, f"sweep_b{b}_{mode}_int8_us_per_example")
                    if f_ is not None and q_ is not None:
                        lines.append(
                            f"| {r['recipe']} | {b} | {names[mode]} | {f_:.1f} | {q_:.1f} | {_ratio(q_, f_)} |"
                        )
    lines += [
        "",
        "## File size (bytes, names stripped)",
        "",
        "int8 file: int8 constants (weights, 1 byte each) + int32 constants (biases and shapes, 4 bytes each) "
        "+ the rest (graph, tensor and quantization tables: a float32 scale and an int64 zero point per "
        "quantization entry, metadata). Last two columns: the int8 file with fully connected weights kept "
        "per tensor by the converter, as QAT trains them (not what the trainer exports today).",
        "",
        "| recipe | params | float | int8 | int8/float | int8 constants | int32 constants | rest | quantization "
        "entries | int8, dense per tensor | its ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pt = r.get("size_int8_dense_per_tensor")
        lines.append(
            f"| {r['recipe']} | {r['params']} | {r['size_float']} | {r['size_int8']} | {r['size_int8'] / r['size_float']:.3f}x "
            f"| {r.get('int8_bytes_int8', '-')} | {r.get('int8_bytes_int32', '-')} | {r.get('int8_bytes_rest', '-')} "
            f"| {r.get('int8_quant_entries', '-')} | {pt or '-'} | {_num(pt and pt / r['size_float'], '{:.3f}x')} |"
        )
    (OUT / "results.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    names_ = [r["recipe"] for r in rows]
    panels = [
        ("training step, QAT / float", 1.3, [("QAT", "step_qat_ms", "step_float_ms")]),
        (
            "LiteRT latency 1 thread, int8 / float",
            0.6,
            [("XNNPACK as deployed", "lat_xnnpack_int8_1t_us", "lat_xnnpack_float_1t_us")]
            + ([("XNNPACK without AMX", "lat_noamx_int8_1t_us", "lat_noamx_float_1t_us")] if amx else []),
        ),
        ("file size, int8 / float", 0.28, [("int8", "size_int8", "size_float")]),
    ]
    for ax, (title, target, series) in zip(axes, panels, strict=True):
        height = 0.8 / len(series)
        top = 0.0
        for j, (label, key_a, key_b) in enumerate(series):
            values = [(r[key_a] / r[key_b]) if r.get(key_a) and r.get(key_b) else 0.0 for r in rows]
            pos = [i + (j - (len(series) - 1) / 2) * height for i in range(len(rows))]
            ax.barh(pos, values, height=height, label=label)
            for p, v in zip(pos, values, strict=True):
                ax.text(v, p, f" {v:.3f}x" if target < 0.5 else f" {v:.2f}x", va="center", fontsize=8)
            top = max(top, *values)
        ax.set_yticks(range(len(rows)), names_)
        ax.set_xlim(0, max(top, target) * 1.25)
        ax.axvline(target, color="red", lw=0.8, ls="--", label=f"target {target}x")
        if target > 0.5:
            ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(OUT / "results.png", dpi=110)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                return name + (", AMX" if cpu_has_amx() else "")
    except OSError:
        pass
    return os.uname().machine


def loop(path: str, seconds: float, threads: int, no_amx: bool) -> int:
    """Invoke one model in a loop (for a profiler: ``perf record -g python scripts/benchmark.py --loop``)."""
    import numpy as np

    if no_amx and not deny_amx():
        print("[benchmark] could not refuse AMX to this process", file=sys.stderr)
        return 1
    from qatzoo.export.litert import interpreter

    it = interpreter(path, num_threads=threads)
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    partitions, outside = xnnpack_coverage(it)
    outside = ", ".join(f"{op} x{n}" for op, n in sorted(collections.Counter(outside).items())) or "-"
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        it.invoke()
        count += 1
    elapsed = time.perf_counter() - start
    print(
        f"{path}: {elapsed / count * 1e6:.1f} us per invoke ({count} invokes, {threads} thread(s), "
        f"{'AMX refused' if no_amx else 'AMX allowed'}); XNNPACK partitions {partitions}; ops outside XNNPACK: {outside}"
    )
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--latency-worker":
        return _latency_worker(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=recipe_names())
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per variant")
    parser.add_argument(
        "--runs", type=int, default=500, help="timed LiteRT invokes per model, setting and thread count"
    )
    parser.add_argument("--no-xla", dest="xla", action="store_false", help="skip the XLA (jit_compile) step variants")
    parser.add_argument(
        "--batch-sweep", default="", help="comma-separated batch sizes: also LiteRT latency per example there"
    )
    parser.add_argument("--save-models", default=None, help="a folder to keep the measured .tflite files in")
    parser.add_argument("--loop", default=None, help="a .tflite to invoke in a loop instead (for a profiler)")
    parser.add_argument("--seconds", type=float, default=20.0, help="with --loop: how long")
    parser.add_argument("--threads", type=int, default=1, help="with --loop: LiteRT threads")
    parser.add_argument("--no-amx", action="store_true", help="with --loop: refuse AMX to XNNPACK first")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory")
    args = parser.parse_args()
    if args.loop:
        return loop(args.loop, args.seconds, args.threads, args.no_amx)
    args.batch_sweep = [int(b) for b in args.batch_sweep.split(",") if b.strip()]
    if args.save_models:
        Path(args.save_models).mkdir(parents=True, exist_ok=True)
    rows = []
    for recipe in args.recipes:
        print(f"[benchmark] {recipe} ...", flush=True)
        rows.append(bench(recipe, args))
        print(json.dumps(rows[-1]), flush=True)
    write(rows, args)
    print((OUT / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
