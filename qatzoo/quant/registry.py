"""The table from layer class to QuantizeConfig, and the registry that tfmot's quantize_apply reads.

Extend it with :func:`register` (a layer class and a function from :class:`Bits` to its
QuantizeConfig), not a flag. The scheme's :class:`Spec` decides each layer's bits, or keeps it float.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

from collections.abc import Callable

import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.models.layers import Attention, LayerNorm, NoNorm, PositionEmbedding
from qatzoo.quant import policy
from qatzoo.quant.common import Registered, no_config
from qatzoo.quant.configs import (
    AttentionQuantizeConfig,
    LayerNormQuantizeConfig,
    LayerQuantizeConfig,
    NoNormQuantizeConfig,
)
from qatzoo.quant.spec import Bits, LayerInfo, Spec, UnsupportedLayerError, layer_infos

__all__ = ["INT8_TABLE", "TableQuantizeRegistry", "UnsupportedLayerError", "layer_infos", "register"]

L = keras.layers


#: A function from a layer's :class:`Bits` to its QuantizeConfig.
ConfigFactory = Callable[[Bits], tfmot.quantization.keras.QuantizeConfig]

#: layer class -> factory of its QuantizeConfig: the shared policy's rows (:mod:`qatzoo.quant.policy`).
#: Extend it with :func:`register`.
INT8_TABLE: dict[type, ConfigFactory] = policy.builtin_table(L, LayerQuantizeConfig)


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
    REGISTERED.add(layer_class, factory)
    INT8_TABLE[layer_class] = factory


#: Classes registered with :func:`register` (layers and config classes), given to Keras and tfmot
#: when they clone or load a model.
REGISTERED = Registered()

# The project's own layers, registered like anyone's.
register(Attention, AttentionQuantizeConfig)
register(LayerNorm, LayerNormQuantizeConfig)
register(NoNorm, NoNormQuantizeConfig)
register(PositionEmbedding, policy.position_embedding(LayerQuantizeConfig))


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
            raise no_config(layer)
        return factory(bits)

    def check_model(self, model) -> None:
        """Raise :class:`UnsupportedLayerError` for the first layer of ``model`` no row covers."""
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                self.get_quantize_config(layer)
