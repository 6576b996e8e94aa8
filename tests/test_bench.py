"""The benchmark's measurements (qatzoo.bench): their structure and the facts they report, not their timings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qatzoo.bench.sizes import size_breakdown
from qatzoo.bench.xnnpack import Coverage, model_coverage

REPO = Path(__file__).resolve().parent.parent
ZOO_CNN = REPO / "zoo" / "mnist_cnn_int8" / "1" / "model_int8.tflite"
ZOO_ATTENTION = REPO / "zoo" / "attention_int8" / "1" / "model_int8.tflite"


@pytest.fixture(scope="module")
def tiny_cnn():
    """A small float CNN on MNIST-shaped inputs (untrained: export and latency do not depend on the weights)."""
    from qatzoo.keras import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_xnnpack_takes_the_whole_int8_cnn():
    cov = model_coverage(ZOO_CNN)
    assert cov == Coverage(partitions=1, outside=())
    assert cov.outside_summary() == "-"


def test_xnnpack_leaves_int8_attention_ops_to_builtin_kernels():
    cov = model_coverage(ZOO_ATTENTION.read_bytes())
    assert cov.partitions > 1  # XNNPACK's partitions around the ops it has no int8 kernel for
    assert {"BATCH_MATMUL", "SOFTMAX"} <= set(cov.outside)
    assert "CONV_2D" not in cov.outside and "DELEGATE" not in cov.outside


def test_outside_summary_counts_each_op():
    assert Coverage(3, ("SOFTMAX", "ADD", "SOFTMAX")).outside_summary() == "ADD x1, SOFTMAX x2"


@pytest.mark.parametrize("path", sorted((REPO / "zoo").glob("*/*/model_int8.tflite")), ids=lambda p: p.parts[-3])
def test_size_breakdown_adds_up_to_the_file(path):
    blob = path.read_bytes()
    sizes = size_breakdown(blob)
    assert sizes.total == len(blob)
    assert sum(sizes.constants.values()) + sizes.rest == len(blob) and sizes.rest > 0
    # A full-integer model: int8 weights, int32 biases, no float constants; a scale per tensor or channel.
    assert sizes.constants["int8"] > sizes.constants["int32"] > 0 and "float32" not in sizes.constants
    assert sizes.quant_entries > 0
    row = sizes.row()
    assert sum(v for k, v in row.items() if k.startswith("bytes_")) == len(blob)


def test_latency_worker_measures_float_and_int8(tiny_cnn):
    from qatzoo.bench.latency import measure
    from qatzoo.export.tflite import strip_names, to_float_tflite

    files = {"float": strip_names(to_float_tflite(tiny_cnn)), "int8": ZOO_CNN.read_bytes()}
    sample = np.random.default_rng(0).random((28, 28, 1), np.float32)
    lat = measure(files, sample, "xnnpack", threads=[1], runs=20, rounds=2, block_s=0.005)
    assert lat.mode == "xnnpack" and lat.cpu.strip()
    assert set(lat.us) == {"float", "int8"}
    assert all(lat.us[name][1] > 0 for name in lat.us)
    assert lat.coverage["int8"] == Coverage(1, ()) and lat.amx_denied is None
    builtin = measure(files, sample, "builtin", threads=[1], runs=20, rounds=2, block_s=0.005)
    assert all(builtin.us[name][1] > 0 for name in files) and builtin.coverage == {}
    with pytest.raises(ValueError, match="mode must be one of"):
        measure(files, sample, "gpu", threads=[1], runs=1)


def test_batch_n_export_runs_n_examples_per_invoke(tiny_cnn):
    from qatzoo.bench.export import to_tflite_at_batch
    from qatzoo.export.checks import full_integer
    from qatzoo.export.litert import interpreter

    x = np.random.default_rng(1).random((4, 28, 28, 1), np.float32)
    expected = tiny_cnn.predict(x, verbose=0)

    it = interpreter(to_tflite_at_batch(tiny_cnn, 4))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape"]) == [1, 4, 28, 28, 1] and list(out["shape"]) == [1, 4, 3]
    it.set_tensor(inp["index"], x[None])
    it.invoke()
    np.testing.assert_allclose(it.get_tensor(out["index"])[0], expected, atol=1e-5)

    int8 = to_tflite_at_batch(tiny_cnn, 4, representative=x)
    assert full_integer(int8).ok
    it = interpreter(int8)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape"]) == [1, 4, 28, 28, 1] and inp["dtype"] == np.int8
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    it.set_tensor(inp["index"], np.clip(np.round(x[None] / in_scale + in_zero), -128, 127).astype(np.int8))
    it.invoke()
    got = (it.get_tensor(out["index"])[0].astype(np.float32) - out_zero) * out_scale
    np.testing.assert_allclose(got, expected, atol=4 * out_scale)  # each example its own answer


def test_benchmark_script_help():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "--batch-sweep" in done.stdout and "--quick" in done.stdout
