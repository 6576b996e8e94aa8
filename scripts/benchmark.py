"""Benchmark every shipped recipe side by side, in one run, and write the tables and a chart.

    python scripts/benchmark.py                          # all recipes -> scripts/benchmark/results.{md,csv,png}
    python scripts/benchmark.py mnist_cnn_int8           # some
    python scripts/benchmark.py --batch-sweep 32,256     # also LiteRT latency per example at larger batches
    python scripts/benchmark.py --save-models DIR        # also keep the .tflite files it measured
    python scripts/benchmark.py mnist_cnn_int8 --quick --out /tmp/bench   # a quick check, elsewhere
    python scripts/benchmark.py --engine-steps-only      # only the QAT/float step ratio of each engine
                                                         #   -> scripts/benchmark/engine_steps.{md,csv}
    python scripts/benchmark.py --loop FILE.tflite [--no-amx] [--seconds 20]
                                                         # invoke one model in a loop, e.g. under `perf record -g`

For each recipe, on this machine as it is:
- training step time (median of ``--steps`` steps after warm-up, the trainer's compiled step),
  measured in interleaved rounds so that every variant sees the same machine load: float model, this
  project's QAT model, plain ``tfmot.quantization.keras.quantize_model`` where it applies (it refuses
  the custom attention and layer-norm layers), and the float and QAT steps compiled with XLA
  (``tf.function(jit_compile=True)``, what a ``jit_compile`` switch in ``qatzoo/train/loop.py`` would
  run);
- the same step, float and QAT, on each QAT engine (``--engines tfmot,keras3``): a process holds one Keras
  (qatzoo/engine.py), so each engine's models live in a child process of their own (``--step-worker``),
  and the parent runs the children's rounds in turn (round 1 of tfmot, round 1 of keras3, round 2 of
  tfmot, ...): both engines' ratios come from the same minutes of machine load;
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
- file sizes (both files as the trainer writes them), and where the int8 file's bytes go;
- the accuracy triple float / PTQ int8 / QAT int8 as published in zoo/index.json (measured in LiteRT
  on the full test split when the model was published).
Latency and step time do not depend on the trained values of the weights, so the models here are
built from the recipe's config and calibrated on real training inputs, not trained. Ratios are
measured side by side in one process; absolute numbers vary with the machine and its load.

The measurements themselves live in ``qatzoo.bench`` (latency worker, XNNPACK coverage, size
breakdown, batch-N export, AMX); this script builds the models, runs them and writes the tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from qatzoo.bench.cpu import cpu_name, deny_amx, has_amx  # noqa: E402
from qatzoo.bench.latency import MODES  # noqa: E402
from qatzoo.config import recipe_names  # noqa: E402

OUT = REPO / "scripts" / "benchmark"


def _cfg(recipe: str, data_dir: str | None):
    from qatzoo.config import compose, validate

    return validate(compose([f"recipe={recipe}"] + ([f"paths.data_dir={data_dir}"] if data_dir else [])))


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
    from qatzoo.train.loop import batch_indices, loss_for, make_train_step

    loss_fn = loss_for(data.task)

    def compiled(model, jit):
        # The trainer's own step (a constant learning rate: a schedule does not change a step's cost).
        return make_train_step(model, keras.optimizers.Adam(1e-4), loss_fn, jit_compile=jit)

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


def step_worker(recipe: str, data_dir: str | None, batch_steps: int) -> int:
    """A child process of one engine (``$QATZOO_ENGINE``): builds ``recipe``'s float and QAT models, warms
    their training steps up, prints ``ready``; then for each line ``round K`` on stdin runs ``K`` steps of
    each and prints their seconds as one JSON line. Ends at end of input."""
    import tensorflow as tf

    from qatzoo.build import build_model, load_data
    from qatzoo.keras import KERAS_VERSION, keras
    from qatzoo.quant.schemes import scheme
    from qatzoo.train.loop import batch_indices, loss_for, make_train_step

    cfg = _cfg(recipe, data_dir)
    keras.utils.set_random_seed(0)
    data = load_data(cfg.data)
    model = build_model(cfg.arch, data)
    qat = scheme("int8", qat=True, int8=True).quantize(model, data.representative(256, 0))
    batch, loss_fn, n = cfg.schedule.batch_size, loss_for(data.task), len(data.x_train)
    batches = [
        (tf.constant(data.x_train[idx]), tf.constant(data.y_train[idx]))
        for idx in (batch_indices(n, batch, 0, s) for s in range(max(batch_steps, 5)))
    ]
    fns = {
        name: make_train_step(m, keras.optimizers.Adam(1e-4), loss_fn) for name, m in (("float", model), ("qat", qat))
    }
    for fn in fns.values():
        for x, y in batches[:5]:
            float(fn(x, y))
    print(json.dumps({"ready": True, "keras": KERAS_VERSION}), flush=True)
    i = 0
    for line in sys.stdin:
        count = int(line.split()[1])
        times = {name: [] for name in fns}
        for name, fn in fns.items():
            for _ in range(count):
                x, y = batches[i % len(batches)]
                i += 1
                start = time.perf_counter()
                float(fn(x, y))
                times[name].append(time.perf_counter() - start)
        print(json.dumps(times), flush=True)
    return 0


def _reply(worker) -> dict:
    """The next JSON line a step worker printed (other lines, a library's chatter, are skipped)."""
    for line in worker.stdout:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("a step worker ended early (its error is above)")


def engine_step_times(recipe: str, engines: list[str], args, rounds: int = 5) -> dict:
    """``{engine: {"float": s, "qat": s, "keras": version}}``: median step seconds of each engine's float and
    QAT models, every engine in its own child process, their rounds interleaved (see the module doc)."""
    import subprocess

    workers = {}
    env = {k: v for k, v in os.environ.items() if k not in ("QATZOO_ENGINE", "TF_USE_LEGACY_KERAS", "KERAS_BACKEND")}
    command = [sys.executable, str(Path(__file__).resolve()), "--step-worker", recipe, "--steps", str(args.steps)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    for engine in engines:
        workers[engine] = subprocess.Popen(
            command, env={**env, "QATZOO_ENGINE": engine}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    results = {}
    try:
        for engine, worker in workers.items():  # one at a time: builds and warm-ups do not overlap the rounds
            results[engine] = {"keras": _reply(worker)["keras"], "float": [], "qat": []}
        per_round = max(1, args.steps // rounds)
        for _ in range(rounds):
            for engine, worker in workers.items():
                worker.stdin.write(f"round {per_round}\n")
                worker.stdin.flush()
                for name, seconds in _reply(worker).items():
                    results[engine][name] += seconds
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait(timeout=120)
    return {
        engine: {"keras": r["keras"], "float": statistics.median(r["float"]), "qat": statistics.median(r["qat"])}
        for engine, r in results.items()
    }


def engine_row(recipe: str, args) -> dict:
    """The step columns of each engine: ``step_<engine>_{float,qat}_ms`` and ``keras_<engine>``."""
    row = {"recipe": recipe}
    for engine, r in engine_step_times(recipe, args.engines, args).items():
        row[f"keras_{engine}"] = r["keras"]
        row[f"step_{engine}_float_ms"], row[f"step_{engine}_qat_ms"] = r["float"] * 1e3, r["qat"] * 1e3
    return row


def engine_lines(rows: list[dict], engines: list[str]) -> list[str]:
    """The table of QAT/float step time by engine (rows that have the engine columns)."""
    keras_of = {e: next((r[f"keras_{e}"] for r in rows if f"keras_{e}" in r), "?") for e in engines}
    lines = [
        "## Training step by QAT engine (ms, batch of the recipe)",
        "",
        "Each engine's float and QAT models in a child process of their own (one Keras per process: "
        + ", ".join(f"{e} on Keras {keras_of[e]}" for e in engines)
        + "), their rounds interleaved. Target: QAT <= 1.3x float.",
        "",
        "| recipe | " + " | ".join(f"{e} float | {e} QAT | {e} QAT/float" for e in engines) + " |",
        "|---|" + "---|---|---|" * len(engines),
    ]
    for r in rows:
        if not any(f"step_{e}_qat_ms" in r for e in engines):
            continue
        cells = []
        for e in engines:
            f_, q_ = r.get(f"step_{e}_float_ms"), r.get(f"step_{e}_qat_ms")
            cells += [_num(f_), _num(q_), _ratio(q_, f_)]
        lines.append(f"| {r['recipe']} | " + " | ".join(cells) + " |")
    return lines


def write_engine_steps(rows: list[dict], args) -> None:
    """``engine_steps.{csv,md}`` in ``args.out``: the engine step table alone (``--engine-steps-only``)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "engine_steps.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    head = [
        "# Benchmark: training step by QAT engine",
        "",
        f"`{' '.join(['python scripts/benchmark.py', *sys.argv[1:]])}` on {os.cpu_count() or 1} CPU cores "
        f"({cpu_name()}, load average {os.getloadavg()[0]:.1f} at the end); medians of {args.steps} steps per model. "
        "The full benchmark (results.md) writes the same table beside its others.",
        "",
    ]
    (out / "engine_steps.md").write_text("\n".join(head + engine_lines(rows, args.engines)) + "\n")


def bench(recipe: str, args) -> dict:
    """One row of measurements for ``recipe``: parameters, step times, sizes, latencies, published accuracy."""
    import numpy as np
    import tensorflow_model_optimization as tfmot

    from qatzoo.bench.export import to_tflite_at_batch
    from qatzoo.bench.latency import measure
    from qatzoo.bench.sizes import size_breakdown
    from qatzoo.build import build_model, load_data
    from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
    from qatzoo.keras import keras
    from qatzoo.quant.schemes import scheme

    cfg = _cfg(recipe, args.data_dir)
    keras.utils.set_random_seed(0)
    data = load_data(cfg.data)
    model = build_model(cfg.arch, data)
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
    if args.engines:
        row.update(engine_row(recipe, args))

    files = {"float": strip_names(to_float_tflite(model)), "int8": strip_names(to_int8_tflite(qat, lambda: sample))}
    row["size_float"], row["size_int8"] = len(files["float"]), len(files["int8"])
    row.update({f"int8_{k}": v for k, v in size_breakdown(files["int8"]).row().items()})
    if args.save_models:
        for name, blob in files.items():
            Path(args.save_models, f"{recipe}_{name}.tflite").write_bytes(blob)
    threads = sorted({1, os.cpu_count() or 1})
    x0 = np.asarray(data.x_test[0], np.float32)
    for mode in MODES:
        if mode == "noamx" and not has_amx():
            continue
        lat = measure(files, x0, mode, [1] if mode == "builtin" else threads, args.runs)
        row.setdefault("cpu", lat.cpu)
        if mode == "noamx":
            row["amx_denied"] = lat.amx_denied
        for name, by_threads in lat.us.items():
            for t, us in by_threads.items():
                row[f"lat_{mode}_{name}_{t}t_us"] = us
        if mode == "xnnpack":
            row["xnnpack_partitions_float"] = lat.coverage["float"].partitions
            row["xnnpack_partitions_int8"] = lat.coverage["int8"].partitions
            row["outside_xnnpack_int8"] = lat.coverage["int8"].outside_summary()

    # The deployment runtimes with a zoo column (qatzoo.deploy.RUNTIMES: TFLite Micro, Ethos-U55 through Vela) on
    # the same int8 file and the first test inputs; LiteRT on this CPU is measured above, in more settings.
    from qatzoo.deploy.report import measure as deployed

    x = np.asarray(data.x_test[: args.tflm_examples], np.float32)
    row["deployment"] = {r.key: deployed(r.key, files["int8"], x) for r in deployment_columns()}
    for key, section in row["deployment"].items():  # the CSV's columns: <runtime>_<field>, plain values only
        row.update(
            {f"{key}_{k}": v for k, v in section.items() if v is None or isinstance(v, bool | int | float | str)}
        )

    for b in args.batch_sweep:
        big = {"float": to_tflite_at_batch(model, b), "int8": to_tflite_at_batch(qat, b, sample)}
        xb = np.resize(np.asarray(data.x_test[:b], np.float32), (b, *data.x_test.shape[1:]))
        for mode in ("xnnpack", "noamx") if has_amx() else ("xnnpack",):
            lat = measure(big, xb, mode, [1], max(20, args.runs // b))
            for name, by_threads in lat.us.items():
                row[f"sweep_b{b}_{mode}_{name}_us_per_example"] = by_threads[1] / b

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


def deployment_columns() -> list:
    """The registered deployment runtimes with a zoo README column (qatzoo.deploy.RUNTIMES)."""
    from qatzoo.deploy import RUNTIMES

    return [r for r in RUNTIMES if r.zoo is not None]


def _cell(value: str) -> str:
    """``value`` as the text of one table cell (on one line, ``|`` escaped)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def _num(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def write(rows: list[dict], args) -> None:
    """``results.csv`` (every measurement), ``results.md`` (the tables) and ``results.png`` in ``args.out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    cpu = next((r["cpu"] for r in rows if "cpu" in r), None) or cpu_name()
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "deployment"))  # its plain fields have columns
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    amx = any("lat_noamx_int8_1t_us" in r for r in rows)
    g = lambda r, k: r.get(k)  # noqa: E731
    lines = [
        "# Benchmark",
        "",
        f"`{' '.join(['python scripts/benchmark.py', *sys.argv[1:]])}` on {cores} CPU cores ({cpu}); medians; every ratio is measured side "
        "by side in one run (training steps in interleaved rounds; float and int8 invokes in alternating blocks "
        "of at least 50 ms in one process per LiteRT setting). Targets: QAT step <= 1.3x float, int8 latency "
        "<= 0.55x float (CNN), <= 0.8x float (attention, transformer), int8 file <= 0.28x float; every int8 file "
        "runs in TensorFlow Lite Micro and 100% on the Ethos-U55 NPU.",
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
    from qatzoo.deploy.report import lines as deployment_lines

    columns = deployment_columns()
    lines += [
        "",
        "## Where the int8 file runs",
        "",
        "Each registered deployment runtime with a zoo column (`qatzoo.deploy.RUNTIMES`) on the int8 file, given the "
        f"first {args.tflm_examples} test inputs where it runs the model (its outputs compared with LiteRT's); the "
        "models here are calibrated, not trained: a run's card and the zoo index give the trained model's. The table "
        "has the zoo README's cells; the lines below it, each runtime's card line.",
        "",
        "".join(f"| {header} " for header in ["recipe", *(c.zoo.header for c in columns)]) + "|",
        "|---|" + "---|" * len(columns),
    ]
    for r in rows:
        deployment = r.get("deployment", {})
        cells = (c.zoo.cell(deployment[c.key], _cell) if c.key in deployment else "-" for c in columns)
        lines.append("".join(f"| {cell} " for cell in [r["recipe"], *cells]) + "|")
    for r in rows:
        lines += ["", f"{r['recipe']}:", "", *deployment_lines(r.get("deployment", {}))]
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
    if args.engines:
        lines += ["", *engine_lines(rows, args.engines)]
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
        "quantization entry, metadata).",
        "",
        "| recipe | params | float | int8 | int8/float | int8 constants | int32 constants | rest | quantization "
        "entries |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['params']} | {r['size_float']} | {r['size_int8']} | {r['size_int8'] / r['size_float']:.3f}x "
            f"| {r.get('int8_bytes_int8', '-')} | {r.get('int8_bytes_int32', '-')} | {r.get('int8_bytes_rest', '-')} "
            f"| {r.get('int8_quant_entries', '-')} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    names_ = [r["recipe"] for r in rows]
    panels = [
        ("training step, QAT / float", 1.3, [("QAT", "step_qat_ms", "step_float_ms")]),
        (
            "LiteRT latency 1 thread, int8 / float",
            0.8,
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
    fig.savefig(out / "results.png", dpi=110)


def loop(path: str, seconds: float, threads: int, no_amx: bool) -> int:
    """Invoke one model in a loop (for a profiler: ``perf record -g python scripts/benchmark.py --loop``)."""
    import numpy as np

    if no_amx and not deny_amx():
        print("[benchmark] could not refuse AMX to this process", file=sys.stderr)
        return 1
    from qatzoo.bench.xnnpack import coverage
    from qatzoo.export.litert import interpreter

    it = interpreter(path, num_threads=threads)
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
    cov = coverage(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        it.invoke()
        count += 1
    elapsed = time.perf_counter() - start
    print(
        f"{path}: {elapsed / count * 1e6:.1f} us per invoke ({count} invokes, {threads} thread(s), "
        f"{'AMX refused' if no_amx else 'AMX allowed'}); XNNPACK partitions {cov.partitions}; "
        f"ops outside XNNPACK: {cov.outside_summary()}"
    )
    return 0


def main() -> int:
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
    parser.add_argument(
        "--engines", default="tfmot,keras3", help="QAT engines whose step ratio to measure side by side ('' for none)"
    )
    parser.add_argument(
        "--engine-steps-only", action="store_true", help="only the step table by engine (engine_steps.{md,csv})"
    )
    parser.add_argument("--step-worker", default=None, help=argparse.SUPPRESS)  # a child of engine_step_times
    parser.add_argument(
        "--tflm-examples",
        type=int,
        default=200,
        help="test inputs given to each deployment runtime that runs the model (TFLite Micro), and LiteRT (default: 200)",
    )
    parser.add_argument("--out", default=str(OUT), help="where results.{md,csv,png} go (default: %(default)s)")
    parser.add_argument(
        "--quick", action="store_true", help="a quick check: 5 steps, 50 invokes, no XLA (numbers are rough)"
    )
    args = parser.parse_args()
    if args.loop:
        return loop(args.loop, args.seconds, args.threads, args.no_amx)
    if args.step_worker:
        return step_worker(args.step_worker, args.data_dir, args.steps)
    args.engines = [e for e in args.engines.split(",") if e.strip()]
    args.batch_sweep = [int(b) for b in args.batch_sweep.split(",") if b.strip()]
    if args.quick:
        args.steps, args.runs, args.xla = 5, 50, False
    if args.save_models:
        Path(args.save_models).mkdir(parents=True, exist_ok=True)
    if args.engine_steps_only:
        rows = []
        for recipe in args.recipes:
            print(f"[benchmark] {recipe}: step time by engine ...", flush=True)
            rows.append(engine_row(recipe, args))
            print(json.dumps(rows[-1]), flush=True)
        write_engine_steps(rows, args)
        print((Path(args.out) / "engine_steps.md").read_text())
        return 0
    rows = []
    for recipe in args.recipes:
        print(f"[benchmark] {recipe} ...", flush=True)
        rows.append(bench(recipe, args))
        print(json.dumps(rows[-1]), flush=True)
    write(rows, args)
    print((Path(args.out) / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
