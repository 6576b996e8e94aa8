"""TensorFlow Lite Micro on the host: does a .tflite load in TFLM, how much arena it needs, what it outputs.

``tflite_micro``'s Python interpreter runs a model with TFLM's own (reference) kernels, the code a
microcontroller build runs, so an op it lacks here it lacks on the device too, and its outputs can be
compared with LiteRT's. It runs in this process: TFLM, LiteRT and TensorFlow were
imported together in every order and ran the same model without trouble (each bundles its own TFLite code).

TFLM says little and says it on the C-level stderr (``MicroPrintf``): a model with an op it has no kernel
for fails with ``RuntimeError('TFLM failed to allocate tensors')`` after printing the first missing op
only. So every call into TFLM here runs with file descriptors 1 and 2 redirected to a temporary file (a
successful load and invoke print nothing; what is printed is the diagnosis), and the missing ops are found
by probing each op code of the model separately (``_has_kernel``). TFLM does not verify the flatbuffer
and crashes on an out-of-range tensor or buffer index, so a model is checked first (``_check``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from qatzoo.artifacts import ABSENT, Count, NonNegative, Record
from qatzoo.deploy.runtime import ModelFile, Runtime, ZooColumn
from qatzoo.quiet import Captured, captured_output

# The arena the host interpreter gets: far more than a microcontroller has; only what the model uses is
# touched, so a large one costs nothing (creating the interpreter takes ~2-5 ms at 64 KiB and at 256 MiB).
HOST_ARENA = 256 << 20
# A builtin op code past the schema's last one: TFLM refuses it with its own message ("out of range").
_SENTINEL_CODE = 10_000
_DEPRECATED_MAX = 127  # OperatorCode.deprecated_builtin_code when the real code is in builtin_code
# Bytes per element by schema TensorType (FLOAT32=0, INT8=9, ...); strings and packed 4-bit types unchecked.
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}


class TflmError(RuntimeError):
    """A model TFLM cannot load or run; ``unsupported`` names the ops it has no kernel for."""

    def __init__(self, message: str, unsupported: tuple[str, ...] = ()):
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True)
class TflmLoad:
    """How a model fares in TFLM.

    ``runs``: it loads and one invoke (zeros in) succeeds. ``unsupported``: builtin op names (custom ops by
    their custom code) TFLM has no kernel for, sorted. ``error``: one line, when it fails for another reason.
    ``arena_bytes``: the tensor arena it needs, from TFLM's recording allocator after one invoke (``Arena
    allocation total``, persistent plus planned memory); for the zoo CNN the smallest ``arena_size`` that
    loads and invokes is exactly this number (a 16-byte-aligned arena is assumed, as TFLM aligns its start).
    ``flash_bytes``: the .tflite file's size, what the model takes in flash.
    """

    runs: bool
    unsupported: tuple[str, ...]
    error: str | None
    arena_bytes: int | None
    flash_bytes: int


def load(model: bytes | str | Path) -> TflmLoad:
    """Load ``model`` (bytes or a path) in TFLM, invoke it once on zeros and measure its arena.

    Never raises for a model TFLM cannot take (a missing kernel, a corrupt file): the result says why.
    """
    data = _read(model)
    try:
        it, inputs = _open(data)
    except TflmError as error:
        return TflmLoad(False, error.unsupported, None if error.unsupported else str(error), None, len(data))
    try:
        with captured_output() as held:
            for i, (shape, dtype) in enumerate(inputs):
                it.set_input(np.zeros(shape, dtype), i)
            it.invoke()
            it.print_allocations()
    except Exception as error:  # a kernel that fails in invoke (RuntimeError from the wrapper)
        return TflmLoad(False, (), _one_line(error, held), None, len(data))
    found = re.search(r"Arena allocation total (\d+) bytes", held.text)
    return TflmLoad(True, (), None, int(found.group(1)) if found else None, len(data))


def run(model: bytes | str | Path, inputs: np.ndarray) -> np.ndarray:
    """The model's first output for each example of ``inputs``, stacked: one invoke per example.

    ``inputs`` are already quantized (the input tensor's dtype, int8 for the zoo), shaped ``(N, *shape[1:])``
    or ``(N, *shape)`` for a model whose input shape is ``shape`` with batch 1; the result is shaped
    ``(N, *output_shape[1:])``, as LiteRT's outputs stacked per example. Raises ``TflmError`` naming the
    missing ops when TFLM cannot load the model, ``ValueError`` for inputs of the wrong dtype or shape.
    TFLM's reference kernels are slow on a PC: ~2.6 ms an example for the zoo CNN on a 2-core x86 CPU
    (LiteRT's own reference kernels ~1.1 ms), so 10,000 examples take about half a minute.
    """
    it, inputs_info = _open(_read(model))
    shape, dtype = inputs_info[0]
    x = np.asarray(inputs)
    if x.dtype != dtype:
        raise ValueError(f"inputs are {x.dtype}, the model takes {np.dtype(dtype).name} (quantize them first)")
    if x.shape[1:] == shape[1:] and shape[:1] == (1,):
        x = x[:, None]
    if x.shape[1:] != shape:
        raise ValueError(f"inputs shaped {x.shape} do not fit the model's input {shape}")
    out_shape = tuple(int(d) for d in it.get_output_details(0)["shape"])
    outputs = np.empty((len(x), *out_shape), it.get_output_details(0)["dtype"])
    try:
        with captured_output() as held:
            for i, example in enumerate(x):
                it.set_input(example, 0)
                it.invoke()
                outputs[i] = it.get_output(0)
    except RuntimeError as error:
        raise TflmError(f"TFLM failed on example {i}: {_one_line(error, held)}") from None
    return outputs[:, 0] if out_shape[:1] == (1,) else outputs


def agreement(tflm_out: np.ndarray, litert_out: np.ndarray) -> dict:
    """How close two runtimes' integer outputs are: the share of elements exactly equal and the largest
    difference in quantization steps."""
    a, b = np.asarray(tflm_out), np.asarray(litert_out)
    if a.shape != b.shape:
        raise ValueError(f"outputs shaped {a.shape} and {b.shape} cannot be compared")
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return {"equal_share": float(np.mean(diff == 0)) if diff.size else 1.0, "max_step_diff": int(diff.max(initial=0))}


def _read(model: bytes | str | Path) -> bytes:
    return bytes(model) if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()


def _open(data: bytes):
    """A TFLM interpreter with tensors allocated and the shape and dtype of each input, or ``TflmError``
    (naming the missing ops when that is why)."""
    from tflite_micro.python.tflite_micro import runtime

    parsed, problem = _check(data)
    if problem:
        raise TflmError(f"not a valid TFLite model: {problem}")
    try:
        with captured_output() as held:
            it = runtime.Interpreter.from_bytes(data, arena_size=HOST_ARENA)
            details = [it.get_input_details(i) for i in range(len(parsed.subgraphs[0].inputs))]
    except Exception as error:
        missing = tuple(sorted({_op_name(parsed, i) for i in _used_codes(parsed) if not _has_kernel(parsed, i)}))
        if missing:
            raise TflmError(f"TFLM has no kernel for {', '.join(missing)}", missing) from None
        raise TflmError(_one_line(error, held)) from None
    return it, [(tuple(int(d) for d in detail["shape"]), detail["dtype"]) for detail in details]


def _has_kernel(parsed, code: int) -> bool:
    """Whether TFLM resolves op code ``code``, asked without running any kernel.

    TFLM looks up every operator's kernel (and parses its options) before it initialises any, and stops at
    the first it cannot find. The probe is a model of two operators without tensors: the first operator of
    the model with that op code, then one with a builtin code past the schema's range. When the first
    resolves, the load fails on the second, with TFLM's "builtin_code out of range" message.
    """
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    first = next(op for sg in parsed.subgraphs for op in sg.operators or [] if op.opcodeIndex == code)
    probe_op = copy.copy(first)
    probe_op.opcodeIndex, probe_op.inputs, probe_op.outputs, probe_op.intermediates = 0, [], [], None
    sentinel = fb.OperatorCodeT(deprecatedBuiltinCode=_DEPRECATED_MAX, builtinCode=_SENTINEL_CODE)
    probe = fb.ModelT()
    probe.version, probe.buffers = 3, [fb.BufferT()]
    probe.operatorCodes = [parsed.operatorCodes[code], sentinel]
    probe.subgraphs = [fb.SubGraphT(tensors=[], inputs=[], outputs=[])]
    probe.subgraphs[0].operators = [probe_op, fb.OperatorT(opcodeIndex=1, inputs=[], outputs=[])]
    builder = flatbuffers.Builder(1024)
    builder.Finish(probe.Pack(builder), file_identifier=b"TFL3")
    try:
        with captured_output() as held:
            runtime.Interpreter.from_bytes(bytes(builder.Output()), arena_size=1 << 20)
    except Exception:
        return "builtin_code out of range" in held.text
    return True  # not reached: the sentinel never resolves


def _check(data: bytes):
    """The parsed model (schema object API) and what makes it unsafe to hand to TFLM, or ``None``.

    Reading every table and vector catches truncation and wild offsets; then each index TFLM follows
    unchecked (operator and subgraph tensors, tensor buffers, op codes) must be in range, and each
    constant's data at least as long as its shape says.
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    if len(data) < 8 or data[4:8] != b"TFL3":
        return None, "no TFL3 flatbuffer identifier"
    try:
        m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    except Exception as error:
        return None, f"truncated or corrupt flatbuffer ({error})"
    if not m.subgraphs or not _ints(m.subgraphs[0].inputs):
        return m, "no subgraph with inputs"
    buffers, codes = m.buffers or [], m.operatorCodes or []
    for s, sg in enumerate(m.subgraphs):
        tensors = sg.tensors or []
        for name, index in (("input", sg.inputs), ("output", sg.outputs)):
            if any(not 0 <= t < len(tensors) for t in _ints(index)):
                return m, f"subgraph {s} {name} tensor index out of range"
        for o, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < len(codes):
                return m, f"subgraph {s} operator {o} op code index out of range"
            if any(
                not -1 <= t < len(tensors) for t in (*_ints(op.inputs), *_ints(op.outputs), *_ints(op.intermediates))
            ):
                return m, f"subgraph {s} operator {o} tensor index out of range"
        for t, tensor in enumerate(tensors):
            shape = _ints(tensor.shape)
            if not 0 <= tensor.buffer < len(buffers) or any(d < 0 for d in shape):
                return m, f"subgraph {s} tensor {t} has a bad buffer index or shape"
            buffer = buffers[tensor.buffer]
            held = len(buffer.data) if buffer.data is not None else buffer.size
            if buffer.offset and buffer.offset + buffer.size > len(data):
                return m, f"buffer {tensor.buffer} lies past the end of the file"
            need = int(np.prod(shape, dtype=np.int64)) * _TYPE_BYTES.get(tensor.type, 0)
            if held and held < need:
                return m, f"subgraph {s} tensor {t} has {held} bytes of data, its shape needs {need}"
    return m, None


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _used_codes(parsed) -> list[int]:
    return sorted({op.opcodeIndex for sg in parsed.subgraphs for op in sg.operators or []})


def _op_name(parsed, code: int) -> str:
    """The builtin op name of op code ``code`` (``GELU``), or a custom op's own code."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    opcode = parsed.operatorCodes[code]
    builtin = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    if builtin == fb.BuiltinOperator.CUSTOM and opcode.customCode:
        return opcode.customCode.decode() if isinstance(opcode.customCode, bytes) else str(opcode.customCode)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}")


def _one_line(error: BaseException, held: Captured) -> str:
    """``error`` with the first line TFLM printed, on one line."""
    lines = [line.strip() for line in held.text.splitlines() if line.strip()]
    return f"{error}: {lines[0]}" if lines else str(error)


# ---- the deployment runtime (qatzoo.deploy.runtime)


def measure(file: ModelFile) -> dict:
    """Loads or not, arena, flash; on ``file.x``, the metric and agreement with LiteRT (``file.predictions``:
    LiteRT's dequantized outputs on ``x``, computed here when not given)."""
    from qatzoo.export import litert

    loaded = load(file.int8)
    out = {
        "runs": loaded.runs,
        "unsupported": list(loaded.unsupported),
        "error": loaded.error,
        "arena_bytes": loaded.arena_bytes,
        "flash_bytes": loaded.flash_bytes,
    }
    x = file.x
    if loaded.runs and x is not None and len(x) > 0:
        it = litert.interpreter(file.int8)
        in_q, out_q = litert.io_quant(it)
        on_micro = run(file.int8, litert.quantize(x, in_q))
        # LiteRT's integer outputs: its dequantized ones quantized back (exact: litert.dequantize).
        on_litert = litert.quantize(litert.predict(it, x) if file.predictions is None else file.predictions, out_q)
        out["examples"] = int(len(x))
        out |= agreement(on_micro, on_litert)
        if file.score is not None:
            out["metric"] = float(file.score(litert.dequantize(on_micro, out_q)))
    if file.inputs is not None:
        out["inputs"] = file.inputs
    return out


class Tflm(Record):
    runs: bool
    unsupported: list[str]
    error: str | None = None
    arena_bytes: Count | None = None
    flash_bytes: Count
    examples: NonNegative = ABSENT
    equal_share: NonNegative = ABSENT
    max_step_diff: NonNegative = ABSENT
    metric: NonNegative = ABSENT

    @model_validator(mode="after")
    def _arena(self):
        if self.runs and self.arena_bytes is None:
            raise PydanticCustomError("qatzoo", "has no arena_bytes although it runs")
        return self


def card_line(micro: dict, report: dict, unit: str) -> str:
    if not micro["runs"]:
        why = f"missing ops {', '.join(micro['unsupported'])}" if micro["unsupported"] else micro["error"]
        return f"TensorFlow Lite Micro: does NOT run ({why}); flash {micro['flash_bytes']:,} bytes"
    text = f"runs, arena {micro['arena_bytes']:,} bytes, flash {micro['flash_bytes']:,} bytes"
    if "equal_share" in micro:
        on = micro.get("inputs", f"{micro['examples']:,} test examples")
        text += (
            f"; on {on}: outputs equal to LiteRT's on {micro['equal_share']:.1%} of elements, "
            f"at most {micro['max_step_diff']} step(s) apart"
        )
    if "metric" in micro:
        text += f", metric {micro['metric']:.4g}{' ' + unit if unit and unit != '%' else unit}"
    return f"TensorFlow Lite Micro: {text}"


def summary(micro: dict, report: dict) -> str:
    if micro["runs"]:
        return f"TFLite Micro: runs, arena {micro['arena_bytes']:,} B"
    return f"TFLite Micro: does NOT run ({', '.join(micro['unsupported']) or micro['error']})"


def zoo_cell(micro: dict, text) -> str:
    if micro["runs"]:
        return f"arena {micro['arena_bytes']:,} B"
    return f"no ({text(', '.join(micro['unsupported'])) or 'fails'})"


RUNTIME = Runtime(
    key="tflm",
    extra="deploy",
    measure=measure,
    model=Tflm,
    card_line=card_line,
    summary=summary,
    zoo=ZooColumn("TFLite Micro", "TFLite Micro", zoo_cell),
)
