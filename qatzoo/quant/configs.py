"""QuantizeConfigs of this project, following the TFLite 8-bit scheme.

Weights: symmetric, narrow range (-127..127), last-value ranges; per output channel for
convolutions, per tensor for fully connected kernels (see ``registry._dense_layer``).
Activations: asymmetric, per tensor, moving-average min/max ranges.
"""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from qatzoo.models.layers.attention import INNER_POINTS, KERNELS

quantizers = tfmot.quantization.keras.quantizers
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig


def weight_quantizer(per_channel: bool = True) -> quantizers.Quantizer:
    """Symmetric narrow-range 8-bit weights, per output channel (the last kernel axis) by default."""
    return quantizers.LastValueQuantizer(num_bits=8, per_axis=per_channel, symmetric=True, narrow_range=True)


def activation_quantizer() -> quantizers.Quantizer:
    """Asymmetric 8-bit activations, one range per tensor, tracked by moving average."""
    return quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)


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
        return {"prefix": self.prefix, "quantizer": tfmot.quantization.keras.utils.serialize_keras_object(self.quantizer)}

    @classmethod
    def from_config(cls, config):
        quantizer = tfmot.quantization.keras.utils.deserialize_keras_object(
            config["quantizer"], module_objects=vars(quantizers)
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


class AttentionQuantizeConfig(QuantizeConfig):
    """QuantizeConfig for :class:`qatzoo.models.layers.Attention`.

    Fake-quantizes the four projection kernels (per tensor, as for Dense: the projections become
    FULLY_CONNECTED ops, whose per-axis QAT weights TF 2.21's converter rejects) and the layer's inner activations
    (Q, K, V and the scaled scores with moving-average ranges; the softmax output on the runtime's
    fixed softmax grid) plus its output, so QAT trains against the
    same rounding the int8 runtime applies. Biases stay int32 in TFLite and are not fake-quantized.
    """

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, name), weight_quantizer(per_channel=False)) for name in KERNELS]

    def get_activations_and_quantizers(self, layer):
        return [
            (
                getattr(layer, name),
                NamedQuantizer(name, softmax_output_quantizer() if name == "probs_act" else activation_quantizer()),
            )
            for name in INNER_POINTS
        ]

    def set_quantize_weights(self, layer, quantize_weights):
        for name, weight in zip(KERNELS, quantize_weights, strict=True):
            setattr(layer, name, weight)

    def set_quantize_activations(self, layer, quantize_activations):
        for name, activation in zip(INNER_POINTS, quantize_activations, strict=True):
            setattr(layer, name, activation)

    def get_output_quantizers(self, layer):
        return [activation_quantizer()]

    def get_config(self):
        return {}

    def __eq__(self, other):
        return type(self) is type(other)


CUSTOM_OBJECTS = {
    "NamedQuantizer": NamedQuantizer,
    "LayerQuantizeConfig": LayerQuantizeConfig,
    "AttentionQuantizeConfig": AttentionQuantizeConfig,
}
