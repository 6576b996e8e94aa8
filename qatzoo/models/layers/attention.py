"""A multi-head self-attention layer written for quantization-aware training.

Every point where the int8 runtime holds a tensor (the Q, K and V projections, the attention scores
and the softmax output) passes through an attribute that is the identity in the float model
(``keras.activations.linear``). The layer's QuantizeConfig
(:class:`qatzoo.quant.configs.AttentionQuantizeConfig`) replaces those attributes with fake-quant
activations, so QAT sees the same rounding the exported int8 model does.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import math

import tensorflow as tf

from qatzoo.keras import keras

#: Names of the inner quantization points, in the order the layer computes them.
INNER_POINTS = ("query_act", "key_act", "value_act", "scores_act", "probs_act")
#: Names of the kernels, each quantized per output channel.
KERNELS = ("query_kernel", "key_kernel", "value_kernel", "output_kernel")
#: ``arch.attention`` values: the usual softmax, or ReLU attention (Wortsman et al. 2023,
#: ``relu(scores) / tokens``), which has no SOFTMAX op: int8 SOFTMAX has no XNNPACK kernel.
PROBABILITIES = ("softmax", "relu")


@keras.utils.register_keras_serializable(package="qatzoo")
class Attention(keras.layers.Layer):
    """Self-attention: learned Q/K/V projections, scaled dot product, softmax, output projection.

    Input and output have shape ``(batch, tokens, features)``. ``symmetric_kv`` asks the layer's
    QuantizeConfig to fake-quantize K and V on a symmetric range: their int8 zero point is then 0,
    which XNNPACK needs of the right-hand input to run an int8 BATCH_MATMUL (Q K^T and P V); with an
    asymmetric K or V both matmuls fall back to TFLite's builtin kernels.

    ``probabilities="relu"`` replaces the softmax with ``relu(scores / tokens)`` (the ReLU fuses into the
    int8 MUL that scales the scores). With ``num_heads=1`` the heads are neither split nor merged, so the
    graph has no RESHAPE/TRANSPOSE around the two matmuls.
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        symmetric_kv: bool = False,
        probabilities: str = "softmax",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if probabilities not in PROBABILITIES:
            raise ValueError(f"attention probabilities: one of {', '.join(PROBABILITIES)}, got {probabilities!r}")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.symmetric_kv = bool(symmetric_kv)
        self.probabilities = probabilities
        for name in INNER_POINTS:
            setattr(self, name, keras.activations.linear)

    def build(self, input_shape):
        features = int(input_shape[-1])
        width = self.num_heads * self.key_dim
        for name, shape in (
            ("query", (features, width)),
            ("key", (features, width)),
            ("value", (features, width)),
            ("output", (width, features)),
        ):
            setattr(
                self,
                f"{name}_kernel",
                self.add_weight(name=f"{name}_kernel", shape=shape, initializer="glorot_uniform"),
            )
            setattr(self, f"{name}_bias", self.add_weight(name=f"{name}_bias", shape=shape[-1:], initializer="zeros"))
        super().build(input_shape)

    def _split_heads(self, x, tokens):
        if self.num_heads == 1:  # (batch, tokens, key_dim): no RESHAPE/TRANSPOSE in the exported graph
            return x
        x = tf.reshape(x, (-1, tokens, self.num_heads, self.key_dim))
        return tf.transpose(x, (0, 2, 1, 3))  # (batch, heads, tokens, key_dim)

    def _merge_heads(self, x, tokens):
        if self.num_heads == 1:
            return x
        x = tf.transpose(x, (0, 2, 1, 3))
        return tf.reshape(x, (-1, tokens, self.num_heads * self.key_dim))

    def call(self, inputs):
        tokens = inputs.shape[1]
        query = self.query_act(tf.tensordot(inputs, self.query_kernel, axes=1) + self.query_bias)
        key = self.key_act(tf.tensordot(inputs, self.key_kernel, axes=1) + self.key_bias)
        value = self.value_act(tf.tensordot(inputs, self.value_kernel, axes=1) + self.value_bias)
        query, key, value = (self._split_heads(t, tokens) for t in (query, key, value))
        scores = tf.matmul(query, key, transpose_b=True)
        if self.probabilities == "relu":
            # One int8 tensor, no scores_act point: the converter fuses the ReLU into the scaling MUL.
            # (Folding the scale into the query kernel instead leaves a lone int8 RELU, which XNNPACK
            # does not take: measured 1.9x float, against 1.1x with the MUL.)
            probs = self.probs_act(tf.nn.relu(scores * (1.0 / (math.sqrt(self.key_dim) * tokens))))
        else:
            scores = self.scores_act(scores * (1.0 / math.sqrt(self.key_dim)))
            probs = self.probs_act(tf.nn.softmax(scores, axis=-1))
        context = self._merge_heads(tf.matmul(probs, value), tokens)
        return tf.tensordot(context, self.output_kernel, axes=1) + self.output_bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim}
        # Each option left out at its default, so the configs of earlier models stay as they were.
        if self.symmetric_kv:
            config["symmetric_kv"] = True
        if self.probabilities != "softmax":
            config["probabilities"] = self.probabilities
        return config
