"""Export and the checks every model goes through."""

from __future__ import annotations

import numpy as np

from qatzoo.export.checks import classification_agreement, full_integer, relative_mae_gap
from qatzoo.export.litert import predict
from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
from qatzoo.keras import keras


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
    assert classification_agreement(predict(int8, x), model.predict(x, verbose=0)) >= 0.9


def test_stripping_names_changes_size_not_results():
    model = _model()
    x = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32)
    int8 = to_int8_tflite(model, lambda: x)
    stripped = strip_names(int8)
    assert len(stripped) < len(int8)
    np.testing.assert_array_equal(predict(stripped, x), predict(int8, x))
    assert full_integer(stripped).ok


def test_agreement_and_mae_gap():
    a = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    b = np.array([[0.2, 0.8], [0.1, 0.9], [0.4, 0.6]])
    assert classification_agreement(a, b) == 2 / 3
    assert relative_mae_gap(1.01, 1.0) == 0.010000000000000009
