"""The installs qatzoo offers: the zoo client alone (`pip install qatzoo`), and the extras the rest needs.

A child Python for which every distribution the install would not bring is absent (tests/installs.py) runs
the real commands; a command that needs a missing extra says which, in one line.
"""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys

import pytest
import tomllib

from qatzoo import extras
from tests.conftest import REPO
from tests.installs import _key, blocked, env, requirements

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _run(environment, *argv, cwd=REPO):
    return subprocess.run([sys.executable, *argv], env=environment, cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The environment of `pip install qatzoo`: no TensorFlow, Hydra, TFLM, Vela, Optuna, Ray or W&B."""
    return env(tmp_path_factory.mktemp("client"))


def test_the_client_install_brings_no_training_stack():
    core = requirements()
    for heavy in ("tensorflow", "keras", "hydra-core", "tensorflow-datasets", "tflite-micro", "ray", "wandb", "optuna"):
        assert heavy not in core
    assert {"ai-edge-litert", "numpy", "pydantic", "pillow"} <= core


def test_each_extras_modules_come_from_a_distribution_that_extra_lists():
    provided = metadata.packages_distributions()
    for extra, modules in extras.MODULES.items():
        listed = requirements((extra,)) - requirements()
        for module in modules:
            top = module.split(".")[0]
            dists = {_key(d) for d in provided.get(top, [])}
            if top == "hydra_plugins":  # a namespace: the distribution is the one named after the plugin
                dists = {d for d in dists if d.replace("-", "_").endswith(module.split(".")[1].removeprefix("hydra_"))}
            assert dists & listed, (extra, module, dists)
    assert set(PYPROJECT["optional-dependencies"]) == {*extras.MODULES, "all", "dev"}


def test_library_requirements_are_ranges_and_ci_pins_them_in_the_constraints_file():
    lines = PYPROJECT["dependencies"] + [r for e in PYPROJECT["optional-dependencies"].values() for r in e]
    assert not [r for r in lines if "==" in r], "exact pins belong in constraints.txt"
    pinned = {
        _key(line.split("==")[0]): line.split("==")[1]
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert requirements(("all", "dev")) - {"qatzoo"} <= pinned.keys()  # every distribution CI installs is pinned
    install = '-e ".[all,dev]" -c constraints.txt'
    assert install in (REPO / ".ci" / "run").read_text() and install in (REPO / "README.md").read_text()


def test_the_zoo_client_runs_without_the_training_stack(client, tmp_path):
    """list, info, download, predict, check and load().predict in an install without TensorFlow."""
    import numpy as np

    client["QATZOO_CACHE"] = str(tmp_path / "cache")
    for argv in (["list"], ["info", "mnist_cnn_int8"], ["download", "attention_int8"]):
        got = _run(client, "-m", "qatzoo.cli", *argv)
        assert got.returncode == 0 and not got.stderr, (argv, got.stderr[-1500:])
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    np.save(tmp_path / "digit.npy", digit)
    got = _run(client, "-m", "qatzoo.cli", "predict", "mnist_cnn_int8", str(tmp_path / "digit.npy"))
    assert got.returncode == 0 and got.stdout.startswith("1 ("), got.stderr[-1500:]
    (model,) = (REPO / "zoo" / "mnist_cnn_int8").glob("1/model_int8.tflite")
    checked = _run(client, "-m", "qatzoo.cli", "check", str(model))
    assert checked.returncode == 0, checked.stderr[-1500:]
    assert "full integer: yes" in checked.stdout and "- LiteRT CPU" in checked.stdout
    assert checked.stdout.rstrip().endswith("not measured; pip install 'qatzoo[deploy]' adds them")
    code = (
        "import sys, numpy as np, qatzoo.zoo as z\n"
        "m = z.load('mnist_cnn_int8', progress=False)\n"
        f"print(m.predict(np.load({str(tmp_path / 'digit.npy')!r}), labels=True))\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'tensorflow', 'keras', 'hydra', 'omegaconf'}))"
    )
    loaded = _run(client, "-c", code)
    assert loaded.returncode == 0 and loaded.stdout.splitlines() == ["1", "[]"], loaded.stderr[-1500:]


def test_what_needs_an_extra_says_which_in_one_line(client, tmp_path):
    client["QATZOO_CACHE"] = str(tmp_path / "cache")
    for argv, extra in (
        (["-m", "qatzoo.cli", "train", "recipe=attention_int8"], "train"),
        (["train.py", "recipe=attention_int8"], "train"),
        (["-m", "qatzoo.cli", "publish", str(tmp_path)], "train"),
        (["-m", "qatzoo.cli", "verify", "mnist_cnn_int8"], "train"),
    ):
        got = _run(client, *argv)
        lines = got.stderr.strip().splitlines()
        assert got.returncode == 2 and len(lines) == 1, (argv, got.stderr[-1500:])
        assert lines[0].startswith("error: ") and lines[0].endswith(f"pip install 'qatzoo[{extra}]'")
    assert "sha256 ok" in lines[0]  # verify checked what it could: the download


@pytest.mark.slow
def test_a_training_install_refuses_the_parts_of_other_extras_before_it_starts(tmp_path):
    import os

    defaults = {k: v for k, v in os.environ.items() if k != "QATZOO_DEPLOYMENT"}  # conftest turns it off
    trainer = env(tmp_path / "train", ("train",), base=defaults)
    for argv, extra in (
        (["recipe=attention_int8"], "deploy"),  # the deployment report is on by default
        (["recipe=attention_int8", "trainer.deployment=false", "logger=wandb"], "wandb"),
        (["-m", "sweep=attention_lr", "trainer.deployment=false"], "sweeps"),
        (["-m", "recipe=attention_int8", "hydra/launcher=ray", "trainer.deployment=false"], "cluster"),
    ):
        got = _run(trainer, "train.py", *argv, f"paths.runs_dir={tmp_path / 'runs'}")
        assert got.returncode == 2 and got.stderr.strip().splitlines() == [got.stderr.strip().splitlines()[-1]], (
            argv,
            got.stderr[-1500:],
        )
        assert got.stderr.strip().endswith(f"pip install 'qatzoo[{extra}]'")
    assert not (tmp_path / "runs").exists()


def test_the_blocked_modules_are_what_the_install_leaves_out():
    out = blocked()
    assert {"tensorflow", "hydra", "tflite_micro", "ethosu", "optuna", "ray", "wandb"} <= out
    assert not {"numpy", "ai_edge_litert", "pydantic", "PIL", "qatzoo"} & out
