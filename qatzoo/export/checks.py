"""Conformance checks shared by every model: full-integer and parity."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qatzoo.export.litert import interpreter

#: Tensor types an op of a full-integer model may compute.
INTEGER_TYPES = ("int8", "int32")


@dataclass
class FullIntegerReport:
    """Which tensors computed by ops are not int8/int32 (empty when the model is full integer)."""

    ops: list[str]
    non_integer: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.non_integer


def full_integer(model: bytes | str, types: tuple[str, ...] = INTEGER_TYPES) -> FullIntegerReport:
    """Check that every tensor an op writes, and the model's input, is one of ``types`` (int8 or int32; a
    file with int16 activations passes its scheme's ``integer_types``, which add int16 and int64)."""
    it = interpreter(model, delegates=False)
    details = {d["index"]: d for d in it.get_tensor_details()}
    ops = it._get_ops_details()  # noqa: SLF001 - LiteRT exposes op details only here
    computed = {i for op in ops for i in op["outputs"] if i >= 0}
    computed |= {d["index"] for d in it.get_input_details()}
    bad = [
        # A stripped file (as written) has no tensor names: name the tensor by its index then.
        {"name": details[i]["name"] or f"tensor {i}", "dtype": np.dtype(details[i]["dtype"]).name}
        for i in sorted(computed)
        if np.dtype(details[i]["dtype"]).name not in types
    ]
    return FullIntegerReport(ops=sorted({op["op_name"] for op in ops}), non_integer=bad)


def output_op(model: bytes | str) -> str | None:
    """The op that writes the model's (first) output tensor, e.g. ``SOFTMAX`` for a classifier that ends in
    probabilities rather than logits; None when no op writes it (an input passed through)."""
    it = interpreter(model, delegates=False)
    index = it.get_output_details()[0]["index"]
    ops = it._get_ops_details()  # noqa: SLF001 - LiteRT exposes op details only here
    return next((op["op_name"] for op in reversed(ops) if index in op["outputs"]), None)
