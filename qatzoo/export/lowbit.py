"""What a sub-8-bit scheme's int8 file holds: weights on the low-bit grid, and the size packed at that width.

A ``w4a8`` model is an int8 .tflite (int8 activations, int8 input and output) whose kernel values
lie on the 4-bit grid (at most 15 distinct levels per output channel with the symmetric narrow
range). TF 2.21's converter notices and stores such kernels as packed INT4 tensors in the file;
LiteRT unpacks them and runs its int8 kernels. ``storage`` says how each kernel is stored,
``file_bytes`` is the real file, and ``packed_bytes`` is the size with every kernel packed at exactly
its own width (e.g. 2-bit kernels, which the converter still stores as INT4).
"""

from __future__ import annotations

import math

import numpy as np

from qatzoo.export.litert import interpreter

#: Ops whose input 1 is a weight tensor (the kernel), per output channel along axis 0 in TFLite.
WEIGHT_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


def weight_levels(model: bytes) -> list[dict]:
    """For every int8 kernel of ``model``: size, and distinct values per output channel (max and min)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    stored = flatbuffer_utils.convert_bytearray_to_object(bytearray(model)).subgraphs[0].tensors
    it = interpreter(model, delegates=False)
    details = {d["index"]: d for d in it.get_tensor_details()}
    found, seen = [], set()
    for op in it._get_ops_details():  # noqa: SLF001 - LiteRT exposes op details only here
        axis = WEIGHT_OPS.get(op["op_name"])
        if axis is None or len(op["inputs"]) < 2 or op["inputs"][1] in seen:
            continue
        index = op["inputs"][1]
        seen.add(index)
        if np.dtype(details[index]["dtype"]) != np.int8:
            continue
        values = it.get_tensor(index)
        channels = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
        levels = [len(np.unique(c)) for c in channels]
        found.append(
            {
                "op": op["op_name"],
                "shape": list(values.shape),
                "size": int(values.size),
                "max_levels_per_channel": max(levels),
                "min": int(values.min()),
                "max": int(values.max()),
                "bits": max(1, math.ceil(math.log2(max(levels)))),
                "storage": types[stored[index].type].lower(),
            }
        )
    return found


def report(model: bytes, weight_bits: int) -> dict:
    """Weights' grid check and packed size of an int8 file trained with ``weight_bits``-bit weights.

    ``on_grid``: every kernel that a ``weight_bits`` scheme quantized has at most ``2**weight_bits``
    levels per channel. Kernels with more levels (layers a rule kept at 8 bits) count as 8-bit.
    ``packed_bytes``: the file with each kernel stored at ``ceil(log2(levels))`` bits per value
    instead of its storage type's width.
    """
    kernels = weight_levels(model)
    low = [k for k in kernels if k["max_levels_per_channel"] <= 2**weight_bits]
    width = {"int8": 8, "int4": 4, "int2": 2}
    saved = sum(
        math.ceil(k["size"] * width.get(k["storage"], 8) / 8) - math.ceil(k["size"] * k["bits"] / 8) for k in kernels
    )
    return {
        "weight_bits": weight_bits,
        "kernels": len(kernels),
        "kernels_on_grid": len(low),
        "kernel_values": sum(k["size"] for k in kernels),
        "file_bytes": len(model),
        "packed_bytes": len(model) - saved,
        "storage": sorted({k["storage"] for k in kernels}),
        "runtime": "LiteRT int8 kernels; " + _stored(kernels),
        "per_kernel": kernels,
    }


def _stored(kernels: list[dict]) -> str:
    types = {k["storage"] for k in kernels}
    if "int4" not in types:
        return "low-bit kernels stored a byte each (INT8)"
    if "int8" in types:
        return "kernels partly packed (INT4, unpacked at load), partly stored a byte each (INT8)"
    return "low-bit kernels stored packed (INT4) in the file and unpacked at load"


def int8_storage(model: bytes, ops: frozenset[str] | None = None) -> bytes:
    """``model`` with its packed INT4 kernels stored as INT8: the same values (bit-identical outputs in LiteRT's
    reference kernels; XNNPACK, which rounds its own way, may now take ops it left outside), twice their bytes. For the runtimes that do not take the converter's INT4 kernels as they are - TensorFlow
    Lite Micro unpacks each into its arena, Vela 5.2 crashes on them, XNNPACK leaves an INT4 CONV_2D outside
    its partitions. ``ops``: only the kernels of these op types (e.g. ``{"CONV_2D", "DEPTHWISE_CONV_2D"}``, keeping
    INT4 where a runtime runs it); None: every INT4 kernel.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    it = interpreter(model, delegates=False)
    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    graph = obj.subgraphs[0]
    chosen = set()
    for op in it._get_ops_details():  # noqa: SLF001 - LiteRT exposes op details only here
        if op["op_name"] in WEIGHT_OPS and (ops is None or op["op_name"] in ops) and len(op["inputs"]) > 1:
            chosen.add(op["inputs"][1])
    for index in sorted(chosen):
        tensor = graph.tensors[index]
        if tensor.type != schema.TensorType.INT4:
            continue
        values = np.ascontiguousarray(it.get_tensor(index), dtype=np.int8)  # LiteRT unpacks INT4 to int8
        obj.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), np.uint8).copy()
        tensor.type = schema.TensorType.INT8
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
