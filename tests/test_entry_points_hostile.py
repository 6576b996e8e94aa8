"""Generated hostile input at the public entry points (issue 21, item 7): images, arrays and CSV for
``qatzoo predict``, contracts for ``Model``, index files for ``qatzoo list``/``info``, run reports and run configs.
Each either works or is one ``error:`` line (exit 2) or one-line error of the module's own class: never a
traceback. Property-based (hypothesis), in the fast lane: a few dozen examples per entry point."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qatzoo.cli import main
from tests.conftest import REPO

CNN = REPO / "zoo" / "mnist_cnn_int8" / "2"
FORECASTER = REPO / "zoo" / "attention_int8" / "4"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _one_line_or_success(code: int, out: str, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "Traceback" not in err


def _png(width: int, height: int, body: bytes, kind: bytes = b"IDAT") -> bytes:
    def chunk(name: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(kind, body) + chunk(b"IEND", b"")


images = st.one_of(
    st.binary(max_size=512),
    st.builds(_png, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1), st.binary(max_size=256)),
    st.builds(lambda b: _png(28, 28, zlib.compress(b)), st.binary(max_size=900)),
    st.builds(
        lambda b, n: _png(28, 28, zlib.compress(bytes(29 * 28))[:n] + b), st.binary(max_size=8), st.integers(0, 40)
    ),
)


@SETTINGS
@given(blob=images)
def test_predict_on_generated_images(blob):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "digit.png"
        path.write_bytes(blob)
        _one_line_or_success(*_cli("predict", str(CNN), str(path)))


dtypes = st.sampled_from(["|u1", "<f4", "<f8", "<i8", "|b1", "<c8", "|O", "<U3", "|V4", ">f4", "<f2"])
shapes = st.lists(st.integers(0, 10**6), max_size=4).map(tuple)


def _npy(descr: str, shape: tuple, body: bytes, fortran: bool) -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


arrays = st.one_of(
    st.builds(_npy, dtypes, shapes, st.binary(max_size=2048), st.booleans()),
    st.builds(lambda a: _npy("|u1", (28, 28), a.tobytes(), False), st.just(np.zeros((28, 28), np.uint8))),
    st.binary(max_size=256),
)


@SETTINGS
@given(blob=arrays, model=st.sampled_from([CNN, FORECASTER]))
def test_predict_on_generated_npy(blob, model):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.npy"
        path.write_bytes(blob)
        _one_line_or_success(*_cli("predict", str(model), str(path)))


cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**400), 10**400).map(str),
    st.text(max_size=6),
    st.just(""),
)
csv_texts = st.one_of(
    st.lists(st.lists(cells, min_size=1, max_size=3).map(",".join), max_size=150).map("\n".join),
    st.builds(lambda head, rows: head + "\n" + "\n".join(rows), st.text(max_size=12), st.lists(cells, max_size=150)),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)


@SETTINGS
@given(text=csv_texts)
def test_predict_on_generated_csv(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "series.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _one_line_or_success(*_cli("predict", str(FORECASTER), str(path)))


# ---- data documents: contracts, index entries, run reports, run configs

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


def _mutated(document: dict, path: list, value):
    """``document`` with the value at ``path`` (keys and list indices, as far as they lead) replaced."""
    document = json.loads(json.dumps(document))
    node = document
    for key in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[key % len(node)]]
        elif isinstance(node, list) and node:
            node = node[key % len(node)]
    if isinstance(node, dict) and node:
        node[sorted(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return document


CONTRACT = json.loads((CNN / "contract.json").read_text())


@SETTINGS
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=5), value=json_values)
def test_a_mutated_contract_is_accepted_whole_or_refused_in_one_line(path, value):
    from qatzoo.contract import ContractError
    from qatzoo.model import Model

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "contract.json").write_text(json.dumps(_mutated(CONTRACT, path, value)))
        try:
            model = Model.from_files(CNN / "model_int8.tflite", Path(folder) / "contract.json")
        except ContractError as error:
            assert "\n" not in str(error)
            return
        pixels = np.zeros((28, 28), np.uint8)
        try:
            model.predict(pixels)
        except ContractError as error:  # a contract that loads but does not take these pixels
            assert "\n" not in str(error)


def test_a_contract_whose_steps_make_the_wrong_shape_is_refused_in_one_line(tmp_path):
    """Found by the test above: a contract without its add_axis step loads, and LiteRT's own ValueError
    ("Dimension mismatch") escaped predict."""
    from qatzoo.contract import ContractError
    from qatzoo.model import Model

    contract = json.loads(json.dumps(CONTRACT))
    contract["input"]["steps"] = [s for s in contract["input"]["steps"] if s["op"] != "add_axis"]
    (tmp_path / "contract.json").write_text(json.dumps(contract))
    model = Model.from_files(CNN / "model_int8.tflite", tmp_path / "contract.json")
    with pytest.raises(ContractError, match=r"^the contract's steps make inputs of shape \(28, 28\), the model takes"):
        model.predict(np.zeros((28, 28), np.uint8))


INDEX = json.loads((REPO / "zoo" / "index.json").read_text())


@SETTINGS
@given(
    path=st.lists(st.integers(0, 50), min_size=1, max_size=6),
    value=json_values,
    command=st.sampled_from(["list", "info"]),
)
def test_a_mutated_index_is_listed_or_refused_in_one_line(path, value, command):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "index.json").write_text(json.dumps(_mutated(INDEX, [0, *path], value)))
        argv = [command, *(["attention_int8"] if command == "info" else []), "--index", folder]
        _one_line_or_success(*_cli(*argv))


@SETTINGS
@given(text=st.one_of(st.text(max_size=400), json_values.map(json.dumps)))
def test_a_generated_run_report_is_read_or_refused_in_one_line(text):
    from qatzoo.report import ReportError, RunReport

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "metrics.json").write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            RunReport.read(Path(folder))
        except ReportError as error:
            assert "\n" not in str(error)


yaml_texts = st.one_of(
    st.text(max_size=300),
    json_values.map(json.dumps),  # JSON is YAML
    st.lists(
        st.sampled_from(["a: &x [1, 2]", "b: *x", "c: !!python/object:os.system x", "d: {", "- e", "  f: 1"]),
        max_size=6,
    ).map("\n".join),
)


@SETTINGS
@given(text=yaml_texts)
def test_a_generated_run_config_is_parsed_with_bounds_or_refused_in_one_line(text):
    from qatzoo.artifacts import parse_yaml
    from qatzoo.zoo.index import ZooError
    from qatzoo.zoo.publish import _config

    try:
        parse_yaml(text)
    except ValueError as error:
        assert "\n" not in str(error)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            _config(Path(folder))
        except ZooError as error:
            assert "\n" not in str(error)


def test_a_csv_header_with_a_line_break_of_its_own_stays_on_one_error_line(tmp_path):
    """Found by the generated CSVs: a header holding NEL (U+0085) split the error in two."""
    path = tmp_path / "series.csv"
    path.write_text("load\x85\u2028\x1b[31mred\n1e999\n")
    code, _, err = _cli("predict", str(FORECASTER), str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "\\x85" in err and "\\u2028" in err and "\\x1b" in err and "\x1b" not in err
