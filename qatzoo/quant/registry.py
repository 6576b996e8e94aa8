"""The table from layer class to QuantizeConfig, and the registry that tfmot's quantize_apply reads.

Extend it by adding a row (a layer class and a function returning its QuantizeConfig), not a flag.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.models.layers import Attention, LayerNorm, PositionEmbedding
from qatzoo.quant.configs import AttentionQuantizeConfig, LayerNormQuantizeConfig, LayerQuantizeConfig

L = keras.layers
# tfmot's public API does not export its Activation config; it is the reference for activation layers.
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (  # noqa: E402,E501
    Default8BitActivationQuantizeConfig,
)


def _conv_layer():
    return LayerQuantizeConfig(weight_attrs=("kernel",), activation_attrs=("activation",), per_channel=True)


def _dense_layer():
    # Per-tensor: TF 2.21's converter rejects per-axis fake-quant on FULLY_CONNECTED weights
    # ("'tfl.transpose' op has mismatched quantized axes"); tests/test_quant.py pins that.
    return LayerQuantizeConfig(weight_attrs=("kernel",), activation_attrs=("activation",), per_channel=False)


def _output_only():
    return LayerQuantizeConfig(quantize_output=True)


def _activation_layer():
    # tfmot's own config knows which activations fold (relu) and which need pre/post ranges (gelu).
    return Default8BitActivationQuantizeConfig()


def _passthrough():
    # Layers that only move or select int8 values keep their input's range.
    return LayerQuantizeConfig()


#: layer class -> factory of its QuantizeConfig for the int8 scheme.
INT8_TABLE: dict[type, Callable[[], tfmot.quantization.keras.QuantizeConfig]] = {
    L.Conv2D: _conv_layer,
    L.DepthwiseConv2D: _conv_layer,
    L.Dense: _dense_layer,
    L.Activation: _activation_layer,
    L.ReLU: _output_only,
    L.Softmax: _output_only,
    L.Add: _output_only,
    L.Concatenate: _output_only,
    L.AveragePooling2D: _output_only,
    L.GlobalAveragePooling1D: _output_only,
    L.GlobalAveragePooling2D: _output_only,
    # LayerNormalization is not in tfmot's table. Its gamma/beta become int8 constants of the
    # decomposed int8 ops (mean, squared difference, rsqrt, mul, add) at conversion; QAT
    # fake-quantizes its output, the tensor that the next layer consumes.
    L.LayerNormalization: _output_only,
    L.MaxPooling2D: _passthrough,
    L.Flatten: _passthrough,
    L.Reshape: _passthrough,
    L.Dropout: _passthrough,
    L.Permute: _passthrough,
    Attention: AttentionQuantizeConfig,
    LayerNorm: LayerNormQuantizeConfig,
    PositionEmbedding: lambda: LayerQuantizeConfig(
        weight_attrs=("embeddings",), quantize_output=True, per_channel=False
    ),
}


class UnsupportedLayerError(ValueError):
    """A layer that no row of the table covers: it would otherwise stay float in an 'int8' model."""


class TableQuantizeRegistry(tfmot.quantization.keras.QuantizeRegistry):
    """A QuantizeRegistry backed by a plain table; a layer no row covers is an error, never float."""

    def __init__(self, table: dict[type, Callable] | None = None):
        self.table = dict(INT8_TABLE if table is None else table)

    def _factory(self, layer):
        return self.table.get(type(layer))

    def supports(self, layer) -> bool:
        return self._factory(layer) is not None

    def get_quantize_config(self, layer):
        factory = self._factory(layer)
        if factory is None:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({type(layer).__name__}) has no QuantizeConfig: add a row for "
                f"{type(layer).__name__} to qatzoo.quant.registry.INT8_TABLE, or keep the model float (quant=none)"
            )
        return factory()

    def check_model(self, model) -> None:
        """Raise :class:`UnsupportedLayerError` for the first layer of ``model`` no row covers."""
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                self.get_quantize_config(layer)
