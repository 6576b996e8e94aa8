"""Loaders named by ``conf/data/*.yaml``: prepare a TFDS dataset (offline for the local builders) and
return :class:`Splits`."""

from __future__ import annotations

import fcntl
import os
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from qatzoo import contract
from qatzoo.data.splits import Splits
from qatzoo.errors import DataError, DataSourceMissing
from qatzoo.signature import Fraction, SourceDir, SplitNames


def _prepared(builder_name: str, data_dir: str, source_dir: str | None = None):
    import tensorflow_datasets as tfds

    import qatzoo.data.builders  # noqa: F401 - registers this project's builders with TFDS

    data_dir = os.path.expanduser(data_dir)
    try:
        builder = tfds.builder(builder_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:  # its text lists every dataset TFDS knows (~450 lines)
        raise DataSourceMissing(
            f"{builder_name}: TFDS knows no dataset of that name, and none is prepared in {data_dir} "
            f"(a prepared one is a folder {builder_name}/VERSION there, as `tfds build` writes it)"
        ) from None
    if builder.is_prepared():
        return builder
    # Processes that start together (a sweep's joblib or Ray workers) share the data directory: one prepares
    # the dataset, the others wait for it (TFDS itself would have them write the same files at once).
    try:
        os.makedirs(data_dir, exist_ok=True)
        lock = open(os.path.join(data_dir, f".{builder_name}.lock"), "a")  # noqa: SIM115 - held below
    except OSError as error:
        raise DataSourceMissing(
            f"{builder_name}: not prepared in {data_dir}, and cannot prepare it there ({error.strerror or error})"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _prepare(tfds.builder(builder_name, data_dir=data_dir), builder_name, data_dir, source_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _prepare(builder, builder_name: str, data_dir: str, source_dir: str | None):
    import tensorflow_datasets as tfds

    if not builder.is_prepared():  # another process may have prepared it while this one waited
        fetch = getattr(type(builder), "default_source", None)
        source_dir = source_dir or (fetch(data_dir) if fetch else None)
        config = tfds.download.DownloadConfig(manual_dir=source_dir) if source_dir else None
        try:
            builder.download_and_prepare(download_config=config)
        except DataSourceMissing:
            raise
        except Exception as error:  # noqa: BLE001 - turned into one line for the user
            raise DataSourceMissing(
                f"{builder_name}: could not prepare it in {data_dir} ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200]}); TFDS's own datasets need internet once - offline, use "
                f"data=mnist_5k or data=fashion_mnist"
            ) from error
    return builder


def _as_arrays(builder, split: str) -> dict[str, np.ndarray]:
    """Every example of TFDS split ``split`` as arrays; a split TFDS cannot read is one DataError line."""
    import tensorflow_datasets as tfds

    try:
        count = builder.info.splits[split].num_examples  # from the dataset's info, before anything is read
        if count > 0:
            dataset = builder.as_dataset(split=split, batch_size=-1, shuffle_files=False)
    except (ValueError, KeyError, AssertionError) as error:  # an unknown split, a bad slice
        splits = ", ".join(builder.info.splits.keys())
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise DataError(
            f"data {builder.name}: split {split!r} cannot be read ({reason}); its splits: {splits}, with TFDS's "
            "slices (train[:90%], train[90%:])"
        ) from None
    if count <= 0:
        raise DataError(f"data {builder.name}: split {split!r} holds no examples")
    return tfds.as_numpy(dataset)


def _check_image_features(name: str, builder: str, features) -> None:
    """One DataError line unless the dataset has an ``image`` feature of one size and a class ``label``."""
    import tensorflow_datasets as tfds

    keys = list(features.keys())
    if "image" not in keys or "label" not in keys:
        raise DataError(
            f"data {name}: the TFDS dataset {builder} has features {', '.join(keys)}, not image and label: "
            "image classification takes an image and a class label per example"
        )
    shape = tuple(features["image"].shape)
    if len(shape) != 3 or None in shape:
        raise DataError(f"data {name}: {builder}'s images have shape {shape}; images of one size are needed")
    if not isinstance(features["label"], tfds.features.ClassLabel):
        raise DataError(f"data {name}: {builder}'s label is {type(features['label']).__name__}, not a class label")


def image_classification(
    *, name: str, builder: str, data_dir: str, splits: SplitNames, source_dir: SourceDir = None
) -> Splits:
    """Images of one size (grey or colour) scaled to [0, 1] (the contract's steps), integer labels; ``splits`` maps
    train/val/test to TFDS splits. ``builder``: this project's builders, or any TFDS dataset prepared in
    ``data_dir`` with ``image`` and ``label`` features (``data=tfds data.builder=NAME``), TFDS's catalog or not."""
    tfds_builder = _prepared(builder, data_dir, source_dir)
    _check_image_features(name, builder, tfds_builder.info.features)
    arrays, raw = {}, {}
    image_shape = tuple(tfds_builder.info.features["image"].shape)
    inputs = contract.image_input(image_shape[:2], channels=image_shape[2])
    for part in ("train", "val", "test"):
        data = _as_arrays(tfds_builder, splits[part])
        raw[part] = data["image"][..., 0] if image_shape[2] == 1 else data["image"]
        arrays[f"x_{part}"] = contract.preprocess(inputs, raw[part])
        arrays[f"y_{part}"] = data["label"].astype(np.int32)
    labels = tfds_builder.info.features["label"]
    return Splits(
        name=name,
        task="classification",
        num_outputs=labels.num_classes,
        info={"builder": builder, "version": str(tfds_builder.info.version), "splits": dict(splits)},
        contract={"input": inputs, "output": contract.classes_output(labels.names)},
        raw={"x_test": raw["test"]},
        **arrays,
    )


def co2_forecast(
    *,
    name: str,
    data_dir: str,
    window: Annotated[int, Field(ge=2, le=1000)],
    horizon: Annotated[int, Field(ge=1, le=104)],
    val_fraction: Fraction,
    test_fraction: Fraction,
    encoding: Literal["relative", "differences"] = "relative",
) -> Splits:
    """Windows of the weekly CO2 series, each expressed relative to its last observed value, or as the weekly
    changes (``encoding`` differences: robust to drift) (:func:`forecast_windows`)."""
    builder = _prepared("co2_weekly", data_dir)
    full = _as_arrays(builder, "full")
    info = {"builder": "co2_weekly", "version": str(builder.info.version)}
    extra = {"filled_weeks": int(full["filled"].sum())}
    series = full["co2"].astype(np.float64)
    splits = forecast_windows(
        name, series, window, horizon, val_fraction, test_fraction, "ppm", "weekly", "week", info, extra, encoding
    )
    splits.raw["dates"] = [d.decode() if isinstance(d, bytes) else str(d) for d in full["date"]]  # ISO, per week
    return splits


#: The electricity demand series, by ``data.source``: where they come from (:mod:`qatzoo.data.sources`), the
#: length of a step and the seasonal periods (a day, a week) in steps.
ELECTRICITY = {
    "taylor": {"frequency": "half-hourly", "period": "half-hour", "seasonal_periods": [48, 336]},
    "vic_elec": {"frequency": "hourly", "period": "hour", "seasonal_periods": [24, 168]},
}


def electricity_forecast(
    *,
    name: str,
    data_dir: str,
    source: Literal["taylor", "vic_elec"],
    window: Annotated[int, Field(ge=2, le=2000)],
    horizon: Annotated[int, Field(ge=1, le=336)],
    val_fraction: Fraction,
    test_fraction: Fraction,
    encoding: Literal["relative", "differences"] = "relative",
) -> Splits:
    """Windows of an electricity demand series (MW), each relative to its last observed value, split
    chronologically (:func:`forecast_windows`): ``source`` taylor (half-hourly, England and Wales, summer 2000)
    or vic_elec (hourly, Victoria, 2012). Both have a daily and a weekly cycle (``info["seasonal_periods"]``)."""
    from qatzoo.data import sources

    about = ELECTRICITY[source]
    if source == "taylor":
        series, dates = sources.taylor(os.path.expanduser(data_dir))
        info = {"builder": "taylor", "version": f"pmdarima {sources.PMDARIMA_WHEEL.version}"}
    else:
        series, dates = sources.vic_elec()
        info = {"builder": "vic_elec", "version": "statsmodels 0.15.0"}
    info["seasonal_periods"] = list(about["seasonal_periods"])
    info["period"] = about["period"]
    splits = forecast_windows(
        name,
        series,
        window,
        horizon,
        val_fraction,
        test_fraction,
        "MW",
        about["frequency"],
        about["period"],
        info,
        encoding=encoding,
    )
    splits.raw["dates"] = dates
    return splits


def forecast_windows(
    name: str,
    series: np.ndarray,
    window: int,
    horizon: int,
    val_fraction: float,
    test_fraction: float,
    unit: str,
    frequency: str,
    period: str,
    info: dict,
    extra: dict | None = None,
    encoding: str = "relative",
) -> Splits:
    """A univariate series as a forecaster's windows, split chronologically.

    The series is split chronologically (train, then validation, then test steps). A window's inputs
    are ``window`` values, its targets the next ``horizon`` values; a window belongs to the part that
    holds its first target. Inputs and targets are ``(value - last input value) / scale`` with
    ``scale`` the standard deviation of the training windows' relative inputs, so the level of a
    trending series never leaves the int8 input range. MAE in ``unit`` is ``scale`` times MAE in these units.

    ``encoding`` differences: the inputs are instead the ``window`` changes between the last ``window + 1``
    values, divided by their standard deviation over the training windows (``info["input_scale"]``); the targets
    stay as above. A trend steeper than the training years' or a level shift moves these inputs little, so the
    int8 input range holds under drift (:func:`qatzoo.contract.series_input`).
    """
    n = len(series)
    n_test, n_val = round(test_fraction * n), round(val_fraction * n)
    first_val, first_test = n - n_test - n_val, n - n_test
    history = window + (encoding == "differences")  # raw values a window needs
    starts = np.arange(history, n - horizon + 1)  # index of the first target step
    if first_val - horizon <= history or not (starts >= first_test).any():
        raise DataError(
            f"data {name}: {n} values are too few for window {window} and horizon {horizon} with these fractions "
            "(each part needs whole windows)"
        )
    inputs = np.stack([series[s - history : s] for s in starts])
    targets = np.stack([series[s : s + horizon] for s in starts])
    part = np.where(starts < first_val, 0, np.where(starts < first_test, 1, 2))
    # Training windows must not see validation or test steps among their targets either.
    train = (part == 0) & (starts + horizon <= first_val)
    scale = float(np.std((inputs - inputs[:, -1:])[train]))
    if not scale > 0:
        raise DataError(f"data {name}: the training windows do not vary (a constant series cannot be scaled)")
    extra = dict(extra or {})
    if encoding == "differences":
        input_scale = float(np.std(np.diff(inputs[train], axis=1)))
        if not input_scale > 0:
            raise DataError(f"data {name}: the training windows do not change (a constant series cannot be scaled)")
        model_inputs = contract.series_input(window, input_scale, unit, frequency, encoding="differences")
        extra.update(encoding="differences", input_scale=input_scale)
    else:
        model_inputs = contract.series_input(window, scale, unit=unit, frequency=frequency)
    model_outputs = contract.forecast_output(horizon, scale, unit=unit, period=period)
    arrays = {}
    for key, mask in (("train", train), ("val", part == 1), ("test", part == 2)):
        arrays[f"x_{key}"] = contract.preprocess(model_inputs, inputs[mask])
        arrays[f"y_{key}"] = contract.targets(model_outputs["steps"], inputs[mask], targets[mask])
    return Splits(
        name=name,
        task="forecast",
        num_outputs=horizon,
        target_scale=scale,
        target_unit=unit,
        info={
            **info,
            "weeks" if period == "week" else "steps": n,
            **extra,
            "first_val_week" if period == "week" else "first_val_step": int(first_val),
            "first_test_week" if period == "week" else "first_test_step": int(first_test),
            "window": window,
            "horizon": horizon,
            "scale": scale,
        },
        contract={"input": model_inputs, "output": model_outputs},
        raw={
            "series": series,
            "test_starts": starts[part == 2],
            "x_test": inputs[part == 2],
            "y_test": targets[part == 2],
        },
        **arrays,
    )
