"""Quiet by default: a run prints what a person needs and none of TensorFlow's, absl's, the converter's or
LiteRT's own chatter; ``qatzoo.quiet.native_output`` drops native prints but keeps them in a failure."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

# What TensorFlow 2.21, absl, the TFLite converter and LiteRT print in a default run unless silenced.
NOISE = [
    "Sharding callback duration",
    "cuInit",
    "cuda drivers",
    "absl::InitializeLog",
    "Assets written to",
    "fully_quantize",
    "cpu_feature_guard",
]
BANNER = "XNNPACK delegate"  # LiteRT's, printed when qatzoo/export/litert.py creates its first Interpreter


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory) -> tuple[str, object]:
    """A tiny default-verbosity run of train.py, its stdout and stderr together; and its run directory."""
    run_dir = tmp_path_factory.mktemp("quiet") / "run"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest sets it; test the default
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "recipe=mnist_cnn_int8",
            "data=mnist_5k",
            "schedule.float_epochs=1",
            "schedule.qat_epochs=1",
            "trainer.representative_samples=32",
            "trainer.deployment=true",  # the default (tests/conftest.py turns it off), and the most output
            f"paths.data_dir={data_dir}",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout, run_dir


@pytest.mark.slow
def test_a_default_run_prints_at_most_40_lines_and_no_library_noise(run):
    out, run_dir = run
    lines = out.splitlines()
    assert len(lines) <= 40, out
    for noise in NOISE:
        assert noise not in out, f"{noise!r} in:\n{out}"
    assert "[qatzoo] mnist_cnn_int8: " in out  # what runs on what data
    assert sum(line.startswith("[qatzoo] float epoch 1/1 - ") for line in lines) == 1, out
    assert sum(line.startswith("[qatzoo] qat epoch 1/1 - ") for line in lines) == 1, out
    assert f"[qatzoo] run directory: {run_dir}" in lines, out
    assert any(line.startswith("[qatzoo] accuracy: float ") and "QAT int8 (LiteRT)" in line for line in lines), out


@pytest.mark.slow
def test_a_default_run_prints_no_delegate_banner(run):
    out, _ = run
    assert BANNER not in out, out


def test_a_long_phase_prints_about_ten_epoch_lines_below_verbose_3_and_every_epoch_at_3():
    from qatzoo.train.loop import prints_epoch

    assert [e for e in range(1, 41) if prints_epoch(e, 40, 2)] == [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    assert [e for e in range(1, 12) if prints_epoch(e, 11, 1)] == [1, 2, 4, 6, 8, 10, 11]
    assert [e for e in range(1, 11) if prints_epoch(e, 10, 2)] == list(range(1, 11))
    assert all(prints_epoch(e, 40, 3) for e in range(1, 41))
    assert not any(prints_epoch(e, 40, 0) for e in range(1, 41))


def test_native_output_drops_what_a_successful_call_writes_to_the_descriptors(capfd):
    from qatzoo.quiet import native_output

    with native_output("a call"):
        os.write(1, b"chatter on stdout\n")
        os.write(2, b"chatter on stderr\n")
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert (out, err) == ("after\n", "")


def test_native_output_keeps_what_a_failed_call_wrote_in_its_error(capfd):
    from qatzoo.quiet import native_output

    with pytest.raises(RuntimeError) as error, native_output("the converter"):
        os.write(2, b"error: 'tfl.foo' op is neither a custom op nor a flex op\n")
        raise RuntimeError("conversion failed")
    notes = getattr(error.value, "__notes__", None)
    if notes is None:  # Python 3.10: printed to stderr instead
        notes = [capfd.readouterr().err]
    assert "the converter wrote:\nerror: 'tfl.foo' op is neither a custom op nor a flex op" in notes[0], notes
    os.write(2, b"the descriptors are back\n")
    assert capfd.readouterr().err.endswith("the descriptors are back\n")
