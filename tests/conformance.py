"""The one export conformance check every model's tests use: full integer, int8 I/O, parity, size."""

from __future__ import annotations

from pathlib import Path

from qatzoo.export.checks import full_integer

MAX_SIZE_RATIO = 0.30


def assert_int8_conformance(model_path: Path, metrics: dict, check_size: bool = True) -> None:
    report = full_integer(str(model_path))
    assert report.ok, f"not full integer: {report.non_integer[:5]}"
    assert metrics["int8"]["full_integer"] is True
    assert metrics["int8"]["input"]["dtype"] == "int8" and metrics["int8"]["output"]["dtype"] == "int8"
    assert 0 < metrics["int8"]["input"]["scale"] and 0 < metrics["int8"]["output"]["scale"]
    assert {"QUANTIZE", "DEQUANTIZE"}.isdisjoint(report.ops), report.ops
    parity = metrics["int8"]["parity"]
    assert parity["pass"], parity
    assert metrics["sizes"]["int8_tflite"] == model_path.stat().st_size
    if check_size:
        assert metrics["sizes"]["int8_over_float"] <= MAX_SIZE_RATIO, metrics["sizes"]
