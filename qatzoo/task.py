"""What a dataset's numbers mean: one :class:`Task` per dataset, carried by its splits.

The task decides the metric (accuracy or MAE), its unit, which way is better, how predictions are
scored, how two models' predictions are compared and what parity between an int8 model and its
Keras model means. Every score in the project goes through :meth:`Task.score`, always in the
reported unit (accuracy in %, MAE in the dataset's unit, e.g. ppm), on whatever split it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Parity thresholds between an int8 model and the Keras model it was converted from.
MIN_AGREEMENT = 0.99  # classification: share of identical predicted classes
MAX_MAE_GAP = 0.01  # forecasting: relative difference of MAE

#: Every kind of task, declared here once (the config schema, the run report and the index take it from here):
#: classification (integer labels, accuracy), forecast (a series' next values, MAE), regression (values per
#: example, MAE).
KINDS = ("classification", "forecast", "regression")


@dataclass(frozen=True)
class Task:
    """A classification task (integer labels, accuracy in %), a forecast or a regression (targets / ``scale``,
    MAE in ``target_unit``).

    ``scale``: forecast and regression targets are divided by it in the arrays; MAE in ``target_unit`` is
    ``scale`` times MAE in array units.
    """

    name: str
    scale: float = 1.0
    target_unit: str = ""

    def __post_init__(self):
        if self.name not in KINDS:
            raise ValueError(f"unknown task {self.name!r}; tasks are: {', '.join(KINDS)}")

    def __eq__(self, other) -> bool:
        """Equal to another Task with the same fields, or to its name (``data.task == "forecast"``)."""
        if isinstance(other, str):
            return self.name == other
        return isinstance(other, Task) and (self.name, self.scale, self.target_unit) == (
            other.name,
            other.scale,
            other.target_unit,
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    @property
    def classification(self) -> bool:
        return self.name == "classification"

    @property
    def metric(self) -> str:
        return "accuracy" if self.classification else "mae"

    @property
    def unit(self) -> str:
        return "%" if self.classification else self.target_unit

    @property
    def higher_is_better(self) -> bool:
        return self.classification

    def score(self, y: np.ndarray, predictions: np.ndarray) -> float:
        """Accuracy in percent, or MAE in the target unit, of ``predictions`` against ``y``."""
        if self.classification:
            return float(np.mean(np.argmax(predictions, axis=-1) == y) * 100.0)
        return float(np.mean(np.abs(predictions - y)) * self.scale)

    def losses(self, y: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        """Per example what :meth:`score` averages: whether the class is right (a classifier), or the absolute
        errors in the target unit, ``(examples, outputs)`` (a forecast's horizon steps); what
        :mod:`qatzoo.significance` compares."""
        if self.classification:
            return np.argmax(predictions, axis=-1) == np.asarray(y)
        errors = np.abs(np.asarray(predictions, dtype=np.float64) - np.asarray(y, dtype=np.float64)) * self.scale
        return errors.reshape(len(errors), -1)

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is better than score ``b``."""
        return a > b if self.higher_is_better else a < b

    def harm(self, score: float, reference: float) -> float:
        """How much worse ``score`` is than ``reference``: accuracy points, or relative MAE increase."""
        if self.classification:
            return reference - score
        return (score - reference) / max(reference, 1e-12)

    def agreement(self, a: np.ndarray, b: np.ndarray) -> float:
        """How alike two models' predictions are: share of equal classes, or mean |difference| in the unit."""
        if self.classification:
            return float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))
        return float(np.mean(np.abs(a - b)) * self.scale)

    def parity(self, y: np.ndarray, int8_predictions: np.ndarray, reference_predictions: np.ndarray) -> dict:
        """How closely an int8 model follows its Keras model, and whether that is within threshold."""
        if self.classification:
            agreement = self.agreement(int8_predictions, reference_predictions)
            return {"agreement": agreement, "threshold": MIN_AGREEMENT, "pass": agreement >= MIN_AGREEMENT}
        int8_mae, reference_mae = self.score(y, int8_predictions), self.score(y, reference_predictions)
        gap = abs(int8_mae - reference_mae) / max(reference_mae, 1e-12)
        mean_diff = self.agreement(int8_predictions, reference_predictions)
        return {"mae_gap": gap, "mean_abs_diff": mean_diff, "threshold": MAX_MAE_GAP, "pass": gap <= MAX_MAE_GAP}

    def format(self, value: float | None) -> str:
        """``96.20%`` or ``0.3591 ppm``; ``-`` for a missing value."""
        if value is None:
            return "-"
        return f"{value:.2f}%" if self.classification else f"{value:.4f} {self.unit}".rstrip()
