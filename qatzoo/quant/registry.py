"""The table from layer class to QuantizeConfig, and the registry that tfmot's quantize_apply reads.

Extend it with :func:`register` (a layer class and a function from :class:`Bits` to its
QuantizeConfig), not a flag. The scheme's :class:`Spec` decides each layer's bits, or keeps it float.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.models.layers import Attention, LayerNorm, NoNorm, PositionEmbedding
from qatzoo.quant.configs import (
    AttentionQuantizeConfig,
    LayerNormQuantizeConfig,
    LayerQuantizeConfig,
    NoNormQuantizeConfig,
)
from qatzoo.quant.spec import Bits, LayerInfo, Spec, UnsupportedLayerError, layer_infos

__all__ = ["INT8_TABLE", "TableQuantizeRegistry", "UnsupportedLayerError", "layer_infos", "register"]

L = keras.layers


def _conv_layer(bits: Bits):
    return LayerQuantizeConfig(weight_attrs=("kernel",), activation_attrs=("activation",), per_channel=True, bits=bits)


def _dense_layer(bits: Bits):
    # Per-tensor: TF 2.21's converter rejects per-axis fake-quant on FULLY_CONNECTED weights
    # ("'tfl.transpose' op has mismatched quantized axes"); tests/test_quant.py pins that.
    return LayerQuantizeConfig(weight_attrs=("kernel",), activation_attrs=("activation",), per_channel=False, bits=bits)


def _output_only(bits: Bits):
    return LayerQuantizeConfig(quantize_output=True, bits=bits)


def _passthrough(bits: Bits):
    # Layers that only move or select int8 values keep their input's range.
    return LayerQuantizeConfig(bits=bits)


def _position_embedding(bits: Bits):
    # The embedding table is an operand of an int8 ADD, not a matmul kernel: LiteRT's ADD takes int8
    # operands only (the converter rejects an int4 one), so it stays 8-bit whatever weight_bits says.
    return LayerQuantizeConfig(
        weight_attrs=("embeddings",), quantize_output=True, per_channel=False, bits=replace(bits, weight_bits=8)
    )


#: A function from a layer's :class:`Bits` to its QuantizeConfig.
ConfigFactory = Callable[[Bits], tfmot.quantization.keras.QuantizeConfig]

#: layer class -> factory of its QuantizeConfig. Extend it with :func:`register`.
INT8_TABLE: dict[type, ConfigFactory] = {
    L.Conv2D: _conv_layer,
    L.Dense: _dense_layer,
    # An Activation layer's output gets a range (relu's folds into the previous op at conversion).
    L.Activation: _output_only,
    L.ReLU: _output_only,
    L.Softmax: _output_only,
    L.Add: _output_only,
    L.Concatenate: _output_only,
    L.AveragePooling2D: _output_only,
    L.GlobalAveragePooling1D: _output_only,
    L.GlobalAveragePooling2D: _output_only,
    # LayerNormalization is not in tfmot's table. Its gamma/beta become int8 constants of the
    # decomposed int8 ops (mean, squared difference, rsqrt, mul, add) at conversion; QAT
    # fake-quantizes its output, the tensor that the next layer consumes. (qatzoo's own LayerNorm
    # below fake-quantizes every intermediate and follows the int8 model much more closely.)
    L.LayerNormalization: _output_only,
    L.MaxPooling2D: _passthrough,
    L.Flatten: _passthrough,
    L.Reshape: _passthrough,
    L.Dropout: _passthrough,
    L.Permute: _passthrough,
}


def register(layer_class: type, factory: ConfigFactory) -> None:
    """Quantize every ``layer_class`` layer with ``factory(bits)``, in every scheme.

    ``factory`` receives the layer's :class:`~qatzoo.quant.spec.Bits` (the scheme's widths, grids and
    range estimator, after selective rules) and returns a tfmot ``QuantizeConfig``; a subclass of
    :class:`~qatzoo.quant.configs.InnerPointsQuantizeConfig` or
    :class:`~qatzoo.quant.configs.LayerQuantizeConfig` takes ``bits`` as its argument, so the class
    itself is a factory. Register before building the QAT model; the config class must also be
    serializable (``get_config``) and be passed to :func:`qatzoo.quant.schemes.custom_objects` via
    ``extra_custom_objects`` if it is not importable by name.
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register() needs a layer class, got {layer_class!r}")
    INT8_TABLE[layer_class] = factory
    EXTRA_CUSTOM_OBJECTS[layer_class.__name__] = layer_class
    config_class = factory if isinstance(factory, type) else None
    if config_class is not None:
        EXTRA_CUSTOM_OBJECTS[config_class.__name__] = config_class


#: Classes registered with :func:`register` (layers and config classes), given to Keras and tfmot
#: when they clone or load a model.
EXTRA_CUSTOM_OBJECTS: dict[str, type] = {}

# The project's own layers, registered like anyone's.
register(Attention, AttentionQuantizeConfig)
register(LayerNorm, LayerNormQuantizeConfig)
register(NoNorm, NoNormQuantizeConfig)
register(PositionEmbedding, _position_embedding)


class TableQuantizeRegistry(tfmot.quantization.keras.QuantizeRegistry):
    """A QuantizeRegistry backed by a plain table and a scheme's :class:`Spec`.

    A layer the spec keeps float gets a config that quantizes nothing; any other layer needs a row
    of the table (looked up by class, then its base classes), else :class:`UnsupportedLayerError` -
    never a silent float layer.
    """

    def __init__(self, table: dict[type, Callable] | None = None, spec: Spec | None = None, infos=None):
        self.table = dict(INT8_TABLE if table is None else table)
        self.spec = spec or Spec()
        self.infos = {info.name: info for info in infos or ()}

    def _factory(self, layer):
        for cls in type(layer).__mro__:
            if cls in self.table:
                return self.table[cls]
        return None

    def _info(self, layer) -> LayerInfo:
        activation = getattr(getattr(layer, "activation", None), "__name__", None)
        return self.infos.get(layer.name, LayerInfo(cls=type(layer).__name__, name=layer.name, activation=activation))

    def supports(self, layer) -> bool:
        return self._factory(layer) is not None

    def bits_for(self, layer) -> Bits | None:
        """The layer's format under the spec, or ``None`` if it stays float."""
        return self.spec.for_layer(self._info(layer))

    def get_quantize_config(self, layer):
        bits = self.bits_for(layer)
        if bits is None:
            return LayerQuantizeConfig(bits=self.spec.bits)  # kept float: no quantizer at all
        factory = self._factory(layer)
        if factory is None:
            name = type(layer).__name__
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({name}) has no QuantizeConfig: register one with "
                f"qatzoo.quant.register({name}, factory) (README, 'Quantize your own layer'), or keep it "
                f"float with quant.keep_float=[{name}]"
            )
        return factory(bits)

    def check_model(self, model) -> None:
        """Raise :class:`UnsupportedLayerError` for the first layer of ``model`` no row covers."""
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                self.get_quantize_config(layer)
