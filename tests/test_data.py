"""The datasets: real, offline, split as documented, and a missing source is one clear line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from qatzoo.data.builders import FASHION_MNIST_DIR, read_idx
from qatzoo.data.load import co2_forecast, image_classification
from qatzoo.errors import DataSourceMissing

MNIST_5K = {"train": "train", "val": "validation", "test": "test"}


def test_co2_windows_are_chronological_and_relative_to_the_last_week(data_dir):
    data = co2_forecast(
        name="co2_weekly", data_dir=data_dir, window=52, horizon=4, val_fraction=0.15, test_fraction=0.15
    )
    info = data.info
    assert info["weeks"] == 2284 and info["filled_weeks"] == 59
    assert data.task == "forecast" and data.num_outputs == 4 and data.input_shape == (52, 1)
    # Windows whose first target week is in val/test; train windows see no val week even as target.
    total_windows = info["weeks"] - 52 - 4 + 1
    assert sum(data.sizes().values()) == total_windows - 3
    assert data.sizes()["test"] == info["weeks"] - info["first_test_week"] - 4 + 1
    for x in (data.x_train, data.x_val, data.x_test):
        assert np.all(x[:, -1, 0] == 0.0) and np.isfinite(x).all()
    # Normalised by the training part only: its relative inputs have unit standard deviation.
    assert float(np.std(data.x_train)) == pytest.approx(1.0, rel=1e-3)
    assert 1.0 < data.target_scale < 10.0 and data.target_unit == "ppm"


def test_mnist_5k_is_stratified_and_disjoint(data_dir):
    data = image_classification(name="mnist_5k", builder="mnist5k", data_dir=data_dir, splits=MNIST_5K)
    assert data.sizes() == {"train": 3500, "val": 500, "test": 1000}
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert np.bincount(data.y_train).tolist() == [350] * 10
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    train_rows = {row.tobytes() for row in data.x_train}
    assert not any(row.tobytes() in train_rows for row in data.x_test)
    # Shuffled: labels are not in the shipped sorted order.
    assert len(set(data.y_train[:20].tolist())) > 3


def test_missing_fashion_mnist_source_is_one_clear_line(tmp_path):
    with pytest.raises(DataSourceMissing) as error:
        image_classification(
            name="fashion_mnist",
            builder="fashion_mnist_local",
            data_dir=str(tmp_path / "tfds"),
            source_dir=str(tmp_path),
            splits={"train": "train", "val": "test", "test": "test"},
        )
    message = str(error.value)
    assert "\n" not in message and "apt-get install dataset-fashion-mnist" in message
    assert "train-images-idx3-ubyte.gz" in message


def test_read_idx_reads_and_rejects(tmp_path):
    good = tmp_path / "x.gz"
    with gzip.open(good, "wb") as f:
        f.write(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6)))
    assert read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    bad = tmp_path / "bad"
    bad.write_bytes(bytes([0, 0, 13, 1, 0, 0, 0, 1, 0]))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(bad)


@pytest.mark.slow
@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_full_fashion_mnist_from_the_debian_package(data_dir):
    data = image_classification(
        name="fashion_mnist",
        builder="fashion_mnist_local",
        data_dir=data_dir,
        source_dir=FASHION_MNIST_DIR,
        splits={"train": "train[:55000]", "val": "train[55000:]", "test": "test"},
    )
    assert data.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert np.bincount(data.y_test).tolist() == [1000] * 10


@pytest.mark.slow
def test_processes_that_start_together_prepare_a_dataset_once(tmp_path):
    """A sweep's parallel workers share one data directory: started at once on a fresh one, every process
    gets the prepared dataset (before the lock, TFDS had them write the same files and one failed)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys; from qatzoo.data.load import image_classification as load; "
        "d = load(name='mnist_5k', builder='mnist5k', data_dir=sys.argv[1], "
        "splits={'train': 'train', 'val': 'validation', 'test': 'test'}); "
        "print(len(d.x_train), int(d.y_test.sum()))"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "tfds")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert len({out.strip().splitlines()[-1] for out, _ in results}) == 1
    assert results[0][0].strip().splitlines()[-1].startswith("3500 ")
    assert not list((tmp_path / "tfds").glob("mnist5k/*incomplete*"))
