"""QuantizeConfigs of this project, following the TFLite 8-bit scheme.

Weights: symmetric, narrow range (-127..127), last-value ranges; per output channel for
convolutions, per tensor for fully connected kernels (see ``registry._dense_layer``).
Activations: asymmetric, per tensor, moving-average min/max ranges.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.models.layers.attention import INNER_POINTS, KERNELS
from qatzoo.models.layers.norm import INNER_POINTS as NORM_POINTS

quantizers = tfmot.quantization.keras.quantizers
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig


def weight_quantizer(per_channel: bool = True) -> quantizers.Quantizer:
    """Symmetric narrow-range 8-bit weights, per output channel (the last kernel axis) by default."""
    return quantizers.LastValueQuantizer(num_bits=8, per_axis=per_channel, symmetric=True, narrow_range=True)


class EmaRangeQuantizer(quantizers.Quantizer):
    """Asymmetric per-tensor fake quantization with a moving-average min/max range.

    The same arithmetic as tfmot's MovingAverageQuantizer (range always holds 0, EMA of the batch
    min/max, ``tf.quantization.fake_quant_with_min_max_vars``), with one difference: the first
    training-mode batch sets the range instead of being averaged into tfmot's fixed [-6, 6] start.
    With tfmot's decay of 0.999 and no debiasing, a few hundred QAT steps leave ranges far wider than
    the data, and QAT ends up worse than post-training calibration. The trainer runs one calibration
    batch through the model before QAT, so QAT starts from calibrated ranges.
    """

    def __init__(self, num_bits: int = 8, ema_decay: float = 0.999, narrow_range: bool = False):
        self.num_bits = int(num_bits)
        self.ema_decay = float(ema_decay)
        self.narrow_range = bool(narrow_range)

    def build(self, tensor_shape, name, layer):
        def var(suffix, value):
            return layer.add_weight(
                f"{name}_{suffix}", shape=(), initializer=keras.initializers.Constant(value), trainable=False
            )

        return {"min_var": var("min", -6.0), "max_var": var("max", 6.0), "seen": var("seen", 0.0)}

    def __call__(self, inputs, training, weights, **kwargs):
        min_var, max_var = weights["min_var"], weights["max_var"]
        if training:
            seen = weights["seen"]
            batch_min = tf.minimum(tf.reduce_min(inputs), 0.0)
            batch_max = tf.maximum(tf.reduce_max(inputs), 0.0)
            decay = tf.where(seen > 0.0, self.ema_decay, 0.0)
            new_min = min_var.assign(decay * min_var + (1.0 - decay) * batch_min)
            new_max = max_var.assign(decay * max_var + (1.0 - decay) * batch_max)
            with tf.control_dependencies([seen.assign(1.0)]):
                return tf.quantization.fake_quant_with_min_max_vars(
                    inputs, new_min, new_max, num_bits=self.num_bits, narrow_range=self.narrow_range
                )
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, min_var, max_var, num_bits=self.num_bits, narrow_range=self.narrow_range
        )

    def get_config(self):
        return {"num_bits": self.num_bits, "ema_decay": self.ema_decay, "narrow_range": self.narrow_range}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


def activation_quantizer() -> quantizers.Quantizer:
    """Asymmetric 8-bit activations, one range per tensor, tracked by moving average."""
    return EmaRangeQuantizer(num_bits=8)


#: The int8 runtime's fixed output grid of SOFTMAX: scale 1/256, zero point -128, i.e. [0, 255/256].
SOFTMAX_OUTPUT_RANGE = (0.0, 255.0 / 256.0)


def softmax_output_quantizer() -> quantizers.Quantizer:
    """Fake-quantize a softmax output on exactly the grid the int8 SOFTMAX kernel writes.

    A learned range would differ from that grid, and the converter would then keep a float
    tensor (dequantize -> requantize) after the softmax.
    """
    return quantizers.FixedQuantizer(
        num_bits=8, init_min=SOFTMAX_OUTPUT_RANGE[0], init_max=SOFTMAX_OUTPUT_RANGE[1], narrow_range=False
    )


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
            config["quantizer"], module_objects={**vars(quantizers), "EmaRangeQuantizer": EmaRangeQuantizer}
        )
        return cls(config["prefix"], quantizer)


class LayerQuantizeConfig(QuantizeConfig):
    """Quantize the named weight and activation attributes of a layer, and optionally its output.

    The generic config for built-in layers (Conv2D, Dense, Add, LayerNormalization, ...).
    """

    def __init__(
        self,
        weight_attrs: tuple[str, ...] = (),
        activation_attrs: tuple[str, ...] = (),
        quantize_output: bool = False,
        per_channel: bool = True,
    ):
        self.weight_attrs = tuple(weight_attrs)
        self.activation_attrs = tuple(activation_attrs)
        self.quantize_output = bool(quantize_output)
        self.per_channel = bool(per_channel)

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, a), weight_quantizer(self.per_channel)) for a in self.weight_attrs]

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, a), activation_quantizer()) for a in self.activation_attrs]

    def set_quantize_weights(self, layer, quantize_weights):
        for attr, weight in zip(self.weight_attrs, quantize_weights, strict=True):
            setattr(layer, attr, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        for attr, activation in zip(self.activation_attrs, quantize_activations, strict=True):
            setattr(layer, attr, activation)

    def get_output_quantizers(self, layer):
        return [activation_quantizer()] if self.quantize_output else []

    def get_config(self):
        return {
            "weight_attrs": list(self.weight_attrs),
            "activation_attrs": list(self.activation_attrs),
            "quantize_output": self.quantize_output,
            "per_channel": self.per_channel,
        }

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


class InnerPointsQuantizeConfig(QuantizeConfig):
    """Base for custom layers that expose their int8 intermediates as identity attributes.

    Subclasses name the ``kernels`` (fake-quantized per tensor) and the inner ``points`` (each an
    attribute that is ``keras.activations.linear`` in the float layer and becomes a fake-quant
    activation here); ``point_quantizer`` picks each point's quantizer. The output is quantized too.
    """

    kernels: tuple[str, ...] = ()
    points: tuple[str, ...] = ()

    def point_quantizer(self, name: str) -> quantizers.Quantizer:
        return activation_quantizer()

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, name), weight_quantizer(per_channel=False)) for name in self.kernels]

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, name), NamedQuantizer(name, self.point_quantizer(name))) for name in self.points]

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(self.kernels, quantize_weights, strict=True):
            setattr(layer, name, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        for name, activation in zip(self.points, quantize_activations, strict=True):
            setattr(layer, name, activation)

    def get_output_quantizers(self, layer):
        return [activation_quantizer()]

    def get_config(self):
        return {}

    def __eq__(self, other):
        return type(self) is type(other)


class AttentionQuantizeConfig(InnerPointsQuantizeConfig):
    """QuantizeConfig for :class:`qatzoo.models.layers.Attention`.

    Fake-quantizes the four projection kernels (per tensor, as for Dense: the projections become
    FULLY_CONNECTED ops, whose per-axis QAT weights TF 2.21's converter rejects) and the layer's inner
    activations (Q, K, V and the scaled scores with moving-average ranges; the softmax output on the
    runtime's fixed softmax grid) plus its output, so QAT trains against the same rounding the int8
    runtime applies. Biases stay int32 in TFLite and are not fake-quantized.
    """

    kernels = KERNELS
    points = INNER_POINTS

    def point_quantizer(self, name):
        return softmax_output_quantizer() if name == "probs_act" else activation_quantizer()


class LayerNormQuantizeConfig(InnerPointsQuantizeConfig):
    """QuantizeConfig for :class:`qatzoo.models.layers.LayerNorm`: every intermediate of the int8
    lowering (mean, squared difference, variance, rsqrt, scale, products, shift) and the output get a
    moving-average 8-bit range; gamma and beta stay float here (the converter folds them into the
    int8 constants of the MUL and SUB ops)."""

    points = NORM_POINTS


CUSTOM_OBJECTS = {
    "NamedQuantizer": NamedQuantizer,
    "EmaRangeQuantizer": EmaRangeQuantizer,
    "LayerQuantizeConfig": LayerQuantizeConfig,
    "AttentionQuantizeConfig": AttentionQuantizeConfig,
    "LayerNormQuantizeConfig": LayerNormQuantizeConfig,
}
