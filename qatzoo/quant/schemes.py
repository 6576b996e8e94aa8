"""Quantization schemes, the options of the ``quant`` config group.

A scheme answers three questions for the trainer: does the run fine-tune with QAT (``quantize``), does
it export an int8 model (``int8``), and which model is ``model_int8.tflite``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.quant.configs import CUSTOM_OBJECTS
from qatzoo.quant.registry import TableQuantizeRegistry


class Int8QuantizeScheme(tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme):
    """tfmot's 8-bit scheme (its layout transforms) with this project's layer->config table."""

    def get_quantize_registry(self):
        return TableQuantizeRegistry()


def custom_objects() -> dict:
    """Everything Keras needs to rebuild a model of this project, quantized or not."""
    from qatzoo.models.layers import Attention, LayerNorm, PositionEmbedding

    return {"Attention": Attention, "LayerNorm": LayerNorm, "PositionEmbedding": PositionEmbedding, **CUSTOM_OBJECTS}


@dataclass(frozen=True)
class Scheme:
    """What a ``quant`` option asks of the trainer.

    name: the option's name, written in metrics and the card.
    qat: fine-tune with quantization-aware training after the float phase.
    int8: export int8 models (post-training always; QAT too when ``qat``).
    """

    name: str
    qat: bool
    int8: bool

    def quantize(self, model: keras.Model, calibration: np.ndarray) -> keras.Model:
        """Return the fake-quant (QAT) version of a float functional model, ranges calibrated.

        One training-mode pass over ``calibration`` (the same representative sample that PTQ uses)
        sets every activation range, so QAT starts where post-training quantization stands.
        """
        Int8QuantizeScheme().get_quantize_registry().check_model(model)
        with tfmot.quantization.keras.quantize_scope(custom_objects()):
            annotated = tfmot.quantization.keras.quantize_annotate_model(model)
            quantized = tfmot.quantization.keras.quantize_apply(annotated, Int8QuantizeScheme())
        quantized(calibration, training=True)
        return quantized


def scheme(name: str, qat: bool, int8: bool) -> Scheme:
    """Factory named by ``conf/quant/*.yaml``."""
    return Scheme(name=name, qat=qat, int8=int8)
