"""Quantization-aware training on Keras 3 (``engine=keras3``): the project's policy without tfmot.

tensorflow-model-optimization works on Keras 2 only. This module gives Keras 3 models the same
quantization, from the same :class:`~qatzoo.quant.spec.Spec`:

* weights: last-value ranges, symmetric and narrow range by default, per output channel for
  convolutions and per tensor for fully connected kernels (the converter's rule, see
  :data:`qatzoo.quant.policy.DENSE`);
* activations: one range per tensor with the scheme's estimator (``ema``, ``last_value``, ``fixed``,
  ``learned``), the first training batch (the trainer's calibration pass) setting it;
* the model input: the range of every value seen (tfmot's ``AllValuesQuantizer``);
* keep-float patterns and per-layer bit widths, and a table from layer class to :class:`QuantizeConfig`
  that :func:`register` extends for your own layers (the attention layer is the worked example).

Every rounding is ``keras.quantizers.fake_quant_with_min_max_vars``, which on the TensorFlow backend is
TensorFlow's fake-quant op: the TFLite converter reads its ranges and writes int8 tensors.

:func:`quantize_model` clones a functional model and wraps each quantized layer in a
:class:`QuantizeWrapper`. The wrapper holds the range variables; while it calls the layer it puts the
fake-quantized kernels in place of the layer's kernel attributes and fake-quant functions in place of its
activation attributes (``activation``; the identity points of the project's own layers). That swap
happens once, when TensorFlow traces the step, so it adds no work to a training step. Range estimates
carry no gradient (``tf.stop_gradient``, as tfmot's assigned variables): tensors get the fake-quant op's
straight-through gradient only, and a QAT step does no backward pass through reductions.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import inspect
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import tensorflow as tf

from qatzoo.keras import KERAS3, keras
from qatzoo.models.layers import Attention, LayerNorm, NoNorm, PositionEmbedding
from qatzoo.models.layers.attention import INNER_POINTS, KERNELS
from qatzoo.models.layers.norm import INNER_POINTS as NORM_POINTS
from qatzoo.models.layers.norm import NONORM_POINTS
from qatzoo.quant import policy
from qatzoo.quant.common import SOFTMAX_OUTPUT_RANGE, HoldsZero, Registered, bits_of, no_config
from qatzoo.quant.spec import Bits, LayerInfo, Spec

if not KERAS3:
    raise ImportError("qatzoo.quant.keras3 needs engine=keras3 (QATZOO_ENGINE=keras3 before qatzoo.keras is imported)")

L = keras.layers
#: The int8 runtime's fixed output grid of SOFTMAX: scale 1/256, zero point -128, i.e. [0, 255/256].


def fake_quant(x, low, high, num_bits: int, narrow_range: bool, per_channel: bool = False):
    """TensorFlow's fake-quant op through Keras 3 (per tensor, or per last axis)."""
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, low, high, num_bits=num_bits, narrow_range=narrow_range, axis=-1 if per_channel else None
    )


# --- quantizers: each builds its variables on the wrapper and fake-quantizes one tensor ---------------------


class Quantizer:
    """Fake-quantizes one tensor; ``build`` makes its state (variables on ``layer``), ``__call__`` uses it."""

    def build(self, layer: keras.layers.Layer, name: str, shape: tuple) -> dict:
        return {}

    def __call__(self, x, training: bool, state: dict):
        raise NotImplementedError

    def get_config(self) -> dict:
        return dict(self.__dict__)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


def _var(layer, name: str, value: float, shape=(), trainable: bool = False, constraint=None):
    return layer.add_weight(
        name=name,
        shape=shape,
        initializer=keras.initializers.Constant(value),
        trainable=trainable,
        constraint=constraint,
    )


class WeightQuantizer(Quantizer):
    """Last-value weight ranges (tfmot's ``LastValueQuantizer``): each training step takes the kernel's
    range (per output channel, the last axis, or per tensor) and stores it; inference uses the stored one."""

    def __init__(self, num_bits: int = 8, per_channel: bool = True, symmetric: bool = True, narrow_range: bool = True):
        self.num_bits, self.per_channel = int(num_bits), bool(per_channel)
        self.symmetric, self.narrow_range = bool(symmetric), bool(narrow_range)

    def build(self, layer, name, shape):
        channels = (int(shape[-1]),) if self.per_channel else ()
        return {"min": _var(layer, f"{name}_min", -6.0, channels), "max": _var(layer, f"{name}_max", 6.0, channels)}

    def __call__(self, w, training, state):
        if training:
            axes = tuple(range(len(w.shape) - 1)) if self.per_channel else None
            if self.symmetric and self.narrow_range:
                # [-m, m] with m = max|w|: the same numbers as the general rule below in two ops instead of six
                # (a training step runs this for every kernel; scalar ops cost in dispatch, not arithmetic).
                high = tf.reduce_max(tf.abs(w), axis=axes)
                low = -high
            else:
                low, high = tf.reduce_min(w, axis=axes), tf.reduce_max(w, axis=axes)
            if self.symmetric and not self.narrow_range:
                # Zero exact on the grid: on a full range the negative side is one step wider than the positive.
                ratio = -((1 << self.num_bits) - 2) / (1 << self.num_bits)
                low, high = tf.minimum(low, high / ratio), tf.maximum(high, low * ratio)
            elif not self.symmetric:
                low, high = tf.minimum(low, 0.0), tf.maximum(high, 0.0)
            # The range is an estimate, not a path for gradients (tfmot's too): the kernel gets the fake-quant
            # op's straight-through gradient only, and the step does no reduce_min/max backward.
            low, high = tf.stop_gradient(low), tf.stop_gradient(high)
            state["min"].assign(low)
            state["max"].assign(high)
        else:
            low, high = state["min"], state["max"]
        return fake_quant(w, low, high, self.num_bits, self.narrow_range, self.per_channel)


class RangeQuantizer(Quantizer):
    """Per-tensor activation fake quantization, the same arithmetic as :class:`qatzoo.quant.configs.RangeQuantizer`.

    ``ema``: moving-average min/max, the first training batch setting it; ``last_value``: the latest
    batch's range; ``fixed``: ``fixed_range``; ``learned``: trainable clip values set by the first batch,
    then trained through the fake-quant op's straight-through gradients. The range always holds 0;
    ``symmetric`` uses ``[-m, m]``.
    """

    def __init__(
        self,
        num_bits: int = 8,
        range: str = "ema",  # noqa: A002 - the config field's name
        ema_decay: float = 0.999,
        symmetric: bool = False,
        narrow_range: bool = False,
        fixed_range: tuple[float, float] = (-6.0, 6.0),
    ):
        self.num_bits, self.range, self.ema_decay = int(num_bits), str(range), float(ema_decay)
        self.symmetric, self.narrow_range = bool(symmetric), bool(narrow_range)
        self.fixed_range = (float(fixed_range[0]), float(fixed_range[1]))

    def build(self, layer, name, shape):
        low, high = self.fixed_range if self.range == "fixed" else (-6.0, 6.0)
        learned = self.range == "learned"
        return {
            "min": _var(layer, f"{name}_min", low, trainable=learned, constraint=HoldsZero("min") if learned else None),
            "max": _var(
                layer, f"{name}_max", high, trainable=learned, constraint=HoldsZero("max") if learned else None
            ),
            "seen": _var(layer, f"{name}_seen", 0.0),
        }

    def quantize(self, x, low, high):
        low, high = tf.minimum(low, 0.0), tf.maximum(high, 0.0)
        if self.symmetric:
            high = tf.maximum(tf.abs(low), tf.abs(high))
            low = -high
        return fake_quant(x, low, high, self.num_bits, self.narrow_range)

    def __call__(self, x, training, state):
        low, high, seen = state["min"], state["max"], state["seen"]
        if not training or self.range == "fixed":
            return self.quantize(x, low, high)
        observed = tf.stop_gradient(x)  # as for weights: no gradient through the range estimate
        batch_min = tf.minimum(tf.reduce_min(observed), 0.0)
        batch_max = tf.maximum(tf.reduce_max(observed), 0.0)
        if self.range == "learned":
            first = tf.cast(seen <= 0.0, x.dtype)
            low.assign(first * batch_min + (1.0 - first) * low)
            high.assign(first * batch_max + (1.0 - first) * high)
            seen.assign(1.0)
            return self.quantize(x, low.value, high.value)  # read after the assignment: gradients reach them
        decay = 0.0 if self.range == "last_value" else tf.where(seen > 0.0, self.ema_decay, 0.0)
        new_low = decay * low + (1.0 - decay) * batch_min
        new_high = decay * high + (1.0 - decay) * batch_max
        low.assign(new_low)
        high.assign(new_high)
        seen.assign(1.0)
        return self.quantize(x, new_low, new_high)

    def get_config(self):
        return {**self.__dict__, "fixed_range": list(self.fixed_range)}


class AllValuesQuantizer(Quantizer):
    """The model input's range: every value seen in training, and 0 (tfmot's ``AllValuesQuantizer``)."""

    def __init__(self, num_bits: int = 8):
        self.num_bits = int(num_bits)

    def build(self, layer, name, shape):
        return {"min": _var(layer, f"{name}_min", 0.0), "max": _var(layer, f"{name}_max", 0.0)}

    def __call__(self, x, training, state):
        low, high = state["min"], state["max"]
        if training:
            low = tf.minimum(tf.minimum(low, tf.reduce_min(x)), 0.0)
            high = tf.maximum(tf.maximum(high, tf.reduce_max(x)), 0.0)
            state["min"].assign(low)
            state["max"].assign(high)
        return fake_quant(x, low, high, self.num_bits, False)


class FixedQuantizer(Quantizer):
    """A constant range (the softmax output's grid)."""

    def __init__(self, num_bits: int = 8, low: float = 0.0, high: float = 1.0, narrow_range: bool = False):
        self.num_bits, self.low, self.high, self.narrow_range = (
            int(num_bits),
            float(low),
            float(high),
            bool(narrow_range),
        )

    def __call__(self, x, training, state):
        return fake_quant(x, self.low, self.high, self.num_bits, self.narrow_range)


def weight_quantizer(bits: Bits, per_channel: bool | None = None) -> WeightQuantizer:
    """Last-value weight quantizer of ``bits``, per output channel unless told otherwise."""
    return WeightQuantizer(
        num_bits=bits.weight_bits,
        per_channel=bits.per_channel if per_channel is None else per_channel,
        symmetric=bits.weight_symmetric,
        narrow_range=bits.weight_narrow_range,
    )


def activation_quantizer(bits: Bits) -> RangeQuantizer:
    """Per-tensor activation quantizer of ``bits`` (width, grid and range estimator)."""
    return RangeQuantizer(
        num_bits=bits.activation_bits,
        range=bits.range,
        ema_decay=bits.ema_decay,
        symmetric=bits.activation_symmetric,
        narrow_range=bits.activation_narrow_range,
        fixed_range=bits.fixed_range,
    )


def softmax_output_quantizer(bits: Bits) -> FixedQuantizer:
    """A softmax output on exactly the grid the int8 SOFTMAX kernel writes (``activation_bits`` wide below 8)."""
    return FixedQuantizer(bits.activation_bits, *SOFTMAX_OUTPUT_RANGE)


def _point_quantizer(function, bits: Bits) -> Quantizer:
    """The quantizer of an activation function's output: a softmax (``Dense(..., activation="softmax")``) on the
    int8 SOFTMAX kernel's grid, any other on a range of its own."""
    softmax = function is keras.activations.softmax
    return softmax_output_quantizer(bits) if softmax else activation_quantizer(bits)


# --- QuantizeConfigs: which attributes of a layer are quantized, and how ------------------------------------


class QuantizeConfig:
    """What to fake-quantize in one layer (the Keras 3 counterpart of tfmot's ``QuantizeConfig``).

    ``weights(layer)``: weight attribute -> quantizer (the layer reads the fake-quantized kernel there);
    ``activations(layer)``: attribute holding a function (``activation``, or an identity point such as the
    attention layer's ``key_act``) -> quantizer of that function's output; ``output(layer)``: the quantizer
    of the layer's output, or None. A config that quantizes nothing leaves the layer unwrapped.
    """

    def __init__(self, bits: Bits | dict | None = None):
        self.bits = bits_of(bits)

    def weights(self, layer) -> dict[str, Quantizer]:
        return {}

    def activations(self, layer) -> dict[str, Quantizer]:
        return {}

    def output(self, layer) -> Quantizer | None:
        return None

    def is_empty(self, layer) -> bool:
        return not (self.weights(layer) or self.activations(layer) or self.output(layer))

    def get_config(self) -> dict:
        return {"bits": self.bits.as_dict()}


class LayerQuantizeConfig(QuantizeConfig):
    """The generic config for built-in layers: named weights and activation functions, optionally the output.

    ``per_channel=False`` forces per-tensor weights whatever ``bits.per_channel`` says (fully connected
    kernels). With nothing named and no output it quantizes nothing: the config of a layer kept float.
    """

    def __init__(
        self,
        weight_attrs: tuple[str, ...] = (),
        activation_attrs: tuple[str, ...] = (),
        quantize_output: bool = False,
        per_channel: bool = True,
        bits: Bits | dict | None = None,
    ):
        super().__init__(bits)
        self.weight_attrs, self.activation_attrs = tuple(weight_attrs), tuple(activation_attrs)
        self.quantize_output, self.per_channel = bool(quantize_output), bool(per_channel)

    def weights(self, layer):
        per_channel = self.per_channel and self.bits.per_channel
        return {attr: weight_quantizer(self.bits, per_channel) for attr in self.weight_attrs}

    def activations(self, layer):
        return {attr: _point_quantizer(getattr(layer, attr, None), self.bits) for attr in self.activation_attrs}

    def output(self, layer):
        if not self.quantize_output:
            return None
        return softmax_output_quantizer(self.bits) if isinstance(layer, L.Softmax) else activation_quantizer(self.bits)

    def get_config(self):
        return {
            "weight_attrs": list(self.weight_attrs),
            "activation_attrs": list(self.activation_attrs),
            "quantize_output": self.quantize_output,
            "per_channel": self.per_channel,
            "bits": self.bits.as_dict(),
        }


class InnerPointsQuantizeConfig(QuantizeConfig):
    """Base for custom layers that expose their int8 intermediates as identity attributes.

    Subclasses name the ``kernels`` (fake-quantized per tensor) and the inner ``points`` (attributes that
    are ``keras.activations.linear`` in the float layer); ``point_quantizer`` picks each point's quantizer.
    The output is quantized too. This is the pattern to follow for your own layer.
    """

    kernels: tuple[str, ...] = ()
    points: tuple[str, ...] = ()

    def point_quantizer(self, name: str) -> Quantizer:
        return activation_quantizer(self.bits)

    def weights(self, layer):
        return {name: weight_quantizer(self.bits, per_channel=False) for name in self.kernels}

    def activations(self, layer):
        return {name: self.point_quantizer(name) for name in self.points}

    def output(self, layer):
        return activation_quantizer(self.bits)


class AttentionQuantizeConfig(InnerPointsQuantizeConfig):
    """:class:`qatzoo.models.layers.Attention`: the four projection kernels (per tensor) and the inner points
    as the shared policy says (:func:`qatzoo.quant.policy.attention_points`: Q, K, V, the scaled scores and the
    softmax output on the int8 SOFTMAX grid; ReLU attention's probabilities on a range; symmetric, narrow K and
    V with ``symmetric_kv``), and the output."""

    kernels = KERNELS
    points = INNER_POINTS

    def activations(self, layer):
        points = policy.attention_points(
            self.points, self.bits, getattr(layer, "probabilities", "softmax"), getattr(layer, "symmetric_kv", False)
        )
        return {
            name: softmax_output_quantizer(bits) if kind == "softmax" else activation_quantizer(bits)
            for name, (kind, bits) in points.items()
        }


class LayerNormQuantizeConfig(InnerPointsQuantizeConfig):
    """:class:`qatzoo.models.layers.LayerNorm`: every intermediate of its int8 lowering and the output."""

    points = NORM_POINTS


class NoNormQuantizeConfig(InnerPointsQuantizeConfig):
    """:class:`qatzoo.models.layers.NoNorm`: gamma like a kernel (per tensor), the product and the output."""

    kernels = ("gamma",)
    points = NONORM_POINTS


#: A function from a layer's :class:`Bits` to its :class:`QuantizeConfig`.
ConfigFactory = Callable[[Bits], QuantizeConfig]

#: layer class -> factory of its QuantizeConfig: the shared policy's rows (:mod:`qatzoo.quant.policy`), as on
#: the tfmot engine. Extend it with :func:`register`.
KERAS3_TABLE: dict[type, ConfigFactory] = {
    **policy.builtin_table(L, LayerQuantizeConfig),
    **policy.builtin_table(L, LayerQuantizeConfig, policy.KERAS3_LAYERS),
}
#: The classes given to :func:`register` (the project's layers and a user's), for Keras when it loads a model.
REGISTERED = Registered()


def register(layer_class: type, factory: ConfigFactory) -> None:
    """Quantize every ``layer_class`` layer with ``factory(bits)`` (a :class:`QuantizeConfig`), in every scheme.

    A subclass of :class:`InnerPointsQuantizeConfig` or :class:`LayerQuantizeConfig` takes ``bits`` as its
    argument, so the class itself is a factory: ``register(MyLayer, MyLayerQuantizeConfig)``.
    """
    REGISTERED.add(layer_class, factory)
    KERAS3_TABLE[layer_class] = factory


# The project's own layers, registered like anyone's.
register(Attention, AttentionQuantizeConfig)
register(LayerNorm, LayerNormQuantizeConfig)
register(NoNorm, NoNormQuantizeConfig)
register(PositionEmbedding, policy.position_embedding(LayerQuantizeConfig))


def factory_for(layer, table: dict | None = None) -> ConfigFactory | None:
    """The table's factory for ``layer``'s class, or its nearest base class's; None if no row covers it."""
    table = KERAS3_TABLE if table is None else table
    for cls in type(layer).__mro__:
        if cls in table:
            return table[cls]
    return None


def config_for(layer, spec: Spec, info: LayerInfo | None = None, table: dict | None = None) -> QuantizeConfig | None:
    """The layer's QuantizeConfig under ``spec``; None when it stays float. UnsupportedLayerError if no row covers it."""
    info = info or LayerInfo(cls=type(layer).__name__, name=layer.name)
    bits = spec.for_layer(info)
    if bits is None:
        return None
    factory = factory_for(layer, table)
    if factory is None:
        raise no_config(layer)
    return factory(bits)


def check_model(model, spec: Spec, infos: list[LayerInfo]) -> None:
    """Raise :class:`UnsupportedLayerError` for the first layer that would be quantized but has no row."""
    by_name = {info.name: info for info in infos}
    for layer in model.layers:
        if not isinstance(layer, L.InputLayer):
            config_for(layer, spec, by_name.get(layer.name))


def has_quantizers(layer, spec: Spec) -> bool:
    """Whether ``spec`` puts any quantizer on ``layer`` (Flatten, Dropout, pooling have none)."""
    config = config_for(layer, spec)
    return config is not None and not config.is_empty(layer)


def quantized_layer_name(name: str) -> str:
    """The name of float layer ``name`` in the fake-quant model: the wrapper keeps it."""
    return name


# --- the wrapper and the model transform --------------------------------------------------------------------


def _storage(layer, attr: str) -> str:
    """Where ``layer`` keeps ``attr``: Keras 3's Dense and Conv expose ``kernel`` as a property over ``_kernel``."""
    return f"_{attr}" if isinstance(getattr(type(layer), attr, None), property) else attr


class QuantizeWrapper(keras.layers.Layer):
    """Runs ``layer`` with its weights and activation points fake-quantized as ``config`` says, and its
    output too; holds the range variables. Named like the layer it wraps, so selection patterns and
    reports see the same names in the float and the QAT model."""

    def __init__(self, layer: keras.layers.Layer, config: QuantizeConfig, **kwargs):
        kwargs.setdefault("name", layer.name)
        super().__init__(**kwargs)
        self.layer, self.config = layer, config
        self._takes_training = "training" in inspect.signature(layer.call).parameters

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        layer = self.layer
        self._weight_q = {
            attr: (q, q.build(self, attr, tuple(getattr(layer, _storage(layer, attr)).shape)))
            for attr, q in self.config.weights(layer).items()
        }
        self._point_q = {attr: (q, q.build(self, attr, ())) for attr, q in self.config.activations(layer).items()}
        output = self.config.output(layer)
        self._output_q = (output, output.build(self, "output", ())) if output is not None else None
        super().build(input_shape)

    def call(self, inputs, training=None, **kwargs):
        training, layer, saved = bool(training), self.layer, {}
        if self._takes_training:
            kwargs["training"] = training
        try:  # object.__setattr__: a temporary swap, not new state for Keras' tracker
            for attr, (q, state) in self._weight_q.items():
                where = _storage(layer, attr)
                saved[where] = getattr(layer, where)
                object.__setattr__(layer, where, q(saved[where], training, state))
            for attr, (q, state) in self._point_q.items():
                saved[attr] = fn = getattr(layer, attr)
                object.__setattr__(layer, attr, lambda x, fn=fn, q=q, state=state: q(fn(x), training, state))
            outputs = layer.call(inputs, **kwargs)  # kwargs: what the layer was called with (a mask)
        finally:
            for where, value in saved.items():
                object.__setattr__(layer, where, value)
        if self._output_q is not None:
            q, state = self._output_q
            outputs = q(outputs, training, state)
        return outputs

    def compute_output_spec(self, inputs, training=None, **kwargs):
        return self.layer.compute_output_spec(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


class InputQuantize(keras.layers.Layer):
    """Fake-quantizes a model input on the range of all values seen (what the int8 input's scale comes from)."""

    def build(self, input_shape):
        self.quantizer = AllValuesQuantizer()
        self._state = self.quantizer.build(self, "input", ())
        super().build(input_shape)

    def call(self, inputs, training=None):
        return self.quantizer(inputs, bool(training), self._state)

    def compute_output_shape(self, input_shape):
        return input_shape


# --- a user's model: nested models inlined, batch norms folded -----------------------------------------------

#: Layers a BatchNormalization that alone reads their output is folded into (its output channels: the last axis).
_FOLDS_INTO = (L.Conv2D, L.DepthwiseConv2D, L.Dense)


def _is_graph(layer) -> bool:
    return isinstance(layer, keras.Model) and (isinstance(layer, keras.Sequential) or hasattr(layer, "_nodes_by_depth"))


def _inline(model: keras.Model, inputs):
    """``model``'s graph applied to ``inputs`` with its own layers, nested models inlined the same way."""
    graph = (
        model._functional if isinstance(model, keras.Sequential) else model
    )  # Keras 3 keeps Sequential's graph there

    def operation(layer):
        if _is_graph(layer):
            return lambda *args, **kwargs: _inline(layer, args[0] if len(args) == 1 else list(args))
        return layer

    return graph._run_through_graph(inputs, operation_fn=operation)


def flatten(model: keras.Model) -> keras.Model:
    """``model`` with every nested functional or Sequential model inlined (the same layer objects, so the same
    weights): a pretrained base under a user's own head becomes one graph whose layers each get a config.
    A model with nothing nested is returned as it is."""
    if not any(_is_graph(layer) for layer in model.layers):
        return model
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
    single = inputs if len(inputs) > 1 else inputs[0]
    return keras.Model(single, _inline(model, single), name=model.name)


def _foldable(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """``{batch norm name: the layer it folds into}``: a BatchNormalization over the last axis whose only input
    is the output of a Conv2D, DepthwiseConv2D or Dense that nothing else in ``model`` reads (a layer of a
    flattened model also has the nodes of the model it came from: only this graph's nodes count)."""
    nodes = [node for level in model._nodes_by_depth.values() for node in level if node.operation]
    readers: dict[int, int] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            producer = id(tensor._keras_history.operation)
            readers[producer] = readers.get(producer, 0) + 1
    found = {}
    for node in nodes:
        layer = node.operation
        if not isinstance(layer, L.BatchNormalization) or len(node.input_tensors) != 1:
            continue
        rank = len(node.input_tensors[0].shape)
        producer = node.input_tensors[0]._keras_history.operation
        if layer.axis in (-1, rank - 1) and isinstance(producer, _FOLDS_INTO) and readers[id(producer)] == 1:
            found[layer.name] = producer
    return found


def fold_batch_norms(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with each foldable BatchNormalization (:func:`_foldable`) folded into the layer before
    it, as its inference-mode scale and shift (``w * gamma / sqrt(var + eps)``, a bias ``beta + (b - mean) * ...``):
    the QAT clone then fake-quantizes the kernel the int8 file holds, and the statistics stay frozen during
    QAT. The model itself is left as it was; one with nothing to fold is returned as it is."""
    import numpy as np

    folds = _foldable(model)
    if not folds:
        return model
    into = {id(producer): name for name, producer in folds.items()}

    def clone(layer):
        config = layer.get_config()
        if id(layer) in into:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        if layer.name in folds:
            return args[0]  # folded away
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for old in model.layers:
        if not old.weights or old.name in folds:
            continue
        new, weights = folded.get_layer(old.name), old.get_weights()
        if id(old) in into:
            norm = model.get_layer(into[id(old)])
            gamma, beta, mean, var = (
                np.asarray(w)
                for w in (
                    norm.gamma if norm.scale else 1.0,
                    norm.beta if norm.center else 0.0,
                    norm.moving_mean,
                    norm.moving_variance,
                )
            )
            scale = gamma / np.sqrt(var + norm.epsilon)
            kernel = weights[0]
            bias = weights[1] if old.use_bias else np.zeros(scale.shape, kernel.dtype)
            weights = [
                (kernel * scale.reshape(kernel.shape[-2:]) if isinstance(old, L.DepthwiseConv2D) else kernel * scale),
                beta + (bias - mean) * scale,
            ]
            weights = [w.astype(kernel.dtype) for w in weights]
        new.set_weights(weights)
    return folded


def _is_plain_relu(layer) -> bool:
    if isinstance(layer, L.ReLU):
        return layer.max_value is None and not layer.negative_slope and not layer.threshold
    return isinstance(layer, L.Activation) and getattr(layer.activation, "__name__", "") == "relu"


def fuse_relus(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with each plain ReLU layer that alone reads a linear Conv2D, DepthwiseConv2D or Dense
    output made that layer's activation, as the converter fuses it into the int8 op: one fake-quant point (after
    the ReLU) where the int8 file has one output scale, instead of a second on the pre-ReLU values that the file
    never rounds (a DS-CNN's int8 file followed its QAT model on 98.4% of test images with the second point).
    One with nothing to fuse is returned as it is."""
    nodes = [node for level in model._nodes_by_depth.values() for node in level if node.operation]
    readers: dict[int, int] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            readers[id(tensor._keras_history.operation)] = readers.get(id(tensor._keras_history.operation), 0) + 1
    fused = {}
    for node in nodes:
        layer = node.operation
        # A ReLU layer called more than once (one instance after a conv and after an Add) stays a layer.
        calls = sum(1 for other in nodes if other.operation is layer)
        if not _is_plain_relu(layer) or len(node.input_tensors) != 1 or calls != 1:
            continue
        producer = node.input_tensors[0]._keras_history.operation
        linear = getattr(getattr(producer, "activation", None), "__name__", None) == "linear"
        if isinstance(producer, _FOLDS_INTO) and linear and readers[id(producer)] == 1:
            fused[layer.name] = producer
    if not fused:
        return model
    into = {id(producer) for producer in fused.values()}

    def clone(layer):
        config = layer.get_config()
        if id(layer) in into:
            config["activation"] = "relu"
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        return args[0] if layer.name in fused else layer(*args, **kwargs)

    out = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for old in model.layers:
        if old.weights and old.name not in fused:
            out.get_layer(old.name).set_weights(old.get_weights())
    return out


def quantize_model(model: keras.Model, spec: Spec, infos: list[LayerInfo], table: dict | None = None) -> keras.Model:
    """The fake-quant (QAT) clone of a functional Keras 3 ``model``, with its weights; ranges not yet calibrated.

    Every input is fake-quantized; each layer gets its table row's :class:`QuantizeConfig` under ``spec``
    (none when kept float, or when the config quantizes nothing). ``model`` itself is left as it was.
    """
    check_model(model, spec, infos)
    model = fuse_relus(fold_batch_norms(model))
    by_name = {info.name: info for info in infos}
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
    quantized = {id(t): InputQuantize(name=f"{t.name}_quantize")(t) for t in inputs}

    def clone(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        config = config_for(layer, spec, by_name.get(layer.name), table)
        return fresh if config is None or config.is_empty(layer) else QuantizeWrapper(fresh, config)

    def call(layer, *args, **kwargs):
        args = keras.tree.map_structure(lambda t: quantized.get(id(t), t), args)
        return layer(*args, **kwargs)

    qat = keras.models.clone_model(
        model, input_tensors=inputs if len(inputs) > 1 else inputs[0], clone_function=clone, call_function=call
    )
    for old in model.layers:
        if old.weights:
            new = qat.get_layer(old.name)
            (new.layer if isinstance(new, QuantizeWrapper) else new).set_weights(old.get_weights())
    return qat


def custom_objects() -> dict:
    """What Keras needs to rebuild a model of this project: every registered layer and config class."""
    return dict(REGISTERED.objects)


# --- what training and export need from the engine (the tfmot engine has the same functions) ----------------


def checkpoint_state(model: keras.Model) -> dict:
    """What a step checkpoint holds beside ``model`` and its optimizer: every variable of the model by position
    and name (``007_kernel_min``). ``tf.train.Checkpoint(model=...)`` reaches a Keras 3 model's trainable
    weights only: the quantizer ranges the wrappers keep in dicts, and the state of each dropout layer's
    SeedGenerator, stay outside it. ``model.variables`` lists them all, in an order fixed by the model. Not by
    path: a path names layers and SeedGenerators by how many the process made before (``seed_generator_3``), so
    a model built again in the same process would not find its state."""
    return {"variables": {f"{i:03d}_{v.name}": v for i, v in enumerate(model.variables)}}


def dropout_state(model: keras.Model) -> dict:
    """What a dropout mask depends on beyond the seed: the state variable of every SeedGenerator (weight files
    leave it out), keyed by position (a SeedGenerator's name counts those made before it in the process)."""
    return {
        f"seed_{i:03d}": v for i, v in enumerate(model.variables) if v.path.split("/")[-1] == "seed_generator_state"
    }


def weights_file(path: Path) -> Path:
    """Where ``save_weights`` writes for ``path``: Keras 3 writes weights only to ``*.weights.h5``."""
    return path.with_name(f"{path.stem}.weights.h5")


def last_backup(backup_dir: Path) -> str | None:
    """BackupAndRestore's backup in ``backup_dir``: ``latest.weights.h5`` with the model and optimizer variables;
    None before the first epoch ends."""
    path = backup_dir / "latest.weights.h5"
    return str(path) if path.is_file() else None


def backup_readable(backup: str, name: str) -> bool:
    """Whether every tensor of the backup reads back (a cut or emptied file does not); says so when not."""
    import h5py

    from qatzoo.checkpoints import unreadable_reason

    try:
        with h5py.File(backup, "r") as weights:
            weights.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except Exception as error:  # noqa: BLE001 - h5py raises OSError, KeyError, ... for a cut file
        print(
            f"[qatzoo] {name} phase: the backup {backup} is unreadable ({unreadable_reason(error)}); "
            "starting this phase afresh"
        )
        return False
    return True


@contextmanager
def converter(model: keras.Model, spec: tf.TensorSpec) -> Iterator[tf.lite.TFLiteConverter]:
    """A TFLite converter for ``model`` called on ``spec``: through a SavedModel of that one endpoint (the
    converter does not freeze a Keras 3 model's variables from a concrete function), removed afterwards."""
    from qatzoo.quiet import native_output

    with tempfile.TemporaryDirectory(prefix="qatzoo-savedmodel-") as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[spec])
        with native_output("the SavedModel export"):
            archive.write_out(tmp, verbose=False)
        yield tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serve"])


def prepare_seeding() -> None:
    """Before the seed is set: nothing (Keras 3's dropout draws from SeedGenerator state variables)."""
