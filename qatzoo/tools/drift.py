"""Drift: a forecast dataset's test part moved beyond its training years, and what that does to an int8 file.

:func:`drifted` adds a trend (``per_step`` in the unit, growing from the first test step on) and a level shift
to every value of the test part, rebuilds the test windows from the changed series (a window that reaches back
into validation sees the drift only where it reaches the test part) and re-applies the contract's steps, so
the model, the baselines and the significance tests all see the same drifted windows
(``scripts/drift_check.py``). :func:`outside_range` is the share of model input values that an int8 file's
input quantization cannot hold (they would be clipped) - what the ``differences`` encoding keeps near zero.
"""

from __future__ import annotations

import copy

import numpy as np

from qatzoo import contract as contracts


def drifted(data, per_step: float, shift: float = 0.0):
    """A copy of the forecast splits ``data`` whose test part (steps from the first test step on) has
    ``shift + per_step * (t - first_test + 1)`` added; train and validation are unchanged."""
    info, raw = data.info, data.raw
    first_test = int(info.get("first_test_week", info.get("first_test_step")))
    series = np.asarray(raw["series"], dtype=np.float64)
    t = np.arange(len(series))
    moved = series + np.where(t >= first_test, shift + per_step * (t - first_test + 1), 0.0)
    starts = np.asarray(raw["test_starts"])
    history, horizon = np.asarray(raw["x_test"]).shape[1], np.asarray(raw["y_test"]).shape[1]
    x = np.stack([moved[s - history : s] for s in starts])
    y = np.stack([moved[s : s + horizon] for s in starts])
    out = copy.copy(data)
    out.raw = {**raw, "series": moved, "x_test": x, "y_test": y}
    out.x_test = contracts.preprocess(data.contract["input"], x)
    out.y_test = contracts.targets(data.contract["output"]["steps"], x, y)
    return out


def outside_range(contract: dict, raw_inputs: np.ndarray) -> float:
    """The share of model input values (after the contract's steps) outside its int8 input's range."""
    low, high = contracts.representable(contract["input"]["quantization"])
    x = contracts.preprocess(contract["input"], raw_inputs)
    return float(np.mean((x < low) | (x > high)))
