"""Running TFLite models in the LiteRT interpreter: the source of every int8 number we report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tqdm import tqdm

from qatzoo.quiet import native_output


@dataclass(frozen=True)
class TensorQuant:
    """Scale and zero point of a model input or output (scale 0 means float)."""

    dtype: str
    scale: float
    zero_point: int


def interpreter(model: bytes | str, num_threads: int | None = None, delegates: bool = True) -> Interpreter:
    """A ready (allocated) LiteRT interpreter for a flatbuffer or a path.

    ``delegates=False`` runs the builtin kernels only, so op details show the model's own ops
    rather than the XNNPACK delegate that replaces them.
    """
    kwargs = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    if not delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_output("LiteRT"):  # its delegate banner is printed by native code
        it = Interpreter(**kwargs, num_threads=num_threads)
        it.allocate_tensors()
    return it


def io_quant(it: Interpreter) -> tuple[TensorQuant, TensorQuant]:
    """The input and output quantization of a single-input, single-output model."""

    def q(detail):
        scale, zero = detail["quantization"]
        return TensorQuant(np.dtype(detail["dtype"]).name, float(scale), int(zero))

    return q(it.get_input_details()[0]), q(it.get_output_details()[0])


def predict(model: bytes | str | Interpreter, x: np.ndarray, progress: str | None = None) -> np.ndarray:
    """Run ``x`` (float, batch first) through the model one example at a time; float outputs.

    Integer models get their input quantized and their output dequantized with the scale and zero
    point stored in the model, exactly as a deployment would.
    """
    it = model if isinstance(model, Interpreter) else interpreter(model)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    results = []
    # A progress bar on a terminal (tqdm turns itself off when output is not a TTY).
    for example in tqdm(x, desc=progress, disable=None if progress else True, leave=False, unit="ex"):
        value = example[None]
        if inp["dtype"] != np.float32:
            info = np.iinfo(inp["dtype"])
            value = np.clip(np.round(value / in_scale + in_zero), info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], value.astype(inp["dtype"]))
        it.invoke()
        y = it.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            y = (y.astype(np.float32) - out_zero) * out_scale
        results.append(y.astype(np.float32))
    return np.stack(results)
