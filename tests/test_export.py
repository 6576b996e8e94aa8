"""Export and the checks every model goes through."""

from __future__ import annotations

import numpy as np
import pytest

from qatzoo.export.checks import full_integer
from qatzoo.export.litert import TensorQuant, dequantize, predict, quantize
from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
from qatzoo.keras import keras
from qatzoo.task import Task

CLASSIFY = Task("classification")


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_full_integer_check_tells_float_from_int8():
    model = _model()
    x = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    float_report = full_integer(to_float_tflite(model))
    assert not float_report.ok and {t["dtype"] for t in float_report.non_integer} == {"float32"}
    int8 = to_int8_tflite(model, lambda: x)
    report = full_integer(int8)
    assert report.ok and "FULLY_CONNECTED" in report.ops and "DELEGATE" not in report.ops
    # The int8 model follows the float one closely on its calibration data.
    assert CLASSIFY.agreement(predict(int8, x), model.predict(x, verbose=0)) >= 0.9


def test_stripping_names_changes_size_not_results():
    model = _model()
    x = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32)
    int8 = to_int8_tflite(model, lambda: x)
    stripped = strip_names(int8)
    assert len(stripped) < len(int8)
    np.testing.assert_array_equal(predict(stripped, x), predict(int8, x))
    assert full_integer(stripped).ok


@pytest.mark.parametrize("dtype,zero_points", [("int8", (-128, -3, 0, 127)), ("int16", (0,))])
def test_dequantized_values_quantize_back_to_the_same_integers(dtype, zero_points):
    """LiteRT's dequantized outputs stand for its integer ones (the TFLM comparison reads them back)."""
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1).astype(dtype)
    for zero in zero_points:
        for scale in 10.0 ** np.random.default_rng(0).uniform(-8, 2, 100):
            t = TensorQuant(dtype, float(scale), zero)
            np.testing.assert_array_equal(quantize(dequantize(q, t), t), q)
    assert quantize(np.array([-1e9, 0.26, 1e9]), TensorQuant("int8", 0.5, 1)).tolist() == [-128, 2, 127]


def test_task_scores_compares_and_judges_parity_in_the_reported_unit():
    a = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    b = np.array([[0.2, 0.8], [0.1, 0.9], [0.4, 0.6]])
    assert CLASSIFY.agreement(a, b) == 2 / 3
    assert CLASSIFY.score(np.array([1, 0, 0]), a) == 2 / 3 * 100
    assert CLASSIFY.parity(np.array([1, 0, 0]), a, b) == {"agreement": 2 / 3, "threshold": 0.99, "pass": False}
    forecast = Task("forecast", scale=2.0, target_unit="ppm")
    y = np.array([[0.0], [1.0]])
    assert forecast.score(y, y + 0.5) == 1.0  # MAE 0.5 in array units is 1.0 ppm
    assert forecast.format(1.0) == "1.0000 ppm" and CLASSIFY.format(96.2) == "96.20%"
    parity = forecast.parity(y, y + 0.505, y + 0.5)
    assert parity["mae_gap"] == pytest.approx(0.01) and parity["mean_abs_diff"] == pytest.approx(0.01)
    assert forecast.harm(1.1, 1.0) == pytest.approx(0.1) and CLASSIFY.harm(95.0, 96.0) == 1.0
    assert forecast == "forecast" and forecast != "classification" and forecast.metric == "mae"
    with pytest.raises(ValueError, match="unknown task"):
        Task("segmentation")
