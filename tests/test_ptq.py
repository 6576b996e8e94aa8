"""PTQ with LiteRT's quantizer (int8 and int16 activations) and the per-tensor comparison of int8 files."""

from __future__ import annotations

import numpy as np

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
