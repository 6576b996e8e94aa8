"""Shared fixtures: a TFDS data directory shared by the whole session, and config composition."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qatzoo.engine import DEFAULT as DEFAULT_ENGINE

REPO = Path(__file__).resolve().parent.parent
#: The engine this test process runs: the default (Keras 3), or tfmot where tests/test_tfmot_engine.py runs
#: tests/engine_tfmot/ (and the engine-neutral tests it names) in a child process with QATZOO_ENGINE=tfmot.
ENGINE = os.environ.get("QATZOO_ENGINE") or DEFAULT_ENGINE
if ENGINE != "tfmot":
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests of the tfmot engine's own classes import tf_keras and tfmot: collected only in a tfmot process.
collect_ignore = [] if ENGINE == "tfmot" else ["engine_tfmot"]
# Classical baselines cost 10-40 s a run: off by default here (for runs in subprocesses too); the recipe tests
# and tests/test_baselines.py turn them on where they are checked.
os.environ["QATZOO_BASELINES"] = "false"
os.environ["QATZOO_PTQ_BASELINES"] = "false"  # PTQ at the scheme's widths: on where a test checks it
os.environ["QATZOO_DEPLOYMENT"] = "false"  # the deployment report: on where a test checks it


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """Where TFDS prepares datasets in tests: $QATZOO_TEST_DATA_DIR to reuse a cache, else a temp dir."""
    return os.environ.get("QATZOO_TEST_DATA_DIR") or str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture
def compose_cfg(data_dir):
    """Compose the real Hydra config (conf/ + recipes/) with overrides, as train.py would."""
    from qatzoo.config import compose

    def _compose(*overrides: str):
        return compose([f"paths.data_dir={data_dir}", f"engine={ENGINE}", *overrides])

    return _compose
