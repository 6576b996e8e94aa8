"""What both QAT engines share, whichever Keras this process loaded (:mod:`qatzoo.keras`): the range
constraint of learned ranges, the int8 SOFTMAX output grid, the serialized form of a layer's bits, the
error for a layer no config covers, and one rule for the classes a model file may name.

The engines (``keras3``: :mod:`qatzoo.quant.keras3`; ``tfmot``: :mod:`qatzoo.quant.configs`,
:mod:`qatzoo.quant.registry`, :mod:`qatzoo.quant.tfmot_engine`) build their quantizers and configs on top.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import tensorflow as tf

from qatzoo.keras import keras
from qatzoo.quant.spec import Bits, UnsupportedLayerError

#: The int8 runtime's fixed output grid of SOFTMAX: scale 1/256, zero point -128, i.e. [0, 255/256].
SOFTMAX_OUTPUT_RANGE = (0.0, 255.0 / 256.0)


class HoldsZero(keras.constraints.Constraint):
    """Keeps a learned range bound on its side of zero (``min <= 0 <= max``) after optimizer updates."""

    def __init__(self, side: str):
        self.side = side

    def __call__(self, value):
        return tf.minimum(value, 0.0) if self.side == "min" else tf.maximum(value, 0.0)

    def get_config(self):
        return {"side": self.side}


def bits_of(value: Bits | dict | None) -> Bits:
    """A config's :class:`Bits` from its serialized form (``get_config``), or the default 8-bit format."""
    if value is None:
        return Bits()
    return value if isinstance(value, Bits) else Bits.from_dict(value)


def no_config(layer) -> UnsupportedLayerError:
    """The error for a quantized layer that no row of the engine's table covers (one line, with the ways out)."""
    name = type(layer).__name__
    from qatzoo.quant.policy import KERAS3_LAYERS

    if name in KERAS3_LAYERS:  # a built-in layer only the Keras 3 engine quantizes (this is the tfmot engine)
        return UnsupportedLayerError(
            f"layer {layer.name!r} ({name}) is quantized by the keras3 engine only (engine=keras3, the default); "
            f"the tfmot engine has no rule for {', '.join(sorted(KERAS3_LAYERS))}"
        )
    return UnsupportedLayerError(
        f"layer {layer.name!r} ({name}) has no QuantizeConfig: register one with "
        f"qatzoo.quant.register({name}, factory) (README, 'Quantize your own layer'), or keep it "
        f"float with quant.keep_float=[{name}]"
    )


class Registered:
    """The classes given to an engine's ``register()`` (the project's own layers are registered like anyone's):
    the layer classes and the config classes used as factories. Both engines hand exactly these to Keras when
    it clones or loads a model, and sensitivity analysis allows exactly these in a model file."""

    def __init__(self):
        self.objects: dict[str, type] = {}

    def add(self, layer_class: type, factory) -> None:
        if not isinstance(layer_class, type):
            raise TypeError(f"register() needs a layer class, got {layer_class!r}")
        self.objects[layer_class.__name__] = layer_class
        if isinstance(factory, type):
            self.objects[factory.__name__] = factory
