"""What a quantization scheme asks for, as plain data: bits, grids, range estimation, selection rules.

This module imports nothing heavy: the config checks (``qatzoo.config``) use it before TensorFlow is
imported, and the quantizers (``qatzoo.quant.configs``) read the same objects.

Layer patterns (``keep_float`` entries and ``rules[].match``) select layers by

* class name: ``Dense``, ``LayerNorm``, ``Attention``, ``Conv2D`` (exact, case-sensitive);
* layer name, with shell wildcards: ``block0_*``, ``logits``;
* activation: ``activation:gelu`` (a layer whose ``activation`` is GELU, e.g. ``Dense(activation="gelu")``);
* position: ``@first`` / ``@last`` (the first / last layer that has weights);
* preset: ``@norm`` (LayerNorm, LayerNormalization, NoNorm), ``@gelu`` (``activation:gelu``),
  ``@ends`` (``@first`` and ``@last``), ``@attention`` (Attention).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace

#: Range estimators for activations.
RANGES = ("ema", "last_value", "fixed", "learned")
#: Named groups of patterns.
PRESETS: dict[str, tuple[str, ...]] = {
    "@norm": ("LayerNorm", "LayerNormalization", "NoNorm"),
    "@gelu": ("activation:gelu",),
    "@ends": ("@first", "@last"),
    "@attention": ("Attention",),
}
POSITIONS = ("@first", "@last")
MIN_BITS, MAX_BITS = 2, 8


@dataclass(frozen=True)
class Bits:
    """The numeric format of one layer: weight and activation bit widths and their grids.

    ``per_channel`` applies to weights only (one scale per output channel); activations always have
    one range per tensor, the only kind the int8 runtime's kernels take.
    """

    weight_bits: int = 8
    activation_bits: int = 8
    per_channel: bool = True
    weight_symmetric: bool = True
    weight_narrow_range: bool = True
    activation_symmetric: bool = False
    activation_narrow_range: bool = False
    range: str = "ema"
    ema_decay: float = 0.999
    fixed_range: tuple[float, float] = (-6.0, 6.0)

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, values: dict) -> Bits:
        values = dict(values)
        if "fixed_range" in values:
            values["fixed_range"] = tuple(float(v) for v in values["fixed_range"])
        return cls(**values)


@dataclass(frozen=True)
class Rule:
    """Layers matching ``match`` get other bit widths (``None`` keeps the scheme's)."""

    match: str
    weight_bits: int | None = None
    activation_bits: int | None = None


@dataclass(frozen=True)
class LayerInfo:
    """What a pattern may look at: a layer's class, name, activation and position among weighted layers."""

    cls: str
    name: str
    activation: str | None = None
    first: bool = False
    last: bool = False


def expand(pattern: str) -> tuple[str, ...]:
    """A preset's patterns, or the pattern itself."""
    if pattern in PRESETS:
        return tuple(p for sub in PRESETS[pattern] for p in expand(sub))
    return (pattern,)


def matches(pattern: str, layer: LayerInfo) -> bool:
    for p in expand(pattern):
        if p == "@first" and layer.first or p == "@last" and layer.last:
            return True
        if p.startswith("activation:") and layer.activation == p.partition(":")[2]:
            return True
        if p == layer.cls or (not p.startswith(("@", "activation:")) and fnmatch.fnmatchcase(layer.name, p)):
            return True
    return False


def check_pattern(pattern) -> str | None:
    """Why ``pattern`` can never match anything (``None`` if it is well formed)."""
    if not isinstance(pattern, str) or not pattern:
        return f"expected a non-empty string, got {pattern!r}"
    if pattern.startswith("@") and pattern not in PRESETS and pattern not in POSITIONS:
        return f"unknown preset {pattern!r}; presets are: {', '.join([*POSITIONS, *PRESETS])}"
    if pattern.startswith("activation:") and not pattern.partition(":")[2]:
        return "activation: needs a name, e.g. activation:gelu"
    return None


@dataclass(frozen=True)
class Spec:
    """A scheme's quantization: the default format, layers kept float, and per-layer overrides."""

    bits: Bits = field(default_factory=Bits)
    keep_float: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()

    def for_layer(self, layer: LayerInfo) -> Bits | None:
        """The format of ``layer``, or ``None`` if it stays float. The last matching rule wins."""
        if any(matches(p, layer) for p in self.keep_float):
            return None
        bits = self.bits
        for rule in self.rules:
            if matches(rule.match, layer):
                if rule.weight_bits is not None:
                    bits = replace(bits, weight_bits=rule.weight_bits)
                if rule.activation_bits is not None:
                    bits = replace(bits, activation_bits=rule.activation_bits)
        return bits

    def unmatched(self, layers: list[LayerInfo]) -> list[str]:
        """Patterns of ``keep_float`` and ``rules`` that match none of ``layers`` (a typo, most likely)."""
        patterns = [*self.keep_float, *(r.match for r in self.rules)]
        return [p for p in patterns if not any(matches(p, layer) for layer in layers)]

    @property
    def lowest_activation_bits(self) -> int:
        return min([self.bits.activation_bits, *(r.activation_bits for r in self.rules if r.activation_bits)])

    @property
    def lowest_weight_bits(self) -> int:
        return min([self.bits.weight_bits, *(r.weight_bits for r in self.rules if r.weight_bits)])

    def as_dict(self) -> dict:
        return {
            **self.bits.as_dict(),
            "keep_float": list(self.keep_float),
            "rules": [dict(r.__dict__) for r in self.rules],
        }

    @classmethod
    def from_config(cls, quant: dict) -> Spec:
        """Build from a ``quant`` config group (plain dict); unknown keys are ignored here."""
        bit_fields = {k: quant[k] for k in Bits.__dataclass_fields__ if k in quant}
        return cls(
            bits=Bits.from_dict(bit_fields),
            keep_float=tuple(quant.get("keep_float") or ()),
            rules=tuple(Rule(**r) for r in quant.get("rules") or ()),
        )


class UnsupportedLayerError(ValueError):
    """A layer that no row of the engine's table covers: it would otherwise stay float in an 'int8' model."""


def layer_infos(model) -> list[LayerInfo]:
    """What selection patterns see of each layer of ``model`` (input layers left out); any Keras."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    weighted = [layer.name for layer in layers if layer.weights]
    infos = []
    for layer in layers:
        activation = getattr(layer, "activation", None)
        infos.append(
            LayerInfo(
                cls=type(layer).__name__,
                name=layer.name,
                activation=getattr(activation, "__name__", None),
                first=bool(weighted) and layer.name == weighted[0],
                last=bool(weighted) and layer.name == weighted[-1],
            )
        )
    return infos
