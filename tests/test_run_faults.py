"""Runs under faults: a cut checkpoint, an unreadable sibling run, non-finite data or metrics, a file that
is not weights. Each is one line (exit code 2 through train.py) or a resume that still ends bit-exact."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

MODULE = "tests.test_run_faults"  # as train.py imports it (pytest itself may import this file by another name)
TINY = [
    "recipe=mnist_cnn_int8",
    "data=mnist_5k",
    "schedule.float_epochs=1",
    "schedule.qat_epochs=1",
    "trainer.verbose=0",
    "trainer.representative_samples=32",
    "trainer.checkpoint_every_steps=10",
]


def synthetic(*, name: str, nan_in: str | None = None, huge_in: str | None = None, **_) -> object:
    """A tiny forecast dataset: 3 NaNs in split ``nan_in``, or float32's largest value in all of ``huge_in``."""
    from qatzoo.data.splits import Splits

    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", 64), ("val", 16), ("test", 16)):
        arrays[f"x_{part}"] = rng.normal(size=(n, 8, 1)).astype(np.float32)
        arrays[f"y_{part}"] = rng.normal(size=(n, 2)).astype(np.float32)
    if nan_in:
        arrays[nan_in].flat[[0, 5, 7]] = np.nan
    if huge_in:
        arrays[huge_in][:] = np.finfo(np.float32).max  # finite, but no model output stays finite on it
    return Splits(name=name, task="forecast", num_outputs=2, target_unit="ppm", **arrays)


def nan_in_x_test(**kwargs):
    """In place of the co2 loader (what ``data=co2_weekly`` names): the data group's fields, NaN in x_test."""
    return synthetic(nan_in="x_test", **kwargs)


def huge_x_test(**kwargs):
    """In place of the co2 loader: finite test inputs on which every output overflows."""
    return synthetic(huge_in="x_test", **kwargs)


@pytest.fixture
def co2_loader(monkeypatch):
    """Put a synthetic loader where ``data=co2_weekly``'s ``_target_`` points, for this test (the config schema
    takes only the project's own loaders, so the data group's fields stay those of co2_weekly)."""
    import qatzoo.data.load as load

    return lambda loader: monkeypatch.setattr(load, "co2_forecast", loader)


SYNTHETIC = [
    "recipe=attention_int8",
    "data.window=8",
    "data.horizon=2",
    "arch.dim=8",
    "arch.num_heads=2",
    "arch.mlp_dim=8",
    "quant=none",
    "schedule.float_epochs=0",
    "trainer.verbose=0",
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, data_dir):
    """One uninterrupted tiny run: its files, and its metrics as returned."""
    from qatzoo.config import compose
    from qatzoo.train.trainer import train

    cfg = compose([f"paths.data_dir={data_dir}", *TINY])
    run = tmp_path_factory.mktemp("clean")
    return cfg, run, train(cfg, run)


def _unfinished_copy(run: Path, to: Path) -> Path:
    """The state of a run killed just before metrics.json: every file but the ones written at the end."""
    shutil.copytree(run, to)
    for name in ("metrics.json", "card.md", "model_int8.tflite", "model_ptq_int8.tflite", "model_float.tflite"):
        (to / name).unlink()
    return to


def _cut(path: Path, size: str) -> None:
    os.truncate(path, 0 if size == "empty" else path.stat().st_size // 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cut", "expect"),
    [
        # The newest QAT checkpoint's data cut in half: the QAT phase goes on from step 50.
        ({"qat/ckpt-55.data-00000-of-00001": "half"}, ["qat phase: resuming at step 50 of 55"]),
        # The newest float checkpoint's index emptied: the float phase goes on from step 50; then both QAT
        # checkpoints unreadable: the QAT phase starts afresh.
        (
            {
                "float/ckpt-55.index": "empty",
                "qat/ckpt-55.index": "half",
                "qat/ckpt-50.data-00000-of-00001": "empty",
            },
            ["float phase: resuming at step 50 of 55", "qat phase: no readable checkpoint; starting this phase afresh"],
        ),
    ],
    ids=["newest-qat-data-half", "float-index-empty-and-no-qat-readable"],
)
def test_resume_skips_an_unreadable_checkpoint_and_ends_bit_exact(clean_run, tmp_path, capsys, cut, expect):
    from qatzoo.train.trainer import train

    cfg, clean, _ = clean_run
    run = _unfinished_copy(clean, tmp_path / "run")
    for name, size in cut.items():
        _cut(run / "checkpoints" / name, size)
    capsys.readouterr()
    train(cfg, run)
    out = capsys.readouterr().out
    for name in cut:
        ckpt = (run / "checkpoints" / name).parent / Path(name).name.split(".")[0]
        assert f"skipping the unreadable checkpoint {ckpt} (" in out, out
    for line in expect:
        assert f"[qatzoo] {line}" in out, out
    assert _digest(run / "model_int8.tflite") == _digest(clean / "model_int8.tflite")


def _saved_weights(data, path: Path) -> list:
    from tests.test_fit_loop import _model

    model = _model(data)
    model.load_weights(str(path))
    return model.get_weights()


@pytest.mark.slow
def test_fit_loop_starts_afresh_when_its_one_backup_is_unreadable(data_dir, tmp_path, capsys):
    from qatzoo.data.load import image_classification
    from qatzoo.train.fit import run_phase_fit
    from tests.test_fit_loop import MNIST_5K, RecordingLogger, _model, _phase

    data = image_classification(name="mnist_5k", builder="mnist5k", data_dir=data_dir, splits=MNIST_5K)
    phase = _phase(epochs=2)
    with pytest.raises(KeyboardInterrupt):  # dies after epoch 2's weights, before its backup
        run_phase_fit(_model(data), data, phase, tmp_path, RecordingLogger(die_at=2))
    from qatzoo.keras import KERAS3
    from qatzoo.quant.schemes import engine_module

    engine = engine_module()
    final = engine.weights_file(tmp_path / "float-002.h5")
    uninterrupted = _saved_weights(data, final)
    final.unlink()  # as if killed before it was written
    backup = engine.last_backup(tmp_path / "float-fit")  # tf_keras: a checkpoint; Keras 3: one weights file
    _cut(Path(backup if KERAS3 else f"{backup}.data-00000-of-00001"), "half")

    capsys.readouterr()
    assert run_phase_fit(_model(data), data, phase, tmp_path, RecordingLogger()) == {
        "resumed_from_step": 0,
        "steps": 110,
    }
    out = capsys.readouterr().out
    if KERAS3:
        assert f"float phase: the backup {backup} is unreadable (" in out and "starting this phase afresh" in out, out
    else:
        assert f"skipping the unreadable checkpoint {backup} (" in out, out
        assert "float phase: no readable checkpoint; starting this phase afresh" in out, out
    # The same weights, to the bit (Keras 3's file also records layer names, which count up within a process).
    assert all(np.array_equal(a, b) for a, b in zip(_saved_weights(data, final), uninterrupted, strict=True))


@pytest.mark.slow
def test_metrics_json_is_strict_and_lists_the_model_files_it_describes(clean_run):
    _, run, metrics = clean_run
    text = (run / "metrics.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json")) == json.loads(
        json.dumps(metrics)
    )
    written = {p.name for p in run.iterdir() if p.suffix in (".tflite", ".png") or p.name == "contract.json"}
    models = {"model_float.tflite", "model_ptq_int8.tflite", "model_int8.tflite"}
    assert set(metrics["files"]) == written == models | {"contract.json", "training.png", "confusion.png"}
    for name, entry in metrics["files"].items():
        assert entry == {"bytes": (run / name).stat().st_size, "sha256": _digest(run / name)}


def test_write_json_refuses_nan_and_writes_nothing(tmp_path):
    from qatzoo.files import write_json

    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            write_json(tmp_path / "metrics.json", {"results": {"qat_int8": {"mae": value}}})
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_non_finite_metric_refuses_the_run_naming_it(compose_cfg, co2_loader, tmp_path):
    from qatzoo.train.trainer import TrainingError, train

    co2_loader(huge_x_test)
    cfg = compose_cfg(*SYNTHETIC)
    with pytest.raises(TrainingError) as error:
        train(cfg, tmp_path)
    message = str(error.value)
    assert message.startswith("metric results.float.mae is ") and "\n" not in message, message
    assert not list(tmp_path.glob("*.tflite")) and not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("split", ["x_train", "y_val", "x_test"])
def test_non_finite_data_is_found_at_load(split):
    from qatzoo.errors import DataError

    with pytest.raises(DataError, match=rf"^data toy: 3 non-finite values in {split}$"):
        synthetic(name="toy", nan_in=split)


@pytest.mark.slow
def test_non_finite_data_through_train_py_is_one_line_and_leaves_no_run_dir(tmp_path):
    runs = tmp_path / "runs"
    argv = ["train.py", *SYNTHETIC, f"paths.runs_dir={runs}"]
    run_train_py = (  # train.py as `python train.py ...` runs it, with the co2 loader replaced
        f"import runpy, sys; import qatzoo.data.load as load; from {MODULE} import nan_in_x_test; "
        f"load.co2_forecast = nan_in_x_test; sys.argv = {argv!r}; runpy.run_path('train.py', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", run_train_py],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == "error: data co2_weekly: 3 non-finite values in x_test"
    assert not list(runs.rglob("*")), list(runs.rglob("*"))  # neither the run directory nor its recipe folder


@pytest.mark.slow
def test_init_checkpoint_that_is_not_weights_is_one_config_error(compose_cfg, co2_loader, tmp_path):
    from qatzoo.config import ConfigError
    from qatzoo.train.trainer import train

    co2_loader(synthetic)
    cfg = compose_cfg(*SYNTHETIC, "trainer.init_checkpoint=/etc/passwd")
    with pytest.raises(ConfigError) as error:
        train(cfg, tmp_path / "run")
    message = str(error.value)
    assert message.startswith("trainer.init_checkpoint: cannot read /etc/passwd as weights of ") and "\n" not in message
    assert not (tmp_path / "run").exists()


def test_unreadable_sibling_runs_are_skipped_with_one_warning_each(compose_cfg, tmp_path, capsys):
    from omegaconf import OmegaConf

    from qatzoo.config import ConfigError, validate
    from qatzoo.files import write_text
    from qatzoo.train.trainer import resume_dir

    cfg = compose_cfg(*TINY)
    runs = tmp_path / "mnist_cnn_int8"
    for name, text in (
        ("a", "schedule: {lr: [unclosed\n"),
        ("b", "- a list\n"),
        ("c", "\x00\xff"),
        ("d", "trainer: 3\n"),
    ):
        (runs / name / "checkpoints").mkdir(parents=True)
        (runs / name / "config.yaml").write_bytes(text.encode("latin-1"))
    (runs / "good" / "checkpoints").mkdir(parents=True)
    write_text(runs / "good" / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    assert resume_dir(validate(cfg), runs / "new") == runs / "good"
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 4, warnings
    for name, line in zip("abcd", sorted(warnings), strict=True):
        assert line.startswith(f"warning: ignoring the run in {runs / name}: its config.yaml "), line

    # Named explicitly (or as the run directory itself), an unreadable run is an error, not a warning.
    with pytest.raises(ConfigError, match=r"config.yaml: is not a mapping \(list\); pick another"):
        resume_dir(validate(cfg), runs / "b")


def test_run_files_get_the_mode_the_users_umask_gives(tmp_path):
    """Written atomically (temporary name, then rename), but not private: mkstemp's 0600 made every run file,
    card and zoo index readable by its writer alone."""
    from qatzoo.files import write_text

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "card.md", "x")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["card.md"]


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ("nosuch", r"^data mnist5k: split 'nosuch' cannot be read \(Unknown split 'nosuch'.*; its splits: train, "),
        ('"train[5:2]"', r"^data mnist5k: split 'train\[5:2\]' holds no examples$"),
        ('"train[:200%]"', r"^data mnist5k: split 'train\[:200%\]' cannot be read \(Error parsing split"),
    ],
)
def test_a_split_tfds_cannot_read_is_one_data_error_line(compose_cfg, tmp_path, split, message):
    from qatzoo.build import load_data
    from qatzoo.config import validate
    from qatzoo.errors import DataError

    cfg = validate(compose_cfg(f"data.splits.train={split}"))
    with pytest.raises(DataError, match=message) as error:
        load_data(cfg.data)
    assert "\n" not in str(error.value)


def test_an_unquoted_tfds_slice_on_the_command_line_says_how_to_quote_it():
    from qatzoo.config import ConfigError, check_overrides

    with pytest.raises(ConfigError) as error:
        check_overrides(["data.splits.train=train[:90%]"])
    assert str(error.value) == (
        "data.splits.train=train[:90%]: Hydra reads [ ] as a list; quote the value: data.splits.train='\"train[:90%]\"'"
    )
