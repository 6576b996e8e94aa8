"""The summary of a sweep: one row per trial (its swept values and results), a table and a plot.

Written at the end of every multirun by the Hydra callback :class:`SweepSummary` (configured in
conf/config.yaml), for grid and Optuna sweeps alike, and on demand by ``qatzoo sweep-summary DIR``:

* ``summary.csv`` and ``summary.md`` in the sweep directory - trials sorted best first by the int8
  model's metric, each with its run directory (publishable as is: ``qatzoo publish <dir>``);
* ``summary.png`` - the int8 metric of every trial in order, with the best so far.

A trial directory that cannot be read (a damaged ``config.yaml`` or ``metrics.json``) is left out and named,
with why, in summary.md and on stderr; the summary of the others is written all the same.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

from qatzoo.artifacts import finite, read_yaml
from qatzoo.files import write_figure, write_text
from qatzoo.report import ReportError, RunReport

try:  # Hydra's callback base; the summary also works without Hydra running
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


def _swept_keys(trials: list[dict]) -> list[str]:
    """Config keys whose value differs between trials (what the sweep varied)."""
    flat = [trial["flat"] for trial in trials]
    keys = sorted({k for f in flat for k in f})
    ignore = ("paths.", "data.data_dir", "trainer.resume", "logger.")
    return [k for k in keys if not k.startswith(ignore) and len({json.dumps(f.get(k)) for f in flat}) > 1]


def _flatten(node, prefix="") -> dict:
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def collect(sweep_dir: str | Path) -> list[dict]:
    """Every trial directory under ``sweep_dir`` (a numbered subdirectory holding config.yaml).

    A trial is ``{"dir", "flat", "report"}`` (``report`` None: unfinished, no metrics.json yet), or
    ``{"dir", "skipped"}`` with the one-line reason its config.yaml or metrics.json cannot be read.
    """
    trials = []
    for run in sorted(
        Path(sweep_dir).iterdir(), key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)
    ):
        if not (run / "config.yaml").is_file():
            continue
        try:
            config = read_yaml(run / "config.yaml")
            if not isinstance(config, dict):
                raise ValueError(f"a {type(config).__name__}, not a mapping")
            flat = _flatten(config)
        except Exception as error:  # noqa: BLE001 - YAML, OmegaConf and OS errors alike: name the trial, go on
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            trials.append(
                {
                    "dir": run,
                    "skipped": f"{run / 'config.yaml'} is not readable ({type(error).__name__}: {reason[:200]})",
                }
            )
            continue
        report = None  # unfinished (or pruned): no metrics.json
        if (run / "metrics.json").exists():
            try:
                report = RunReport.read(run)
            except ReportError as error:
                trials.append({"dir": run, "skipped": str(error)})
                continue
        trials.append({"dir": run, "flat": flat, "report": report})
    return trials


def _pruned(run: Path) -> dict | None:
    """The marker the trainer leaves in a pruned trial's directory (data: only plain values are used)."""
    try:
        marker = json.loads((run / "pruned.json").read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def rows(sweep_dir: str | Path, keys: list[str] | None = None) -> tuple[list[dict], dict]:
    """(one row per readable trial, info: the metric, its direction, the keys shown, ``skipped`` trials)."""
    found = collect(sweep_dir)
    skipped = [(t["dir"].name, t["skipped"]) for t in found if "skipped" in t]
    trials = [t for t in found if "skipped" not in t]
    keys = list(dict.fromkeys([*(keys or []), *_swept_keys(trials)]))
    done = [t["report"] for t in trials if t["report"]]
    info = {"metric": None, "unit": None, "higher_is_better": True, "keys": keys, "skipped": skipped}
    if done:
        info.update(metric=done[0].metric, unit=done[0].unit, higher_is_better=done[0].higher_is_better)
    out = []
    for t in trials:
        report: RunReport | None = t["report"]
        row = {"trial": t["dir"].name, **{k: t["flat"].get(k) for k in keys}}
        pruned = _pruned(t["dir"]) if report is None else None
        if pruned:  # stopped by the sweep's pruner: no int8 model, the last validation value it reported
            row.update(
                status=f"pruned ({pruned.get('phase')} epoch {pruned.get('epoch')})",
                val_int8=None,
                int8=None,
                pruned_at=pruned.get("step"),
                pruned_val=next((v for k, v in pruned.items() if k.startswith("val_")), None),
                seconds=(pruned.get("timing") or {}).get("total_s"),
            )
        elif report is None:
            row.update(status="unfinished", val_int8=None, int8=None)
        else:
            name = report.int8_model or "float"
            row.update(
                status="ok" if report.checks is None or report.passed else "checks failed",
                val_int8=report.value(name, split="val"),
                int8=report.value(name),
                int8_model=name,
                float=report.value("float"),
                ptq_int8=report.value("ptq_int8"),
                qat=report.value("qat"),
                int8_over_float=report.sizes.int8_over_float,
                seconds=report.timing.get("total_s"),
            )
        row["run_dir"] = str(t["dir"])
        out.append(row)
    return out, info


def write(sweep_dir: str | Path, keys: list[str] | None = None) -> list[Path]:
    """Write summary.csv, summary.md and summary.png into ``sweep_dir``; return their paths.

    Trials are ranked by the sweep's objective, the int8 model's validation score (``val_int8``);
    ``int8`` is its test score, for reporting. ``keys``: config keys to show besides the varied ones.
    Unreadable trials are left out, and named in summary.md and on stderr.
    """
    sweep_dir = Path(sweep_dir)
    table, info = rows(sweep_dir, keys)
    for trial, reason in info["skipped"]:
        print(f"[qatzoo] sweep summary: skipped trial {trial}: {reason}", file=sys.stderr)
    if not table and not info["skipped"]:
        return []
    sign = -1.0 if info["higher_is_better"] else 1.0
    ranked = sorted(table, key=lambda r: (r["val_int8"] is None, sign * (r["val_int8"] or 0.0)))
    fields = list(dict.fromkeys(k for r in ranked for k in r))
    csv_path = sweep_dir / "summary.csv"
    tmp = csv_path.with_name(".summary.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(ranked)
    os.replace(tmp, csv_path)

    def fmt(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    metric = info["metric"] or "metric"
    cols = ["trial", *info["keys"], "val_int8", "int8", "float", "ptq_int8", "qat", "int8_over_float", "status"]
    lines = [
        f"# Sweep {sweep_dir.name}",
        "",
        f"{len(table)} trials ({sum(str(r['status']).startswith('pruned') for r in table)} pruned), best first by the objective: the int8 model's {metric} on the validation split "
        f"(`val_int8`, LiteRT; {info['unit']}, {'higher' if info['higher_is_better'] else 'lower'} is better). "
        "`int8`, `float`, `ptq_int8`, `qat`: the full test split, for reporting only.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in ranked:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    if info["skipped"]:
        lines += ["", f"Skipped {len(info['skipped'])} unreadable trial(s), not in the table:", ""]
        lines += [f"- {trial}: {reason}" for trial, reason in info["skipped"]]
    best = next((r for r in ranked if r["val_int8"] is not None), None)
    if best:
        lines += ["", f"Best trial: {best['trial']} ({best['run_dir']}). Publish it as is:", ""]
        lines += [f"    qatzoo publish {best['run_dir']}", ""]
    md_path = write_text(sweep_dir / "summary.md", "\n".join(lines))
    paths = [csv_path, md_path]

    scores = [(int(r["trial"]) if r["trial"].isdigit() else i, r["val_int8"]) for i, r in enumerate(table)]
    scores = [(n, v) for n, v in scores if finite(v)]
    pruned = [(int(r["trial"]) if r["trial"].isdigit() else i, r.get("pruned_val")) for i, r in enumerate(table)]
    pruned = [(n, v) for n, v in pruned if finite(v)]  # from pruned.json: a 400-digit integer is not a number here
    if scores or pruned:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        scores.sort()
        best_so_far, running = [], None
        for _, v in scores:
            running = v if running is None else (max(running, v) if info["higher_is_better"] else min(running, v))
            best_so_far.append(running)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([n for n, _ in scores], [v for _, v in scores], "o", label="trial (int8 in LiteRT, validation)")
        ax.step([n for n, _ in scores], best_so_far, where="post", label="best so far")
        if pruned:
            ax.plot(
                [n for n, _ in pruned], [v for _, v in pruned], "x", color="grey",
                label="pruned (its last Keras validation value)",
            )  # fmt: skip
        ax.set_xlabel("trial")
        ax.set_ylabel(f"{metric} ({info['unit']})")
        ax.set_title(f"sweep {sweep_dir.name}")
        ax.legend()
        fig.tight_layout()
        paths.append(write_figure(sweep_dir / "summary.png", fig))
    return paths


class SweepSummary(Callback):
    """Hydra callback: write the summary when a multirun ends (any sweeper, any launcher)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        params = config.hydra.sweeper.get("params") or {}
        paths = write(config.hydra.sweep.dir, keys=[str(k) for k in params])
        if paths:
            print(f"[qatzoo] sweep summary: {', '.join(str(p) for p in paths)}")
