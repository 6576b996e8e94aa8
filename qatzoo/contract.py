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

from typing import ClassVar

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from qatzoo.artifacts import Count, FiniteFloat, Quantization, Record, Task, data_only, integer, one_line, one_of

SCHEMA_VERSION = 1
#: Input steps (raw -> model input, float): the names and the constants each takes.
INPUT_STEPS = {"divide": ("by",), "last_window": ("length",), "subtract_last": (), "difference": (), "add_axis": ()}
#: Output steps (dequantized model output -> decoded): forecasts and regressions.
OUTPUT_STEPS = {"multiply": ("by",), "add_last": (), "add": ("by",)}


class ContractError(ValueError):
    """An input that the contract does not accept, or a malformed contract; ``str()`` is one line."""


# ---- built by the loaders


def image_input(shape: tuple[int, int], channels: int = 1, value_range: tuple[float, float] | None = None) -> dict:
    """Images of ``shape`` (grey, or ``channels`` 3: colour, raw shape (H, W, 3)): uint8 pixels / 255, or, given
    ``value_range``, float32 values used as they are (a user's own scaled images, in that range); a grey image
    gets a channel axis added."""
    raw_shape = list(shape) + ([int(channels)] if channels != 1 else [])
    add_axis = [{"op": "add_axis"}] if channels == 1 else []
    if value_range is None:
        raw = {"kind": "image", "shape": raw_shape, "dtype": "uint8", "range": [0, 255]}
        return {"raw": raw, "steps": [{"op": "divide", "by": 255.0}, *add_axis]}
    low, high = (float(v) for v in value_range)
    return {"raw": {"kind": "image", "shape": raw_shape, "dtype": "float32", "range": [low, high]}, "steps": add_axis}


def series_input(window: int, scale: float, unit: str, frequency: str, encoding: str = "relative") -> dict:
    """A series in ``unit``. ``encoding`` relative: its last ``window`` values, minus the last value, divided by
    ``scale``; differences: the ``window`` changes between its last ``window + 1`` values, divided by ``scale``
    (a steeper trend or a shifted level barely moves them, so the int8 input range calibrated on the training
    years still holds)."""
    if encoding not in ("relative", "differences"):
        raise ValueError(f"encoding must be relative or differences, got {encoding!r}")
    length = int(window) + (encoding == "differences")
    steps = [
        {"op": "last_window", "length": length},
        {"op": "subtract_last"} if encoding == "relative" else {"op": "difference"},
        {"op": "divide", "by": float(scale)},
        {"op": "add_axis"},
    ]
    raw = {"kind": "series", "unit": unit, "frequency": frequency, "min_length": length, "dtype": "float"}
    return {"raw": raw, "steps": steps}


def classes_output(names: list[str]) -> dict:
    return {"kind": "logits", "classes": [str(n) for n in names], "decode": "argmax"}


def as_produced(outputs: dict, last_op: str | None) -> dict:
    """A classifier's output meaning as its file computes it: ``probabilities`` when the file's output is a
    SOFTMAX (a user's model often ends in one; the project's end in logits), else as the data says."""
    if outputs.get("kind") == "logits" and last_op == "SOFTMAX":
        return {**outputs, "kind": "probabilities"}
    return outputs


def forecast_output(horizon: int, scale: float, unit: str, period: str) -> dict:
    """``horizon`` values in ``unit``, one per ``period``: outputs times ``scale`` plus the last input value."""
    return {
        "kind": "forecast",
        "horizon": int(horizon),
        "unit": unit,
        "starts": f"the {period} after the last input value",
        "steps": [{"op": "multiply", "by": float(scale)}, {"op": "add_last"}],
    }


def values_output(count: int, scale: float, offset: float, unit: str) -> dict:
    """``count`` values per example in ``unit`` (a regression): outputs times ``scale`` plus ``offset``."""
    return {
        "kind": "values",
        "count": int(count),
        "unit": unit,
        "steps": [{"op": "multiply", "by": float(scale)}, {"op": "add", "by": float(offset)}],
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


def preprocess(inputs: dict | Inputs, raw: np.ndarray) -> np.ndarray:
    """Apply the input steps of ``inputs`` (a contract's ``input``) to a batch of raw inputs (first axis:
    examples); float32 model inputs.

    The arithmetic is what the loaders always did: float32 for images, float64 for series (cast at the end).
    """
    inputs = _typed(Inputs, inputs, "contract.input")
    x = np.asarray(raw, dtype=np.float32 if inputs.raw.kind == "image" else np.float64)
    for step in inputs.steps:
        if step.op == "divide":
            x = x / step.by
        elif step.op == "last_window":
            x = x[:, -step.length :]
        elif step.op == "subtract_last":
            x = x - x[:, -1:]
        elif step.op == "difference":
            x = x[:, 1:] - x[:, :-1]
        elif step.op == "add_axis":
            x = x[..., None]
    return x.astype(np.float32)


def representable(quantization) -> tuple[float, float]:
    """The real values an integer tensor of ``quantization`` (dtype, scale, zero_point; a dict or a record)
    holds without clipping, half a step beyond either end."""
    q = quantization if isinstance(quantization, dict) else quantization.model_dump()
    info = np.iinfo(np.dtype(q["dtype"]))
    scale, zero = float(q["scale"]), int(q["zero_point"])
    return (info.min - zero - 0.5) * scale, (info.max - zero + 0.5) * scale


def targets(steps: list, raw_inputs: np.ndarray, raw_targets: np.ndarray) -> np.ndarray:
    """Forecast targets in the model's units: the inverse of the output steps (minus last, divided)."""
    y = np.asarray(raw_targets, dtype=np.float64)
    last = np.asarray(raw_inputs, dtype=np.float64)[:, -1:]
    for step in reversed(_output_steps(steps)):
        if step.op == "add_last":
            y = y - last
        elif step.op == "multiply":
            y = y / step.by
    return y.astype(np.float32)


def decode(steps: list, y: np.ndarray, raw_inputs: np.ndarray) -> np.ndarray:
    """Apply output ``steps`` to dequantized outputs (float64): forecasts in the dataset's unit."""
    y = np.asarray(y, dtype=np.float64)
    last = np.asarray(raw_inputs, dtype=np.float64).reshape(len(y), -1)[:, -1:]  # a series' last value
    for step in _output_steps(steps):
        if step.op == "multiply":
            y = y * step.by
        elif step.op == "add_last":
            y = y + last
        elif step.op == "add":
            y = y + step.by
    return y


def _output_steps(steps: list) -> list[OutputStep]:
    return [_typed(OutputStep, step, f"contract.output.steps[{i}]") for i, step in enumerate(steps)]


def _typed(model, value, where: str):
    """``value`` (a dict or already a record) as ``model``; ContractError naming the field otherwise."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise ContractError(one_line(error, where)) from None


# ---- reading (index entries, contract.json)


class Step(Record):
    """One step: a named operation of :data:`STEPS` and exactly the constants it takes."""

    model_config = ConfigDict(extra="forbid")
    STEPS: ClassVar[dict[str, tuple[str, ...]]] = INPUT_STEPS
    op: str
    by: FiniteFloat | None = None
    length: integer(1, 10**6) | None = None

    @model_validator(mode="after")
    def _takes(self):
        if self.op not in self.STEPS:
            raise PydanticCustomError("qatzoo", f"is not one of {', '.join(self.STEPS)} (op {self.op!r:.40})")
        needs = self.STEPS[self.op]
        if self.model_fields_set - {"op"} != set(needs) or any(getattr(self, k) is None for k in needs):
            raise PydanticCustomError("qatzoo", f"is not {self.op} with {', '.join(needs) or 'nothing'}")
        if self.by == 0 and self.op in ("divide", "multiply"):
            raise PydanticCustomError("qatzoo", f"is not a step: {self.op} by 0")
        return self


class InputStep(Step):
    STEPS: ClassVar[dict[str, tuple[str, ...]]] = INPUT_STEPS


class OutputStep(Step):
    STEPS: ClassVar[dict[str, tuple[str, ...]]] = OUTPUT_STEPS


class Raw(Record):
    """The raw input: uint8 images of ``shape``, or a series of at least ``min_length`` values."""

    kind: one_of("image", "series")
    dtype: str | None = None
    shape: list[integer(1, 10**6)] | None = None
    range: list[FiniteFloat] | None = None
    unit: str | None = None
    frequency: str | None = None
    min_length: integer(1, 10**6) | None = None

    @model_validator(mode="after")
    def _described(self):
        needs = ("shape",) if self.kind == "image" else ("min_length", "unit", "frequency")
        missing = [k for k in needs if getattr(self, k) is None]
        colour = self.kind == "image" and len(self.shape) == 3 and self.shape[2] == 3
        if missing or (self.kind == "image" and len(self.shape) != 2 and not colour):
            raise PydanticCustomError("qatzoo", f"is not a {self.kind} description (it needs {', '.join(needs)})")
        if self.kind == "image" and self.dtype not in (None, "uint8", "float32"):
            raise PydanticCustomError("qatzoo", f"is not an image description (dtype {self.dtype!r:.20})")
        return self


class Inputs(Record):
    raw: Raw
    steps: list[InputStep] = []
    quantization: Quantization | None = None


class Outputs(Record):
    """Logits over ``classes`` (decoded by argmax), or ``horizon`` forecast values in ``unit``."""

    kind: str | None = None
    classes: list[str] | None = None
    decode: str | None = None
    horizon: Count | None = None
    count: Count | None = None
    unit: str | None = None
    starts: str | None = None
    steps: list[OutputStep] = []
    quantization: Quantization | None = None


class Contract(Record):
    """A whole contract (``contract.json``, an index entry's ``contract``)."""

    _data_only = data_only("contract", "contracts")
    version: one_of(SCHEMA_VERSION) = Field(alias="schema")
    task: Task
    input: Inputs
    output: Outputs

    @property
    def schema(self) -> int:
        return self.version

    @model_validator(mode="after")
    def _meaning(self):
        if self.task == "classification" and not self.output.classes:
            raise PydanticCustomError("qatzoo", "has no output.classes (a list of names) for its classification")
        if self.task == "forecast" and not self.output.horizon:
            raise PydanticCustomError("qatzoo", "has no output.horizon (a count >= 1) for its forecast")
        if self.task == "regression" and not self.output.count:
            raise PydanticCustomError("qatzoo", "has no output.count (a count >= 1) for its regression")
        return self


def read(c, where: str = "contract") -> Contract:
    """The typed contract of ``c`` (a dict read from a file); ContractError naming the field otherwise."""
    return _typed(Contract, c, where)


def problem(c) -> str | None:
    """What is wrong with a contract read from a file (``None``: well formed)."""
    try:
        read(c)
    except ContractError as error:
        return str(error)
    return None
