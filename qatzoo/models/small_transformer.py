"""A ViT-style encoder for small images: patches, position embedding, encoder blocks, linear head."""

from __future__ import annotations

from qatzoo.keras import keras
from qatzoo.models.blocks import encoder_block, normalization
from qatzoo.models.layers import PositionEmbedding


def small_transformer(
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    patch_size: int = 7,
    dim: int = 96,
    depth: int = 2,
    num_heads: int = 4,
    mlp_dim: int = 192,
    norm: bool | str = "layer",
    ffn_activation: str = "gelu",
    symmetric_kv: bool = False,
) -> keras.Model:
    """Patchify with a strided conv, add positions, run ``depth`` pre-norm blocks, mean-pool, classify.

    ``norm``, ``ffn_activation`` and ``symmetric_kv`` choose what the int8 runtimes run well (see
    :mod:`qatzoo.models.blocks`); the defaults are the first published model's.
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if height % patch_size or width % patch_size:
        raise ValueError(f"arch.patch_size={patch_size} must divide the image size {height}x{width}")
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Conv2D(dim, patch_size, strides=patch_size, name="patchify")(inputs)
    x = keras.layers.Reshape(((height // patch_size) * (width // patch_size), dim), name="tokens")(x)
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
        )
    x = normalization(x, norm, "final_ln")
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(num_outputs, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_transformer")
