"""What pruning buys: the same sweep preset and trial count, run without and with its pruner.

    python scripts/sweep_pruning.py                      # sweep=cnn_qat, the preset's 16 trials
    python scripts/sweep_pruning.py --sweep attention_lr --trials 12

Each sweep runs in a fresh directory under --out (default runs/pruning) in a child process (``python train.py
-m sweep=NAME ...``). By default the two run side by side, started together, so that both meet the same
machine load; the sweep that finishes first leaves the other the whole machine, which understates the saving
(``--one-after-the-other`` runs them in turn, for a quiet machine). The figures are the wall time of each,
the best validation score the study found (the int8 model's, in LiteRT: the sweep's objective) and how many
trials were pruned. Results go to scripts/sweeps/pruning.md (appended, with the CPU named) and are printed.
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


def start_sweep(name: str, trials: int, directory: Path, pruner: bool, extra: list[str]) -> tuple:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    args = [sys.executable, "train.py", "-m", f"sweep={name}", f"hydra.sweep.dir={directory}"]
    args += [f"hydra.sweeper.n_trials={trials}", "trainer.verbose=0", *extra]
    if not pruner:
        args.append("hydra.sweeper.pruner=null")
    log = open(directory.parent / f"{directory.name}.log", "w")  # noqa: SIM115 - closed in finish_sweep
    return subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT), time.perf_counter(), log


def finish_sweep(name: str, directory: Path, started: tuple, ended: float | None = None) -> dict:
    import optuna

    process, began, log = started
    process.wait()
    seconds = (ended or time.perf_counter()) - began
    log.close()
    if process.returncode:
        tail = Path(log.name).read_text().strip().splitlines()[-1:]
        sys.exit(f"error: sweep {name} in {directory} failed: {tail}")
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{directory}/optuna.db")
    states = [t.state.name for t in study.trials]
    first = min(t.datetime_start for t in study.trials)
    last = max(t.datetime_complete for t in study.trials)
    return {
        "seconds": seconds,
        "trials_seconds": (last - first).total_seconds(),  # first trial asked to last trial told
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
    parser.add_argument("--one-after-the-other", action="store_true", help="run the two sweeps in turn")
    parser.add_argument("overrides", nargs="*", help="extra overrides for both sweeps, e.g. paths.data_dir=...")
    args = parser.parse_args(argv)
    from qatzoo.bench.cpu import cpu_name

    out = Path(args.out)
    dirs = {pruner: out / f"{args.sweep}-{'pruner' if pruner else 'no-pruner'}" for pruner in (False, True)}
    results = {}
    if args.one_after_the_other:
        for pruner, directory in dirs.items():
            started = start_sweep(args.sweep, args.trials, directory, pruner, args.overrides)
            results[pruner] = finish_sweep(args.sweep, directory, started)
    else:
        started = {p: start_sweep(args.sweep, args.trials, d, p, args.overrides) for p, d in dirs.items()}
        ended: dict[bool, float] = {}
        while len(ended) < len(started):  # each sweep's own end, not when the other one is collected
            for p, (process, _, _) in started.items():
                if p not in ended and process.poll() is not None:
                    ended[p] = time.perf_counter()
            time.sleep(0.5)
        results = {p: finish_sweep(args.sweep, dirs[p], started[p], ended[p]) for p in dirs}
    without, with_ = results[False], results[True]
    print(f"without pruner: {without['seconds']:.0f} s, best {without['best']:.4g}", flush=True)
    print(f"with pruner:    {with_['seconds']:.0f} s, best {with_['best']:.4g}", flush=True)
    saved = 1.0 - with_["seconds"] / without["seconds"]
    lines = [
        f"## sweep={args.sweep}, {args.trials} trials ({date.today()}, {cpu_name()}, "
        f"{'one after the other' if args.one_after_the_other else 'side by side'}, {args.overrides or 'no overrides'})",
        "",
        "| | wall time | first trial to last | best validation score (int8, LiteRT) | best trial | complete | pruned |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in (("no pruner", without), ("preset's pruner", with_)):
        lines.append(
            f"| {label} | {r['seconds']:.0f} s | {r['trials_seconds']:.0f} s | {r['best']:.4f} | {r['best_trial']} "
            f"| {r['complete']} | {r['pruned']} |"
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
