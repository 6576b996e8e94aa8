"""A time-series forecaster built on the custom attention layer.

Input: a window of ``(steps, 1)`` values, already expressed relative to the window's last value (see
``qatzoo.data.co2``), so the level of a trending series never leaves the int8 input range.
Output: the next ``num_outputs`` values, on the same relative scale.
"""

from __future__ import annotations

from qatzoo.keras import keras
from qatzoo.models.blocks import encoder_block
from qatzoo.models.layers import PositionEmbedding


def ts_attention(
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    dim: int = 64,
    depth: int = 1,
    num_heads: int = 4,
    mlp_dim: int = 128,
    norm: bool | str = False,
    ffn_activation: str = "gelu",
    symmetric_kv: bool = False,
    attention: str = "softmax",
) -> keras.Model:
    """Embed each step, add positions, ``depth`` attention blocks, flatten, linear forecast head.

    ``norm``, ``ffn_activation``, ``symmetric_kv`` and ``attention`` choose what the int8 runtimes run well (see
    :mod:`qatzoo.models.blocks`); the defaults are the first published model's.
    """
    inputs = keras.Input(tuple(input_shape), name="window")
    x = keras.layers.Dense(dim, name="embed")(inputs)
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
    return keras.Model(inputs, outputs, name="ts_attention")
