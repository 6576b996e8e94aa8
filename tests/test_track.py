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

    metrics = train(compose_cfg("recipe=mnist_cnn_int8", "logger=wandb", *TINY), tmp_path)
    out = capsys.readouterr().out
    assert "W&B: no API key, logging offline" in out and "failed" not in out, out
    records = _run_file(tmp_path)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert list(run.tags) == ["mnist_cnn_int8", "mnist_cnn", "int8"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["schedule"]["qat_epochs"] == 1 and config["quant"]["name"] == "int8"
    history = items(records, "history")
    assert {"float/loss", "float/val_acc", "qat/loss", "qat/val_acc"} <= set(history)
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
    train(compose_cfg("recipe=mnist_cnn_int8", "logger=wandb", *TINY), tmp_path)
    out = capsys.readouterr().out
    assert "unreachable" in out and "logging offline instead" in out, out
    assert "failed" not in out, out
    assert "test/qat_int8_accuracy" in items(_run_file(tmp_path), "summary"), out
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "model_int8.tflite").exists()


def test_hanging_server_times_out_to_offline(no_wandb_env, monkeypatch, tmp_path, capsys):
    """A server that accepts connections and never answers: init gives up after init_timeout."""
    from qatzoo.track.wandb import WandbLogger

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        logger = WandbLogger(str(tmp_path), run_config={"a": 1}, tags=["t"], init_timeout=3)
        assert logger.run is not None and logger.run.settings.mode == "offline"
        logger.log("float", 1, {"loss": 0.5})
        logger.finish()
    finally:
        server.close()
        for connection in held:
            connection.close()
    assert "online init failed" in capsys.readouterr().out
    assert items(_run_file(tmp_path), "history")["float/loss"] == "0.5"


def test_logger_none_turns_tracking_off(compose_cfg):
    from hydra.utils import instantiate

    from qatzoo.track import Logger

    logger = instantiate(compose_cfg("logger=none").logger, run_dir="unused")
    assert type(logger) is Logger
