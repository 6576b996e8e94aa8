"""Data-parallel training (trainer.strategy): a QAT recipe on two replicas gives the same kind of int8
model as on one device - on two logical CPUs of one process (mirrored) and on two worker processes
on localhost (multi_worker, TF_CONFIG) - and the set-ups that cannot work fail at start-up with one line.

Logical devices must be configured before TensorFlow initialises, so every training run is a
subprocess (``QATZOO_LOGICAL_CPUS=2`` splits the CPU). Runs that are compared start at once (their
results do not depend on timing): two pairs of processes, about 40 s each on 2 cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance import assert_int8_conformance
from tests.conftest import REPO

ARGS = [
    "recipe=mnist_cnn_int8",
    "data=mnist_5k",
    "schedule.float_epochs=1",
    "schedule.qat_epochs=1",
    "trainer.verbose=0",
    "trainer.representative_samples=64",
    "trainer.checkpoint_every_steps=0",
]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _prepare_data(data_dir: str) -> None:
    if not (Path(data_dir) / "mnist5k").is_dir():
        # Prepared once here: processes preparing the dataset into one directory at once would race.
        from qatzoo.data.load import image_classification

        splits = {"train": "train", "val": "validation", "test": "test"}
        image_classification(name="mnist_5k", builder="mnist5k", data_dir=data_dir, splits=splits)


def _run_all(jobs: dict[str, tuple[list[str], dict]], root: Path, data_dir: str) -> dict[str, tuple[Path, dict, str]]:
    """Start every job's ``train.py`` at once; wait for all; return each run's directory, metrics and output."""
    processes = {}
    for name, (extra, env) in jobs.items():
        command = [
            sys.executable,
            "train.py",
            *ARGS,
            *extra,
            f"paths.runs_dir={root / name}",
            f"paths.data_dir={data_dir}",
        ]
        processes[name] = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    out = {}
    try:
        for name, process in processes.items():
            log, _ = process.communicate(timeout=400)
            assert process.returncode == 0, f"{name}:\n{log[-3000:]}"
            (run,) = (root / name / "mnist_cnn_int8").iterdir()
            out[name] = (run, json.loads((run / "metrics.json").read_text()), log)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return out


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "QATZOO_LOGICAL_CPUS")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, tuple[Path, dict, str]]:
    """One tiny QAT run each, side by side: ``none``, ``mirrored`` on 2 logical CPUs, and the same on Keras 3
    through the fit loop."""
    _prepare_data(data_dir)
    two = {**_env(), "QATZOO_LOGICAL_CPUS": "2"}
    jobs = {
        "none": ([], _env()),
        "mirrored": (["trainer.strategy=mirrored"], two),
        "keras3_fit": (["trainer.strategy=mirrored", "engine=keras3", "trainer.loop=fit"], two),
    }
    return _run_all(jobs, tmp_path_factory.mktemp("distribute"), data_dir)


@pytest.fixture(scope="module")
def workers(tmp_path_factory, data_dir) -> dict[str, tuple[Path, dict, str]]:
    """The same run with ``multi_worker`` on two worker processes on localhost (TF_CONFIG)."""
    _prepare_data(data_dir)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    jobs = {
        f"worker{i}": (
            ["trainer.strategy=multi_worker"],
            {**_env(), "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
        )
        for i in range(2)
    }
    return _run_all(jobs, tmp_path_factory.mktemp("workers"), data_dir)


def _accuracy(metrics: dict) -> float:
    return metrics["results"]["qat_int8"]["accuracy"]


@pytest.mark.slow
def test_mirrored_qat_on_two_logical_cpus_gives_the_single_device_kind_of_int8_model(runs):
    run, metrics, log = runs["mirrored"]
    _, single, _ = runs["none"]
    assert metrics["distribute"]["strategy"] == "mirrored"
    assert metrics["distribute"]["num_replicas_in_sync"] == 2  # really two replicas
    assert [d.rsplit(":", 2)[-2:] for d in metrics["distribute"]["devices"]] == [["CPU", "0"], ["CPU", "1"]]
    assert "data parallel (mirrored): 2 replicas in sync" in log
    assert single["distribute"] == {"strategy": "none", "num_replicas_in_sync": 1, "num_workers": 1}

    assert metrics["int8_model"] == "qat_int8"
    assert metrics["checks"] == {"full_integer": True, "parity": True}
    assert_int8_conformance(run / "model_int8.tflite", metrics, strict_parity=False)
    assert abs(_accuracy(metrics) - _accuracy(single)) <= 3.0, (_accuracy(metrics), _accuracy(single))
    assert _accuracy(metrics) > 70.0
    for name in ("float", "qat"):
        assert (run / "checkpoints" / name / "checkpoint").exists(), name


@pytest.mark.slow
def test_mirrored_qat_on_keras3_through_the_fit_loop(runs):
    """engine=keras3 under MirroredStrategy with Model.fit: two replicas, their quantizer ranges made those of the
    global batch, and an int8 model of the same kind as the default engine's on one device."""
    run, metrics, log = runs["keras3_fit"]
    _, single, _ = runs["none"]
    assert metrics["provenance"]["engine"]["name"] == "keras3"
    assert metrics["distribute"]["strategy"] == "mirrored" and metrics["distribute"]["num_replicas_in_sync"] == 2
    assert "data parallel (mirrored): 2 replicas in sync" in log and "(Model.fit)" in log
    assert metrics["int8_model"] == "qat_int8" and metrics["checks"] == {"full_integer": True, "parity": True}
    assert_int8_conformance(run / "model_int8.tflite", metrics, strict_parity=False)
    assert abs(_accuracy(metrics) - _accuracy(single)) <= 3.0, (_accuracy(metrics), _accuracy(single))


@pytest.mark.slow
def test_two_workers_on_localhost_train_one_model(runs, workers):
    (run0, m0, _), (run1, m1, _) = workers["worker0"], workers["worker1"]
    _, mirrored, _ = runs["mirrored"]
    for metrics in (m0, m1):
        assert metrics["distribute"]["strategy"] == "multi_worker"
        assert metrics["distribute"]["num_replicas_in_sync"] == 2
        assert metrics["distribute"]["num_workers"] == 2
        assert metrics["checks"] == {"full_integer": True, "parity": True}
    assert_int8_conformance(run0 / "model_int8.tflite", m0, strict_parity=False)
    # Synchronous training: both workers hold the same weights and export the same file.
    assert (run0 / "model_int8.tflite").read_bytes() == (run1 / "model_int8.tflite").read_bytes()
    # Two replicas in two processes train like two replicas in one (same data split, same reductions).
    assert abs(_accuracy(m0) - _accuracy(mirrored)) <= 1.0, (_accuracy(m0), _accuracy(mirrored))


def test_unsupported_set_ups_fail_at_start_up_with_one_line(monkeypatch):
    from qatzoo.config import ConfigError
    from qatzoo.train.distribute import make_strategy

    monkeypatch.delenv("QATZOO_LOGICAL_CPUS", raising=False)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("none") is None
    with pytest.raises(ConfigError, match=r"^trainer.strategy=multi_worker: TF_CONFIG is not set"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ConfigError, match=r"^trainer.strategy=multi_worker: TF_CONFIG must hold cluster.worker"):
        make_strategy("multi_worker")
    with pytest.raises(ConfigError, match=r"^trainer.loop=fit with trainer.strategy=multi_worker is not supported"):
        make_strategy("multi_worker", loop="fit")


def test_strategy_is_checked_before_tensorflow(compose_cfg):
    from qatzoo.config import ConfigError, validate

    validate(compose_cfg("trainer.strategy=mirrored"))
    with pytest.raises(
        ConfigError, match=r"^trainer.strategy: expected one of none, mirrored, multi_worker, got 'tpu'$"
    ):
        validate(compose_cfg("trainer.strategy=tpu"))
