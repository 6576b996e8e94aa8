"""Train every shipped recipe under several quantization schemes and write the README's scheme table.

    python scripts/scheme_table.py                          # all recipes, default schemes
    python scripts/scheme_table.py mnist_cnn_int8           # one recipe
    python scripts/scheme_table.py --runs-dir runs/schemes  # keep the runs (default: a temp dir)

For each recipe: the recipe's own run (float, PTQ int8 and QAT w8a8), then QAT ``w4a8`` and the
selective schemes (``w4a8_ends8``; ``w8a8_keep_norm_gelu`` where the model has LayerNorm/GELU). Every
int8 number is the exported .tflite in LiteRT on the full test split. Writes
scripts/schemes/results.{md,csv,json}; the best selective scheme is picked by the QAT model's
*validation* metric (metrics.json "validation"), never by a test number, among the schemes whose
int8 file passes the full-integer and parity checks.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from qatzoo.config import recipe_names  # noqa: E402
from qatzoo.report import RunReport  # noqa: E402

OUT = REPO / "scripts" / "schemes"
#: Selective schemes tried for every recipe, and for models with LayerNorm and GELU.
SELECTIVE = ["w4a8_ends8"]
SELECTIVE_NORM_GELU = ["w8a8_keep_norm_gelu"]
NORM_GELU_ARCHS = {"small_transformer"}


def run(recipe: str, runs_dir: Path, extra: list[str], reuse: bool = False) -> tuple[RunReport, float]:
    start = time.perf_counter()
    tag = "_".join(e.split("=", 1)[1] for e in extra if e.startswith("quant=")) or "recipe"
    done = sorted((runs_dir / tag / recipe).glob("*/metrics.json"))
    if reuse and done:
        print(f"{recipe} {tag}: reusing {done[-1].parent}", flush=True)
        return RunReport.read(done[-1].parent), 0.0
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"recipe={recipe}",
            f"paths.runs_dir={runs_dir / tag}",
            "trainer.verbose=0",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{recipe} {extra} failed:\n{result.stderr[-3000:]}")
    metrics_file = sorted((runs_dir / tag / recipe).glob("*/metrics.json"))[-1]
    print(f"{recipe} {tag}: {seconds:.0f} s ({metrics_file.parent})", flush=True)
    return RunReport.read(metrics_file.parent), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", help="recipe names (default: all)")
    parser.add_argument("--runs-dir", default=None, help="where to keep the runs (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="use finished runs already in --runs-dir")
    args = parser.parse_args()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="qatzoo-schemes-")).absolute()
    rows = []
    for recipe in args.recipes or recipe_names():
        base, _ = run(recipe, runs_dir, [], args.reuse)
        row = {
            "recipe": recipe,
            "data": base.data,
            "metric": f"{base.metric} ({base.unit})",
            "float": base.value("float"),
            "ptq_int8": base.value("ptq_int8"),
            "qat_w8a8": base.value("qat_int8"),
            "w8a8_size": base.sizes.int8_over_float,
        }
        w4, _ = run(recipe, runs_dir, ["quant=w4a8"], args.reuse)
        row["qat_w4a8"] = w4.value("qat_int8")
        row["w4a8_size"] = w4.sizes.int8_over_float
        selective = SELECTIVE + (SELECTIVE_NORM_GELU if base.arch in NORM_GELU_ARCHS else [])
        tried = {}
        for name in selective:
            m, _ = run(recipe, runs_dir, [f"quant={name}"], args.reuse)
            tried[name] = m
        # Picked by the QAT model's validation score among the schemes whose int8 file passes the
        # zoo's checks (full integer, parity with its QAT model); shown: the pick's int8 file on test.
        valid = {n: m for n, m in tried.items() if m.passed} or tried
        pick = (max if base.higher_is_better else min)(valid, key=lambda n: valid[n].value("qat", split="val"))
        row["best_selective"] = pick
        row["best_selective_int8"] = tried[pick].value("qat_int8")
        row["best_selective_size"] = tried[pick].sizes.int8_over_float
        row["all_selective"] = {
            n: {
                "int8": m.value("qat_int8"),
                "val_qat": m.value("qat", split="val"),
                **(m.checks.plain if m.checks else {}),
            }
            for n, m in tried.items()
        }
        row["full_integer"] = all(m.int8.full_integer for m in [base, w4, *tried.values()])
        rows.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    fields = [k for k in rows[0] if k != "all_selective"]
    with open(OUT / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| recipe | metric | float | PTQ int8 | QAT w8a8 (size) | QAT w4a8 (size) | best selective (size) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fmt = "{:.2f}" if "%" in row["metric"] else "{:.4f}"
        lines.append(
            f"| {row['recipe']} | {row['metric']} | {fmt.format(row['float'])} | {fmt.format(row['ptq_int8'])} | "
            f"{fmt.format(row['qat_w8a8'])} ({row['w8a8_size']:.2f}x) | {fmt.format(row['qat_w4a8'])} ({row['w4a8_size']:.2f}x) | "
            f"{row['best_selective']}: {fmt.format(row['best_selective_int8'])} ({row['best_selective_size']:.2f}x) |"
        )
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nruns kept in {runs_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
