"""The project's own table of datasets, by name, for commands that rebuild a dataset from data.

``qatzoo verify`` and ``qatzoo publish`` re-measure an int8 model on its test split. What they know
of the dataset comes from outside (a zoo index, a run directory's config.yaml), so it is never
instantiated: the loader is looked up here by the dataset's name, and only its declared parameters
are taken, each checked for type and range. The table is read from one declaration, the dataset's YAML
file in the package's ``conf/data`` (:func:`table`): everything in it but the loader's numeric arguments
(TFDS builder, splits, where the files live) is fixed; the numeric arguments are the parameters, with the
bounds of the loader's signature (:mod:`qatzoo.signature`), the same declaration the config schema checks a
run against, so a run the schema accepts is one publish and verify can rebuild. Adding a dataset of an
existing kind is its YAML file alone.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qatzoo.artifacts import finite
from qatzoo.data.splits import Splits


class CatalogError(ValueError):
    """A dataset name or parameter this table does not accept; ``str()`` is one line."""


@dataclass(frozen=True)
class Param:
    """One parameter a dataset takes from outside: a plain int or float within [low, high]."""

    kind: type
    low: float
    high: float

    def check(self, dataset: str, key: str, value: Any) -> int | float:
        integer_ok = self.kind is not int or isinstance(value, int)
        if not finite(value) or not integer_ok or not self.low <= value <= self.high:
            kind = "an integer" if self.kind is int else "a number"
            raise CatalogError(
                f"dataset {dataset}: {key} must be {kind} in [{self.low:g}, {self.high:g}], got {value!r}"
            )
        return value


def _numbers(loader: str, fixed: dict) -> dict[str, Param]:
    """The loader's int and float arguments that ``fixed`` does not set, with the bounds of its signature."""
    from qatzoo.signature import arguments_model

    params = {}
    for key, info in arguments_model(f"qatzoo.data.load.{loader}").model_fields.items():
        if info.annotation not in (int, float) or key in fixed:
            continue
        low = next((getattr(m, k) for m in info.metadata for k in ("ge", "gt") if hasattr(m, k)), -math.inf)
        high = next((getattr(m, k) for m in info.metadata for k in ("le", "lt") if hasattr(m, k)), math.inf)
        params[key] = Param(info.annotation, low, high)
    return params


@dataclass(frozen=True)
class Dataset:
    """A loader of :mod:`qatzoo.data.load`, its fixed arguments and the parameters it takes from outside."""

    loader: str
    fixed: dict = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Param]:
        return _numbers(self.loader, self.fixed)

    def build(self, name: str, params: dict, data_dir: str) -> Splits:
        from qatzoo.data import load

        kwargs = {key: spec.check(name, key, params[key]) for key, spec in self.params.items() if key in params}
        missing = sorted(set(self.params) - set(kwargs))
        if missing:
            raise CatalogError(f"dataset {name}: missing parameter(s) {', '.join(missing)}")
        return getattr(load, self.loader)(name=name, data_dir=os.path.expanduser(data_dir), **self.fixed, **kwargs)


#: Keys of a dataset's YAML that are not loader arguments taken from outside data.
_NOT_FIXED = {"_target_", "name", "task", "data_dir"}
_LOADERS = "qatzoo.data.load."


def table(conf_dir: Path | None = None) -> dict[str, Dataset]:
    """The datasets of the package's own ``conf/data/*.yaml`` (never a user's config folder: outside data may
    rebuild only the project's datasets), each declared once, in its YAML file: the loader its ``_target_``
    names in :mod:`qatzoo.data.load`; the loader's numeric arguments are the parameters taken from outside
    (bounds from its signature); every other key of the file is fixed. A user's own data files
    (``qatzoo.data.files``) and options with a value the user must give (``???``: ``data=tfds``) are not in it."""
    import yaml

    conf_dir = conf_dir or Path(__file__).resolve().parents[1] / "conf"  # qatzoo.config.CONF_DIR, without Hydra
    datasets = {}
    for path in sorted(Path(conf_dir, "data").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())  # the package's own file, not outside data
        target = spec.get("_target_", "")
        if not target.startswith(_LOADERS) or spec.get("name") != path.stem or "???" in spec.values():
            continue  # a user's file, or a choice the user completes (data=tfds data.builder=NAME)
        loader = target.removeprefix(_LOADERS)
        numeric = set(_numbers(loader, {}))
        fixed = {k: v for k, v in spec.items() if k not in _NOT_FIXED and k not in numeric}
        datasets[path.stem] = Dataset(loader, fixed=fixed)
    return datasets


DATASETS: dict[str, Dataset] = table()


def data_dir(explicit: str | None = None, recorded: str | None = None) -> str:
    """Where a command rebuilds a dataset (publish, verify, sensitivity alike): ``--data-dir``, else
    ``$TFDS_DATA_DIR``, else the directory the run recorded (``recorded``, when there is a run), else TFDS's
    default."""
    chosen = explicit or os.environ.get("TFDS_DATA_DIR") or (recorded if isinstance(recorded, str) else None)
    return chosen or "~/tensorflow_datasets"


def dataset(name: str) -> Dataset:
    if not isinstance(name, str) or name not in DATASETS:
        raise CatalogError(f"unknown dataset {name!r}; this version of qatzoo knows: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def build(name: str, params: dict, data_dir: str) -> Splits:
    """The splits of dataset ``name`` with the declared ``params`` (other keys are ignored)."""
    if not isinstance(params, dict):
        raise CatalogError(f"dataset {name}: parameters must be a mapping, got {type(params).__name__}")
    return dataset(name).build(name, params, data_dir)
