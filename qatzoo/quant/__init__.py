"""Quantization: scheme knobs (spec), quantizers and QuantizeConfigs, the layer->config registry, schemes.

``from qatzoo.quant import register`` adds a QuantizeConfig for your own layer class (README,
"Quantize your own layer"). Imported lazily: ``qatzoo.quant.spec`` is used by the config checks,
which must not import TensorFlow.
"""

from __future__ import annotations

__all__ = ["register"]


def __getattr__(name: str):
    if name == "register":
        from qatzoo.quant.schemes import engine_module  # the table of this process's engine

        return engine_module().register
    raise AttributeError(f"module 'qatzoo.quant' has no attribute {name!r}")
