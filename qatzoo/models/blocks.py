"""Building blocks shared by the attention architectures."""

from __future__ import annotations

from qatzoo.keras import keras
from qatzoo.models.layers import Attention, LayerNorm, NoNorm

#: ``arch.norm`` values: LayerNorm (ten int8 ops, several outside XNNPACK), MobileBERT's NoNorm
#: (``x * gamma + beta``: an int8 MUL and ADD every int8 runtime runs), or none.
NORMS = ("layer", "nonorm", "none")
#: ``arch.ffn_activation`` values. GELU has no int8 kernel in XNNPACK and none at all in TensorFlow
#: Lite Micro; ReLU fuses into the int8 FULLY_CONNECTED on every runtime.
FFN_ACTIVATIONS = ("gelu", "relu")


def norm_kind(norm: bool | str) -> str:
    """``arch.norm`` as one of :data:`NORMS` (``True``/``False``, the older spelling, are LayerNorm/none)."""
    if isinstance(norm, bool):
        return "layer" if norm else "none"
    if norm not in NORMS:
        raise ValueError(f"arch.norm: one of {', '.join(NORMS)}, got {norm!r}")
    return norm


def normalization(x, norm: bool | str, name: str):
    """``x`` through the normalization ``norm`` names (unchanged for ``"none"``)."""
    kind = norm_kind(norm)
    if kind == "layer":
        return LayerNorm(epsilon=1e-5, name=name)(x)
    if kind == "nonorm":
        return NoNorm(name=name)(x)
    return x


def encoder_block(
    x,
    *,
    num_heads: int,
    key_dim: int,
    mlp_dim: int,
    norm: bool | str,
    name: str,
    ffn_activation: str = "gelu",
    symmetric_kv: bool = False,
    attention: str = "softmax",
):
    """A pre-norm transformer encoder block: [norm] -> attention -> add, [norm] -> MLP -> add."""
    if ffn_activation not in FFN_ACTIVATIONS:
        raise ValueError(f"arch.ffn_activation: one of {', '.join(FFN_ACTIVATIONS)}, got {ffn_activation!r}")
    features = x.shape[-1]
    h = normalization(x, norm, f"{name}_ln1")
    h = Attention(
        num_heads,
        key_dim,
        symmetric_kv=symmetric_kv,
        probabilities=attention,
        name=f"{name}_attention",
    )(h)
    x = keras.layers.Add(name=f"{name}_add1")([x, h])
    h = normalization(x, norm, f"{name}_ln2")
    h = keras.layers.Dense(mlp_dim, activation=ffn_activation, name=f"{name}_mlp1")(h)
    h = keras.layers.Dense(features, name=f"{name}_mlp2")(h)
    return keras.layers.Add(name=f"{name}_add2")([x, h])
