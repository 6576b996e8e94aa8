"""Per-op time of a .tflite in LiteRT, each op timed alone: where an int8 graph's time goes, op by op.

The Python interpreter has no op profiler, so the model is cut apart: every op of the main subgraph
becomes a one-op model (the op, its tensors, its constants; the flatbuffer rewritten with the schema
LiteRT ships), fed the values it sees in the whole model for one random input (one builtin-kernel run
that keeps every tensor), and timed like the whole model is: the median over blocks of invokes, once with
the XNNPACK delegate as deployed and once with builtin kernels only. An op that XNNPACK takes becomes a
one-op partition, so its time includes one delegate call; an op it does not take runs in its builtin
kernel in both settings. Every time includes one Python ``invoke()`` call (:attr:`Profile.empty_us`,
a model without ops), which is subtracted from neither: ``sum(op times) - n * empty_us`` is what the
ops cost on their own, to compare with ``whole - empty_us`` (:meth:`Profile.check`).

Why not LiteRT's own profiler: the pip package has one only in the C API of ``libLiteRt.so`` (a
CompiledModel with ``enable_profiling``), not in the Interpreter that deploys and measures our models;
it names XNNPACK's operators (``Convolution (NHWC, QC8) IGEMM``) rather than the model's ops, and it is
reachable from Python only through ctypes. Run once on the int8 transformer, its in-graph times of the
builtin ops matched these within ~10% (SQUARED_DIFFERENCE 15.5 vs 15.6-17.3 us, the patch CONV_2D 26 vs 28).

    python -m qatzoo.bench.profile MODEL.tflite [--threads N] [--top K]
"""

from __future__ import annotations

import argparse
import collections
import copy
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

BLOCK_S = 0.002
"""Shortest timed block of invokes (seconds): long enough that the timer's own cost vanishes."""

BLOCKS = 15
"""Rounds of timed blocks (one block of every model and setting per round); the time reported is their median.

On a 2-core AMD EPYC shared with other work (load average 2.4), 9 rounds let a burst of load double one
model's median once in eight profiles; with 15, the op times net of the invoke cost summed to 0.78-1.08x
the whole model's in all eight (attention and transformer, int8 and float).
"""


@dataclass(frozen=True)
class OpTime:
    """One op of the model alone in LiteRT: microseconds per invoke with the XNNPACK delegate and without."""

    index: int
    op: str
    dtype: str  # its output's type; "float32->int8" where the first input differs
    xnnpack: bool  # whether the XNNPACK delegate takes it
    us: float  # with the XNNPACK delegate as deployed (the builtin kernel when XNNPACK leaves the op)
    us_builtin: float  # builtin kernels only


@dataclass(frozen=True)
class Profile:
    """The ops of one model, and the whole model and an op-less model timed the same way (microseconds)."""

    ops: list[OpTime]
    whole_us: float
    whole_builtin_us: float
    empty_us: float

    def check(self) -> str:
        """Sum of the op times against the whole model's time, raw and net of the per-invoke cost."""
        lines = []
        for label, parts, whole in (
            ("XNNPACK", [o.us for o in self.ops], self.whole_us),
            ("builtin", [o.us_builtin for o in self.ops], self.whole_builtin_us),
        ):
            net = sum(parts) - len(parts) * self.empty_us
            lines.append(
                f"{label}: sum of {len(parts)} ops {sum(parts):.1f} us, whole model {whole:.1f} us "
                f"(ratio {sum(parts) / whole:.2f}); net of {self.empty_us:.2f} us per invoke: "
                f"{net:.1f} vs {whole - self.empty_us:.1f} us (ratio {net / max(whole - self.empty_us, 1e-9):.2f})"
            )
        return "\n".join(lines)


def profile(model: bytes | str | Path, num_threads: int = 1) -> list[OpTime]:
    """Every op of the model's main subgraph, in graph order, timed alone (see the module docstring)."""
    return profile_model(model, num_threads).ops


def profile_model(model: bytes | str | Path, num_threads: int = 1) -> Profile:
    """:func:`profile` plus the whole model and an op-less model timed the same way, to check the sum against."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    from qatzoo.export.litert import interpreter

    blob = model if isinstance(model, bytes) else Path(model).read_bytes()
    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    sub = obj.subgraphs[0]
    values = _tensor_values(blob)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    rows, runs = [], []  # per op: (index, name, dtype, XNNPACK takes it); the interpreters to time, with inputs
    for index, op in enumerate(sub.operators):
        code = flatbuffer_utils.get_builtin_code_from_operator_code(obj.operatorCodes[op.opcodeIndex])
        one = _single_op(obj, index)
        inputs = [values[t] for t in _graph_inputs(obj, op)]
        fast, slow = (interpreter(one, num_threads=num_threads, delegates=d) for d in (True, False))
        taken = any(o["op_name"] == "DELEGATE" for o in fast._get_ops_details())  # noqa: SLF001
        out_type = _dtype(sub.tensors[op.outputs[0]].type)
        in_types = [_dtype(sub.tensors[t].type) for t in op.inputs if t >= 0]
        dtype = out_type if not in_types or in_types[0] == out_type else f"{in_types[0]}->{out_type}"
        rows.append((index, names.get(code, str(code)), dtype, taken))
        runs += [(fast, inputs), (slow, inputs)]
    for delegates in (True, False):
        it = interpreter(blob, num_threads=num_threads, delegates=delegates)
        runs.append((it, [values[d["index"]] for d in it.get_input_details()]))
    runs.append((interpreter(_empty_model(), num_threads=num_threads), [np.zeros(1, np.float32)]))
    us = _time(runs)
    ops = [OpTime(*row, us[2 * i], us[2 * i + 1]) for i, row in enumerate(rows)]
    return Profile(ops=ops, whole_us=us[-3], whole_builtin_us=us[-2], empty_us=us[-1])


def _dtype(tensor_type: int) -> str:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return names[tensor_type].lower()


def _is_constant(obj, tensor: int) -> bool:
    buffer = obj.buffers[obj.subgraphs[0].tensors[tensor].buffer]
    return buffer.data is not None and len(buffer.data) > 0


def _graph_inputs(obj, op) -> list[int]:
    """The op's inputs that are not constants (each once): the inputs of its one-op model, in order."""
    return list(dict.fromkeys(t for t in op.inputs if t >= 0 and not _is_constant(obj, t)))


_SUBGRAPH_FIELDS = ("thenSubgraphIndex", "condSubgraphIndex", "initSubgraphIndex", "decompositionSubgraphIndex")


def _single_op(obj, index: int) -> bytes:
    """A model of op ``index`` of subgraph 0 alone: its tensors, their constants, every operator code."""
    from ai_edge_litert import schema_py_generated as schema

    sub = obj.subgraphs[0]
    op = sub.operators[index]
    if len(obj.subgraphs) > 1 and any(hasattr(op.builtinOptions, f) for f in _SUBGRAPH_FIELDS):
        raise ValueError(f"op {index} calls another subgraph; control flow is not profiled")
    used = list(dict.fromkeys(t for t in [*op.inputs, *op.outputs, *(op.intermediates or [])] if t >= 0))
    new = {old: i for i, old in enumerate(used)}
    buffers = [schema.BufferT()]
    tensors = []
    for old in used:
        tensor = copy.copy(sub.tensors[old])
        if _is_constant(obj, old):
            buffers.append(obj.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    one = copy.copy(op)
    one.inputs = [new.get(t, -1) for t in op.inputs]
    one.outputs = [new[t] for t in op.outputs]
    one.intermediates = [new[t] for t in op.intermediates] if op.intermediates else op.intermediates
    graph = schema.SubGraphT()
    graph.tensors, graph.operators = tensors, [one]
    graph.inputs = [new[t] for t in _graph_inputs(obj, op)]
    graph.outputs = [new[t] for t in op.outputs]
    return _pack(schema, [graph], obj.operatorCodes, buffers, obj.version)


def _pack(schema, subgraphs: list, operator_codes: list, buffers: list, version: int = 3) -> bytes:
    """A flatbuffer of a model made of these parts (no signatures, no metadata)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = version, operator_codes, subgraphs, buffers
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _empty_model() -> bytes:
    """A model without ops whose input is its output: what one ``invoke()`` costs with nothing to run."""
    from ai_edge_litert import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = [1], schema.TensorType.FLOAT32, 0, "x"
    graph = schema.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = [tensor], [], [0], [0]
    return _pack(schema, [graph], [], [schema.BufferT()])


def _tensor_values(blob: bytes) -> dict[int, np.ndarray]:
    """Every tensor of subgraph 0 after one builtin-kernel run on a random input of the model's dtype."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from qatzoo.quiet import native_output

    with native_output("LiteRT"):
        it = Interpreter(
            model_content=blob,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            experimental_preserve_all_tensors=True,
        )
        it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        it.set_tensor(d["index"], _random(rng, d["shape"], d["dtype"]))
    it.invoke()
    values = {}
    for d in it.get_tensor_details():
        try:
            values[d["index"]] = it.get_tensor(d["index"])
        except ValueError:  # a tensor without data (an optional, unused one)
            continue
    return values


def _random(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _time(runs: list[tuple[Interpreter, list[np.ndarray]]]) -> list[float]:
    """Median microseconds per invoke of each interpreter (given its inputs), over :data:`BLOCKS` rounds.

    Each round times one block of at least :data:`BLOCK_S` of every interpreter in turn, so a change in
    machine load hits all of them alike, the ops and the whole model they are checked against.
    """
    sizes = []
    for it, inputs in runs:
        for d, x in zip(it.get_input_details(), inputs, strict=True):
            it.set_tensor(d["index"], x)
        for _ in range(5):  # warm-up
            it.invoke()
        n, began = 0, time.perf_counter()
        while time.perf_counter() - began < BLOCK_S:
            it.invoke()
            n += 1
        sizes.append(n)
    blocks: list[list[float]] = [[] for _ in runs]
    for _ in range(BLOCKS):
        for (it, _inputs), n, times in zip(runs, sizes, blocks, strict=True):
            began = time.perf_counter()
            for _ in range(n):
                it.invoke()
            times.append((time.perf_counter() - began) / n)
    return [statistics.median(times) * 1e6 for times in blocks]


def table(ops: list[OpTime], total_us: float | None = None) -> str:
    """The ops as a markdown table, each with its share of ``total_us`` (default: the sum of their times)."""
    total = total_us or sum(o.us for o in ops) or 1.0
    rows = ["| # | op | dtype | XNNPACK | us | us builtin | share |", "|---:|---|---|:-:|---:|---:|---:|"]
    for o in ops:
        rows.append(
            f"| {o.index} | {o.op} | {o.dtype} | {'yes' if o.xnnpack else 'no'} | {o.us:.2f} | "
            f"{o.us_builtin:.2f} | {100 * o.us / total:.1f}% |"
        )
    return "\n".join(rows)


def by_op(ops: list[OpTime]) -> str:
    """The ops summed by name and dtype as a markdown table, slowest first (with the XNNPACK delegate)."""
    groups: dict[tuple[str, str], list[OpTime]] = collections.defaultdict(list)
    for o in ops:
        groups[o.op, o.dtype].append(o)
    total = sum(o.us for o in ops) or 1.0
    rows = ["| op | dtype | count | XNNPACK takes | us | us builtin | share |", "|---|---|---:|---:|---:|---:|---:|"]
    for (name, dtype), group in sorted(groups.items(), key=lambda kv: -sum(o.us for o in kv[1])):
        us = sum(o.us for o in group)
        rows.append(
            f"| {name} | {dtype} | {len(group)} | {sum(o.xnnpack for o in group)} | {us:.2f} | "
            f"{sum(o.us_builtin for o in group):.2f} | {100 * us / total:.1f}% |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Print the CPU, the whole model's time, the check of the sum, the per-op table and the sums by op."""
    from qatzoo.bench.cpu import cpu_name

    parser = argparse.ArgumentParser(prog="python -m qatzoo.bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .tflite file")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads (default 1)")
    parser.add_argument("--top", type=int, default=0, help="list only the K slowest ops (default: all, graph order)")
    args = parser.parse_args(argv)
    found = profile_model(args.model, args.threads)
    ops = sorted(found.ops, key=lambda o: -o.us)[: args.top] if args.top else found.ops
    print(f"{args.model} on {cpu_name()}, {args.threads} thread(s)")
    print(f"whole model: {found.whole_us:.1f} us with XNNPACK, {found.whole_builtin_us:.1f} us builtin only")
    print(found.check())
    print()
    print(table(ops, total_us=sum(o.us for o in found.ops)))
    print()
    print(by_op(found.ops))


if __name__ == "__main__":
    main()
