"""Metrics of Keras models and of exported TFLite models on the same test split."""

from __future__ import annotations

import numpy as np

from qatzoo.data.splits import Splits
from qatzoo.export import litert
from qatzoo.export.checks import classification_agreement, relative_mae_gap

#: Parity thresholds between an int8 model and the Keras model it was converted from.
MIN_AGREEMENT = 0.99  # classification: share of identical predicted classes
MAX_MAE_GAP = 0.01  # forecasting: relative difference of MAE


def score(data: Splits, predictions: np.ndarray) -> float:
    """Accuracy in percent (classification) or MAE in the target unit (forecasting)."""
    if data.task == "classification":
        return float(np.mean(np.argmax(predictions, axis=-1) == data.y_test) * 100.0)
    return float(np.mean(np.abs(predictions - data.y_test)) * data.target_scale)


def validation_score(model, data: Splits) -> float:
    """A model's metric on the validation split (for choices: picking a scheme, a setting).

    ``model``: a Keras model, or a .tflite flatbuffer (bytes) run in LiteRT.
    """
    if isinstance(model, bytes):
        predictions = litert.predict(model, data.x_val)
    else:
        predictions = model.predict(data.x_val, batch_size=256, verbose=0)
    if data.task == "classification":
        return float(np.mean(np.argmax(predictions, axis=-1) == data.y_val) * 100.0)
    return float(np.mean(np.abs(predictions - data.y_val)) * data.target_scale)


def metric_name(data: Splits) -> str:
    return "accuracy" if data.task == "classification" else "mae"


def higher_is_better(data: Splits) -> bool:
    return data.task == "classification"


def keras_predictions(model, data: Splits) -> np.ndarray:
    return model.predict(data.x_test, batch_size=256, verbose=0)


def tflite_predictions(model: bytes, data: Splits, label: str = "") -> np.ndarray:
    return litert.predict(model, data.x_test, progress=f"LiteRT {label}".strip())


def parity(data: Splits, int8_predictions: np.ndarray, keras_predictions: np.ndarray) -> dict:
    """How closely an int8 model follows its Keras model, and whether that is within threshold."""
    if data.task == "classification":
        agreement = classification_agreement(int8_predictions, keras_predictions)
        return {"agreement": agreement, "threshold": MIN_AGREEMENT, "pass": agreement >= MIN_AGREEMENT}
    gap = relative_mae_gap(score(data, int8_predictions), score(data, keras_predictions))
    mean_diff = float(np.mean(np.abs(int8_predictions - keras_predictions)) * data.target_scale)
    return {"mae_gap": gap, "mean_abs_diff": mean_diff, "threshold": MAX_MAE_GAP, "pass": gap <= MAX_MAE_GAP}


def agreement(data: Splits, a: np.ndarray, b: np.ndarray) -> float:
    """How alike two models' test predictions are: share of equal classes, or mean |difference| in the unit."""
    if data.task == "classification":
        return classification_agreement(a, b)
    return float(np.mean(np.abs(a - b)) * data.target_scale)
