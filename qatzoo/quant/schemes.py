"""Quantization schemes, the options of the ``quant`` config group.

A scheme answers, for the trainer: does the run fine-tune with QAT (``qat``), does it export int8
models (``int8``), and in which numeric format is each layer trained (:class:`~qatzoo.quant.spec.Spec`:
bit widths, grids, range estimator, layers kept float, per-layer rules).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np

from qatzoo.errors import ConfigError
from qatzoo.keras import ENGINE, keras
from qatzoo.quant.spec import Bits, Spec, layer_infos

#: The module that quantizes models on each engine; both give ``check_model``, ``quantize_model`` and
#: ``custom_objects`` over the same :class:`Spec`.
ENGINE_MODULES = {"tfmot": "qatzoo.quant.tfmot_engine", "keras3": "qatzoo.quant.keras3"}


def engine_module():
    """This process's quantization engine (``qatzoo.engine``): imported on first use, so a keras3 process
    never imports tensorflow-model-optimization."""
    return importlib.import_module(ENGINE_MODULES[ENGINE])


def custom_objects() -> dict:
    """Everything Keras needs to rebuild a model of this project, quantized or not (the engine's quantizers
    and configs, and every registered layer)."""
    return engine_module().custom_objects()


def __getattr__(name: str):
    if name == "TableQuantizeScheme":  # tfmot's scheme class, where it always was
        from qatzoo.quant.tfmot_engine import TableQuantizeScheme

        return TableQuantizeScheme
    raise AttributeError(f"module 'qatzoo.quant.schemes' has no attribute {name!r}")


@dataclass(frozen=True)
class Scheme:
    """What a ``quant`` option asks of the trainer.

    name: the option's name, written in metrics and the card.
    qat: fine-tune with quantization-aware training after the float phase.
    int8: export int8 models (post-training always; the QAT model too when ``qat``).
    spec: the numeric format of each layer during QAT.
    activations: ``int16`` for the post-training scheme with 16-bit activations (``quant=ptq_a16w8``).
    """

    name: str
    qat: bool
    int8: bool
    spec: Spec = field(default_factory=Spec)
    #: Activation type of the post-training file this scheme ships (``quant=ptq_*``): int8 or int16.
    activations: str = "int8"
    #: How the QAT int8 file stores kernels on a sub-8-bit grid: ``int4`` (the converter packs them; LiteRT
    #: unpacks them) or ``int8`` (the same values a byte each: what TensorFlow Lite Micro and Vela take as they
    #: are - :func:`qatzoo.export.lowbit.int8_storage`).
    storage: str = "int4"

    def layer_formats(self, model: keras.Model) -> dict[str, Bits | None]:
        """Each layer's format under this scheme (``None``: kept float). Raises ConfigError for a
        selection pattern that matches no layer of ``model``."""
        infos = layer_infos(model)
        unmatched = self.spec.unmatched(infos)
        if unmatched:
            raise ConfigError(
                f"quant: pattern {unmatched[0]!r} matches no layer of {model.name}; its layers are: "
                + ", ".join(f"{i.name} ({i.cls})" for i in infos)
            )
        return {info.name: self.spec.for_layer(info) for info in infos}

    def check(self, model: keras.Model) -> None:
        """Fail before training if a pattern matches nothing or a layer has no QuantizeConfig."""
        if not self.qat:
            return
        self.layer_formats(model)
        engine_module().check_model(model, self.spec, layer_infos(model))

    def quantize(self, model: keras.Model, calibration: np.ndarray) -> keras.Model:
        """Return the fake-quant (QAT) version of a float functional model, ranges calibrated.

        One training-mode pass over ``calibration`` (the same representative sample that PTQ uses)
        sets every activation range, so QAT starts where post-training quantization stands.
        """
        self.check(model)
        quantized = engine_module().quantize_model(model, self.spec, layer_infos(model))
        quantized(calibration, training=True)
        return quantized

    @property
    def int8_model(self) -> str | None:
        """Which model the int8 file holds: ``qat_int8``, ``ptq_int8``, ``ptq_a16w8`` (int16 activations), or
        None (no int8 export)."""
        if not self.int8:
            return None
        if self.qat:
            return "qat_int8"
        return "ptq_a16w8" if self.activations == "int16" else "ptq_int8"

    @property
    def integer_types(self) -> tuple[str, ...]:
        """Tensor types the shipped file's ops may compute (the full-integer check): int16 activations come
        with int64 biases."""
        return ("int8", "int16", "int32", "int64") if self.activations == "int16" else ("int8", "int32")

    @property
    def parity_reference(self) -> str:
        """The Keras model the int8 file must follow: the QAT model, or the float one for PTQ."""
        return "qat" if self.qat else "float"

    @property
    def runtime(self) -> str:
        """What executes this scheme's reported int8 numbers, in words."""
        return "no int8 export: float only"


class FloatScheme(Scheme):
    """``quant=none``: float training and export only."""


class PTQScheme(Scheme):
    """``quant=ptq_int8``: post-training full-integer int8, calibrated on the representative sample."""

    @property
    def runtime(self) -> str:
        if self.activations == "int16":
            return (
                "LiteRT builtin 16x8 kernels (int16 activations, int8 weights, int64 biases; post-training, "
                "LiteRT's quantizer); XNNPACK takes no int16 op, so every op runs in the reference kernels"
            )
        return "LiteRT int8 kernels (post-training full-integer, LiteRT's quantizer)"


class QATScheme(Scheme):
    """QAT schemes: fake-quant fine-tuning in the :class:`Spec`'s formats, then (``int8``) int8 export."""

    @property
    def runtime(self) -> str:
        if not self.int8:
            return (
                "no int8 export of the QAT model: its numbers are fake quant (simulated); the PTQ int8 "
                "baseline runs in LiteRT's int8 kernels"
            )
        text = "LiteRT int8 kernels"
        if self.spec.lowest_weight_bits < 8 and self.storage == "int8":
            text += (
                f"; kernels on the {self.spec.lowest_weight_bits}-bit grid, stored as INT8 (for TensorFlow Lite "
                "Micro and Vela, whose weight compression takes the fewer levels)"
            )
        elif self.spec.lowest_weight_bits < 8 and self.storage == "int4_dense":
            text += (
                f"; kernels on the {self.spec.lowest_weight_bits}-bit grid, FULLY_CONNECTED ones packed (INT4), "
                "convolutions stored as INT8 (the whole graph in XNNPACK on a CPU)"
            )
        elif self.spec.lowest_weight_bits < 8:
            text += (
                f"; kernels on the {self.spec.lowest_weight_bits}-bit grid, stored packed (INT4) by the converter "
                "and unpacked by LiteRT"
            )
        if self.spec.keep_float:
            text += "; layers kept float during QAT are quantized by the converter from the representative sample"
        return text


def scheme(name: str, qat: bool, int8: bool, activations: str = "int8", storage: str = "int4", **fields) -> Scheme:
    """Factory named by ``conf/quant/*.yaml``; ``fields`` are the :class:`Spec` knobs; ``activations``: the
    post-training file's activation type (``int16``: ``quant=ptq_a16w8``); ``storage``: how the QAT int8 file
    stores low-bit kernels (``int4`` packed, or ``int8``)."""
    kind = QATScheme if qat else (PTQScheme if int8 else FloatScheme)
    return kind(name=name, qat=qat, int8=int8, spec=Spec.from_config(fields), activations=activations, storage=storage)
