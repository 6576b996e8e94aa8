"""Recipe x QAT engine: the int8 metric, the int8 file's size and its latency over float, from finished runs.

    python scripts/engine_compare.py RUN_DIR [RUN_DIR ...] [--out scripts/benchmark/engines.md]

Give each recipe's run on every engine (``python train.py recipe=NAME`` and ``... engine=keras3``). The
metric is the run's own (LiteRT on the test split, the int8 file). Latency: every run's int8 and float
.tflite in one LiteRT child process, 1 thread, batch 1, XNNPACK, their invokes interleaved (so machine
load hits all alike), on a random input of the model's shape. The QAT/float training-step ratio of each engine
comes from ``python scripts/benchmark.py --engine-steps-only`` (scripts/benchmark/engine_steps.csv), which times
the steps side by side. The deployment columns are those of the zoo README: one per registered runtime with a zoo
column (``qatzoo.deploy.RUNTIMES``: TFLite Micro, Ethos-U55 through Vela); a run made without the deployment
report (or without a runtime's section) gets that runtime run on its file here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _columns() -> list:
    """The registered deployment runtimes with a zoo README column (the others, LiteRT on this CPU, are
    measured here side by side)."""
    from qatzoo.deploy import RUNTIMES

    return [r for r in RUNTIMES if r.zoo is not None]


def _cell(value: str) -> str:
    """``value`` as the text of one table cell (on one line, ``|`` escaped)."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _read(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    for name in ("model_int8.tflite", "model_float.tflite"):
        if not (run / name).is_file():
            raise SystemExit(f"error: {run} has no {name}; pass finished QAT runs")
    engine = metrics.get("provenance", {}).get("engine", {})
    return {
        "run": run,
        "recipe": metrics["name"],
        "engine": engine.get("name", "tfmot"),
        # Runs from before engines were recorded ran on tfmot, on the tf-keras their versions list.
        "keras": engine.get("keras", metrics.get("provenance", {}).get("versions", {}).get("tf-keras", "2")),
        "metric": metrics["metric"],
        "value": metrics["results"][metrics["int8_model"]][metrics["metric"]],
        "unit": metrics.get("unit", ""),
        "int8_bytes": (run / "model_int8.tflite").stat().st_size,
        "float_bytes": (run / "model_float.tflite").stat().st_size,
        "test": metrics["dataset"]["sizes"]["test"],
        "deployment": dict(metrics.get("deployment") or {}),
        "parity": (metrics.get("checks") or {}).get("parity"),
        "command": metrics.get("command", ""),
    }


def _step_ratios(path: Path) -> dict[tuple[str, str], float]:
    """(recipe, engine) -> QAT/float training-step ratio, from engine_steps.csv (empty if there is none)."""
    import csv

    if not path.is_file():
        return {}
    out = {}
    for row in csv.DictReader(path.open()):
        for engine in ("tfmot", "keras3"):
            out[(row["recipe"], engine)] = float(row[f"step_{engine}_qat_ms"]) / float(row[f"step_{engine}_float_ms"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished run directories (metrics.json, model_*.tflite)")
    parser.add_argument("--runs-per-model", type=int, default=300, help="timed invokes per model")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    parser.add_argument(
        "--steps",
        default=str(REPO / "scripts" / "benchmark" / "engine_steps.csv"),
        help="the training-step medians of scripts/benchmark.py --engine-steps-only (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    from qatzoo.bench.cpu import cpu_name
    from qatzoo.bench.latency import measure
    from qatzoo.export import litert

    rows = [_read(Path(run)) for run in args.runs]
    columns = _columns()
    for r in rows:  # a run made with trainer.deployment=false: each runtime missing from it on its int8 file now
        missing = [c.key for c in columns if c.key not in r["deployment"]]
        if missing:
            from qatzoo.deploy import report

            blob = (r["run"] / "model_int8.tflite").read_bytes()
            shape = litert.interpreter(blob).get_input_details()[0]["shape"][1:]
            x = np.random.default_rng(0).uniform(0.0, 1.0, size=(20, *shape)).astype(np.float32)
            for key in missing:
                r["deployment"][key] = report.measure(key, blob, x)
    us = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        group = [r for r in rows if r["recipe"] == recipe]
        files = {}
        for i, r in enumerate(group):
            files[f"{i}_int8"] = (r["run"] / "model_int8.tflite").read_bytes()
            files[f"{i}_float"] = (r["run"] / "model_float.tflite").read_bytes()
        shape = litert.interpreter(files["0_float"]).get_input_details()[0]["shape"][1:]
        sample = np.random.default_rng(0).uniform(0.0, 1.0, size=(1, *shape)).astype(np.float32)
        lat = measure(files, sample, "xnnpack", [1], runs=args.runs_per_model)
        for i, r in enumerate(group):
            us[id(r)] = (lat.us[f"{i}_int8"][1], lat.us[f"{i}_float"][1])
        print(f"measured {recipe} ({len(group)} runs)", file=sys.stderr)

    steps = _step_ratios(Path(args.steps))
    lines = [
        "| recipe | engine (Keras) | int8 metric, test split (LiteRT) | int8 file | int8/float size | "
        "QAT/float train step | int8 / float latency (us) | int8/float latency | "
        + "".join(f"{c.zoo.header} | " for c in columns)
        + "parity |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(columns) + "---|",
    ]
    for r in rows:
        step = steps.get((r["recipe"], r["engine"]))
        int8_us, float_us = us[id(r)]
        value = f"{r['value']:.4f} {r['unit']}" if r["metric"] == "mae" else f"{r['value']:.2f}%"
        where = "".join(f"{c.zoo.cell(r['deployment'][c.key], _cell)} | " for c in columns)
        lines.append(
            f"| {r['recipe']} | {r['engine']} ({r['keras']}) | {r['metric']} {value} ({r['test']:,} examples) | "
            f"{r['int8_bytes']:,} B | {r['int8_bytes'] / r['float_bytes']:.2f}x | "
            f"{f'{step:.2f}x' if step else '-'} | {int8_us:.1f} / {float_us:.1f} | "
            f"{int8_us / float_us:.2f}x | {where}{'pass' if r['parity'] else r['parity']} |"
        )
    header = (
        f"Latency on {cpu_name()}: LiteRT, XNNPACK, 1 thread, batch 1, median of {args.runs_per_model} invokes per "
        "model, every model of a recipe in one child process with their invokes interleaved. QAT/float train step: "
        f"medians from {Path(args.steps).name} (`python scripts/benchmark.py --engine-steps-only`).\n"
    )
    table = header + "\n" + "\n".join(lines) + "\n"
    print(table)
    if args.out:
        runs = "\n".join(f"- {r['recipe']} on {r['engine']}: `{r['command']}`" for r in rows)
        Path(args.out).write_text(
            "# Recipe x QAT engine\n\n`python scripts/engine_compare.py RUN_DIR...` on the runs of these commands:\n\n"
            + runs
            + "\n\n"
            + table
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
