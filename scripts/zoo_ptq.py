"""Backfill a published entry's "QAT against post-training quantization" table from a rerun of its command.

    python train.py recipe=attention_int8 hydra.run.dir=RUN_DIR   # the entry's own command, rerun
    python scripts/zoo_ptq.py RUN_DIR [RUN_DIR ...] [--remeasure]

The zoo keeps no float model, so the PTQ files of a published model come from its float model retrained: the
recipes rerun bit for bit, and a rerun counts only when its int8 file is byte-identical to a published one (the
entry is found by that sha256). The run's ``ptq_baselines`` (LiteRT's quantizer at the scheme's widths, each
file in LiteRT on the test split: :mod:`qatzoo.export.ptq_suite`) go into that entry and its card. The
index's QAT int8 number stays the one it lists (the same bytes measure the same). No model file changes.
``--remeasure`` measures the table again from the run's float model and representative sample (for a run made
before the table's present form).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def main() -> int:
    from qatzoo.export.ptq_suite import lines
    from qatzoo.files import sha256_file, write_text
    from qatzoo.report import ReportError, RunReport
    from qatzoo.zoo.index import ZooError, locked_index, write_index
    from qatzoo.zoo.publish import write_readme
    from qatzoo.zoo.verify import TOLERANCE, gap

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of reruns of published entries")
    parser.add_argument("--zoo", default=str(ZOO), help="zoo directory (default: %(default)s)")
    parser.add_argument(
        "--remeasure", action="store_true", help="measure the PTQ files again from the run's float model"
    )
    args = parser.parse_args()
    zoo = Path(args.zoo)
    try:
        with locked_index(zoo) as index:
            for run in args.runs:
                report = RunReport.read(run)
                if args.remeasure:
                    report.ptq_baselines = remeasure(run, report)
                if not report.ptq_baselines:
                    raise ZooError(f"{run}: the run has no ptq_baselines (trainer.ptq_baselines=false?)")
                digest = sha256_file(run / "model_int8.tflite")
                entry = next((e for e in index["models"] if e["sha256"] == digest), None)
                if entry is None:
                    raise ZooError(f"{run}: its int8 file (sha256 {digest[:12]}) is not a published model's bytes")
                table = dict(report.ptq_baselines)
                listed = entry["metrics"][entry["int8_model"]]
                if gap(entry["metric"], table["qat_int8"], listed) > TOLERANCE[entry["metric"]]:
                    raise ZooError(f"{run}: the same bytes measure {table['qat_int8']:.4f}, the index {listed:.4f}")
                entry["ptq_baselines"] = table
                card = zoo / entry["card"]
                write_text(card, with_section(card.read_text(), lines(table, entry["metric"], entry["unit"])))
                best = table.get("best")
                share = table.get("recovered")
                print(
                    f"{entry['name']}@{entry['version']}: {table['widths']}, best PTQ {best} "
                    + ("(not significantly worse than float)" if share is None else f"(QAT recovers {share:.0%})")
                )
            write_index(zoo, index)
            write_readme(zoo)
    except (ZooError, ReportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def remeasure(run: Path, report) -> dict:
    """The run's PTQ table measured now, as the trainer measures it (its float model, sample and scheme)."""
    from qatzoo.build import build_scheme
    from qatzoo.config import validate
    from qatzoo.tools.sensitivity import _load_run
    from qatzoo.train.trainer import _ptq_baselines

    saved, data, model = _load_run(run, None)
    cfg = validate(saved)
    representative = data.representative(cfg.trainer.representative_samples, cfg.trainer.seed)
    return _ptq_baselines(build_scheme(cfg.quant), model, representative, data, report)


HEADING = "## QAT against post-training quantization"


def with_section(text: str, section: list[str]) -> str:
    """``text`` (a card) with its PTQ section replaced, or inserted before the first figure / "## Use it"."""
    rows = text.split("\n")
    if HEADING in rows:
        start = rows.index(HEADING)
        end = next(i for i in range(start + 1, len(rows)) if rows[i].startswith(("## ", "![")))
        return "\n".join([*rows[:start], *section, *rows[end:]])
    at = next(i for i, row in enumerate(rows) if row.startswith("![") or row == "## Use it")
    return "\n".join([*rows[:at], *section, *rows[at:]])


if __name__ == "__main__":
    sys.exit(main())
