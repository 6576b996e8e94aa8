"""The in-memory form every loader returns: train/val/test arrays plus what the trainer needs to know."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qatzoo.errors import DataError
from qatzoo.task import Task

PARTS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@dataclass
class Splits:
    """Train, validation and test arrays of one dataset, and how to read its numbers.

    task: a :class:`~qatzoo.task.Task` (loaders may pass its name, ``classification`` or ``forecast``;
    it is completed from ``target_scale`` and ``target_unit``): the metric, its unit and the scoring.
    target_scale: forecast targets are divided by this; MAE in ``target_unit`` is scale * MAE.
    """

    name: str
    task: Task | str
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
    contract: dict = field(default_factory=dict)
    """The model contract's ``input`` and ``output`` (:mod:`qatzoo.contract`): raw input, steps, meaning."""
    raw: dict = field(default_factory=dict, repr=False)
    """Raw test data for checks of the contract: ``x_test`` (uint8 images, or the raw windows of a series
    with ``y_test`` their raw targets), and for a series ``series`` and the test windows' ``test_starts``."""

    def __post_init__(self):
        if isinstance(self.task, str):
            self.task = Task(self.task, float(self.target_scale), self.target_unit)
        self.check_finite()

    def check_finite(self) -> None:
        """Raise :class:`DataError` naming the first split with NaN or infinity, and how many.

        Found here, at load, rather than as a NaN loss (which looks like a learning rate too high) or
        as NaN test metrics: a split is either all finite numbers or the run does not start.
        """
        for part in PARTS:
            values = np.asarray(getattr(self, part))
            if not np.issubdtype(values.dtype, np.number):
                raise DataError(f"data {self.name}: {part} holds {values.dtype} values, not numbers")
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            if bad:
                raise DataError(f"data {self.name}: {bad} non-finite values in {part}")

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
