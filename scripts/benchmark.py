"""Benchmark every shipped recipe side by side, in one run, and write the tables and a chart.

    python scripts/benchmark.py                 # all recipes -> scripts/benchmark/results.{md,csv,png}
    python scripts/benchmark.py mnist_cnn_int8  # some

For each recipe, on this machine as it is:
- training step time (median of ``--steps`` steps after warm-up, the trainer's own compiled step):
  float model, this project's QAT model, and plain ``tfmot.quantization.keras.quantize_model`` where
  it applies (it refuses the custom attention and layer-norm layers);
- LiteRT latency of the float and the int8 .tflite, batch 1, 1 thread and all cores (median of
  ``--runs`` invokes after warm-up);
- file sizes (both files as the trainer writes them);
- the accuracy triple float / PTQ int8 / QAT int8 as published in zoo/index.json (measured in LiteRT
  on the full test split when the model was published).
Latency and step time do not depend on the trained values of the weights, so the models here are
built from the recipe's config and calibrated on real training inputs, not trained. Ratios are
measured side by side in one process; absolute numbers vary with the machine and its load.
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
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from qatzoo.config import recipe_names  # noqa: E402

OUT = REPO / "scripts" / "benchmark"


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


def step_time(model, data, batch_size: int, steps: int) -> float:
    """Median seconds of one training step (forward, backward, Adam update) on real batches."""
    import tensorflow as tf

    from qatzoo.keras import keras
    from qatzoo.train.loop import _loss_and_metric, batch_indices

    loss_fn, _ = _loss_and_metric(data.task)
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function(reduce_retracing=True)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
        )
        return loss

    times = []
    for s in range(steps + 5):
        idx = batch_indices(len(data.x_train), batch_size, 0, s)
        x, y = tf.constant(data.x_train[idx]), tf.constant(data.y_train[idx])
        start = time.perf_counter()
        float(train_step(x, y))
        if s >= 5:  # warm-up: tracing and first allocations
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(model: bytes, sample, threads: int, runs: int) -> float:
    """Median seconds of one batch-1 invoke in LiteRT (XNNPACK, as deployed)."""
    import numpy as np

    from qatzoo.export.litert import interpreter

    it = interpreter(model, num_threads=threads)
    inp = it.get_input_details()[0]
    x = sample[None]
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127)
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    for _ in range(20):
        it.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(recipe: str, steps: int, runs: int, data_dir: str | None) -> dict:
    import tensorflow_model_optimization as tfmot
    from hydra.utils import instantiate

    from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
    from qatzoo.keras import keras
    from qatzoo.quant.schemes import scheme
    from qatzoo.train.trainer import _kwargs

    cfg = _cfg(recipe, data_dir)
    keras.utils.set_random_seed(0)
    data = instantiate(_kwargs(cfg.data, drop=("task",)))
    model = instantiate(_kwargs(cfg.arch), input_shape=data.input_shape, num_outputs=data.num_outputs)
    sample = data.representative(256, 0)
    qat = scheme("int8", qat=True, int8=True).quantize(model, sample)
    batch = cfg.schedule.batch_size
    row = {"recipe": recipe, "params": model.count_params(), "batch": batch}
    row["step_float_ms"] = step_time(model, data, batch, steps) * 1e3
    row["step_qat_ms"] = step_time(qat, data, batch, steps) * 1e3
    try:
        plain = tfmot.quantization.keras.quantize_model(model)
        row["step_tfmot_ms"] = step_time(plain, data, batch, steps) * 1e3
    except Exception as error:  # noqa: BLE001 - reported in the table
        row["step_tfmot_ms"] = None
        row["tfmot_note"] = f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
    float_file = strip_names(to_float_tflite(model))
    int8_file = strip_names(to_int8_tflite(qat, lambda: sample))
    row["size_float"], row["size_int8"] = len(float_file), len(int8_file)
    cores = os.cpu_count() or 1
    for threads in sorted({1, cores}):
        row[f"lat_float_{threads}t_us"] = latency(float_file, data.x_test[0], threads, runs) * 1e6
        row[f"lat_int8_{threads}t_us"] = latency(int8_file, data.x_test[0], threads, runs) * 1e6
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


def write(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    keys = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    with open(OUT / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)

    def ms(v):
        return "-" if v is None else f"{v:.2f}"

    lines = [
        "# Benchmark",
        "",
        f"`python scripts/benchmark.py` on {cores} CPU cores; medians; ratios measured side by side in one run.",
        "",
        "| recipe | step float (ms) | step QAT (ms) | QAT/float | step plain tfmot (ms) | LiteRT float 1t (us) | LiteRT int8 1t (us) "
        f"| int8/float 1t | LiteRT float {cores}t (us) | LiteRT int8 {cores}t (us) | int8/float {cores}t | size int8/float "
        "| float / PTQ int8 / QAT int8 (published) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        triple = f"{r['float']:.4g} / {r['ptq_int8']:.4g} / {r['qat_int8']:.4g} {r['metric']}" if "metric" in r else "-"
        lines.append(
            f"| {r['recipe']} | {ms(r['step_float_ms'])} | {ms(r['step_qat_ms'])} | {r['step_qat_ms'] / r['step_float_ms']:.2f}x "
            f"| {ms(r['step_tfmot_ms']) if r['step_tfmot_ms'] else 'n/a (custom layers)'} "
            f"| {r['lat_float_1t_us']:.1f} | {r['lat_int8_1t_us']:.1f} | {r['lat_int8_1t_us'] / r['lat_float_1t_us']:.2f}x "
            f"| {r[f'lat_float_{cores}t_us']:.1f} | {r[f'lat_int8_{cores}t_us']:.1f} "
            f"| {r[f'lat_int8_{cores}t_us'] / r[f'lat_float_{cores}t_us']:.2f}x | {r['size_int8'] / r['size_float']:.3f}x | {triple} |"
        )
    (OUT / "results.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = [r["recipe"] for r in rows]
    for ax, (title, key_a, key_b) in zip(
        axes,
        [
            ("training step, QAT / float", "step_qat_ms", "step_float_ms"),
            ("LiteRT latency 1 thread, int8 / float", "lat_int8_1t_us", "lat_float_1t_us"),
            ("file size, int8 / float", "size_int8", "size_float"),
        ],
        strict=True,
    ):
        values = [r[key_a] / r[key_b] for r in rows]
        ax.barh(names, values, color="#4c72b0")
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.2f}x", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "results.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=recipe_names())
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    parser.add_argument("--runs", type=int, default=200, help="timed LiteRT invokes per model and thread count")
    parser.add_argument("--data-dir", default=None, help="TFDS data directory")
    args = parser.parse_args()
    rows = []
    for recipe in args.recipes:
        print(f"[benchmark] {recipe} ...", flush=True)
        rows.append(bench(recipe, args.steps, args.runs, args.data_dir))
        print(json.dumps(rows[-1]), flush=True)
    write(rows)
    print((OUT / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
