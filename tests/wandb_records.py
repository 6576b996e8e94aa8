"""Read the records of an offline W&B run file (``run-*.wandb``), to check what a run logged.

The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of records, each with a 7-byte
header (crc32c, little-endian length, type: 1 full, 2 first, 3 middle, 4 last); every record is a
``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pieces, raw = HEADER, b"", []
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        if pos + 7 + length > len(data):
            raise ValueError(f"{path}: the last record is cut short (the file is still being written?)")
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            break
        if kind == 1:
            raw.append(chunk)
        elif kind == 2:
            pieces = chunk
        elif kind == 3:
            pieces += chunk
        elif kind == 4:
            raw.append(pieces + chunk)
    records = []
    for item in raw:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(item)
        records.append(record)
    return records


def read_complete(path: Path, wait_s: float = 20.0) -> list:
    """:func:`read_records` once the file parses and has stopped growing.

    W&B's service process may still be appending the last records when a run returns (seen once in
    CI on a loaded machine: a half-written record), so read again for up to ``wait_s`` seconds.
    """
    import time

    deadline = time.monotonic() + wait_s
    while True:
        size = path.stat().st_size
        try:
            records = read_records(path)
            if path.stat().st_size == size:
                return records
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def items(records, kind: str) -> dict[str, str]:
    """Key -> JSON value of every ``history``/``summary``/``config`` item logged, later ones win."""
    out = {}
    for record in records:
        if record.WhichOneof("record_type") != kind:
            continue
        updates = (
            record.history.item
            if kind == "history"
            else (record.summary.update if kind == "summary" else record.config.update)
        )
        for item in updates:
            out[item.key or "/".join(item.nested_key)] = item.value_json
    return out
