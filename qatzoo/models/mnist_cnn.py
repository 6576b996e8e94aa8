"""A small convolutional classifier for 28x28 grey images."""

from __future__ import annotations

from qatzoo.keras import keras
from qatzoo.signature import Count, Rate


def mnist_cnn(
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    filters: Count = 16,
    dense_units: Count = 64,
    dropout: Rate = 0.25,
) -> keras.Model:
    """Two conv/pool stages, a dense layer and a linear classifier (logits)."""
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(2 * filters, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(num_outputs, name="logits")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")
