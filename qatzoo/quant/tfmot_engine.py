"""The tfmot engine (``engine=tfmot``): tensorflow-model-optimization's ``quantize_apply`` on Keras 2 models,
with this project's table (:mod:`qatzoo.quant.registry`) and QuantizeConfigs (:mod:`qatzoo.quant.configs`)."""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.quant.configs import CUSTOM_OBJECTS
from qatzoo.quant.registry import REGISTERED, TableQuantizeRegistry, register
from qatzoo.quant.spec import LayerInfo, Spec

__all__ = [
    "TableQuantizeScheme",
    "check_model",
    "custom_objects",
    "has_quantizers",
    "quantize_model",
    "quantized_layer_name",
    "register",
]


class TableQuantizeScheme(tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme):
    """tfmot's 8-bit scheme (its layout transforms) with this project's table and a :class:`Spec`."""

    def __init__(self, spec: Spec | None = None, infos=None):
        self.spec = spec or Spec()
        self.infos = infos

    def get_quantize_registry(self):
        return TableQuantizeRegistry(spec=self.spec, infos=self.infos)


def custom_objects() -> dict:
    """The quantizers and configs, and every registered layer (the project's own are registered like anyone's)."""
    return {**CUSTOM_OBJECTS, **REGISTERED.objects}


def check_model(model: keras.Model, spec: Spec, infos: list[LayerInfo]) -> None:
    """Raise UnsupportedLayerError for the first quantized layer no row of the table covers."""
    TableQuantizeRegistry(spec=spec, infos=infos).check_model(model)


def quantize_model(model: keras.Model, spec: Spec, infos: list[LayerInfo]) -> keras.Model:
    """tfmot's fake-quant clone of a functional model (ranges not yet calibrated)."""
    with tfmot.quantization.keras.quantize_scope(custom_objects()):
        annotated = tfmot.quantization.keras.quantize_annotate_model(model)
        return tfmot.quantization.keras.quantize_apply(annotated, TableQuantizeScheme(spec, infos))


def has_quantizers(layer, spec: Spec) -> bool:
    """Whether ``spec`` puts any quantizer on ``layer`` (Flatten, Dropout, pooling have none)."""
    config = TableQuantizeRegistry(spec=spec).get_quantize_config(layer)
    return bool(
        config.get_weights_and_quantizers(layer)
        or config.get_activations_and_quantizers(layer)
        or config.get_output_quantizers(layer)
    )


def quantized_layer_name(name: str) -> str:
    """The name of float layer ``name`` in the fake-quant model (tfmot's wrapper prefixes it)."""
    return f"quant_{name}"
