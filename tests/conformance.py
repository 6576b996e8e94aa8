"""The one export conformance check every model's tests use: full integer, int8 I/O, parity, size."""

from __future__ import annotations

from pathlib import Path

from qatzoo.export.checks import full_integer

MAX_SIZE_RATIO = 0.30


def assert_int8_conformance(model_path: Path, metrics: dict, strict_parity: bool = True) -> None:
    """Full integer with int8 I/O, parity recorded consistently, size within target.

    ``strict_parity=False`` is for tiny-budget smoke runs: a model trained for one epoch is unsure of
    many predictions, so int8 rounding flips more of them than the 99% target allows; then parity only
    has to be recorded honestly and be broadly right. scripts/measure_recipes.py checks the targets
    on the default budgets.
    """
    report = full_integer(str(model_path))
    assert report.ok, f"not full integer: {report.non_integer[:5]}"
    assert metrics["int8"]["full_integer"] is True
    assert metrics["int8"]["input"]["dtype"] == "int8" and metrics["int8"]["output"]["dtype"] == "int8"
    assert 0 < metrics["int8"]["input"]["scale"] and 0 < metrics["int8"]["output"]["scale"]
    assert {"QUANTIZE", "DEQUANTIZE"}.isdisjoint(report.ops), report.ops
    parity = metrics["int8"]["parity"]
    if "agreement" in parity:
        assert parity["pass"] == (parity["agreement"] >= parity["threshold"])
        assert parity["agreement"] >= (parity["threshold"] if strict_parity else 0.9), parity
    else:
        assert parity["pass"] == (parity["mae_gap"] <= parity["threshold"])
        assert parity["mae_gap"] <= (parity["threshold"] if strict_parity else 0.05), parity
    assert metrics["sizes"]["int8_tflite"] == model_path.stat().st_size
    # Weights stored as int8: the file without its quantization parameters (a float32 scale and an int64 zero
    # point per channel - a tenth of a small per-channel model such as the DS-CNN) within the ratio of float's.
    without = metrics["sizes"]["int8_tflite"] - _quantization_bytes(model_path.read_bytes())
    assert without / metrics["sizes"]["float_tflite"] <= MAX_SIZE_RATIO, (metrics["sizes"], without)


def _quantization_bytes(blob: bytes) -> int:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    total = 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            q = tensor.quantization
            if q is not None:
                total += 4 * len(q.scale if q.scale is not None else []) + 8 * len(
                    q.zeroPoint if q.zeroPoint is not None else []
                )
    return total


def assert_deploys(model_path: Path, metrics: dict) -> None:
    """The int8 file loads and runs in TensorFlow Lite Micro (the missing ops named when it does not), and
    the deployment report in ``metrics`` says what the runtimes say of that file."""
    from qatzoo.deploy import tflm

    loaded = tflm.load(model_path)
    assert loaded.runs, f"{model_path.name} does not run in TensorFlow Lite Micro: {loaded.unsupported or loaded.error}"
    deployment = metrics["deployment"]
    micro = deployment["tflm"]
    assert micro["runs"] and micro["arena_bytes"] == loaded.arena_bytes > 0
    assert micro["flash_bytes"] == model_path.stat().st_size
    assert micro["examples"] == metrics["dataset"]["sizes"]["test"] and 0.0 <= micro["equal_share"] <= 1.0
    assert deployment["ethos_u55"]["npu_share"] == 1.0, deployment["ethos_u55"]
    cpu = deployment["litert_cpu"]
    assert cpu["int8_us"] > 0 and cpu["float_us"] > 0 and cpu["cpu"]
