"""Building blocks shared by the attention architectures."""

from __future__ import annotations

from qatzoo.keras import keras
from qatzoo.models.layers import Attention, LayerNorm


def encoder_block(x, *, num_heads: int, key_dim: int, mlp_dim: int, norm: bool, name: str):
    """A pre-norm transformer encoder block: [LN] -> attention -> add, [LN] -> GELU MLP -> add."""
    features = x.shape[-1]
    h = LayerNorm(epsilon=1e-5, name=f"{name}_ln1")(x) if norm else x
    h = Attention(num_heads, key_dim, name=f"{name}_attention")(h)
    x = keras.layers.Add(name=f"{name}_add1")([x, h])
    h = LayerNorm(epsilon=1e-5, name=f"{name}_ln2")(x) if norm else x
    h = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(h)
    h = keras.layers.Dense(features, name=f"{name}_mlp2")(h)
    return keras.layers.Add(name=f"{name}_add2")([x, h])
