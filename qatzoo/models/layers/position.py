"""A learned position embedding added to a token sequence."""

from __future__ import annotations

from qatzoo.keras import keras


@keras.utils.register_keras_serializable(package="qatzoo")
class PositionEmbedding(keras.layers.Layer):
    """Adds a trainable ``(tokens, features)`` table to ``(batch, tokens, features)`` inputs."""

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(int(input_shape[1]), int(input_shape[2])),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs + self.embeddings

    def compute_output_shape(self, input_shape):
        return input_shape
