"""Quantizers and QuantizeConfigs of this project, parameterised by a :class:`qatzoo.quant.spec.Bits`.

Defaults follow the TFLite 8-bit scheme. Weights: symmetric, narrow range (-127..127), last-value
ranges; per output channel for convolutions, per tensor for fully connected kernels (see
``policy.DENSE``). Activations: asymmetric, per tensor, moving-average min/max ranges.
Every knob (bits 2-8, symmetric, narrow range, per channel, range estimator) comes from the scheme.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import tensorflow as tf
import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.models.layers.attention import INNER_POINTS, KERNELS
from qatzoo.models.layers.norm import INNER_POINTS as NORM_POINTS
from qatzoo.models.layers.norm import NONORM_POINTS
from qatzoo.quant import policy
from qatzoo.quant.common import SOFTMAX_OUTPUT_RANGE, HoldsZero, bits_of
from qatzoo.quant.spec import Bits

quantizers = tfmot.quantization.keras.quantizers
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig


def weight_quantizer(bits: Bits, per_channel: bool | None = None) -> quantizers.Quantizer:
    """Last-value weight quantizer: ``bits.weight_bits`` wide, per output channel unless told otherwise."""
    return quantizers.LastValueQuantizer(
        num_bits=bits.weight_bits,
        per_axis=bits.per_channel if per_channel is None else per_channel,
        symmetric=bits.weight_symmetric,
        narrow_range=bits.weight_narrow_range,
    )


class RangeQuantizer(quantizers.Quantizer):
    """Per-tensor activation fake quantization with one of four range estimators.

    * ``ema``: moving-average min/max of the training batches (decay ``ema_decay``). The same
      arithmetic as tfmot's MovingAverageQuantizer, with one difference: the first training-mode
      batch sets the range instead of being averaged into tfmot's fixed [-6, 6] start. With tfmot's
      decay of 0.999 and no debiasing, a few hundred QAT steps leave ranges far wider than the data,
      and QAT ends up worse than post-training calibration. The trainer runs one calibration batch
      through the model before QAT, so QAT starts from calibrated ranges.
    * ``last_value``: the range of the latest training batch.
    * ``fixed``: ``fixed_range``, never updated.
    * ``learned``: trainable clip values (PACT-style): the first batch sets them, then they train
      with the model. ``tf.quantization.fake_quant_with_min_max_vars`` gives the straight-through
      gradients: an input below ``min`` sends its gradient to ``min``, one above ``max`` to ``max``,
      the ones in between pass it to the input.

    The range always holds 0 (so zero is exact on the grid). ``symmetric`` uses ``[-m, m]`` with
    ``m = max(|min|, |max|)``. The rounding is TensorFlow's own fake-quant op, which the TFLite
    converter reads the range from.
    """

    def __init__(
        self,
        num_bits: int = 8,
        range: str = "ema",  # noqa: A002 - the config field's name
        ema_decay: float = 0.999,
        symmetric: bool = False,
        narrow_range: bool = False,
        fixed_range: tuple[float, float] = (-6.0, 6.0),
    ):
        self.num_bits = int(num_bits)
        self.range = str(range)
        self.ema_decay = float(ema_decay)
        self.symmetric = bool(symmetric)
        self.narrow_range = bool(narrow_range)
        self.fixed_range = (float(fixed_range[0]), float(fixed_range[1]))

    def build(self, tensor_shape, name, layer):
        low, high = self.fixed_range if self.range == "fixed" else (-6.0, 6.0)
        learned = self.range == "learned"

        def var(suffix, value, trainable=False, side=None):
            return layer.add_weight(
                f"{name}_{suffix}",
                shape=(),
                initializer=keras.initializers.Constant(value),
                trainable=trainable,
                constraint=HoldsZero(side) if trainable and side else None,
            )

        return {
            "min_var": var("min", low, learned, "min"),
            "max_var": var("max", high, learned, "max"),
            "seen": var("seen", 0.0),
        }

    def _quantize(self, inputs, low, high):
        # The range holds 0 even if a learned bound has just been pushed past it by an update
        # (the optimizer applies HoldsZero after each step; this covers the step itself).
        low, high = tf.minimum(low, 0.0), tf.maximum(high, 0.0)
        if self.symmetric:
            high = tf.maximum(tf.abs(low), tf.abs(high))
            low = -high
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, low, high, num_bits=self.num_bits, narrow_range=self.narrow_range
        )

    def __call__(self, inputs, training, weights, **kwargs):
        min_var, max_var, seen = weights["min_var"], weights["max_var"], weights["seen"]
        if not training or self.range == "fixed":
            return self._quantize(inputs, min_var, max_var)
        batch_min = tf.minimum(tf.reduce_min(inputs), 0.0)
        batch_max = tf.maximum(tf.reduce_max(inputs), 0.0)
        if self.range == "learned":
            # The first batch (the trainer's calibration pass) sets the clip values; then they train.
            first = tf.cast(seen <= 0.0, inputs.dtype)
            init = tf.group(
                min_var.assign(first * batch_min + (1.0 - first) * min_var),
                max_var.assign(first * batch_max + (1.0 - first) * max_var),
            )
            with tf.control_dependencies([init, seen.assign(1.0)]):
                return self._quantize(inputs, min_var.read_value(), max_var.read_value())
        decay = 0.0 if self.range == "last_value" else tf.where(seen > 0.0, self.ema_decay, 0.0)
        new_min = min_var.assign(decay * min_var + (1.0 - decay) * batch_min)
        new_max = max_var.assign(decay * max_var + (1.0 - decay) * batch_max)
        with tf.control_dependencies([seen.assign(1.0)]):
            return self._quantize(inputs, new_min, new_max)

    def get_config(self):
        return {
            "num_bits": self.num_bits,
            "range": self.range,
            "ema_decay": self.ema_decay,
            "symmetric": self.symmetric,
            "narrow_range": self.narrow_range,
            "fixed_range": list(self.fixed_range),
        }

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


def EmaRangeQuantizer(num_bits: int = 8, ema_decay: float = 0.999, narrow_range: bool = False) -> RangeQuantizer:  # noqa: N802
    """The default activation quantizer: asymmetric, moving-average range set by the first batch."""
    return RangeQuantizer(num_bits=num_bits, range="ema", ema_decay=ema_decay, narrow_range=narrow_range)


def activation_quantizer(bits: Bits) -> quantizers.Quantizer:
    """Per-tensor activation quantizer of ``bits`` (width, grid and range estimator)."""
    return RangeQuantizer(
        num_bits=bits.activation_bits,
        range=bits.range,
        ema_decay=bits.ema_decay,
        symmetric=bits.activation_symmetric,
        narrow_range=bits.activation_narrow_range,
        fixed_range=bits.fixed_range,
    )


def softmax_output_quantizer(bits: Bits | None = None) -> quantizers.Quantizer:
    """Fake-quantize a softmax output on exactly the grid the int8 SOFTMAX kernel writes.

    A learned range would differ from that grid, and the converter would then keep a float
    tensor (dequantize -> requantize) after the softmax. Below 8 bits (not exportable) the grid is
    ``activation_bits`` wide over the same range.
    """
    num_bits = 8 if bits is None else bits.activation_bits
    return quantizers.FixedQuantizer(
        num_bits=num_bits, init_min=SOFTMAX_OUTPUT_RANGE[0], init_max=SOFTMAX_OUTPUT_RANGE[1], narrow_range=False
    )


def _point_quantizer(function, bits: Bits) -> quantizers.Quantizer:
    """The quantizer of an activation function's output: a softmax (``Dense(..., activation="softmax")``) on the
    int8 SOFTMAX kernel's grid, any other on a range of its own."""
    softmax = function is keras.activations.softmax
    return softmax_output_quantizer(bits) if softmax else activation_quantizer(bits)


def _module_objects() -> dict:
    return {**vars(quantizers), "RangeQuantizer": RangeQuantizer}


class NamedQuantizer(quantizers.Quantizer):
    """Delegates to another quantizer but gives its range variables a distinct name prefix.

    tfmot names every activation's range variables ``post_activation_{min,max}``; a layer with
    several inner quantization points needs them apart (for checkpoints and for reading them back).
    """

    def __init__(self, prefix: str, quantizer: quantizers.Quantizer):
        self.prefix = prefix
        self.quantizer = quantizer

    def build(self, tensor_shape, name, layer):
        return self.quantizer.build(tensor_shape, f"{self.prefix}_{name}", layer)

    def __call__(self, inputs, training, weights, **kwargs):
        return self.quantizer(inputs, training, weights, **kwargs)

    def get_config(self):
        return {
            "prefix": self.prefix,
            "quantizer": tfmot.quantization.keras.utils.serialize_keras_object(self.quantizer),
        }

    @classmethod
    def from_config(cls, config):
        quantizer = tfmot.quantization.keras.utils.deserialize_keras_object(
            config["quantizer"], module_objects=_module_objects()
        )
        return cls(config["prefix"], quantizer)


class LayerQuantizeConfig(QuantizeConfig):
    """Quantize the named weight and activation attributes of a layer, and optionally its output.

    The generic config for built-in layers (Conv2D, Dense, Add, ...). ``per_channel=False`` forces
    per-tensor weights whatever ``bits.per_channel`` says (fully connected kernels, see the registry).
    With no attributes and no output it quantizes nothing: the config of a layer kept float.
    """

    def __init__(
        self,
        weight_attrs: tuple[str, ...] = (),
        activation_attrs: tuple[str, ...] = (),
        quantize_output: bool = False,
        per_channel: bool = True,
        bits: Bits | dict | None = None,
    ):
        self.weight_attrs = tuple(weight_attrs)
        self.activation_attrs = tuple(activation_attrs)
        self.quantize_output = bool(quantize_output)
        self.per_channel = bool(per_channel)
        self.bits = bits_of(bits)

    def get_weights_and_quantizers(self, layer):
        per_channel = self.per_channel and self.bits.per_channel
        return [(getattr(layer, a), weight_quantizer(self.bits, per_channel)) for a in self.weight_attrs]

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, a), _point_quantizer(getattr(layer, a), self.bits)) for a in self.activation_attrs]

    def set_quantize_weights(self, layer, quantize_weights):
        for attr, weight in zip(self.weight_attrs, quantize_weights, strict=True):
            setattr(layer, attr, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        for attr, activation in zip(self.activation_attrs, quantize_activations, strict=True):
            setattr(layer, attr, activation)

    def get_output_quantizers(self, layer):
        return [activation_quantizer(self.bits)] if self.quantize_output else []

    def get_config(self):
        return {
            "weight_attrs": list(self.weight_attrs),
            "activation_attrs": list(self.activation_attrs),
            "quantize_output": self.quantize_output,
            "per_channel": self.per_channel,
            "bits": self.bits.as_dict(),
        }

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


class InnerPointsQuantizeConfig(QuantizeConfig):
    """Base for custom layers that expose their int8 intermediates as identity attributes.

    Subclasses name the ``kernels`` (fake-quantized per tensor) and the inner ``points`` (each an
    attribute that is ``keras.activations.linear`` in the float layer and becomes a fake-quant
    activation here); ``point_quantizer`` picks each point's quantizer. The output is quantized too.
    This is the pattern to follow for your own layer (README, "Quantize your own layer").
    """

    kernels: tuple[str, ...] = ()
    points: tuple[str, ...] = ()

    def __init__(self, bits: Bits | dict | None = None):
        self.bits = bits_of(bits)

    def point_quantizer(self, name: str) -> quantizers.Quantizer:
        return activation_quantizer(self.bits)

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, name), weight_quantizer(self.bits, per_channel=False)) for name in self.kernels]

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, name), NamedQuantizer(name, self.point_quantizer(name))) for name in self.points]

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(self.kernels, quantize_weights, strict=True):
            setattr(layer, name, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        for name, activation in zip(self.points, quantize_activations, strict=True):
            setattr(layer, name, activation)

    def get_output_quantizers(self, layer):
        return [activation_quantizer(self.bits)]

    def get_config(self):
        return {"bits": self.bits.as_dict()}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


class AttentionQuantizeConfig(InnerPointsQuantizeConfig):
    """QuantizeConfig for :class:`qatzoo.models.layers.Attention`.

    Fake-quantizes the four projection kernels (per tensor, as for Dense: the projections become
    FULLY_CONNECTED ops, whose per-axis QAT weights TF 2.21's converter rejects) and the layer's inner
    activations (Q, K, V and the scaled scores with the scheme's range estimator; the softmax output on
    the runtime's fixed softmax grid, a ReLU attention's probabilities on a range like any activation's)
    plus its output, so QAT trains against the same rounding the int8
    runtime applies. Biases stay int32 in TFLite and are not fake-quantized.

    With the layer's ``symmetric_kv``, K and V get a symmetric, narrow range (int8 zero point 0), the
    right-hand inputs XNNPACK's int8 BATCH_MATMUL takes.
    """

    kernels = KERNELS
    points = INNER_POINTS

    def _quantizers(self, layer) -> dict[str, quantizers.Quantizer]:
        points = policy.attention_points(
            self.points, self.bits, getattr(layer, "probabilities", "softmax"), getattr(layer, "symmetric_kv", False)
        )
        return {
            name: softmax_output_quantizer(bits) if kind == "softmax" else activation_quantizer(bits)
            for name, (kind, bits) in points.items()
        }

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, name), NamedQuantizer(name, q)) for name, q in self._quantizers(layer).items()]

    def set_quantize_activations(self, layer, quantize_activations):
        for name, activation in zip(self._quantizers(layer), quantize_activations, strict=True):
            setattr(layer, name, activation)


class LayerNormQuantizeConfig(InnerPointsQuantizeConfig):
    """QuantizeConfig for :class:`qatzoo.models.layers.LayerNorm`: every intermediate of the int8
    lowering (mean, squared difference, variance, rsqrt, scale, products, shift) and the output get an
    activation range; gamma and beta stay float here (the converter folds them into the int8
    constants of the MUL and SUB ops)."""

    points = NORM_POINTS


class NoNormQuantizeConfig(InnerPointsQuantizeConfig):
    """QuantizeConfig for :class:`qatzoo.models.layers.NoNorm`: gamma fake-quantized like a kernel (per
    tensor, symmetric: the int8 constant of the MUL), the product and the output get ranges; beta
    becomes the int8 constant of the ADD at conversion."""

    kernels = ("gamma",)
    points = NONORM_POINTS


CUSTOM_OBJECTS = {
    "NamedQuantizer": NamedQuantizer,
    "RangeQuantizer": RangeQuantizer,
    "LayerQuantizeConfig": LayerQuantizeConfig,
    "AttentionQuantizeConfig": AttentionQuantizeConfig,
    "LayerNormQuantizeConfig": LayerNormQuantizeConfig,
    "NoNormQuantizeConfig": NoNormQuantizeConfig,
}
