"""The quantization policy, once, for both engines: what each built-in Keras layer and each of the
project's own layers has fake-quantized, as data (no Keras, no tfmot).

The tfmot engine (:mod:`qatzoo.quant.registry`, :mod:`qatzoo.quant.configs`) and the Keras 3 engine
(:mod:`qatzoo.quant.keras3`) build their QuantizeConfigs from these rules; only how a quantizer is attached
differs between them. The scheme's :class:`~qatzoo.quant.spec.Spec` decides each layer's
:class:`~qatzoo.quant.spec.Bits` (or keeps it float); a rule says where those bits apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from qatzoo.quant.spec import Bits

__all__ = ["BUILTIN_LAYERS", "KERAS3_LAYERS", "LayerRule", "attention_points", "builtin_table", "position_embedding"]


@dataclass(frozen=True)
class LayerRule:
    """What one layer class has fake-quantized.

    weights: weight attributes (the layer reads the fake-quantized tensor there).
    activations: attributes holding a function whose output gets a range (``activation``).
    output: whether the layer's output gets a range of its own.
    per_channel: ``False`` forces per-tensor weights whatever the scheme says.
    weight_bits: a fixed weight width whatever the scheme says (None: the scheme's).
    """

    weights: tuple[str, ...] = ()
    activations: tuple[str, ...] = ()
    output: bool = False
    per_channel: bool = True
    weight_bits: int | None = None

    def config(self, config_class: type, bits: Bits):
        """The engine's ``LayerQuantizeConfig`` (``config_class``) for this rule at ``bits``."""
        if self.weight_bits is not None:
            bits = replace(bits, weight_bits=self.weight_bits)
        return config_class(
            weight_attrs=self.weights,
            activation_attrs=self.activations,
            quantize_output=self.output,
            per_channel=self.per_channel,
            bits=bits,
        )


#: Convolutions: per-channel kernels (the converter keeps one scale per output channel), the activation.
CONV = LayerRule(weights=("kernel",), activations=("activation",), per_channel=True)
#: Fully connected: per-tensor kernels - TF 2.21's converter rejects per-axis fake-quant on FULLY_CONNECTED
#: weights ("'tfl.transpose' op has mismatched quantized axes"; tests/test_quant.py pins that).
DENSE = LayerRule(weights=("kernel",), activations=("activation",), per_channel=False)
#: The output gets a range (an activation's ReLU folds into the previous op at conversion).
OUTPUT = LayerRule(output=True)
#: Layers that only move or select int8 values keep their input's range.
PASSTHROUGH = LayerRule()
#: The position table is an operand of an int8 ADD, not a matmul kernel: LiteRT's ADD takes int8 operands
#: only (the converter rejects an int4 one), so it stays 8-bit whatever weight_bits says.
POSITION_EMBEDDING = LayerRule(weights=("embeddings",), output=True, per_channel=False, weight_bits=8)

#: Built-in layer class name (``keras.layers.NAME`` on either engine) -> its rule.
BUILTIN_LAYERS: dict[str, LayerRule] = {
    "Conv2D": CONV,
    "Dense": DENSE,
    "Activation": OUTPUT,
    "ReLU": OUTPUT,
    "Softmax": OUTPUT,
    "Add": OUTPUT,
    "Concatenate": OUTPUT,
    "AveragePooling2D": OUTPUT,
    "GlobalAveragePooling1D": OUTPUT,
    "GlobalAveragePooling2D": OUTPUT,
    # Keras' LayerNormalization: its gamma/beta become int8 constants of the decomposed int8 ops (mean,
    # squared difference, rsqrt, mul, add) at conversion; QAT fake-quantizes its output, the tensor the next
    # layer consumes. (The project's own LayerNorm fake-quantizes every intermediate and follows the int8
    # model much more closely.)
    "LayerNormalization": OUTPUT,
    "MaxPooling2D": PASSTHROUGH,
    "Flatten": PASSTHROUGH,
    "Reshape": PASSTHROUGH,
    "Dropout": PASSTHROUGH,
    "Permute": PASSTHROUGH,
}

#: Depthwise kernels per tensor: Keras keeps them as (h, w, channels, multiplier), so the last axis is not the
#: output channel the converter's per-axis scales would need.
DEPTHWISE = LayerRule(weights=("kernel",), activations=("activation",), per_channel=False)

#: The layers of keras.applications' mobile networks, on the Keras 3 engine only (tf_keras names the depthwise
#: kernel ``depthwise_kernel``, and tfmot's quantize_model refuses nested models anyway). A BatchNormalization
#: that alone reads a convolution's or Dense's output is folded into it before QAT
#: (:func:`qatzoo.quant.keras3.fold_batch_norms`); any other one gets an output range (int8 MUL and ADD).
KERAS3_LAYERS: dict[str, LayerRule] = {
    "DepthwiseConv2D": DEPTHWISE,
    "BatchNormalization": OUTPUT,
    "ZeroPadding2D": PASSTHROUGH,
    "GlobalMaxPooling2D": PASSTHROUGH,
    # Training-time augmentation: identity at inference, absent from the converted file.
    "RandomFlip": PASSTHROUGH,
    "RandomTranslation": PASSTHROUGH,
}


def builtin_table(
    layers, config_class: type, rules: dict[str, LayerRule] | None = None
) -> dict[type, Callable[[Bits], object]]:
    """``{layer class: factory(bits) -> QuantizeConfig}`` for every rule of ``rules`` (default: the built-in
    ones both engines share): ``layers`` is the engine's ``keras.layers`` module, ``config_class`` its
    ``LayerQuantizeConfig``."""

    def factory(rule: LayerRule):
        def make(bits: Bits):
            return rule.config(config_class, bits)

        return make

    return {getattr(layers, name): factory(rule) for name, rule in (rules or BUILTIN_LAYERS).items()}


def position_embedding(config_class: type) -> Callable[[Bits], object]:
    """The factory of the project's PositionEmbedding config on an engine (``config_class``: its
    ``LayerQuantizeConfig``)."""

    def make(bits: Bits):
        return POSITION_EMBEDDING.config(config_class, bits)

    return make


#: The attention layer's inner points whose output lies on the int8 SOFTMAX grid (softmax attention).
SOFTMAX_POINTS = ("probs_act",)
#: Inner points that get a symmetric, narrow range with ``symmetric_kv``: [-m, m] on 255 levels puts zero
#: exactly on int8 0, the right-hand inputs XNNPACK's int8 BATCH_MATMUL takes (on 256 levels the zero point
#: is -0.5 before rounding, and the converter rounded it to -1 for some tensors).
SYMMETRIC_KV_POINTS = ("key_act", "value_act")


def attention_points(points: tuple[str, ...], bits: Bits, probabilities: str, symmetric_kv: bool) -> dict:
    """Each inner point of :class:`qatzoo.models.layers.Attention` -> ``("softmax", bits)`` (the runtime's fixed
    softmax output grid) or ``("range", bits)`` (a range from the scheme's estimator).

    Softmax attention: Q, K, V, the scaled scores and the probabilities. ReLU attention: its probabilities get a
    range like any activation, and there is no scores point.
    """
    if probabilities == "softmax":
        out = {name: ("softmax" if name in SOFTMAX_POINTS else "range", bits) for name in points}
    else:
        out = {name: ("range", bits) for name in points if name != "scores_act"}
    if symmetric_kv:
        narrow = replace(bits, activation_symmetric=True, activation_narrow_range=True)
        out.update({name: ("range", narrow) for name in SYMMETRIC_KV_POINTS})
    return out
