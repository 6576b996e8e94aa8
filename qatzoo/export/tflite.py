"""Conversion of Keras models (tf_keras or Keras 3, by engine) to TFLite flatbuffers: float, and full-integer int8."""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from qatzoo.keras import keras
from qatzoo.quant.schemes import engine_module
from qatzoo.quiet import native_output


@contextmanager
def _converter(model: keras.Model) -> Iterator[tf.lite.TFLiteConverter]:
    """A converter for ``model`` called on a fixed batch of 1 (static shapes, which the int8 kernels want),
    made the way the engine's Keras needs (``converter`` of :mod:`qatzoo.quant.keras3` and of tfmot's)."""
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    with engine_module().converter(model, spec) as converter:
        yield converter


def _convert(converter: tf.lite.TFLiteConverter) -> bytes:
    """``converter.convert()`` without the converter's own prints (settings, SavedModel assets), which its
    C++ side writes past any log level; a failed conversion keeps them in its error (``qatzoo.quiet``)."""
    with native_output("the TFLite converter"):
        return converter.convert()


def to_float_tflite(model: keras.Model) -> bytes:
    """A float32 TFLite model, the size and accuracy reference for int8."""
    with _converter(model) as converter:
        return _convert(converter)


def to_int8_tflite(model: keras.Model, representative: Callable[[], Iterable[np.ndarray]]) -> bytes:
    """A full-integer TFLite model: int8 builtin ops only, int8 input and output.

    For a float model this is post-training quantization calibrated on ``representative``; for a
    QAT model the fake-quant ranges are used and ``representative`` calibrates any tensor left without
    one. Conversion fails (rather than keeping a float op) if an op has no int8 kernel.
    """
    with _converter(model) as converter:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return _convert(converter)


def strip_names(model: bytes) -> bytes:
    """The same model without tensor names and other non-essential strings, as deployed.

    Names are a large share of a small model's file; both the float and the int8 files are written
    stripped so their size ratio compares weights and graph, not debug strings.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    flatbuffer_utils.strip_strings(obj)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
