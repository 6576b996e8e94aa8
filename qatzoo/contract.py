"""The model contract: what a model takes and gives, as data, and the one interpreter of it.

A contract says what the raw input is (uint8 pixels, a weekly series in ppm), every preprocessing step
with its constants, the int8 quantization of the model's input and output, and what the output means
(class names; forecast weeks in the dataset's unit) with its decoding. The data loaders build their
arrays by applying the contract's steps with :func:`preprocess` (so the trainer and a deployment cannot
drift apart), every run writes it (``contract.json``), and publish puts it in the index entry.

Steps are a closed set of named operations with numeric constants (``divide``, ``subtract_last``, ...):
a contract read from a file or a download is validated data, never code.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

SCHEMA_VERSION = 1
#: Input steps (raw -> model input, float): the names and the constants each takes.
INPUT_STEPS = {"divide": ("by",), "last_window": ("length",), "subtract_last": (), "add_axis": ()}
#: Output steps (dequantized model output -> decoded): forecasts only.
OUTPUT_STEPS = {"multiply": ("by",), "add_last": ()}


class ContractError(ValueError):
    """An input that the contract does not accept, or a malformed contract; ``str()`` is one line."""


# ---- built by the loaders


def image_input(shape: tuple[int, int], channels: int = 1) -> dict:
    """uint8 grey images of ``shape``: pixels / 255, a channel axis added."""
    steps = [{"op": "divide", "by": 255.0}] + ([{"op": "add_axis"}] if channels == 1 else [])
    return {"raw": {"kind": "image", "shape": list(shape), "dtype": "uint8", "range": [0, 255]}, "steps": steps}


def series_input(window: int, scale: float, unit: str, frequency: str) -> dict:
    """A series in ``unit``: its last ``window`` values, minus the last value, divided by ``scale``."""
    steps = [
        {"op": "last_window", "length": int(window)},
        {"op": "subtract_last"},
        {"op": "divide", "by": float(scale)},
        {"op": "add_axis"},
    ]
    raw = {"kind": "series", "unit": unit, "frequency": frequency, "min_length": int(window), "dtype": "float"}
    return {"raw": raw, "steps": steps}


def classes_output(names: list[str]) -> dict:
    return {"kind": "logits", "classes": [str(n) for n in names], "decode": "argmax"}


def forecast_output(horizon: int, scale: float, unit: str, period: str) -> dict:
    """``horizon`` values in ``unit``, one per ``period``: outputs times ``scale`` plus the last input value."""
    return {
        "kind": "forecast",
        "horizon": int(horizon),
        "unit": unit,
        "starts": f"the {period} after the last input value",
        "steps": [{"op": "multiply", "by": float(scale)}, {"op": "add_last"}],
    }


def contract(task: str, inputs: dict, outputs: dict, input_q=None, output_q=None) -> dict:
    """The whole contract; ``input_q``/``output_q``: the int8 file's quantization (objects with dtype, scale,
    zero_point, or dicts), absent for a float model."""
    out = {"schema": SCHEMA_VERSION, "task": task, "input": dict(inputs), "output": dict(outputs)}
    for side, q in (("input", input_q), ("output", output_q)):
        if q is not None:
            q = q if isinstance(q, dict) else vars(q)
            out[side]["quantization"] = {k: q[k] for k in ("dtype", "scale", "zero_point")}
    return out


# ---- applied by the loaders and by Model.predict


def preprocess(inputs: dict, raw: np.ndarray) -> np.ndarray:
    """Apply the input steps of ``inputs`` (a contract's ``input``) to a batch of raw inputs (first axis:
    examples); float32 model inputs.

    The arithmetic is what the loaders always did: float32 for images, float64 for series (cast at the end).
    """
    steps = inputs["steps"]
    x = np.asarray(raw, dtype=np.float32 if inputs["raw"]["kind"] == "image" else np.float64)
    for step in steps:
        op = step["op"]
        if op == "divide":
            x = x / step["by"]
        elif op == "last_window":
            x = x[:, -int(step["length"]) :]
        elif op == "subtract_last":
            x = x - x[:, -1:]
        elif op == "add_axis":
            x = x[..., None]
        else:
            raise ContractError(f"unknown input step {op!r}")
    return x.astype(np.float32)


def targets(steps: list[dict], raw_inputs: np.ndarray, raw_targets: np.ndarray) -> np.ndarray:
    """Forecast targets in the model's units: the inverse of the output steps (minus last, divided)."""
    y = np.asarray(raw_targets, dtype=np.float64)
    last = np.asarray(raw_inputs, dtype=np.float64)[:, -1:]
    for step in reversed(steps):
        if step["op"] == "add_last":
            y = y - last
        elif step["op"] == "multiply":
            y = y / step["by"]
    return y.astype(np.float32)


def decode(steps: list[dict], y: np.ndarray, raw_inputs: np.ndarray) -> np.ndarray:
    """Apply output ``steps`` to dequantized outputs (float64): forecasts in the dataset's unit."""
    y = np.asarray(y, dtype=np.float64)
    last = np.asarray(raw_inputs, dtype=np.float64)[:, -1:]
    for step in steps:
        if step["op"] == "multiply":
            y = y * step["by"]
        elif step["op"] == "add_last":
            y = y + last
        else:
            raise ContractError(f"unknown output step {step['op']!r}")
    return y


# ---- reading (index entries, contract.json)


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def problem(c) -> str | None:
    """What is wrong with a contract read from a file (``None``: well formed)."""
    if (
        not isinstance(c, dict)
        or c.get("schema") != SCHEMA_VERSION
        or c.get("task") not in ("classification", "forecast")
    ):
        return f"contract is not a schema-{SCHEMA_VERSION} contract of a classification or forecast model"
    inputs, outputs = c.get("input"), c.get("output")
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        return "contract.input and contract.output must be objects"
    for side, allowed in (("input", INPUT_STEPS), ("output", OUTPUT_STEPS)):
        steps = c[side].get("steps", [])
        if not isinstance(steps, list):
            return f"contract.{side}.steps is not a list"
        for step in steps:
            if not isinstance(step, dict) or step.get("op") not in allowed:
                return f"contract.{side}.steps: {str(step)[:60]} is not one of {', '.join(allowed)}"
            if set(step) - {"op", *allowed[step["op"]]} or not all(_number(step.get(k)) for k in allowed[step["op"]]):
                return f"contract.{side}.steps: {step['op']} takes {', '.join(allowed[step['op']]) or 'nothing'}"
            if step["op"] in ("divide", "multiply") and step["by"] == 0:
                return f"contract.{side}.steps: {step['op']} by 0"
        q = c[side].get("quantization")
        if q is not None and not (
            isinstance(q, dict)
            and q.get("dtype") in ("int8", "uint8", "float32")
            and _number(q.get("scale"))
            and isinstance(q.get("zero_point"), int)
        ):
            return f"contract.{side}.quantization is not {{dtype, scale, zero_point}}"
    raw = inputs.get("raw")
    if not isinstance(raw, dict) or raw.get("kind") not in ("image", "series"):
        return "contract.input.raw is not an image or series description"
    if c["task"] == "classification":
        classes = outputs.get("classes")
        if not (isinstance(classes, list) and classes and all(isinstance(n, str) for n in classes)):
            return "contract.output.classes is not a list of names"
    elif not (isinstance(outputs.get("horizon"), int) and outputs["horizon"] >= 1):
        return "contract.output.horizon is not a positive count"
    return None
