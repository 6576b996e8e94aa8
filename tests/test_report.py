"""The typed run report and run directory: what metrics.json holds and how every consumer reads it."""

from __future__ import annotations

import hashlib
import json

import pytest
from omegaconf import OmegaConf

from qatzoo.report import SCHEMA_VERSION, ReportError, RunDir, RunReport


def _report(**changes) -> dict:
    data = {
        "name": "attention_int8",
        "arch": "ts_attention",
        "data": "co2_weekly",
        "quant": "int8",
        "scheme": {"qat": True, "int8": True},
        "task": "forecast",
        "metric": "mae",
        "unit": "ppm",
        "higher_is_better": False,
        "int8_model": "qat_int8",
        "dataset": {"sizes": {"train": 10, "val": 2, "test": 3}},
        "results": {"float": {"mae": 0.36}, "qat_int8": {"mae": 0.359}},
        "validation": {"qat_int8": {"mae": 0.4}},
        "provenance": {"config_sha256": "0" * 64},
        "distribute": {"strategy": "none"},
        "agreement": {"qat_int8 vs float": 0.01},
        "int8": {
            "input": {"dtype": "int8", "scale": 0.02, "zero_point": 12},
            "output": {"dtype": "int8", "scale": 0.004, "zero_point": -3},
            "parity": {"pass": True},
            "full_integer": True,
        },
        "checks": {"full_integer": True, "parity": True},
        "command": "python train.py recipe=attention_int8",
    }
    data.update(changes)
    return data


def test_a_report_round_trips_through_metrics_json_and_reads_typed(tmp_path):
    run = RunDir(tmp_path)
    report = RunReport.from_dict(_report())
    written = run.write(run.metrics, report.to_dict())
    assert written["sha256"] == hashlib.sha256(run.metrics.read_bytes()).hexdigest()
    back = RunReport.read(tmp_path)
    assert back == report and back.schema == SCHEMA_VERSION
    assert back.value("qat_int8") == 0.359 and back.value("qat_int8", split="val") == 0.4 and back.value("qat") is None
    assert back.int8_value == 0.359 and back.format(0.359) == "0.3590 ppm" and back.passed
    assert "lowbit" not in json.loads(run.metrics.read_text())  # empty optional sections are left out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"results": {"float": {"mae": "0.3"}}}, "results.float.mae is not a finite number"),
        ({"metric": "f1"}, "unknown metric"),
        ({"int8": None}, "has no results or no int8 section"),
        ({"name": 3}, "name is not a string"),
        ({"agreement": []}, "agreement is not an object"),
        ({"files": []}, "files is not an object"),
        ({"files": {"model_int8.tflite": "abc"}}, "files.model_int8.tflite is not"),
        ({"checks": "yes"}, "checks is not an object"),
        ({"dataset": {"sizes": [1]}}, "dataset.sizes is not"),
        ({"results": {"float": {"mae": 10**400}}}, "results.float.mae is not a finite number"),
    ],
)
def test_a_malformed_report_is_one_line(changes, message):
    with pytest.raises(ReportError, match=message):
        RunReport.from_dict(_report(**changes))


def test_missing_truncated_or_non_finite_metrics_json_is_one_line(tmp_path):
    with pytest.raises(ReportError, match="has no metrics.json"):
        RunReport.read(tmp_path)
    (tmp_path / "metrics.json").write_text('{"name": ')
    with pytest.raises(ReportError, match="not a readable run report"):
        RunReport.read(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps(_report()).replace("0.359", "NaN"))
    with pytest.raises(ReportError, match="not a readable run report"):
        RunReport.read(tmp_path)
    data = _report()
    del data["command"]
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(ReportError, match="missing 'command'"):
        RunReport.read(tmp_path)


def test_the_reproduce_command_keeps_the_overrides_given():
    from qatzoo.train.trainer import reproduce_command

    cfg = OmegaConf.create({"name": "transformer_int8"})
    given = [
        "recipe=transformer_int8",
        "quant=w4a8",
        "quant.keep_float=[@norm,block0_*]",
        "paths.data_dir=/data",
        "hydra.run.dir=/tmp/x",
    ]
    assert reproduce_command(cfg, given) == (
        "python train.py recipe=transformer_int8 quant=w4a8 'quant.keep_float=[@norm,block0_*]'"
    )
    assert reproduce_command(cfg) == "python train.py recipe=transformer_int8"  # no Hydra: the recipe alone
