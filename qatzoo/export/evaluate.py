"""Metrics of Keras models and of exported TFLite models on the same test split.

Scoring, comparing and the parity rule belong to the data's :class:`~qatzoo.task.Task`; this module
runs the models and hands their predictions to it.
"""

from __future__ import annotations

import numpy as np

from qatzoo.data.splits import Splits
from qatzoo.export import litert
from qatzoo.task import MAX_MAE_GAP, MIN_AGREEMENT  # noqa: F401 - re-exported: the parity thresholds


def predict(model, x: np.ndarray, label: str | None = None) -> np.ndarray:
    """Predictions of a Keras model, or of a .tflite flatbuffer (bytes) run in LiteRT."""
    if isinstance(model, bytes):
        return litert.predict(model, x, progress=label)
    return model.predict(x, batch_size=256, verbose=0)


def score(data: Splits, predictions: np.ndarray) -> float:
    """Accuracy in percent (classification) or MAE in the target unit (forecasting), on the test split."""
    return data.task.score(data.y_test, predictions)


def validation_score(model, data: Splits) -> float:
    """A model's metric on the validation split (for choices: picking a scheme, a setting).

    ``model``: a Keras model, or a .tflite flatbuffer (bytes) run in LiteRT.
    """
    return data.task.score(data.y_val, predict(model, data.x_val))


def all_predictions(keras_models: dict, files: dict[str, bytes], data: Splits) -> dict[str, np.ndarray]:
    """Test-split predictions of every Keras model and every .tflite file (int8 ones run in LiteRT);
    the float file is reported as ``float_tflite``."""
    out = {name: predict(model, data.x_test) for name, model in keras_models.items()}
    for name, blob in files.items():
        out["float_tflite" if name == "float" else name] = predict(blob, data.x_test, label=f"LiteRT {name}")
    return out


def parity(data: Splits, int8_predictions: np.ndarray, keras_predictions: np.ndarray) -> dict:
    """How closely an int8 model follows its Keras model, and whether that is within threshold."""
    return data.task.parity(data.y_test, int8_predictions, keras_predictions)


def agreement(data: Splits, a: np.ndarray, b: np.ndarray) -> float:
    """How alike two models' test predictions are: share of equal classes, or mean |difference| in the unit."""
    return data.task.agreement(a, b)
