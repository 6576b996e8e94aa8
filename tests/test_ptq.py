"""PTQ with LiteRT's quantizer (int8 and int16 activations) and the per-tensor comparison of int8 files."""

from __future__ import annotations

import numpy as np
import pytest

from qatzoo.export import checks, litert, ptq, tensors
from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
from qatzoo.keras import keras
from qatzoo.quant.schemes import scheme


def _cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def _sample(n=64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 12, 12, 1)).astype(np.float32)


def test_quantizer_int8_file_is_full_integer_with_int8_io_and_follows_the_float_model():
    model, x = _cnn(), _sample()
    float_file = to_float_tflite(model)
    blob = strip_names(ptq.quantize(float_file, x, "a8w8"))
    assert checks.full_integer(blob).ok
    in_q, out_q = litert.io_quant(litert.interpreter(blob))
    assert (in_q.dtype, out_q.dtype) == ("int8", "int8")
    reference, quantized = litert.predict(float_file, x), litert.predict(blob, x)
    assert np.mean(reference.argmax(-1) == quantized.argmax(-1)) >= 0.9
    assert ptq.describe("a8w8") == {
        "package": "litert-quantizer",
        "version": "0.11.0",
        "recipe": "static_wi8_ai8",
        "calibration": "min_max",
    }


def test_min_max_calibration_covers_the_sample_the_moving_average_clips_it():
    model, x = _cnn(), _sample(128)
    float_file = to_float_tflite(model)
    reference = litert.predict(float_file, x)

    def output_range(calibration):
        _, out_q = litert.io_quant(litert.interpreter(ptq.quantize(float_file, x, "a8w8", calibration)))
        return (-128 - out_q.zero_point) * out_q.scale, (127 - out_q.zero_point) * out_q.scale, out_q.scale

    low, high, step = output_range("min_max")  # the whole sample's range, up to rounding to the grid
    assert low <= reference.min() + step and high >= reference.max() - step
    low, high, _ = output_range("moving_average")
    assert high - low < reference.max() - reference.min()


def test_a16w8_file_has_int16_activations_passes_its_schemes_check_and_is_closer_to_float():
    model, x = _cnn(), _sample()
    float_file = to_float_tflite(model)
    a16 = strip_names(ptq.quantize(float_file, x, "a16w8"))
    a8 = strip_names(ptq.quantize(float_file, x, "a8w8"))
    in_q, out_q = litert.io_quant(litert.interpreter(a16))
    assert (in_q.dtype, out_q.dtype) == ("int16", "int16")
    assert not checks.full_integer(a16).ok  # not an int8 file
    a16w8 = scheme(name="ptq_a16w8", qat=False, int8=True, activations="int16")
    assert a16w8.int8_model == "ptq_a16w8" and checks.full_integer(a16, a16w8.integer_types).ok
    reference = litert.predict(float_file, x)
    error16 = np.abs(litert.predict(a16, x) - reference).mean()
    error8 = np.abs(litert.predict(a8, x) - reference).mean()
    assert error16 < error8


def test_per_tensor_comparison_names_a_stripped_converter_file_and_finds_the_damage():
    model, x = _cnn(), _sample()
    float_file = to_float_tflite(model)
    own = strip_names(to_int8_tflite(model, lambda: x))
    result = tensors.compare(own, float_file, x[:8])
    kinds = [r["kind"] for r in result["rows"]]
    names = {r["tensor"] for r in result["rows"]}
    assert result["matched"] >= 4 and kinds.count("output") == 1 and kinds.count("activation") >= 3
    assert any("conv1" in n for n in names)  # the float file's names, on a file that had none
    assert all(np.isfinite(r["snr_db"]) and -1.0 <= r["cosine"] <= 1.0 + 1e-6 for r in result["rows"])
    assert min(r["snr_db"] for r in result["rows"]) > 10.0  # the model's own int8 file: small errors
    # Another model's int8 file in the same graph: its tensors are far from this float model's.
    other = strip_names(to_int8_tflite(_cnn(seed=1), lambda: x))
    damaged = tensors.compare(other, float_file, x[:8])
    assert min(r["snr_db"] for r in damaged["rows"]) < 3.0


def test_a_model_with_over_256_kib_of_weights_keeps_them_through_strip_names():
    # From 256 KiB of constants the quantizer appends their data after the flatbuffer (Buffer.offset/size);
    # strip_names' repack would drop it ("Constant buffer 1 specified an out of range offset").
    keras.utils.set_random_seed(0)
    inputs = keras.Input((24, 24, 1))
    x = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Dense(512, activation="relu")(x)))
    x = np.random.default_rng(0).normal(size=(16, 24, 24, 1)).astype(np.float32)
    float_file = to_float_tflite(model)
    blob = strip_names(ptq.quantize(float_file, x, "a8w8"))
    assert len(blob) > 24 * 24 * 512  # the int8 kernel is in the file
    reference, quantized = litert.predict(float_file, x), litert.predict(blob, x)
    assert np.mean(reference.argmax(-1) == quantized.argmax(-1)) >= 0.75


def _splits(model, x):
    """Classification splits whose labels are the float model's own classes: float scores 100%."""
    from qatzoo.data.splits import Splits

    labels = np.argmax(model.predict(x, verbose=0), axis=-1)
    return Splits("sample", "classification", x, labels, x, labels, x, labels, num_outputs=4)


def test_ptq_suite_scores_each_algorithm_on_its_own_file_at_the_schemes_widths():
    """w4a8: every algorithm's number is its own file run in LiteRT on the test split; a refusal is one line;
    the 4-bit files hold INT4 weights and are smaller than the 8-bit ones."""
    from qatzoo.export import ptq_suite
    from qatzoo.task import Task

    model, x = _cnn(), _sample(96)
    float_file, data = to_float_tflite(model), _splits(model, x)
    table = ptq_suite.measure(float_file, x, data, weight_bits=4, algorithms=("min_max", "mse", "octav"))
    assert table["widths"] == "w4a8" and set(table["methods"]) == {"min_max", "mse", "octav"}
    for name, method in table["methods"].items():
        if "error" in method:
            assert "\n" not in method["error"] and method["error"].startswith("litert-quantizer: ")
            continue
        blob = strip_names(ptq.quantize_with(float_file, x, weight_bits=4, algorithm=name)[0])
        assert method["bytes"] == len(blob)
        assert method["accuracy"] == np.mean(np.argmax(litert.predict(blob, x), -1) == data.y_test) * 100.0
    assert "accuracy" in table["methods"]["min_max"]
    four = strip_names(ptq.quantize_with(float_file, x, weight_bits=4, algorithm="min_max")[0])
    eight = strip_names(ptq.quantize_with(float_file, x, weight_bits=8, algorithm="min_max")[0])
    from qatzoo.export import lowbit

    assert len(four) < len(eight)
    assert {k["storage"] for k in lowbit.weight_levels(four)} == {"int4"}
    assert {k["storage"] for k in lowbit.weight_levels(eight)} == {"int8"}
    summary = ptq_suite.summarize(table, Task("classification"), 100.0, 99.0)
    best = max(
        (n for n in table["methods"] if "accuracy" in table["methods"][n]),
        key=lambda n: table["methods"][n]["accuracy"],
    )
    assert summary["best"] == best
    lines = ptq_suite.lines(summary, "accuracy", "%")
    assert lines[0] == "## QAT against post-training quantization"
    assert "| **QAT int8 (this file)** | 99.00 | - | - |" in lines


def test_a_ptq_file_whose_depthwise_kernels_stayed_8_bit_says_so_where_qat_is_compared_with_it():
    """LiteRT's quantizer takes no 4-bit DEPTHWISE_CONV_2D: those kernels stay 8-bit, so the best PTQ w4a8 file is
    wider than a QAT scheme with every kernel at 4 bits. The row, the summary and the card's sentence say so; at
    8 bits nothing is wider."""
    from qatzoo.export import ptq_suite
    from qatzoo.report import wider
    from qatzoo.task import Task

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.DepthwiseConv2D(3, activation="relu", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))
    x = _sample(64)
    float_file, data = to_float_tflite(model), _splits(model, x)
    four = ptq_suite.measure(float_file, x, data, weight_bits=4, algorithms=("min_max",))
    assert four["methods"]["min_max"]["kept_8bit"] == ["DEPTHWISE_CONV_2D"]
    summary = ptq_suite.summarize(four, Task("classification"), 100.0, 99.0)
    assert wider(summary) == "; its DEPTHWISE_CONV_2D kernels stayed 8-bit"
    assert any(
        "(min_max; its DEPTHWISE_CONV_2D kernels stayed 8-bit)" in line
        for line in ptq_suite.lines(summary, "accuracy", "%")
    )
    eight = ptq_suite.measure(float_file, x, data, weight_bits=8, algorithms=("min_max",))
    assert "kept_8bit" not in eight["methods"]["min_max"]
    assert wider(ptq_suite.summarize(eight, Task("classification"), 100.0, 99.0)) == ""


def test_recovered_is_the_share_of_the_best_ptq_loss_qat_wins_back():
    from qatzoo.export.ptq_suite import recovered
    from qatzoo.task import Task

    accuracy, mae = Task("classification"), Task("forecast", target_unit="ppm")
    assert recovered(accuracy, 99.0, 97.0, 98.5) == pytest.approx(0.75)
    assert recovered(accuracy, 99.0, 97.0, 96.0) == pytest.approx(-0.5)  # QAT worse than PTQ
    assert recovered(mae, 0.30, 0.34, 0.31) == pytest.approx(0.75)
    assert recovered(mae, 0.30, 0.30, 0.29) is None  # PTQ loses nothing: nothing to recover


def test_no_recovery_is_claimed_for_a_ptq_loss_that_is_not_significant():
    from qatzoo.export.ptq_suite import recovered
    from qatzoo.task import Task

    assert recovered(Task("classification"), 99.0, 97.0, 98.5, p_vs_float=0.2) is None
    assert recovered(Task("classification"), 99.0, 97.0, 98.5, p_vs_float=0.01) == pytest.approx(0.75)


def test_int8_storage_of_int4_kernels_keeps_every_output_bit_for_bit():
    """The converter's packed INT4 kernels rewritten as INT8 (for TFLite Micro and Vela): identical outputs in
    LiteRT's reference kernels (XNNPACK rounds its own way, and takes ops the INT4 file left outside it), every
    kernel still on the 4-bit grid, twice the kernel bytes; ``ops`` picks which kernels."""

    def reference(blob):
        return litert.predict(litert.interpreter(blob, delegates=False), x)

    from qatzoo.export import lowbit

    model, x = _cnn(), _sample(32)
    four = strip_names(ptq.quantize_with(to_float_tflite(model), x, weight_bits=4, algorithm="min_max")[0])
    eight = lowbit.int8_storage(four)
    np.testing.assert_array_equal(reference(eight), reference(four))
    kernels = lowbit.weight_levels(eight)
    assert {k["storage"] for k in kernels} == {"int8"} and max(k["max_levels_per_channel"] for k in kernels) <= 16
    values = sum(k["size"] for k in kernels)
    assert len(eight) - len(four) >= values // 2 - 64  # each int4 pair now takes two bytes
    convs_only = lowbit.int8_storage(four, frozenset({"CONV_2D"}))
    stored = {(k["op"], k["storage"]) for k in lowbit.weight_levels(convs_only)}
    assert stored == {("CONV_2D", "int8"), ("FULLY_CONNECTED", "int4")}
    np.testing.assert_array_equal(reference(convs_only), reference(four))


@pytest.mark.slow
def test_a_qat_run_measures_every_ptq_algorithm_at_its_widths_and_says_what_qat_recovers(compose_cfg, tmp_path):
    """trainer.ptq_baselines: each algorithm's file at w4a8 run in LiteRT on the test split, the best full-integer
    one named, "% recovered" only where that file is significantly worse than float; in metrics.json and the card."""
    import json

    from qatzoo.export.ptq import ALGORITHMS
    from qatzoo.significance import ALPHA
    from qatzoo.train.trainer import train

    tiny = ["schedule.float_epochs=1", "schedule.qat_epochs=1", "trainer.representative_samples=64"]
    cfg = compose_cfg("recipe=mnist_cnn_int8", "data=mnist_5k", "quant=w4a8", "trainer.ptq_baselines=true", *tiny)
    metrics = train(cfg, tmp_path)
    table = metrics["ptq_baselines"]
    assert table["widths"] == "w4a8" and set(table["methods"]) == set(ALGORITHMS)
    assert table["float"] == metrics["results"]["float_tflite"]["accuracy"]
    assert table["qat_int8"] == metrics["results"]["qat_int8"]["accuracy"]
    candidates = {n: m for n, m in table["methods"].items() if "accuracy" in m and m.get("full_integer", True)}
    assert table["best"] == max(candidates, key=lambda n: candidates[n]["accuracy"])
    best = candidates[table["best"]]
    lost = table["float"] - best["accuracy"]
    if lost > 0 and best["p_vs_float"] < ALPHA:
        expected = (lost - (table["float"] - table["qat_int8"])) / lost
        assert table["recovered"] == pytest.approx(expected)
    else:
        assert table["recovered"] is None
    assert json.loads((tmp_path / "metrics.json").read_text())["ptq_baselines"] == table
    card = (tmp_path / "card.md").read_text()
    assert "## QAT against post-training quantization" in card and "| PTQ w4a8 min_max |" in card
