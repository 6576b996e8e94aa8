"""Quantization: scheme knobs (spec), quantizers and QuantizeConfigs, the layer->config registry, schemes.

``from qatzoo.quant import register`` adds a QuantizeConfig for your own layer class (README,
"Quantize your own layer"); ``InnerPointsQuantizeConfig``, the base of one that names its kernels and inner
points, is this process's engine's. Imported lazily: ``qatzoo.quant.spec`` is used by the config checks,
which must not import TensorFlow.
"""

from __future__ import annotations

__all__ = ["InnerPointsQuantizeConfig", "register"]


def __getattr__(name: str):
    if name in ("register", "InnerPointsQuantizeConfig"):
        from qatzoo.quant.schemes import engine_module  # the table of this process's engine

        return getattr(engine_module(), name)
    raise AttributeError(f"module 'qatzoo.quant' has no attribute {name!r}")
