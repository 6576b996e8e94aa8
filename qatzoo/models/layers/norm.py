"""Layer normalization written as the int8 runtime computes it, so QAT can see every rounding.

The TFLite converter lowers Keras' LayerNormalization into MEAN, SQUARED_DIFFERENCE, MEAN, ADD,
RSQRT, MUL, MUL, MUL, SUB and ADD ops, each with an int8 output. Keras' layer gives QAT no hook
inside that chain, so a fake-quant model with it cannot know what the int8 model will lose in the
variance and reciprocal square root. This layer computes the same chain with the same ops and passes
each intermediate through an identity attribute that its QuantizeConfig
(:class:`qatzoo.quant.configs.LayerNormQuantizeConfig`) turns into a fake-quant point.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import tensorflow as tf

from qatzoo.keras import keras

#: The intermediates, in the order they are computed (each becomes one int8 tensor at export).
INNER_POINTS = (
    "mean_act",
    "sqdiff_act",
    "var_act",
    "var_eps_act",
    "rsqrt_act",
    "scale_act",
    "x_scaled_act",
    "mean_scaled_act",
    "shift_act",
)


@keras.utils.register_keras_serializable(package="qatzoo")
class LayerNorm(keras.layers.Layer):
    """Normalize the last axis to zero mean and unit variance, then scale by gamma and shift by beta."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        for name in INNER_POINTS:
            setattr(self, name, keras.activations.linear)

    def build(self, input_shape):
        features = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(features,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(features,), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        mean = self.mean_act(tf.reduce_mean(x, axis=-1, keepdims=True))
        sqdiff = self.sqdiff_act(tf.math.squared_difference(x, mean))
        var = self.var_act(tf.reduce_mean(sqdiff, axis=-1, keepdims=True))
        inv = self.rsqrt_act(tf.math.rsqrt(self.var_eps_act(var + self.epsilon)))
        scale = self.scale_act(inv * self.gamma)
        x_scaled = self.x_scaled_act(x * scale)
        shift = self.shift_act(self.beta - self.mean_scaled_act(mean * scale))
        return x_scaled + shift

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


#: The one intermediate of :class:`NoNorm` (the product before the shift becomes an int8 tensor).
NONORM_POINTS = ("scaled_act",)


@keras.utils.register_keras_serializable(package="qatzoo")
class NoNorm(keras.layers.Layer):
    """MobileBERT's NoNorm: ``x * gamma + beta`` per feature, no statistics.

    Where :class:`LayerNorm` becomes ten int8 ops (MEAN, SQUARED_DIFFERENCE, RSQRT, ...), several of
    which XNNPACK has no int8 kernel for, NoNorm is one int8 MUL and one int8 ADD, which XNNPACK,
    TensorFlow Lite Micro and the Ethos-U NPU all run. The residual stream is then kept in range by
    training rather than by normalization.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in NONORM_POINTS:
            setattr(self, name, keras.activations.linear)

    def build(self, input_shape):
        features = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(features,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(features,), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        return self.scaled_act(x * self.gamma) + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape
