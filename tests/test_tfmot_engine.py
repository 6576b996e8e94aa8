"""The tfmot engine's tests, in a child process of that engine (a process holds one Keras, and this one runs the
default, Keras 3): tests/engine_tfmot/ (tfmot's own classes), and the engine-neutral tests of the quantizers and
the schemes, on tfmot's quantizers. The child runs the fast tests of each (the tfmot engine's end-to-end runs are
tests/test_recipes.py's, through train.py engine=tfmot); a failure shows the child's report."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: Run again on the tfmot engine: its own tests, and the property tests and scheme tests that hold for both.
#: The property tests (a minute: the fast lane runs them on Keras 3's quantizers) and the scheme tests (a dozen
#: models built and converted) run on tfmot in the whole suite; tfmot's own tests in the fast lane too.
TARGETS = [
    "tests/engine_tfmot",
    pytest.param("tests/test_fake_quant_properties.py", marks=pytest.mark.slow),
    pytest.param("tests/test_schemes.py", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("target", TARGETS)
def test_on_the_tfmot_engine(target, request):
    chosen = request.config.getoption("markexpr") or ""
    expression = f"({chosen}) and not slow" if chosen else "not slow"
    environment = {k: v for k, v in os.environ.items() if k not in ("QATZOO_ENGINE", "TF_USE_LEGACY_KERAS")}
    environment.update(QATZOO_ENGINE="tfmot", TF_USE_LEGACY_KERAS="1", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", expression, target],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    # 5: nothing collected (a marker expression that selects none of the target's tests).
    assert done.returncode in (0, 5), done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout or done.returncode == 5, done.stdout[-2000:]
