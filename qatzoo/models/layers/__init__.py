"""Custom Keras layers used by the architectures (each has a QuantizeConfig in qatzoo.quant)."""

from qatzoo.models.layers.attention import Attention
from qatzoo.models.layers.norm import LayerNorm, NoNorm
from qatzoo.models.layers.position import PositionEmbedding

__all__ = ["Attention", "LayerNorm", "NoNorm", "PositionEmbedding"]
