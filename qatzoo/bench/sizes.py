"""Where the bytes of a .tflite go: constants by type, quantization entries, and the rest.

Read with the flatbuffer schema LiteRT ships, so no TensorFlow import is needed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SizeBreakdown:
    """A .tflite's size: constant data by tensor type, and the rest (graph, tensor and quantization tables).

    ``quant_entries`` counts quantization parameters, one per tensor or per channel; each is a float32
    scale and an int64 zero point in the file.
    """

    total: int
    constants: dict[str, int]  # tensor type ("int8", "int32", "float32", ...) -> bytes of constant data
    quant_entries: int

    @property
    def rest(self) -> int:
        """Bytes that are not constant data."""
        return self.total - sum(self.constants.values())

    def row(self) -> dict[str, int]:
        """Flat columns for a table: ``bytes_<type>`` per constant type, ``bytes_rest``, ``quant_entries``."""
        return {
            **{f"bytes_{k}": v for k, v in self.constants.items()},
            "bytes_rest": self.rest,
            "quant_entries": self.quant_entries,
        }


def size_breakdown(blob: bytes) -> SizeBreakdown:
    """The size breakdown of a .tflite flatbuffer (each shared buffer counted once)."""
    from ai_edge_litert import schema_py_generated as schema

    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    constants: dict[str, int] = {}
    entries = 0
    seen: set[int] = set()
    for graph in model.subgraphs or []:
        for t in graph.tensors or []:
            buffer = model.buffers[t.buffer]
            # A large model keeps its data after the flatbuffer: then the buffer has a size but no data.
            size = len(buffer.data) if buffer.data is not None else (buffer.size or 0)
            if size and t.buffer not in seen:
                seen.add(t.buffer)
                name = type_names.get(t.type, "other")
                constants[name] = constants.get(name, 0) + size
            if t.quantization is not None and t.quantization.scale is not None:
                entries += len(t.quantization.scale)
    return SizeBreakdown(total=len(blob), constants=constants, quant_entries=entries)
