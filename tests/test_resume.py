"""Kill a real training process with SIGKILL, run the same command again: it resumes and ends with
exactly the int8 file and weights of a run that was never interrupted."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qatzoo.engine import DEFAULT, ENGINES
from tests.conftest import REPO

ARGS = [
    "recipe=mnist_cnn_int8",
    "data=mnist_5k",
    "schedule.float_epochs=1",
    "schedule.qat_epochs=1",
    "trainer.verbose=0",
    "trainer.checkpoint_every_steps=10",
]


def _command(runs: Path, data_dir: str, *more: str) -> list[str]:
    return [sys.executable, "train.py", *ARGS, *more, f"paths.runs_dir={runs}", f"paths.data_dir={data_dir}"]


def _run_until(command: list[str], pattern: str, runs: Path, timeout: float = 300) -> None:
    """Start ``command``; SIGKILL it as soon as a file matching ``pattern`` exists under ``runs``."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not list(runs.glob(pattern)):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "timed out waiting for a checkpoint"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(checkpoint: Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``tf.train.Checkpoint``: weights, quantizer ranges, Adam slots, step, dropout generators."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint))
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_sigkill_twice_then_resume_is_bit_exact(engine, tmp_path, data_dir):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    more = [f"engine={engine}"] if engine != DEFAULT else []  # the default as the published runs: no override
    # The uninterrupted run, alongside the killed ones (results do not depend on timing).
    uninterrupted = subprocess.Popen(
        _command(clean, data_dir, *more), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    # Killed mid-epoch in the float phase, then mid-epoch in the QAT phase.
    _run_until(_command(killed, data_dir, *more), "*/*/checkpoints/float/ckpt-30.index", killed)
    _run_until(_command(killed, data_dir, *more), "*/*/checkpoints/qat/ckpt-20.index", killed)
    result = subprocess.run(_command(killed, data_dir, *more), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    _, err = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, err[-3000:]
    (clean_run,) = (clean / "mnist_cnn_int8").iterdir()
    # The kill lands at or shortly after the QAT checkpoint of step 20 (a later one may be written first).
    resumed = re.search(r"qat phase: resuming at step (\d+) of 55", result.stdout)
    assert resumed and 20 <= int(resumed.group(1)) < 55, result.stdout
    runs = list((killed / "mnist_cnn_int8").iterdir())
    assert len(runs) == 1, runs  # the reruns worked in the first run's directory
    (killed_run,) = runs

    assert _digest(killed_run / "model_int8.tflite") == _digest(clean_run / "model_int8.tflite")
    a, b = _state(clean_run / "checkpoints" / "qat" / "ckpt-55"), _state(killed_run / "checkpoints" / "qat" / "ckpt-55")
    assert any(k.startswith("optimizer/") for k in a), sorted(a)
    # The quantizer ranges and the dropout layer's random state are in the checkpoint too.
    if engine == "keras3":
        assert any(k.startswith("variables/") and "kernel_min" in k for k in a), sorted(a)
        assert any("seed_generator_state" in k for k in a), sorted(a)
    else:
        assert any(k.startswith("model/") and "kernel_min" in k for k in a), sorted(a)
        assert any(k.startswith("rng/") and "dropout" in k for k in a), sorted(a)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_run_directory_of_another_config_is_refused(tmp_path, data_dir):
    run = tmp_path / "run"
    first = [*_command(tmp_path, data_dir), f"hydra.run.dir={run}", "quant=none"]
    subprocess.run(first, cwd=REPO, check=True, capture_output=True, timeout=600)
    other = [*_command(tmp_path, data_dir), f"hydra.run.dir={run}", "quant=none", "schedule.lr=0.01"]
    result = subprocess.run(other, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: {run} holds a run of another config; pick another hydra.run.dir"
    )


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_no_half_written_file(tmp_path, data_dir):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("needs root to mount a 1 MiB tmpfs")
    try:
        result = subprocess.run(
            _command(small / "runs", data_dir), cwd=REPO, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 2
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: cannot write") and "No space left on device" in last, last
        left = [p.relative_to(small) for p in small.rglob("*") if p.is_file()]
        # Only complete files: the config, finished checkpoints; no temporary or partial file.
        assert not [p for p in left if "tmp" in p.name or "temp" in str(p)], left
        assert not any(p.name == "metrics.json" for p in left)
    finally:
        subprocess.run(["umount", str(small)], check=False)
