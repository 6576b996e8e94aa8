"""The per-op LiteRT profile (qatzoo.bench.profile): every op once, faithful one-op models, XNNPACK flags that
agree with the whole model's coverage. Its structure and facts, not its timings."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qatzoo.bench import profile as prof
from qatzoo.bench.xnnpack import model_coverage
from qatzoo.export.litert import interpreter

REPO = Path(__file__).resolve().parent.parent
ZOO_CNN = REPO / "zoo" / "mnist_cnn_int8" / "1" / "model_int8.tflite"
ZOO_ATTENTION = REPO / "zoo" / "attention_int8" / "1" / "model_int8.tflite"


@pytest.fixture(scope="module")
def cnn_profile() -> prof.Profile:
    return prof.profile_model(ZOO_CNN)


def test_every_op_listed_once_in_graph_order(cnn_profile):
    graph = interpreter(str(ZOO_CNN), delegates=False)._get_ops_details()  # noqa: SLF001
    assert [(o.index, o.op) for o in cnn_profile.ops] == [(g["index"], g["op_name"]) for g in graph]
    assert all(o.dtype == "int8" for o in cnn_profile.ops)


def test_profile_takes_a_path_and_times_are_positive(cnn_profile):
    assert all(o.us > 0 and o.us_builtin > 0 for o in cnn_profile.ops)
    assert cnn_profile.whole_us > 0 and cnn_profile.whole_builtin_us > 0 and cnn_profile.empty_us > 0


@pytest.mark.parametrize("path", [ZOO_CNN, ZOO_ATTENTION], ids=lambda p: p.parts[-3])
def test_xnnpack_flags_agree_with_the_whole_models_coverage(path):
    ops = prof.profile(path.read_bytes())
    left = collections.Counter(o.op for o in ops if not o.xnnpack)
    assert left == collections.Counter(model_coverage(path).outside)


def test_one_op_models_compute_what_the_op_computes_in_the_model():
    blob = ZOO_ATTENTION.read_bytes()
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    values = prof._tensor_values(blob)  # noqa: SLF001
    for index, op in enumerate(obj.subgraphs[0].operators):
        it = interpreter(prof._single_op(obj, index), delegates=False)  # noqa: SLF001
        for d, t in zip(it.get_input_details(), prof._graph_inputs(obj, op), strict=True):  # noqa: SLF001
            it.set_tensor(d["index"], values[t])
        it.invoke()
        (out,) = it.get_output_details()
        np.testing.assert_array_equal(it.get_tensor(out["index"]), values[op.outputs[0]], err_msg=f"op {index}")


def test_tables_list_each_op_and_each_op_name(cnn_profile):
    rows = prof.table(cnn_profile.ops).splitlines()
    assert len(rows) == 2 + len(cnn_profile.ops) and rows[2].startswith("| 0 | CONV_2D | int8 | yes |")
    sums = prof.by_op(cnn_profile.ops).splitlines()
    assert len(sums) == 2 + len({o.op for o in cnn_profile.ops})
    assert "sum of 7 ops" in cnn_profile.check()


def test_command_prints_the_cpu_the_whole_model_and_the_table():
    from qatzoo.bench.cpu import cpu_name

    done = subprocess.run(
        [sys.executable, "-m", "qatzoo.bench.profile", str(ZOO_CNN), "--top", "3"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert cpu_name() in done.stdout and "whole model:" in done.stdout
    assert "| 0 | CONV_2D | int8 | yes |" in done.stdout and "| CONV_2D | int8 | 2 | 2 |" in done.stdout
