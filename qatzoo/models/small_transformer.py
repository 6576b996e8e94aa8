"""A ViT-style encoder for small images: patches, position embedding, encoder blocks, linear head."""

from __future__ import annotations

from typing import Literal

from qatzoo.keras import keras
from qatzoo.models.blocks import encoder_block, normalization
from qatzoo.models.layers import PositionEmbedding
from qatzoo.signature import Count

#: ``arch.patchify`` values: a strided Conv2D, or patches cut by RESHAPE/TRANSPOSE and a Dense (XNNPACK's int8
#: conv with one input channel is several times slower than its float one).
PATCHIFY = ("conv", "dense")


def small_transformer(
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    patch_size: Count = 7,
    patchify: Literal["conv", "dense"] = "conv",
    dim: Count = 96,
    depth: Count = 2,
    num_heads: Count = 4,
    mlp_dim: Count = 192,
    norm: Literal["layer", "nonorm", "none"] = "layer",
    ffn_activation: Literal["gelu", "relu"] = "gelu",
    symmetric_kv: bool = False,
    attention: Literal["softmax", "relu"] = "softmax",
) -> keras.Model:
    """Patchify (a strided conv or a Dense over pixel patches), add positions, run ``depth`` pre-norm blocks, mean-pool, classify.

    ``norm``, ``ffn_activation``, ``symmetric_kv`` and ``attention`` choose what the int8 runtimes run well (see
    :mod:`qatzoo.models.blocks`); the defaults are the first published model's.
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if height % patch_size or width % patch_size:
        raise ValueError(f"arch.patch_size={patch_size} must divide the image size {height}x{width}")
    if patchify not in PATCHIFY:
        raise ValueError(f"arch.patchify: one of {', '.join(PATCHIFY)}, got {patchify!r}")
    rows, cols, channels = height // patch_size, width // patch_size, int(input_shape[2])
    inputs = keras.Input(tuple(input_shape), name="image")
    if patchify == "conv":
        x = keras.layers.Conv2D(dim, patch_size, strides=patch_size, name="patchify")(inputs)
        x = keras.layers.Reshape((rows * cols, dim), name="tokens")(x)
    else:
        # (rows, p, cols, p, c) -> (rows, cols, p, p, c) -> one row of pixels per patch, then a Dense
        x = keras.layers.Reshape((rows, patch_size, cols, patch_size * channels), name="patch_rows")(inputs)
        x = keras.layers.Permute((1, 3, 2, 4), name="patch_order")(x)
        x = keras.layers.Reshape((rows * cols, patch_size * patch_size * channels), name="patches")(x)
        # The conv's initial weights: glorot over the conv's fans (in: p*p*c, out: p*p*dim), not the Dense's
        fan_in = patch_size * patch_size * channels
        scale = (fan_in + dim) / (fan_in + patch_size * patch_size * dim)
        initializer = keras.initializers.VarianceScaling(scale, mode="fan_avg", distribution="uniform")
        x = keras.layers.Dense(dim, kernel_initializer=initializer, name="patchify")(x)
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
    x = normalization(x, norm, "final_ln")
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(num_outputs, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_transformer")
