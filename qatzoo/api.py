"""Your own Keras model through a recipe's whole path, from Python.

    import keras, qatzoo.api

    model = keras.Sequential([...])                      # or a factory f(*, input_shape, num_outputs)
    metrics = qatzoo.api.train(model, "digits.npz", quant="int8", schedule={"float_epochs": 3, "qat_epochs": 1})
    print(metrics["run_dir"], metrics["int8"]["full_integer"])

The run is the trainer's (:func:`qatzoo.train.trainer.train`): float phase (skipped with ``float_epochs=0``
for a model you trained yourself), QAT, int8 export, every number measured on the int8 file in LiteRT, the
deployment report, contract, card and metrics.json, in an ordinary run directory that ``qatzoo publish``,
``qatzoo predict`` and ``Model.from_run`` take. The config is the project's (``qatzoo/conf``), composed for
``quant`` and ``overrides`` and validated by the same schema; only the model and the data come from here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qatzoo.errors import DataError

__all__ = ["given_data", "given_model", "train"]

#: The model and data of the call in progress (one per process, as the engine is).
_GIVEN: dict[str, Any] = {}


def given_model(*, input_shape, num_outputs):
    """The ``arch`` of a :func:`train` call: the model it was given, or its factory's model."""
    model = _GIVEN["model"]
    if callable(model) and not hasattr(model, "layers"):
        return model(input_shape=input_shape, num_outputs=num_outputs)
    return model


def given_data(*, name: str):
    """The ``data`` of a :func:`train` call: the splits of the arrays it was given."""
    return _GIVEN["data"]


def _splits(data, name: str, val_fraction: float, classes, unit: str = ""):
    """The Splits of ``data``: arrays by key, or ``tf.data`` datasets of ``(image, label)`` by part."""
    import numpy as np

    from qatzoo.data.files import image_splits

    if not isinstance(data, Mapping):
        raise DataError(
            "data: expected a .npz path or a mapping of x_train, y_train, x_test, y_test (or train, test "
            f"tf.data datasets), got {type(data).__name__}"
        )
    arrays = {}
    for key, value in data.items():
        if key in ("train", "val", "test"):  # a tf.data.Dataset of (image, label) examples
            xs, ys = zip(*value.as_numpy_iterator(), strict=True) if value is not None else ((), ())
            arrays[f"x_{key}"], arrays[f"y_{key}"] = np.stack(xs), np.asarray(ys)
        else:
            arrays[key] = np.asarray(value)
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
    info = {"builder": "python", "arrays_sha256": digest.hexdigest()}
    return image_splits(name, arrays, info, val_fraction, classes, unit=unit)


def _task_of(data) -> str:
    """``regression`` for float targets (``y_train``), else ``classification`` (a bad file is the loader's to
    name, in its own one line)."""
    import numpy as np

    try:
        if isinstance(data, (str, os.PathLike)):
            with np.load(os.path.expanduser(os.fspath(data)), allow_pickle=False) as npz:
                y = npz["y_train"] if "y_train" in npz.files else None
        else:
            y = data.get("y_train") if hasattr(data, "get") else None
        floating = y is not None and hasattr(y, "dtype") and np.issubdtype(np.asarray(y).dtype, np.floating)
    except (OSError, ValueError, KeyError):
        floating = False
    return "regression" if floating else "classification"


def train(
    model,
    data,
    *,
    quant: str = "int8",
    schedule: Mapping[str, Any] | None = None,
    overrides: list[str] = (),
    run_dir: str | Path | None = None,
    name: str = "python",
    task: str | None = None,
    val_fraction: float = 0.1,
    classes: list[str] | None = None,
    unit: str = "",
) -> dict:
    """Run ``model`` through float training, QAT (``quant``: an option of ``qatzoo/conf/quant``), int8 export,
    evaluation in LiteRT and the deployment report; returns metrics.json's content plus ``run_dir``.

    ``model``: a built Keras 3 model (a nested base under your own head is inlined), or a factory
    ``f(*, input_shape, num_outputs)`` (a ``"module.function"`` name, or the function itself).
    ``data``: a ``.npz`` path (as ``data=arrays``: uint8 images and integer labels), a mapping of the same
    arrays (``x_train, y_train, x_test, y_test``, optional ``x_val, y_val``), or of ``tf.data`` datasets of
    ``(image, label)`` examples (``train``, ``test``, optional ``val``). Float targets (N,) or (N, K) make a
    regression (``task``, default: from ``y_train``'s dtype), scored as MAE in ``unit``.
    ``schedule``: fields of the ``schedule`` group (``float_epochs``, ``qat_epochs``, ``batch_size``, ``lr``,
    ``qat_lr``); ``overrides``: any other ``KEY=VALUE`` of the command line (``trainer.deployment=false``).
    Bad input is a :class:`~qatzoo.errors.ConfigError` or :class:`~qatzoo.errors.DataError`, one line.
    """
    from omegaconf import open_dict

    from qatzoo import config

    fields = [f"schedule.{key}={value}" for key, value in (schedule or {}).items()]
    is_file = isinstance(data, (str, os.PathLike))
    task = task or _task_of(data)
    data_args = ["data=arrays", f"data.path={os.fspath(data)}"] if is_file else []
    data_args += [f"data.unit={unit}"] if is_file and unit else []
    cfg = config.check_overrides([f"quant={quant}", f"name={name}", *data_args, *fields, *overrides])
    target = model if isinstance(model, str) else None
    if target is None and callable(model) and not hasattr(model, "layers"):
        module, qualname = getattr(model, "__module__", ""), getattr(model, "__qualname__", "")
        target = f"{module}.{qualname}" if module and "<" not in qualname and module != "__main__" else None
    _GIVEN.clear()
    _GIVEN["model"] = model
    with open_dict(cfg):
        label = getattr(model, "name", None) or getattr(model, "__name__", None) or str(model)
        cfg.arch = {"_target_": target or "qatzoo.api.given_model", "name": str(label), "task": task}
        if not is_file:
            cfg.data = {"_target_": "qatzoo.api.given_data", "name": name, "task": task}
        cfg.data.task = task  # with the model's own task: the default arch (a classifier) no longer counts
    run_config = config.validate(cfg)  # the same schema as the command line: a factory's arguments checked
    from qatzoo import engine, quiet

    quiet.configure(run_config.trainer.verbose)  # TensorFlow's start-up lines, unless trainer.verbose=3

    engine.select(run_config.engine.name)
    from qatzoo.train.trainer import train as run

    if not is_file:
        _GIVEN["data"] = _splits(data, name, val_fraction, classes, unit)
    where = (
        Path(run_dir) if run_dir else Path(run_config.paths.runs_dir) / name / f"{dt.datetime.now():%Y-%m-%d_%H-%M-%S}"
    )
    try:
        said = " ".join([f"quant={quant}", *fields, *overrides])
        metrics = run(run_config, where, command=f"qatzoo.api.train(model, data) in Python with {said}")
    finally:
        _GIVEN.clear()
    return {**metrics, "run_dir": str(where)}
