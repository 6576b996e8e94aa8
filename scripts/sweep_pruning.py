"""What pruning buys: the same sweep preset and trial count, run without and with its pruner.

    python scripts/sweep_pruning.py                      # sweep=cnn_qat, the preset's 16 trials
    python scripts/sweep_pruning.py --sweep attention_lr --trials 12

Each sweep runs in a fresh directory under --out (default runs/pruning), one after the other, in child
processes (``python train.py -m sweep=NAME ...``); the figures are the wall time of each, the best validation
score the study found (the int8 model's, in LiteRT: the sweep's objective) and how many trials were pruned.
Results go to scripts/sweeps/pruning.md (appended, with the CPU named) and are printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_sweep(name: str, trials: int, directory: Path, pruner: bool, extra: list[str]) -> dict:
    import optuna

    shutil.rmtree(directory, ignore_errors=True)
    args = [sys.executable, "train.py", "-m", f"sweep={name}", f"hydra.sweep.dir={directory}"]
    args += [f"hydra.sweeper.n_trials={trials}", "trainer.verbose=0", *extra]
    if not pruner:
        args.append("hydra.sweeper.pruner=null")
    began = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"error: sweep {name} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{directory}/optuna.db")
    states = [t.state.name for t in study.trials]
    return {
        "seconds": seconds,
        "best": study.best_value,
        "best_trial": study.best_trial.number,
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default="cnn_qat", help="a preset of conf/sweep (default: cnn_qat)")
    parser.add_argument("--trials", type=int, default=16, help="trials in each sweep (default: 16)")
    parser.add_argument("--out", default=str(REPO / "runs" / "pruning"), help="where the two sweeps run")
    parser.add_argument("--results", default=str(REPO / "scripts" / "sweeps" / "pruning.md"))
    parser.add_argument("overrides", nargs="*", help="extra overrides for both sweeps, e.g. paths.data_dir=...")
    args = parser.parse_args(argv)
    from qatzoo.bench.cpu import cpu_name

    out = Path(args.out)
    without = run_sweep(args.sweep, args.trials, out / f"{args.sweep}-no-pruner", False, args.overrides)
    print(f"without pruner: {without['seconds']:.0f} s, best {without['best']:.4g}", flush=True)
    with_ = run_sweep(args.sweep, args.trials, out / f"{args.sweep}-pruner", True, args.overrides)
    print(f"with pruner:    {with_['seconds']:.0f} s, best {with_['best']:.4g}", flush=True)
    saved = 1.0 - with_["seconds"] / without["seconds"]
    lines = [
        f"## sweep={args.sweep}, {args.trials} trials ({date.today()}, {cpu_name()}, {args.overrides or 'no overrides'})",
        "",
        "| | wall time | best validation score (int8, LiteRT) | best trial | complete | pruned |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in (("no pruner", without), ("preset's pruner", with_)):
        lines.append(
            f"| {label} | {r['seconds']:.0f} s | {r['best']:.4f} | {r['best_trial']} | {r['complete']} | {r['pruned']} |"
        )
    lines += [
        "",
        f"Wall time saved: {100 * saved:.0f}%; best score difference: {with_['best'] - without['best']:+.4f}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    head = "" if results.exists() else "# Sweeps with and without pruning (python scripts/sweep_pruning.py)\n\n"
    with open(results, "a") as f:
        f.write(head + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
