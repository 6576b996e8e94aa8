"""Quantization schemes, the options of the ``quant`` config group.

A scheme answers, for the trainer: does the run fine-tune with QAT (``qat``), does it export int8
models (``int8``), and in which numeric format is each layer trained (:class:`~qatzoo.quant.spec.Spec`:
bit widths, grids, range estimator, layers kept float, per-layer rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow_model_optimization as tfmot

from qatzoo.config import ConfigError
from qatzoo.keras import keras
from qatzoo.quant.configs import CUSTOM_OBJECTS
from qatzoo.quant.registry import EXTRA_CUSTOM_OBJECTS, TableQuantizeRegistry, layer_infos
from qatzoo.quant.spec import Bits, Spec


class TableQuantizeScheme(tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme):
    """tfmot's 8-bit scheme (its layout transforms) with this project's table and a :class:`Spec`."""

    def __init__(self, spec: Spec | None = None, infos=None):
        self.spec = spec or Spec()
        self.infos = infos

    def get_quantize_registry(self):
        return TableQuantizeRegistry(spec=self.spec, infos=self.infos)


def custom_objects() -> dict:
    """Everything Keras needs to rebuild a model of this project, quantized or not."""
    from qatzoo.models.layers import Attention, LayerNorm, PositionEmbedding

    return {
        "Attention": Attention,
        "LayerNorm": LayerNorm,
        "PositionEmbedding": PositionEmbedding,
        **CUSTOM_OBJECTS,
        **EXTRA_CUSTOM_OBJECTS,
    }


@dataclass(frozen=True)
class Scheme:
    """What a ``quant`` option asks of the trainer.

    name: the option's name, written in metrics and the card.
    qat: fine-tune with quantization-aware training after the float phase.
    int8: export int8 models (post-training always; the QAT model too when ``qat``).
    spec: the numeric format of each layer during QAT.
    """

    name: str
    qat: bool
    int8: bool
    spec: Spec = field(default_factory=Spec)

    def layer_formats(self, model: keras.Model) -> dict[str, Bits | None]:
        """Each layer's format under this scheme (``None``: kept float). Raises ConfigError for a
        selection pattern that matches no layer of ``model``."""
        infos = layer_infos(model)
        unmatched = self.spec.unmatched(infos)
        if unmatched:
            raise ConfigError(
                f"quant: pattern {unmatched[0]!r} matches no layer of {model.name}; its layers are: "
                + ", ".join(f"{i.name} ({i.cls})" for i in infos)
            )
        registry = TableQuantizeRegistry(spec=self.spec, infos=infos)
        return {layer.name: registry.bits_for(layer) for layer in model.layers[1:]}

    def check(self, model: keras.Model) -> None:
        """Fail before training if a pattern matches nothing or a layer has no QuantizeConfig."""
        if not self.qat:
            return
        self.layer_formats(model)
        TableQuantizeRegistry(spec=self.spec, infos=layer_infos(model)).check_model(model)

    def kept_float(self, model: keras.Model) -> list[str]:
        return [name for name, bits in self.layer_formats(model).items() if bits is None]

    def quantize(self, model: keras.Model, calibration: np.ndarray) -> keras.Model:
        """Return the fake-quant (QAT) version of a float functional model, ranges calibrated.

        One training-mode pass over ``calibration`` (the same representative sample that PTQ uses)
        sets every activation range, so QAT starts where post-training quantization stands.
        """
        self.check(model)
        scheme = TableQuantizeScheme(self.spec, layer_infos(model))
        with tfmot.quantization.keras.quantize_scope(custom_objects()):
            annotated = tfmot.quantization.keras.quantize_annotate_model(model)
            quantized = tfmot.quantization.keras.quantize_apply(annotated, scheme)
        quantized(calibration, training=True)
        return quantized


def scheme(name: str, qat: bool, int8: bool, **fields) -> Scheme:
    """Factory named by ``conf/quant/*.yaml``; ``fields`` are the :class:`Spec` knobs."""
    return Scheme(name=name, qat=qat, int8=int8, spec=Spec.from_config(fields))
