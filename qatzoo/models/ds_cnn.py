"""A depthwise-separable CNN: the shape microcontroller users deploy (MobileNet, and the DS-CNN of MLPerf Tiny's
keyword-spotting reference), where post-training quantization is known to struggle - a depthwise kernel's
channels share one activation range but not one weight scale, and batch norm folded into depthwise kernels
widens their per-channel ranges.

A 3x3 convolution, then ``blocks`` depthwise-separable blocks (3x3 depthwise, 1x1 pointwise, each followed by
batch norm and ReLU), every second one of stride 2 with the channels doubled, global average pooling and a
linear classifier. Batch norm folds into the convolution before it in the int8 file.
"""

from __future__ import annotations

from qatzoo.keras import keras
from qatzoo.signature import Count, Rate


def ds_cnn(
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    filters: Count = 32,
    blocks: Count = 4,
    dropout: Rate = 0.2,
    augment: bool = False,
) -> keras.Model:
    """``filters`` channels after the first convolution; block ``i`` has stride 2 (and twice the channels of the
    block before) when ``i`` is even. ``augment``: random horizontal flips and shifts of up to 2 pixels while
    training (Keras' RandomFlip and RandomTranslation, seeded; identity at inference, absent from the .tflite)."""
    layers = keras.layers

    def bn_relu(x, name: str):
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input(tuple(input_shape), name="image")
    x = inputs
    if augment:
        x = layers.RandomFlip("horizontal", seed=1, name="flip")(x)
        shift = 2 / input_shape[0]
        x = layers.RandomTranslation(shift, shift, fill_mode="constant", seed=2, name="shift")(x)
    x = bn_relu(layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")(x), "conv")
    channels = filters
    for i in range(blocks):
        stride = 2 if i % 2 == 0 else 1
        channels = channels * 2 if stride == 2 else channels
        name = f"block{i + 1}"
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = bn_relu(x, f"{name}_dw")
        x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_pw")(x)
        x = bn_relu(x, f"{name}_pw")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_outputs, name="logits")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")
