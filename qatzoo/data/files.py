"""A user's own data from a file: ``data=arrays`` (a .npz of images and labels) and ``data=series`` (a CSV
column as a forecaster's series).

    python train.py arch=mnist_cnn data=arrays data.path=digits.npz
    python train.py recipe=attention_int8 data=series data.path=load.csv data.column=demand data.unit=MW

The file is data: a .npz is read without pickles (``allow_pickle=False``), its members' sizes checked
before any is read; a CSV is parsed as numbers only. Every problem (a missing key, a shape, a dtype, NaN,
an object array, a pickle) is one :class:`~qatzoo.errors.DataError` line naming the file and the key. The
file's sha256 goes in the splits' ``info`` (and from there in the run's provenance), so ``publish`` can
re-measure from the same file and say when the file changed.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
from pydantic import Field

from qatzoo import contract
from qatzoo.data.load import forecast_windows
from qatzoo.data.splits import Splits
from qatzoo.errors import DataError
from qatzoo.signature import DataFile, Fraction

#: The largest file read (a member of a .npz, or a CSV): 4 GiB.
MAX_BYTES = 4 << 30
KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")


def _opened(name: str, path: str) -> tuple[Path, bytes]:
    """The regular file ``path`` (``~`` expanded) and its bytes, or one DataError line."""
    file = Path(os.path.expanduser(path))
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO is refused below, not waited on
    except OSError as error:
        raise DataError(f"data {name}: cannot open {path} ({error.strerror or error})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"data {name}: {path} is not a regular file")
        if info.st_size > MAX_BYTES:
            raise DataError(f"data {name}: {path} is {info.st_size:,} bytes, more than {MAX_BYTES:,}")
        return file, f.read()


def file_info(path: Path, blob: bytes) -> dict:
    """What a run records of its data file: its path (absolute) and sha256."""
    return {"file": str(path.absolute()), "file_sha256": hashlib.sha256(blob).hexdigest()}


def _npz(name: str, path: str) -> tuple[dict[str, np.ndarray], dict]:
    import io

    file, blob = _opened(name, path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        members = {m.filename: m for m in archive.infolist()}
    except zipfile.BadZipFile:
        raise DataError(f"data {name}: {path} is not a .npz file (np.savez writes one)") from None
    found = {key for key in (*KEYS, *OPTIONAL) if f"{key}.npy" in members}
    missing = [key for key in KEYS if key not in found]
    if missing:
        held = ", ".join(sorted(m.removesuffix(".npy") for m in members)) or "nothing"
        raise DataError(
            f"data {name}: {path} has no {', '.join(missing)} (it holds {held}); see README, 'Your own data'"
        )
    if ("x_val" in found) != ("y_val" in found):
        raise DataError(f"data {name}: {path} has one of x_val, y_val without the other")
    total = sum(members[f"{key}.npy"].file_size for key in found)
    if total > MAX_BYTES:
        raise DataError(f"data {name}: {path} inflates to {total:,} bytes, more than {MAX_BYTES:,}")
    arrays = {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        for key in sorted(found):
            try:
                arrays[key] = npz[key]
            except ValueError as error:  # an object array: it would need a pickle
                raise DataError(f"data {name}: {path}: {key} cannot be read without pickles ({error})") from None
    return arrays, file_info(file, blob)


def _check_images(name: str, path: str, arrays: dict) -> tuple[int, ...]:
    shape = None
    for part in ("train", "val", "test"):
        x, y = arrays.get(f"x_{part}"), arrays.get(f"y_{part}")
        if x is None:
            continue
        pixels = x.dtype == np.uint8 or x.dtype in (np.float32, np.float64)
        if not pixels or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise DataError(
                f"data {name}: {path}: x_{part} is {x.dtype} {x.shape}; expected uint8 (or float) images (N, H, W) "
                "or (N, H, W, C) with C 1 or 3"
            )
        if (x.dtype == np.uint8) != (arrays["x_train"].dtype == np.uint8):
            raise DataError(f"data {name}: {path}: x_{part} is {x.dtype}, x_train {arrays['x_train'].dtype}")
        if x.dtype != np.uint8 and not np.all(np.isfinite(x)):
            raise DataError(f"data {name}: {path}: x_{part} holds {int(np.sum(~np.isfinite(x)))} non-finite values")
        labels = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
        values = y.ndim in (1, 2) and np.issubdtype(y.dtype, np.floating)
        if not (labels or values) or len(y) != len(x):
            raise DataError(
                f"data {name}: {path}: y_{part} is {y.dtype} {y.shape}; expected {len(x)} integer labels (N,) or "
                f"float targets (N,) or (N, K)"
            )
        if np.issubdtype(y.dtype, np.floating) != np.issubdtype(arrays["y_train"].dtype, np.floating):
            raise DataError(f"data {name}: {path}: y_{part} is {y.dtype}, y_train {arrays['y_train'].dtype}")
        if len(x) == 0:
            raise DataError(f"data {name}: {path}: x_{part} holds no examples")
        if values and not np.all(np.isfinite(y)):
            raise DataError(f"data {name}: {path}: y_{part} holds {int(np.sum(~np.isfinite(y)))} non-finite targets")
        if labels and y.min() < 0:
            raise DataError(f"data {name}: {path}: y_{part} holds a negative label ({int(y.min())})")
        if shape is not None and x.shape[1:] != shape:
            raise DataError(f"data {name}: {path}: x_{part} images are {x.shape[1:]}, x_train's are {shape}")
        shape = x.shape[1:]
    return shape


def arrays(
    *,
    name: str,
    path: DataFile,
    val_fraction: Fraction = 0.1,
    classes: Optional[list[str]] = None,  # noqa: UP045 - evaluated from source text
    unit: str = "",
) -> Splits:
    """Images and integer labels from a .npz with ``x_train, y_train, x_test, y_test`` (optional ``x_val,
    y_val``; else the last ``val_fraction`` of the training examples): uint8 images (N, H, W) or (N, H, W, C),
    scaled to [0, 1] as the contract says; labels 0..K-1, named by ``classes`` (default: their numbers), or
    float targets (N,) or (N, K) in ``unit`` for a regression (``data.task=regression``)."""
    data, info = _npz(name, path)
    return image_splits(name, data, {"builder": "arrays", **info}, val_fraction, classes, where=path, unit=unit)


def image_splits(
    name: str,
    data: dict[str, np.ndarray],
    info: dict,
    val_fraction: float = 0.1,
    classes: list[str] | None = None,
    where: str = "the arrays",
    unit: str = "",
) -> Splits:
    """The Splits of uint8 images and integer labels or float targets ``data`` (``x_train, y_train, x_test,
    y_test``, optional ``x_val, y_val``): what :func:`arrays` reads from a file, and what
    :func:`qatzoo.api.train` is given. Float targets make a regression: divided by the training targets'
    spread after their mean is taken off (the contract's output steps undo it), scored as MAE in ``unit``."""
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise DataError(f"data {name}: {where} has no {', '.join(missing)}")
    data = {key: np.asarray(value) for key, value in data.items() if key in (*KEYS, *OPTIONAL)}
    image_shape = _check_images(name, where, data)
    if "x_val" not in data:
        n = len(data["x_train"])
        cut = n - max(1, round(val_fraction * n))
        if cut < 1:
            raise DataError(f"data {name}: {where}: x_train holds {n} examples, too few to hold out validation")
        data["x_val"], data["y_val"] = data["x_train"][cut:], data["y_train"][cut:]
        data["x_train"], data["y_train"] = data["x_train"][:cut], data["y_train"][:cut]
    if np.issubdtype(data["y_train"].dtype, np.floating):
        return _regression_splits(name, data, info, image_shape, unit)
    labels = int(max(int(data[f"y_{p}"].max()) for p in ("train", "val", "test"))) + 1
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(labels)]
    if len(names) < labels:
        raise DataError(f"data {name}: data.classes names {len(names)} classes, the labels reach {labels - 1}")
    inputs, grey = _images(image_shape, data["x_train"])
    out = {}
    for part in ("train", "val", "test"):
        raw = data[f"x_{part}"][..., 0] if grey else data[f"x_{part}"]
        out[f"x_{part}"] = contract.preprocess(inputs, raw)
        out[f"y_{part}"] = data[f"y_{part}"].astype(np.int32)
    return Splits(
        name=name,
        task="classification",
        num_outputs=len(names),
        info=info,
        contract={"input": inputs, "output": contract.classes_output(names)},
        raw={"x_test": data["x_test"][..., 0] if grey else data["x_test"]},
        **out,
    )


def _images(image_shape: tuple[int, ...], x_train: np.ndarray) -> tuple[dict, bool]:
    """The contract's image input for ``image_shape`` ((H, W) or (H, W, C)), and whether its channel is dropped:
    uint8 pixels / 255, or float images as they are (their training range recorded)."""
    channels = image_shape[2] if len(image_shape) == 3 else 1
    value_range = None if x_train.dtype == np.uint8 else (float(x_train.min()), float(x_train.max()))
    inputs = contract.image_input(image_shape[:2], channels=channels, value_range=value_range)
    return inputs, len(image_shape) == 3 and channels == 1


def _regression_splits(name: str, data: dict, info: dict, image_shape: tuple[int, ...], unit: str) -> Splits:
    inputs, grey = _images(image_shape, data["x_train"])
    train = data["y_train"].astype(np.float64)
    offset, scale = float(train.mean()), float(train.std()) or 1.0
    out = {}
    for part in ("train", "val", "test"):
        raw = data[f"x_{part}"][..., 0] if grey else data[f"x_{part}"]
        out[f"x_{part}"] = contract.preprocess(inputs, raw)
        y = (data[f"y_{part}"].astype(np.float64) - offset) / scale
        out[f"y_{part}"] = (y[:, None] if y.ndim == 1 else y).astype(np.float32)
    count = out["y_train"].shape[1]
    return Splits(
        name=name,
        task="regression",
        num_outputs=count,
        target_scale=scale,
        target_unit=unit,
        info=info,
        contract={"input": inputs, "output": contract.values_output(count, scale, offset, unit)},
        raw={"x_test": data["x_test"][..., 0] if grey else data["x_test"]},
        **out,
    )


def _column(name: str, path: str, column: str) -> tuple[np.ndarray, dict]:
    file, blob = _opened(name, path)
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"data {name}: {path} is not UTF-8 text") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise DataError(f"data {name}: {path} is empty")
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise DataError(f"data {name}: {path} has no column {column!r}; its columns: {', '.join(header)[:300]}")
    at, values = header.index(column), []
    for line, row in enumerate(rows[1:], start=2):
        cell = row[at].strip() if at < len(row) else ""
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DataError(
                f"data {name}: {path} line {line}: {column} is {cell!r}, not a finite number (fill or drop gaps "
                "before training: a forecaster's windows need every step)"
            )
        values.append(value)
    return np.asarray(values, dtype=np.float64), file_info(file, blob)


def series(
    *,
    name: str,
    path: DataFile,
    column: str,
    window: Annotated[int, Field(ge=2, le=10000)],
    horizon: Annotated[int, Field(ge=1, le=1000)],
    val_fraction: Fraction = 0.15,
    test_fraction: Fraction = 0.15,
    unit: str = "",
    frequency: str = "step",
) -> Splits:
    """The column ``column`` of a CSV with a header, one row per step in time order, as the forecaster's
    windows (:func:`qatzoo.data.load.forecast_windows`): inputs ``window`` steps, targets the next ``horizon``,
    chronological splits; MAE in ``unit``."""
    values, info = _column(name, path, column)
    info = {"builder": "series", **info, "column": column}
    return forecast_windows(name, values, window, horizon, val_fraction, test_fraction, unit, frequency, "step", info)


#: The loaders of a user's data file, by the ``_target_`` a run's config.yaml records for them.
LOADERS = {"qatzoo.data.files.arrays": "arrays", "qatzoo.data.files.series": "series"}


def from_run(data: dict, recorded: dict) -> Splits | None:
    """The splits a run trained on, rebuilt from its own data file, for ``publish`` to re-measure on; None
    when the run's data is not a user's file (the project's datasets come from the catalog).

    ``data``: the run's config.yaml ``data`` section; ``recorded``: its provenance's ``dataset`` (the file's
    absolute path and sha256, as the run read it). Both come from a run directory, so they are data: the
    loader is looked up in :data:`LOADERS` (never imported from the text), and only its declared arguments are
    taken, checked against its signature. A file that is gone, or whose sha256 differs from the one the run
    read, is one :class:`DataError` line: numbers are never published for data that cannot be checked."""
    from pydantic import ValidationError

    from qatzoo.artifacts import one_line
    from qatzoo.signature import arguments_model

    target = data.get("_target_")
    if target not in LOADERS:
        return None
    file, sha256 = recorded.get("file"), recorded.get("file_sha256")
    if not isinstance(file, str) or not isinstance(sha256, str):
        raise DataError("the run recorded no data file and sha256 in its provenance")
    fields = arguments_model(target).model_fields
    try:
        kwargs = arguments_model(target).model_validate(
            {key: value for key, value in data.items() if key in fields} | {"path": file}
        )
    except ValidationError as error:
        raise DataError(one_line(error, "data.")) from None
    splits = globals()[LOADERS[target]](**dict(kwargs))
    if splits.info.get("file_sha256") != sha256:
        raise DataError(
            f"{file} changed since the run read it (sha256 {str(splits.info.get('file_sha256'))[:12]}..., the run "
            f"read {sha256[:12]}...)"
        )
    return splits
