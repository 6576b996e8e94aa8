"""How the XNNPACK delegate takes a model: its partitions and the ops it leaves to builtin kernels.

An int8 op that XNNPACK has no kernel for (int8 BATCH_MATMUL of two activations, SOFTMAX, GELU, ...)
runs in TFLite's builtin kernels between XNNPACK partitions; that, not the int8 arithmetic, is what
makes such graphs slower than float.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


@dataclass(frozen=True)
class Coverage:
    """XNNPACK partitions of one model, and the ops outside them (in graph order, repeats kept)."""

    partitions: int
    outside: tuple[str, ...]

    def outside_summary(self) -> str:
        """The ops outside XNNPACK as ``"OP xN, ..."`` sorted by name; ``"-"`` when XNNPACK takes every op."""
        counts = collections.Counter(self.outside)
        return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "-"


def coverage(it: Interpreter) -> Coverage:
    """The coverage of an allocated LiteRT interpreter created with the default (XNNPACK) delegate.

    The interpreter lists the model's ops and then one DELEGATE node per partition; an op is inside a
    partition if it writes a partition's output, or if everything it writes is read only by ops inside.
    """
    ops = it._get_ops_details()  # noqa: SLF001 - the only view of the delegated graph in the Python API
    parts = [o for o in ops if o["op_name"] == "DELEGATE"]
    own = [o for o in ops if o["op_name"] != "DELEGATE"]
    part_in = {int(t) for p in parts for t in p["inputs"]}
    part_out = {int(t) for p in parts for t in p["outputs"]}
    model_out = {int(d["index"]) for d in it.get_output_details()}
    readers: dict[int, set[int]] = collections.defaultdict(set)
    for o in own:
        for t in o["inputs"]:
            if t >= 0:
                readers[int(t)].add(o["index"])
    inside = {o["index"] for o in own if part_out & {int(t) for t in o["outputs"]}}
    grew = True
    while grew:
        grew = False
        for o in own:
            outs = {int(t) for t in o["outputs"]}
            if o["index"] in inside or not outs or outs & (part_in | model_out):
                continue
            if all(readers[t] and readers[t] <= inside for t in outs):
                inside.add(o["index"])
                grew = True
    return Coverage(len(parts), tuple(o["op_name"] for o in own if o["index"] not in inside))


def model_coverage(model: bytes | str | Path, num_threads: int = 1) -> Coverage:
    """The coverage of a .tflite (bytes or a path) in a fresh interpreter with the XNNPACK delegate."""
    from qatzoo.export.litert import interpreter

    return coverage(interpreter(model if isinstance(model, bytes) else str(model), num_threads=num_threads))
