"""Reading back a training checkpoint: the newest one that is whole and of the phase asked for.

Shared by the training loops (:mod:`qatzoo.train.loop`, :mod:`qatzoo.train.fit`) and the engines' backup checks
(:mod:`qatzoo.quant.keras3`, :mod:`qatzoo.quant.tfmot_engine`); it imports nothing of qatzoo, so both layers
can use it.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import tensorflow as tf


def unreadable_reason(error: BaseException) -> str:
    """The first line of what a reader raised for a cut or emptied file (its type when it said nothing)."""
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


def newest_readable(checkpoints: list[str], name: str, tag: str | None = None) -> str | None:
    """The newest of ``checkpoints`` (oldest first) whose every tensor reads back and, given ``tag``
    (:attr:`qatzoo.train.loop.Phase.tag`), that carries it; None if none does.

    A disk fault or a copy cut short can leave the newest checkpoint truncated or empty; the run then
    goes on from the one before (resume is bit-exact from any step), saying which one it skipped, or
    starts the phase afresh when none is readable. A checkpoint of another phase or config would restore
    only the variables the two share, silently: it is refused the same way, in one line.
    """
    for path in reversed(checkpoints):
        try:
            reader = tf.train.load_checkpoint(path)
            for key in reader.get_variable_to_shape_map():
                reader.get_tensor(key)  # reads and checksums the data, not only the index
        except Exception as error:  # noqa: BLE001 - TensorFlow raises OpError, IndexError, ... for a cut file
            print(f"[qatzoo] {name} phase: skipping the unreadable checkpoint {path} ({unreadable_reason(error)})")
            continue
        mismatch = tag_mismatch(reader.get_tensor(TAG_KEY) if reader.has_tensor(TAG_KEY) else None, tag)
        if mismatch:
            print(f"[qatzoo] {name} phase: refusing the checkpoint {path}: {mismatch}")
            continue
        return path
    if checkpoints:
        print(f"[qatzoo] {name} phase: no readable checkpoint; starting this phase afresh")
    return None


#: Where a phase checkpoint keeps its tag.
TAG_KEY = "tag/.ATTRIBUTES/VARIABLE_VALUE"


def tag_mismatch(found: bytes | str | None, tag: str | None) -> str | None:
    """Why a checkpoint tagged ``found`` is not one of the phase tagged ``tag`` (None: it is, or no tag asked)."""
    if tag is None:
        return None
    if found is None:
        return "it carries no phase tag (not written by this phase of this run)"
    found = found.decode(errors="replace") if isinstance(found, bytes) else str(found)
    if found == tag:
        return None
    phase, _, config = found.partition(":")
    if phase != tag.partition(":")[0]:
        return f"it was written by the {phase[:20]!r} phase"
    return f"it was written by a run of another config ({config[:12]})"
