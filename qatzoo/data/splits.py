"""The in-memory form every loader returns: train/val/test arrays plus what the trainer needs to know."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataSourceMissing(RuntimeError):
    """A local data source is not installed; the message says how to get it."""


@dataclass
class Splits:
    """Train, validation and test arrays of one dataset, and how to read its numbers.

    task: ``classification`` (integer labels, accuracy) or ``forecast`` (real targets, MAE).
    target_scale: forecast targets are divided by this; MAE in ``target_unit`` is scale * MAE.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_outputs: int
    target_scale: float = 1.0
    target_unit: str = ""
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def representative(self, count: int, seed: int) -> np.ndarray:
        """A fixed random sample of training inputs for int8 calibration."""
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(self.x_train), size=min(count, len(self.x_train)), replace=False)
        return self.x_train[np.sort(idx)]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}
