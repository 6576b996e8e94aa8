"""The sweep summary with damaged trial directories: the unreadable ones are left out and named, the rest
summarised (no training: trial directories are written from a report like the trainer's)."""

from __future__ import annotations

import csv

import pytest

from qatzoo.report import RunDir, RunReport
from qatzoo.sweep.summary import write
from tests.test_report import _report

DAMAGED = [
    ("metrics.json", "garbage{", "metrics.json is not a readable run report (JSONDecodeError)"),
    ("metrics.json", "[1, 2]", "metrics.json is not a run report (not a JSON object)"),
    ("metrics.json", '{"a": 1}', "metrics.json is not a complete run report (missing 'name')"),
    ("config.yaml", "a: [unclosed\n", "config.yaml is not readable (ValueError: not readable YAML (while parsing"),
    ("config.yaml", "- 1\n", "config.yaml is not readable (ValueError: a list, not a mapping)"),
    ("config.yaml", b"\xff\xfe\x00", "config.yaml is not readable (UnicodeDecodeError"),
]


def _trial(sweep, number: int, qat_lr: float, val_mae: float) -> None:
    run = RunDir(sweep / str(number))
    run.path.mkdir(parents=True)
    run.config.write_text(f"schedule:\n  qat_lr: {qat_lr}\n")
    report = _report(validation={"qat_int8": {"mae": val_mae}}, timing={"total_s": 3.0})
    run.write(run.metrics, RunReport.from_dict(report).to_dict())


@pytest.mark.parametrize(("name", "body", "reason"), DAMAGED, ids=[f"{n}={b!r}" for n, b, _ in DAMAGED])
def test_the_summary_skips_and_names_an_unreadable_trial_and_summarises_the_rest(tmp_path, capsys, name, body, reason):
    for number, qat_lr, val_mae in ((0, 0.1, 0.4), (1, 0.2, 0.3), (2, 0.3, 0.35)):
        _trial(tmp_path, number, qat_lr, val_mae)
    damaged = tmp_path / "1" / name
    damaged.write_bytes(body) if isinstance(body, bytes) else damaged.write_text(body)

    paths = write(tmp_path)

    assert [p.name for p in paths] == ["summary.csv", "summary.md", "summary.png"]
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert [(r["trial"], r["val_int8"]) for r in rows] == [("2", "0.35"), ("0", "0.4")]  # best first, 1 left out
    md = (tmp_path / "summary.md").read_text()
    assert "Skipped 1 unreadable trial(s), not in the table:" in md
    assert f"- 1: {tmp_path / '1' / reason}" in md
    assert f"qatzoo publish {tmp_path / '2'}" in md
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"[qatzoo] sweep summary: skipped trial 1: {tmp_path / '1' / reason}")


def test_a_report_without_timing_is_summarised(tmp_path):
    """``timing`` is optional in a run report: its trial has no seconds, not a KeyError."""
    _trial(tmp_path, 0, 0.1, 0.4)
    run = RunDir(tmp_path / "1")
    run.path.mkdir()
    run.config.write_text("schedule:\n  qat_lr: 0.2\n")
    run.write(run.metrics, RunReport.from_dict(_report()).to_dict())
    write(tmp_path)
    rows = {r["trial"]: r for r in csv.DictReader(open(tmp_path / "summary.csv"))}
    assert rows["1"]["status"] == "ok" and rows["1"]["seconds"] == "" and rows["0"]["seconds"] == "3.0"


def test_sweep_summary_cli_names_a_sweep_whose_only_trial_is_unreadable(tmp_path, capsys):
    from qatzoo.cli import main

    _trial(tmp_path, 0, 0.1, 0.4)
    (tmp_path / "0" / "metrics.json").write_text("garbage{")
    assert main(["sweep-summary", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 trials" in out and f"- 0: {tmp_path / '0' / 'metrics.json'} is not a readable run report" in out
