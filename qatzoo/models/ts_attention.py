"""A time-series forecaster built on the custom attention layer.

Input: a window of ``(steps, 1)`` values, already expressed relative to the window's last value (see
``qatzoo.data.co2``), so the level of a trending series never leaves the int8 input range.
Output: the next ``num_outputs`` values, on the same relative scale.
"""

from __future__ import annotations

from typing import Literal

from qatzoo.keras import keras
from qatzoo.models.blocks import encoder_block
from qatzoo.models.layers import PositionEmbedding
from qatzoo.signature import Count

#: ``arch.skip`` values: none, or a linear path from the flattened window to the forecast.
SKIPS = ("none", "linear")


def ts_attention(
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    dim: Count = 64,
    depth: Count = 1,
    num_heads: Count = 4,
    mlp_dim: Count = 128,
    norm: Literal["layer", "nonorm", "none"] | bool = False,
    ffn_activation: Literal["gelu", "relu"] = "gelu",
    symmetric_kv: bool = False,
    attention: Literal["softmax", "relu"] = "softmax",
    skip: Literal["none", "linear"] = "none",
    patch: Count = 1,
) -> keras.Model:
    """Embed each step, add positions, ``depth`` attention blocks, flatten, linear forecast head.

    ``norm``, ``ffn_activation``, ``symmetric_kv`` and ``attention`` choose what the int8 runtimes run well (see
    :mod:`qatzoo.models.blocks`); the defaults are the first published model's.

    ``skip="linear"`` adds a Dense from the flattened window straight to the forecast (one int8
    FULLY_CONNECTED and an ADD): seasonal naive with drift, or any linear autoregression, is a linear
    function of the window, so the model can hold it exactly and the attention path learns what is left.

    ``patch`` consecutive steps make one token (a RESHAPE before the embedding, as PatchTST does): a
    104-week window in 2-week tokens costs the attention what a 52-week window in 1-week tokens does.
    """
    if skip not in SKIPS:
        raise ValueError(f"arch.skip: one of {', '.join(SKIPS)}, got {skip!r}")
    steps, channels = input_shape
    if patch < 1 or steps % patch:
        raise ValueError(f"arch.patch={patch} must divide the window of {steps} steps")
    inputs = keras.Input(tuple(input_shape), name="window")
    x = inputs
    if patch > 1:
        x = keras.layers.Reshape((steps // patch, patch * channels), name="patchify")(x)
    x = keras.layers.Dense(dim, name="embed")(x)
    x = PositionEmbedding(name="position")(x)
    for i in range(depth):
        x = encoder_block(
            x,
            num_heads=num_heads,
            key_dim=dim // num_heads,
            mlp_dim=mlp_dim,
            norm=norm,
            name=f"block{i}",
            ffn_activation=ffn_activation,
            symmetric_kv=symmetric_kv,
            attention=attention,
        )
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(num_outputs, name="forecast")(x)
    if skip == "linear":
        window = keras.layers.Flatten(name="skip_flatten")(inputs)
        linear = keras.layers.Dense(num_outputs, kernel_initializer="zeros", name="skip_linear")(window)
        outputs = keras.layers.Add(name="forecast_plus_linear")([outputs, linear])
    return keras.Model(inputs, outputs, name="ts_attention")
