"""``build(cfg)``: the data, the model and the quantization scheme of a composed config.

One place turns a validated config into objects; the trainer, sensitivity analysis and the benchmark
use it. The config is the project's own (composed by Hydra from conf/ and the command line), so its
``_target_`` functions are instantiated here; nothing read from outside (an index, a run directory)
comes this way - those go through :mod:`qatzoo.data.catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf


@dataclass
class Built:
    """What a run trains and exports: ``data`` (splits carrying their Task), ``model`` (float), ``scheme``."""

    data: object
    model: object
    scheme: object


def load_data(cfg: DictConfig):
    """The data group's Splits; its one-line errors (missing source, non-finite values) unwrapped from Hydra's."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from qatzoo.errors import DataError, DataSourceMissing

    try:
        return instantiate(kwargs(cfg.data, drop=("task",)))
    except InstantiationException as error:
        if isinstance(error.__cause__, (DataError, DataSourceMissing)):
            raise error.__cause__ from None
        raise


def build_model(cfg: DictConfig, data, strategy=None):
    """The float functional model of ``cfg.arch`` for ``data``'s input shape and outputs (under ``strategy``)."""
    from hydra.utils import instantiate

    from qatzoo.train import distribute

    with distribute.scope(strategy):  # the model's variables are mirrored on every replica
        return instantiate(kwargs(cfg.arch), input_shape=data.input_shape, num_outputs=data.num_outputs)


def build_scheme(quant: DictConfig):
    """The :class:`~qatzoo.quant.schemes.Scheme` of a ``quant`` option."""
    from hydra.utils import instantiate

    return instantiate(quant, _convert_="all")


def build(cfg: DictConfig, strategy=None) -> Built:
    """Data, model and scheme; the scheme is checked against the model (a keep-float pattern that
    matches nothing or a layer without a QuantizeConfig fails here, before any training)."""
    data = load_data(cfg)
    model = build_model(cfg, data, strategy)
    scheme = build_scheme(cfg.quant)
    scheme.check(model)
    return Built(data=data, model=model, scheme=scheme)


def kwargs(node: DictConfig, drop: tuple[str, ...] = ("name", "task")) -> DictConfig:
    """A group's config without the descriptive keys that are not arguments of its ``_target_``."""
    return OmegaConf.create({k: v for k, v in node.items() if k not in drop} | {"_convert_": "all"})
