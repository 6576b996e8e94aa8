"""The data, the model and the quantization scheme of a validated :class:`~qatzoo.schema.RunConfig`.

The config is the project's own or a user's own (composed by Hydra from conf/, a ``--config-dir`` and the
command line), so the functions its ``arch`` and ``data`` options name are called here, with the arguments
the schema checked against their signatures. Nothing read from outside (an index, a run directory) comes
this way: that goes through :mod:`qatzoo.data.catalog`.
"""

from __future__ import annotations

from hydra.utils import get_method

from qatzoo.schema import Arch, Data, Group


def load_data(data: Data):
    """The ``data`` option's Splits (its loader's own one-line DataError / DataSourceMissing pass through)."""
    return get_method(data.target)(**data.arguments)


def build_model(arch: Arch, data):
    """The float functional model of ``arch`` for ``data``'s input shape and outputs, nested models inlined
    where the engine can. Under a distribution strategy, call it in the strategy's scope
    (``qatzoo.train.distribute.scope``): the model's variables are then mirrored on every replica."""
    from qatzoo.quant.schemes import engine_module

    model = get_method(arch.target)(input_shape=data.input_shape, num_outputs=data.num_outputs, **arch.arguments)
    return engine_module().flatten(model)  # a base model nested under a head: one graph (Keras 3)


def build_scheme(quant: Group):
    """The :class:`~qatzoo.quant.schemes.Scheme` of a ``quant`` option."""
    from qatzoo.quant.schemes import scheme

    return scheme(**quant.model_dump(exclude={"target"}, exclude_unset=True))
