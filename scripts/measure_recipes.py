"""Run the shipped recipes at their default settings and check the targets of the foundation issue.

    python scripts/measure_recipes.py                       # all recipes
    python scripts/measure_recipes.py attention_int8        # one; also the wall-time benchmark
    python scripts/measure_recipes.py paths.data_dir=/data  # KEY=VALUE arguments go to every run

Prints one row per recipe (float / PTQ int8 / QAT int8 measured in LiteRT, parity, size, wall time)
and a line per target; exits 1 if a target is missed. Wall time is the whole `python train.py` process
(import, data, float, QAT, three conversions, evaluation), measured on this machine as it is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from qatzoo.config import recipe_names  # noqa: E402
from qatzoo.report import RunReport  # noqa: E402

#: recipe -> largest allowed loss of the int8 model against float: accuracy points, or MAE ratio.
TARGETS = {"mnist_cnn_int8": ("points", 0.5), "transformer_int8": ("points", 1.0), "attention_int8": ("ratio", 1.05)}
MAX_SIZE_RATIO = 0.30
MAX_ATTENTION_SECONDS = 300


def run(recipe: str, runs_dir: Path, extra: list[str]) -> tuple[dict, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "train.py", f"recipe={recipe}", f"paths.runs_dir={runs_dir}", "trainer.verbose=0", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{recipe} failed:\n{result.stderr[-3000:]}")
    metrics_file = sorted((runs_dir / recipe).glob("*/metrics.json"))[-1]
    return RunReport.read(metrics_file.parent), seconds


def check(recipe: str, m: RunReport, seconds: float) -> list[tuple[str, bool]]:
    fl, ptq, qat = m.value("float"), m.value("ptq_int8"), m.value("qat_int8")
    better = (qat >= ptq) if m.higher_is_better else (qat <= ptq)
    kind, limit = TARGETS.get(recipe, ("points", 1.0) if m.higher_is_better else ("ratio", 1.05))
    if kind == "points":
        close = (f"int8 within {limit} points of float ({fl - qat:+.2f})", fl - qat <= limit)
    else:
        close = (f"int8 MAE <= {limit}x float ({qat / fl:.3f}x)", qat <= limit * fl)
    out = [
        ("full integer", m.int8.full_integer),
        close,
        ("QAT int8 at least as good as PTQ int8", better),
        ("parity with the QAT Keras model", m.int8.parity.passed),
        (
            f"int8 file <= {MAX_SIZE_RATIO}x float ({m.sizes.int8_over_float:.3f}x)",
            m.sizes.int8_over_float <= MAX_SIZE_RATIO,
        ),
    ]
    if recipe == "attention_int8":
        out.append((f"finishes in under {MAX_ATTENTION_SECONDS} s ({seconds:.0f} s)", seconds < MAX_ATTENTION_SECONDS))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="recipe names (default: all) and KEY=VALUE overrides for every run")
    parser.add_argument("--runs-dir", default=None, help="where to keep the runs (default: a temporary directory)")
    args = parser.parse_args()
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="qatzoo-measure-"))
    extra = [item for item in args.items if "=" in item]
    args.recipes = [item for item in args.items if "=" not in item] or recipe_names()
    rows, failed = [], False
    for recipe in args.recipes:
        report, seconds = run(recipe, runs_dir, extra)
        parity = report.int8.parity
        agree = f"{parity.agreement:.1%} agree" if parity.agreement is not None else f"MAE gap {parity.mae_gap:.2%}"
        fmt = "{:.2f}" if report.unit == "%" else "{:.4f}"
        cells = " | ".join(fmt.format(report.value(name)) for name in ("float", "ptq_int8", "qat", "qat_int8"))
        rows.append(
            f"| {recipe} | {report.data} | {report.metric} ({report.unit}) | {cells} | "
            f"{agree} | {report.sizes.int8_over_float:.2f}x | {seconds:.0f} s |"
        )
        for name, ok in check(recipe, report, seconds):
            failed |= not ok
            print(f"{'PASS' if ok else 'FAIL'}  {recipe}: {name}")
    print()
    print(
        "| recipe | data | metric | float | PTQ int8 | QAT fake-quant | QAT int8 | int8 vs QAT Keras | int8/float size | wall time |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nruns kept in {runs_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
