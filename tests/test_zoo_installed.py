"""The zoo client from a non-editable install, run outside the checkout: a user's `pip install qatzoo`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.zoo_server import ZooServer


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """qatzoo built as a wheel and installed (without dependencies: they are this environment's) into a folder."""
    out = tmp_path_factory.mktemp("installed")
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", out / "wheel", REPO], check=True)
    (wheel,) = (out / "wheel").glob("qatzoo-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", out / "site", wheel], check=True)
    return out


def _qatzoo(installed: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QATZOO_")}
    env.update(PYTHONPATH=str(installed / "site"), QATZOO_CACHE=str(installed / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "qatzoo.cli", *argv], cwd=installed, env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_the_zoo_client_works_from_a_wheel_outside_the_checkout(installed, data_dir):
    where = subprocess.run(
        [sys.executable, "-c", "import qatzoo; print(qatzoo.__file__)"],
        cwd=installed,
        env={**os.environ, "PYTHONPATH": str(installed / "site")},
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed / "site")  # not the checkout's copy
    alone = _qatzoo(installed, "list")
    assert alone.returncode == 2 and alone.stderr.strip().splitlines() == [
        "error: no zoo index given: pass --index or set QATZOO_INDEX (a path, file:// or http(s):// URL of an "
        "index.json)"
    ]
    with ZooServer(REPO / "zoo") as server:
        index = f"{server.url}/index.json"
        listed = _qatzoo(installed, "list", "--index", index)
        names = {e["name"] for e in json.loads((REPO / "zoo" / "index.json").read_text())["models"]}
        assert listed.returncode == 0 and listed.stdout.count("@1") == len(names), listed.stderr
        info = _qatzoo(installed, "info", "mnist_cnn_int8", "--index", index)
        assert info.returncode == 0 and info.stdout.startswith("mnist_cnn_int8@") and " sha256 " in info.stdout
        whole = _qatzoo(installed, "info", "mnist_cnn_int8@1", "--json", "--index", index)
        assert whole.returncode == 0 and json.loads(whole.stdout)["version"] == "1"
        got = _qatzoo(installed, "download", "mnist_cnn_int8", "--index", index, "--to", str(installed / "out"))
        assert got.returncode == 0 and Path(got.stdout.strip()).is_file(), got.stderr
        verified = _qatzoo(installed, "verify", "mnist_cnn_int8", "--index", index, "--data-dir", data_dir)
        assert verified.returncode == 0 and verified.stdout.rstrip().endswith(": ok"), verified.stderr[-2000:]


@pytest.mark.slow
def test_qatzoo_train_composes_the_shipped_configs_from_a_wheel_outside_the_checkout(installed):
    """The config groups and recipes are package data: the installed command finds and checks them."""
    wrong = _qatzoo(installed, "train", "recipe=nothing")
    shipped = sorted(p.stem for p in (REPO / "qatzoo" / "recipes").glob("*.yaml"))  # all of them in the wheel
    assert wrong.returncode == 2 and wrong.stderr.strip().splitlines()[-1] == (
        "error: recipe=nothing: no such option; recipe is one of: " + ", ".join(shipped)
    )
    field = _qatzoo(installed, "train", "recipe=attention_int8", "arch.num_heads=3")
    assert field.returncode == 2 and "arch.num_heads: must divide arch.dim" in field.stderr
    listed = _qatzoo(installed, "recipes")
    assert listed.returncode == 0 and "qatzoo train recipe=attention_int8" in listed.stdout


@pytest.mark.slow
def test_qatzoo_train_trains_from_a_wheel_outside_the_checkout(installed, data_dir):
    """A real (tiny) run of the installed command, in a folder that is not the checkout: int8 file, checks."""
    import json

    runs = installed / "runs"
    run = _qatzoo(
        installed,
        "train",
        "data=mnist_5k",
        "schedule.float_epochs=1",
        "schedule.qat_epochs=1",
        "trainer.verbose=0",
        "trainer.baselines=false",
        "trainer.deployment=false",
        f"paths.data_dir={data_dir}",
        f"paths.runs_dir={runs}",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (run_dir,) = (runs / "custom").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["checks"] == {"full_integer": True, "parity": True}
    assert metrics["results"]["qat_int8"]["accuracy"] > 50
    assert (run_dir / "model_int8.tflite").is_file() and "qatzoo train data=mnist_5k" in (
        run_dir / "card.md"
    ).read_text()
