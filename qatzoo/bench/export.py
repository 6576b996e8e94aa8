"""Batch-N .tflite files, for latency per example at larger batches (the trainer's files have batch 1).

``qatzoo.export.tflite`` converts at batch 1 only. Rather than repeat its converter settings, this
wraps the model in one that takes a group of ``batch`` examples as a single example, shape
``(1, batch, ...)``, and reshapes it to ``(batch, ...)`` around the original model, then converts it
with :func:`~qatzoo.export.tflite.to_float_tflite` or :func:`~qatzoo.export.tflite.to_int8_tflite`.
The file so has two extra RESHAPE ops (input and output), each a copy of one batch at most.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qatzoo.keras import keras


def batched(model: keras.Model, batch: int) -> keras.Model:
    """``model`` taking ``(k, batch, *input)`` and returning ``(k, batch, *output)``: ``batch`` examples as one."""
    import tensorflow as tf

    from qatzoo.keras import keras

    shape = tuple(model.input_shape[1:])
    inputs = keras.Input((batch, *shape))
    x = keras.layers.Lambda(lambda t: tf.reshape(t, (-1, *shape)), name="unbatch")(inputs)
    y = model(x)
    outputs = keras.layers.Lambda(lambda t: tf.reshape(t, (-1, batch, *t.shape[1:])), name="rebatch")(y)
    return keras.Model(inputs, outputs, name=f"{model.name}_batch{batch}")


def to_tflite_at_batch(model: keras.Model, batch: int, representative: np.ndarray | None = None) -> bytes:
    """A .tflite of ``model`` that runs ``batch`` examples per invoke, names stripped (as the trainer writes).

    Input ``(1, batch, *input)``, output ``(1, batch, *output)``. Without ``representative`` the float
    file; with it (an array of inputs, recycled to a multiple of ``batch`` if shorter), the full-integer
    int8 file, converted by ``to_int8_tflite`` with its settings.
    """
    from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite

    wrapped = batched(model, batch)
    if representative is None:
        return strip_names(to_float_tflite(wrapped))
    reps = np.asarray(representative, np.float32)
    reps = np.resize(reps, (max(len(reps), batch) // batch * batch, *reps.shape[1:]))
    groups = reps.reshape(-1, batch, *reps.shape[1:])
    return strip_names(to_int8_tflite(wrapped, lambda: iter(groups)))
