"""A deployment runtime is one module: registered, it is in the report, its validation, the card, the
summary and the zoo README table, with no other file edited."""

from __future__ import annotations

import importlib.util
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from qatzoo.deploy import RUNTIMES
from qatzoo.deploy import report as deployment

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "zoo" / "mnist_cnn_int8" / "1" / "model_int8.tflite"

# What a person writes for a new runtime: this file, nothing else.
MODULE = """
from qatzoo.artifacts import Count, Record
from qatzoo.deploy.runtime import ModelFile, Runtime, ZooColumn


class Toy(Record):
    file_bytes: Count


def measure(file: ModelFile) -> dict:
    return {"file_bytes": len(file.int8)}


RUNTIME = Runtime(
    key="toy_npu",
    measure=measure,
    model=Toy,
    card_line=lambda toy, report, unit: f"Toy NPU: {toy['file_bytes']:,} bytes",
    summary=lambda toy, report: f"Toy NPU: {toy['file_bytes']} B",
    zoo=ZooColumn("Toy NPU", "Toy NPU", lambda toy, text: f"{toy['file_bytes']:,} B"),
)
"""


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy_npu.py"
    path.write_text(textwrap.dedent(MODULE))
    spec = importlib.util.spec_from_file_location("toy_npu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with RUNTIMES.added(module.RUNTIME) as runtime:
        yield runtime
    assert "toy_npu" not in RUNTIMES


def _published() -> dict:
    return json.loads((REPO / "zoo" / "index.json").read_text())["models"][0]["deployment"]


def test_a_runtime_module_registered_at_test_time_is_in_the_report_card_and_summary(toy):
    got = deployment.measure("toy_npu", MODEL.read_bytes())
    assert got == {"file_bytes": MODEL.stat().st_size}
    report = {**_published(), "toy_npu": got}
    assert list(report)[-1] == "toy_npu" and RUNTIMES.keys()[-1] == "toy_npu"
    assert deployment.lines(report)[-1] == f"- Toy NPU: {MODEL.stat().st_size:,} bytes"
    assert deployment.summary(report).endswith(f" | Toy NPU: {MODEL.stat().st_size} B")
    # Its section is validated with its own model, like the others'.
    assert deployment.problem(report) is None
    assert deployment.problem({**report, "toy_npu": {"file_bytes": -1}}) == (
        "deployment.toy_npu.file_bytes is not a count (an integer >= 0) (got -1)"
    )
    assert deployment.problem(_published()) == "missing 'deployment.toy_npu'"


@pytest.mark.slow
def test_a_registered_runtime_is_measured_by_build(toy):
    report = deployment.of_file(MODEL, latency_runs=5)
    assert report["toy_npu"] == {"file_bytes": MODEL.stat().st_size}
    assert list(report) == ["schema", "activations", *RUNTIMES.keys()]


def test_a_registered_runtime_gets_a_zoo_readme_column(toy, tmp_path):
    from qatzoo.zoo.publish import write_readme

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copy(REPO / "zoo" / "index.json", zoo / "index.json")
    write_readme(zoo)
    text = (zoo / "README.md").read_text()
    assert "| TFLite Micro | Ethos-U55 | Toy NPU | QAT engine |" in text
    assert "TFLite Micro, Ethos-U55 (Vela) and Toy NPU were run on the published file" in text
    # Entries published before the runtime have no section: "-" in its column.
    rows = [line for line in text.splitlines() if line.startswith("| mnist")]
    assert rows and all(line.count(" | ") == 14 and " ms | - | " in line for line in rows), rows


def test_without_it_the_zoo_readme_is_the_committed_one(tmp_path):
    from qatzoo.zoo.publish import write_readme

    shutil.copy(REPO / "zoo" / "index.json", tmp_path / "index.json")
    write_readme(tmp_path)
    assert (tmp_path / "README.md").read_text() == (REPO / "zoo" / "README.md").read_text()


def test_runtimes_are_refused_twice():
    with pytest.raises(ValueError, match="registered already"):
        RUNTIMES.register(RUNTIMES["tflm"])
    assert RUNTIMES.keys() == ["litert_cpu", "tflm", "ethos_u55"]
