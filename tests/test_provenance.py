"""Provenance: what goes into a run's config hash and data fingerprint."""

from __future__ import annotations

import numpy as np

from qatzoo.config import validate
from qatzoo.data.splits import Splits
from qatzoo.provenance import config_hash, data_fingerprint, git_state, versions


def test_config_hash_follows_results_not_paths(compose_cfg):
    base = config_hash(compose_cfg("recipe=mnist_cnn_int8"))
    assert base == config_hash(compose_cfg("recipe=mnist_cnn_int8", "paths.runs_dir=/elsewhere", "trainer.verbose=0"))
    assert base != config_hash(compose_cfg("recipe=mnist_cnn_int8", "schedule.qat_lr=0.0003"))
    assert len(base) == 64
    # What is kept on disk is not part of the run's identity: a run resumes whatever it keeps.
    assert base == config_hash(
        compose_cfg("recipe=mnist_cnn_int8", "trainer.keep_checkpoints=5", "trainer.epoch_weights=true")
    )


def test_provenance_names_the_cpu_the_bytes_are_promised_for(compose_cfg):
    from pathlib import Path

    from qatzoo.provenance import provenance

    rng = np.random.default_rng(0)
    arrays = {f"{k}_{p}": rng.normal(size=(4, 3)).astype(np.float32) for k in "xy" for p in ("train", "val", "test")}
    origin = provenance(
        validate(compose_cfg("recipe=mnist_cnn_int8")), Splits(name="t", task="forecast", num_outputs=3, **arrays)
    )
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    assert origin["cpu"] and origin["cpu"].startswith(model)


def test_data_fingerprint_sees_a_single_changed_value():
    rng = np.random.default_rng(0)
    arrays = {f"{k}_{p}": rng.normal(size=(4, 3)).astype(np.float32) for k in "xy" for p in ("train", "val", "test")}
    splits = Splits(name="t", task="forecast", num_outputs=3, **arrays)
    before = data_fingerprint(splits)
    splits.x_test[2, 1] += 1e-6
    assert data_fingerprint(splits) != before


def test_git_state_and_versions():
    state = git_state()
    assert state["commit"] is None or len(state["commit"]) == 40
    assert {"python", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert"} <= set(versions())
