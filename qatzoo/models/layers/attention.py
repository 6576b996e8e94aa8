"""A multi-head self-attention layer written for quantization-aware training.

Every point where the int8 runtime holds a tensor (the Q, K and V projections, the attention scores
and the softmax output) passes through an attribute that is the identity in the float model
(``keras.activations.linear``). The layer's QuantizeConfig
(:class:`qatzoo.quant.configs.AttentionQuantizeConfig`) replaces those attributes with fake-quant
activations, so QAT sees the same rounding the exported int8 model does.
"""

from __future__ import annotations

import math

import tensorflow as tf

from qatzoo.keras import keras

#: Names of the inner quantization points, in the order the layer computes them.
INNER_POINTS = ("query_act", "key_act", "value_act", "scores_act", "probs_act")
#: Names of the kernels, each quantized per output channel.
KERNELS = ("query_kernel", "key_kernel", "value_kernel", "output_kernel")


@keras.utils.register_keras_serializable(package="qatzoo")
class Attention(keras.layers.Layer):
    """Self-attention: learned Q/K/V projections, scaled dot product, softmax, output projection.

    Input and output have shape ``(batch, tokens, features)``. ``symmetric_kv`` asks the layer's
    QuantizeConfig to fake-quantize K and V on a symmetric range: their int8 zero point is then 0,
    which XNNPACK needs of the right-hand input to run an int8 BATCH_MATMUL (Q K^T and P V); with an
    asymmetric K or V both matmuls fall back to TFLite's builtin kernels.
    """

    def __init__(self, num_heads: int, key_dim: int, symmetric_kv: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.symmetric_kv = bool(symmetric_kv)
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
            setattr(self, f"{name}_kernel", self.add_weight(f"{name}_kernel", shape, initializer="glorot_uniform"))
            setattr(self, f"{name}_bias", self.add_weight(f"{name}_bias", shape[-1:], initializer="zeros"))
        super().build(input_shape)

    def _split_heads(self, x, tokens):
        x = tf.reshape(x, (-1, tokens, self.num_heads, self.key_dim))
        return tf.transpose(x, (0, 2, 1, 3))  # (batch, heads, tokens, key_dim)

    def call(self, inputs):
        tokens = inputs.shape[1]
        query = self.query_act(tf.tensordot(inputs, self.query_kernel, axes=1) + self.query_bias)
        key = self.key_act(tf.tensordot(inputs, self.key_kernel, axes=1) + self.key_bias)
        value = self.value_act(tf.tensordot(inputs, self.value_kernel, axes=1) + self.value_bias)
        query, key, value = (self._split_heads(t, tokens) for t in (query, key, value))
        scores = tf.matmul(query, key, transpose_b=True) * (1.0 / math.sqrt(self.key_dim))
        scores = self.scores_act(scores)
        probs = self.probs_act(tf.nn.softmax(scores, axis=-1))
        context = tf.transpose(tf.matmul(probs, value), (0, 2, 1, 3))
        context = tf.reshape(context, (-1, tokens, self.num_heads * self.key_dim))
        return tf.tensordot(context, self.output_kernel, axes=1) + self.output_bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim}
        if self.symmetric_kv:  # left out when off, so the configs of earlier models stay as they were
            config["symmetric_kv"] = True
        return config
