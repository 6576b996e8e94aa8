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


def tensor_quant(detail: dict) -> TensorQuant:
    """The quantization of one tensor, from LiteRT's input or output details."""
    scale, zero = detail["quantization"]
    return TensorQuant(np.dtype(detail["dtype"]).name, float(scale), int(zero))


def io_quant(it: Interpreter) -> tuple[TensorQuant, TensorQuant]:
    """The input and output quantization of a single-input, single-output model."""
    return tensor_quant(it.get_input_details()[0]), tensor_quant(it.get_output_details()[0])


def quantize(x: np.ndarray, q: TensorQuant) -> np.ndarray:
    """Float values as a tensor of ``q``'s type takes them: rounded to its steps and clipped to its range
    (a float tensor takes them as they are, in its own float type)."""
    dtype = np.dtype(q.dtype)
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(x).astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / q.scale + q.zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, q: TensorQuant) -> np.ndarray:
    """A tensor of ``q``'s type as float32 values: ``(y - zero_point) * scale`` (a float tensor as it is).

    :func:`quantize` gives the integers back exactly (the error is far below half a step for 8- and 16-bit
    tensors), so dequantized outputs stand for the file's integer outputs too.
    """
    if not np.issubdtype(np.dtype(q.dtype), np.integer):
        return np.asarray(y).astype(np.float32)
    return ((y.astype(np.float32) - q.zero_point) * q.scale).astype(np.float32)


def predict(model: bytes | str | Interpreter, x: np.ndarray, progress: str | None = None) -> np.ndarray:
    """Run ``x`` (float, batch first) through the model one example at a time; float outputs.

    Integer models get their input quantized and their output dequantized with the scale and zero
    point stored in the model, exactly as a deployment would. Every LiteRT run of a model over a batch
    (metrics, figures, the TFLM comparison, publish, verify, ``Model.predict``) is this one.
    """
    it = model if isinstance(model, Interpreter) else interpreter(model)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    in_q, out_q = tensor_quant(inp), tensor_quant(out)
    results = []
    # A progress bar on a terminal (tqdm turns itself off when output is not a TTY).
    for example in tqdm(x, desc=progress, disable=None if progress else True, leave=False, unit="ex"):
        it.set_tensor(inp["index"], quantize(example[None], in_q))
        it.invoke()
        results.append(dequantize(it.get_tensor(out["index"])[0], out_q))
    return np.stack(results)
