"""W&B tracking: what an offline run records, and that an unreachable or hanging server never stops a run."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.wandb_records import items, read_complete

TINY = ["schedule.float_epochs=1", "schedule.qat_epochs=1", "trainer.verbose=0", "trainer.representative_samples=32"]


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def _run_file(run_dir):
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    return read_complete(path)


@pytest.mark.slow
def test_offline_run_records_config_metrics_table_and_model_artifact(no_wandb_env, compose_cfg, tmp_path, capsys):
    from qatzoo.train.trainer import train

    metrics = train(compose_cfg("recipe=mnist_cnn_int8", "data=mnist_5k", "logger=wandb", *TINY), tmp_path)
    out = capsys.readouterr().out
    assert "W&B: no API key, logging offline" in out and "failed" not in out, out
    records = _run_file(tmp_path)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert list(run.tags) == ["mnist_cnn_int8", "mnist_cnn", "int8"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["schedule"]["qat_epochs"] == 1 and config["quant"]["name"] == "int8"
    history = items(records, "history")
    assert {"float/loss", "float/val_accuracy", "qat/loss", "qat/val_accuracy"} <= set(history)
    summary = items(records, "summary")
    assert json.loads(summary["test/qat_int8_accuracy"]) == metrics["results"]["qat_int8"]["accuracy"]
    assert json.loads(summary["results/_type"]) == "table-file"
    artifacts = [
        r.artifact for r in records if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "model"
    ]
    (model,) = artifacts
    assert model.name == "mnist_cnn_int8-int8"
    assert sorted(entry.path for entry in model.manifest.contents) == ["card.md", "model_int8.tflite"]
    assert json.loads(model.metadata)["results"] == metrics["results"]
    assert (tmp_path / "metrics.json").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_unreachable_server_degrades_to_offline_and_the_run_finishes(
    no_wandb_env, monkeypatch, compose_cfg, tmp_path, capsys
):
    from qatzoo.train.trainer import train

    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    train(compose_cfg("recipe=mnist_cnn_int8", "data=mnist_5k", "logger=wandb", *TINY), tmp_path)
    out = capsys.readouterr().out
    assert "unreachable" in out and "logging offline instead" in out, out
    assert "failed" not in out, out
    assert "test/qat_int8_accuracy" in items(_run_file(tmp_path), "summary"), out
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "model_int8.tflite").exists()


# The logger in a process of its own, timed from just before WandbLogger() to the process's exit: W&B's
# teardown at exit is where a half-started online run used to cost another 10+ s.
_CHILD = """
import sys, time
from qatzoo.track.wandb import WandbLogger
print("start", time.monotonic(), flush=True)
logger = WandbLogger(sys.argv[1], run_config={"a": 1}, tags=["t"], init_timeout=float(sys.argv[2]))
print("mode", logger.run.settings.mode if logger.run is not None else None, flush=True)
logger.log("float", 1, {"loss": 0.5})
logger.finish()
"""


@pytest.mark.parametrize("accepts", [True, False], ids=["accepts-never-answers", "listens-never-accepts"])
def test_unresponsive_server_costs_init_timeout_once_then_offline(no_wandb_env, tmp_path, accepts):
    """A server that takes TCP connections and never answers: one warning, offline, ~init_timeout in total."""
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    if accepts:
        threading.Thread(target=accept, daemon=True).start()
    env = {
        **os.environ,
        "WANDB_API_KEY": "k" * 40,  # a key, so it tries online
        "WANDB_BASE_URL": f"http://127.0.0.1:{server.getsockname()[1]}",
    }
    init_timeout = 4.0
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path), str(init_timeout)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        ended = time.monotonic()  # one clock for both processes (CLOCK_MONOTONIC)
    finally:
        server.close()
        for connection in held:
            connection.close()
    assert child.returncode == 0, child.stderr[-2000:]
    started = float(next(line for line in child.stdout.splitlines() if line.startswith("start ")).split()[1])
    elapsed = ended - started
    assert elapsed < 1.5 * init_timeout, f"{elapsed:.1f} s for init_timeout={init_timeout} s\n{child.stdout}"
    assert "mode offline" in child.stdout, child.stdout
    warnings = [line for line in (child.stdout + child.stderr).splitlines() if "W&B" in line or "wandb" in line]
    assert len(warnings) == 1 and "did not answer in time" in warnings[0], warnings
    assert "logging offline instead" in warnings[0]
    assert items(_run_file(tmp_path), "history")["float/loss"] == "0.5"


def test_logger_none_turns_tracking_off(compose_cfg):
    from hydra.utils import instantiate

    from qatzoo.track import Logger

    logger = instantiate(compose_cfg("logger=none").logger, run_dir="unused")
    assert type(logger) is Logger
