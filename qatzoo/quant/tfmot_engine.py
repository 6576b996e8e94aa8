"""The tfmot engine (``engine=tfmot``): tensorflow-model-optimization's ``quantize_apply`` on Keras 2 models,
with this project's table (:mod:`qatzoo.quant.registry`) and QuantizeConfigs (:mod:`qatzoo.quant.configs`)."""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import tensorflow as tf
import tensorflow_model_optimization as tfmot

from qatzoo.keras import keras
from qatzoo.quant.configs import CUSTOM_OBJECTS, InnerPointsQuantizeConfig, RangeQuantizer, weight_quantizer
from qatzoo.quant.registry import REGISTERED, TableQuantizeRegistry, register
from qatzoo.quant.spec import LayerInfo, Spec

# What both engine modules offer a user's code and the tests: the base for a custom layer's config, and the
# quantizers (qatzoo.quant.keras3 has the same names).
__all__ = [
    "InnerPointsQuantizeConfig",
    "RangeQuantizer",
    "TableQuantizeScheme",
    "check_model",
    "custom_objects",
    "has_quantizers",
    "quantize_model",
    "quantized_layer_name",
    "register",
    "weight_quantizer",
]


class TableQuantizeScheme(tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme):
    """tfmot's 8-bit scheme (its layout transforms) with this project's table and a :class:`Spec`."""

    def __init__(self, spec: Spec | None = None, infos=None):
        self.spec = spec or Spec()
        self.infos = infos

    def get_quantize_registry(self):
        return TableQuantizeRegistry(spec=self.spec, infos=self.infos)


def custom_objects() -> dict:
    """The quantizers and configs, and every registered layer (the project's own are registered like anyone's)."""
    return {**CUSTOM_OBJECTS, **REGISTERED.objects}


def check_model(model: keras.Model, spec: Spec, infos: list[LayerInfo]) -> None:
    """Raise UnsupportedLayerError for the first quantized layer no row of the table covers."""
    TableQuantizeRegistry(spec=spec, infos=infos).check_model(model)


def quantize_model(model: keras.Model, spec: Spec, infos: list[LayerInfo]) -> keras.Model:
    """tfmot's fake-quant clone of a functional model (ranges not yet calibrated)."""
    with tfmot.quantization.keras.quantize_scope(custom_objects()):
        annotated = tfmot.quantization.keras.quantize_annotate_model(model)
        return tfmot.quantization.keras.quantize_apply(annotated, TableQuantizeScheme(spec, infos))


def has_quantizers(layer, spec: Spec) -> bool:
    """Whether ``spec`` puts any quantizer on ``layer`` (Flatten, Dropout, pooling have none)."""
    config = TableQuantizeRegistry(spec=spec).get_quantize_config(layer)
    return bool(
        config.get_weights_and_quantizers(layer)
        or config.get_activations_and_quantizers(layer)
        or config.get_output_quantizers(layer)
    )


def quantized_layer_name(name: str) -> str:
    """The name of float layer ``name`` in the fake-quant model (tfmot's wrapper prefixes it)."""
    return f"quant_{name}"


# --- what training and export need from the engine (qatzoo.quant.keras3 has the same functions) --------------


def random_generators(model: keras.Model) -> dict[str, tf.random.Generator]:
    """The tf.random.Generator of every random layer (dropout), created now if still lazy.

    Keras keeps them out of checkpoints on purpose; a bit-exact resume needs their state.
    """
    found = {}
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)  # QuantizeWrapper holds the real layer
        rng = getattr(inner, "_random_generator", None)
        if rng is None:
            continue
        rng._maybe_init()  # noqa: SLF001 - the generator is created lazily on first use
        if rng._generator is not None:  # noqa: SLF001
            found[layer.name] = rng._generator  # noqa: SLF001
    return found


def checkpoint_state(model: keras.Model) -> dict:
    """What a step checkpoint holds beside ``model`` and its optimizer: the dropout generators (the quantizer
    ranges are model variables, which the checkpoint reaches)."""
    return {"rng": random_generators(model)}


def dropout_state(model: keras.Model) -> dict:
    """What a dropout mask depends on beyond the seed: the tf.random.Generator of every random layer."""
    return random_generators(model)


def weights_file(path: Path) -> Path:
    """Where ``save_weights`` writes for ``path``: there (an HDF5 file for ``*.h5``)."""
    return path


def last_backup(backup_dir: Path) -> str | None:
    """BackupAndRestore's backup in ``backup_dir``: a TensorFlow checkpoint under ``chief/``; None before the first
    epoch ends."""
    return tf.train.latest_checkpoint(str(backup_dir / "chief"))


def backup_readable(backup: str, name: str) -> bool:
    """Whether every tensor of the backup reads back (a cut or emptied file does not); says so when not."""
    from qatzoo.checkpoints import newest_readable

    return newest_readable([backup], name) is not None


@contextmanager
def converter(model: keras.Model, spec: tf.TensorSpec) -> Iterator[tf.lite.TFLiteConverter]:
    """A TFLite converter for ``model`` called on ``spec``, from the concrete function."""
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    yield tf.lite.TFLiteConverter.from_concrete_functions([fn], model)


def prepare_seeding() -> None:
    """Before the seed is set: dropout draws from tf.random.Generator state, which checkpoints hold."""
    keras.backend.experimental.enable_tf_random_generator()


def flatten(model: keras.Model) -> keras.Model:
    """``model`` as it is: tfmot's quantize_model takes no nested models (it names the one it refuses); the
    Keras 3 engine inlines them (:func:`qatzoo.quant.keras3.flatten`)."""
    return model
