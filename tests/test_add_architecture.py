"""Adding an architecture is its module and its YAML file: nothing else in the package is told about it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

MODULE = '''"""A two-layer perceptron for 28x28 images."""

from __future__ import annotations

from qatzoo.keras import keras
from qatzoo.signature import Count


def tiny_mlp(*, input_shape, num_outputs, units: Count = 32):
    inputs = keras.Input(tuple(input_shape), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(units, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(num_outputs, name="logits")(x), name="tiny_mlp")
'''
CONFIG = "_target_: qatzoo.models.tiny_mlp.tiny_mlp\nname: tiny_mlp\ntask: classification\nunits: 24\n"


@pytest.mark.slow
def test_a_new_architecture_trains_from_its_module_and_yaml_alone(tmp_path, data_dir):
    copy = tmp_path / "checkout"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__"))
    (copy / "qatzoo" / "models" / "tiny_mlp.py").write_text(MODULE)
    (copy / "conf" / "arch" / "tiny_mlp.yaml").write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    base = [sys.executable, "train.py", "arch=tiny_mlp", f"paths.data_dir={data_dir}", f"paths.runs_dir={tmp_path}"]
    refused = subprocess.run([*base, "arch.units=0"], cwd=copy, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.strip() == "error: arch.units: expected an integer >= 1, got 0"
    run = subprocess.run(
        [
            *base,
            "schedule.float_epochs=1",
            "schedule.qat_epochs=1",
            "trainer.verbose=0",
            "hydra.run.dir=" + str(tmp_path / "run"),
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["arch"] == "tiny_mlp" and metrics["checks"] == {"full_integer": True, "parity": True}
    assert metrics["results"]["qat_int8"]["accuracy"] > 50  # a trained int8 model, measured in LiteRT


DATASET = (
    "_target_: qatzoo.data.load.image_classification\nname: mnist_2k\ntask: classification\nbuilder: mnist5k\n"
    "data_dir: ${paths.data_dir}\nsplits: {train: 'train[:2000]', val: validation, test: 'test[:500]'}\n"
)
REBUILD = """
import sys
from qatzoo.config import compose, validate
from qatzoo.data import catalog
cfg = validate(compose(["data=mnist_2k", "paths.data_dir=" + sys.argv[1]]))
rebuilt = catalog.build("mnist_2k", {"window": 5}, sys.argv[1])  # publish/verify's path: by name, from data
print(cfg.data.name, len(rebuilt.x_train), len(rebuilt.x_test), sorted(catalog.DATASETS["mnist_2k"].fixed))
"""


def test_a_new_dataset_of_an_existing_kind_is_its_yaml_file_alone(tmp_path, data_dir):
    """Its one YAML file makes it a choice for a run (`data=mnist_2k`) and a dataset publish and verify can
    rebuild by name from outside data (the catalog is read from the same file)."""
    copy = tmp_path / "checkout"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__"))
    (copy / "qatzoo" / "conf" / "data" / "mnist_2k.yaml").write_text(DATASET)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    run = subprocess.run(
        [sys.executable, "-c", REBUILD, str(data_dir)], cwd=copy, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].split() == ["mnist_2k", "2000", "500", "['builder',", "'splits']"]
