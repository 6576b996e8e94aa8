"""The Optuna sweeper refuses, with one line and exit 2, what it cannot run safely: a stored study of another
direction, sampler or search space; a second sweep of a study while one runs; an n_trials that is not a count
(however Hydra was started); a damaged study file. Real train.py, Hydra and Optuna; no trial trains, except in
the slow test of two concurrent sweeps."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from hydra_plugins.qatzoo_sweeper import SAMPLER_ATTR, SPACE_ATTR
from tests.conftest import REPO
from tests.test_sweeps import TINY, _train

#: The search space of conf/sweep/cnn_qat.yaml, as the sweeper asks it.
SPACE = {
    "schedule.qat_lr": FloatDistribution(1e-5, 1e-3, log=True),
    "schedule.qat_epochs": CategoricalDistribution([1, 2, 3, 5]),
    "quant.weight_bits": CategoricalDistribution([4, 6, 8]),
    "quant.per_channel": CategoricalDistribution([True, False]),
}


def _study(sweep, direction="maximize", values=(0.9, 0.5)) -> optuna.Study:
    """A cnn_qat study in ``sweep``/optuna.db with finished trials, as an earlier sweep leaves it."""
    sweep.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="cnn_qat", storage=f"sqlite:///{sweep}/optuna.db", direction=direction)
    for value in values:
        study.tell(study.ask(SPACE), value)
    return study


def _one_line(result, message: str) -> str:
    assert result.returncode == 2, (result.stdout + result.stderr)[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    return lines[0]


def _sweep(sweep, *args, config_name=False):
    where = [f"paths.runs_dir={sweep.parent}/runs", f"hydra.sweep.dir={sweep}"]
    return _train([*(["--config-name", "config"] if config_name else []), "sweep=cnn_qat", *args, *where], 120)


def test_a_stored_study_of_the_other_direction_is_not_resumed(tmp_path):
    """Before: resumed as is, and optimization_results.yaml named the worst trial (0.5 accuracy) the best."""
    sweep = tmp_path / "sweep"
    _study(sweep, direction="minimize")
    line = _one_line(_sweep(sweep, "hydra.sweeper.n_trials=2"), "has direction minimize, this sweep maximize")
    assert line.startswith(f"error: study cnn_qat in {sweep / 'optuna.db'} has direction minimize")
    assert not (sweep / "optimization_results.yaml").exists()


def test_a_stored_study_of_another_sampler_or_search_space_is_not_resumed(tmp_path):
    sweep = tmp_path / "sweep"
    _study(sweep)  # made before the sweeper recorded its sampler and space: the trials' distributions say
    result = _sweep(sweep, "hydra.sweeper.n_trials=2", "quant.weight_bits=choice(4,8)")
    _one_line(result, "has another search space: quant.weight_bits was CategoricalDistribution(choices=(4, 6, 8)), "
              "this sweep CategoricalDistribution(choices=(4, 8))")  # fmt: skip

    # The same sweep resumes it (nothing left to run) and records its sampler and space in the study.
    result = _sweep(sweep, "hydra.sweeper.n_trials=2")
    assert result.returncode == 0 and "nothing left to run" in result.stdout + result.stderr, result.stderr[-2000:]
    attrs = optuna.load_study(study_name="cnn_qat", storage=f"sqlite:///{sweep}/optuna.db").user_attrs
    assert attrs[SAMPLER_ATTR] == {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    assert sorted(attrs[SPACE_ATTR]) == sorted(SPACE)

    _one_line(
        _sweep(sweep, "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=1"),
        'has sampler {"_target_": "optuna.samplers.TPESampler", "seed": 0}, this sweep '
        '{"_target_": "optuna.samplers.TPESampler", "seed": 1}',
    )
    _one_line(
        _sweep(sweep, "hydra.sweeper.n_trials=2", "schedule.qat_lr=interval(0.0001,0.01)"),
        "has another search space: schedule.qat_lr was FloatDistribution(high=0.001, log=True, low=1e-05, step=None), "
        "this sweep FloatDistribution(high=0.01, log=False, low=0.0001, step=None)",
    )
    _one_line(
        _sweep(sweep, "hydra.sweeper.n_trials=2", "quant.per_channel=true"),
        "has another search space: quant.per_channel was CategoricalDistribution(choices=(True, False)), "
        "this sweep not searched",
    )


def test_a_second_sweep_of_a_study_that_is_running_is_refused(tmp_path):
    """The first sweep's process holds the lock beside optuna.db and has a trial running. Before: the second
    sweep failed that trial, queued its parameters again and retrained it in the same run directory."""
    sweep = tmp_path / "sweep"
    study = _study(sweep)
    running = study.ask(SPACE)
    with open(sweep / "optuna.db.lock", "w") as lock:  # what the first sweep's process holds while it runs
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        line = _one_line(_sweep(sweep, "hydra.sweeper.n_trials=4"), "another sweep of study cnn_qat is running")
    assert f"({sweep / 'optuna.db.lock'} is locked by process {os.getpid()})" in line
    assert study.trials[running.number].state == optuna.trial.TrialState.RUNNING
    assert len(study.trials) == 3 and not [p for p in sweep.iterdir() if p.name.isdigit()]


@pytest.mark.parametrize("config_name", [False, True], ids=["start-up check", "--config-name: the sweeper"])
@pytest.mark.parametrize("n_trials", ["null", "0"])
def test_n_trials_that_is_not_a_count_is_one_line(tmp_path, n_trials, config_name):
    """train.py's start-up check does not run with --config-name; the sweeper checks n_trials itself.
    Before: a TypeError traceback (null) or a ValueError traceback (0), exit 1."""
    sweep = tmp_path / "sweep"
    result = _sweep(sweep, f"hydra.sweeper.n_trials={n_trials}", config_name=config_name)
    _one_line(result, f"hydra.sweeper.n_trials: expected the total number of trials, an integer >= 1, got {n_trials}")
    assert not sweep.exists() and not (tmp_path / "runs").exists()


DAMAGED = [
    (lambda db: db.write_text("not a database\n"), "(file is not a database)"),
    (lambda db: db.write_bytes(db.read_bytes()[:5000]), "(database disk image is malformed)"),
    (lambda db: db.write_bytes(db.read_bytes()[: db.stat().st_size - 4096]), "(database disk image is malformed)"),
]


@pytest.mark.parametrize(("damage", "reason"), DAMAGED, ids=["garbage", "truncated to 5 kB", "last page cut"])
def test_a_damaged_study_file_is_one_line(tmp_path, damage, reason):
    """Before: a SQLAlchemy DatabaseError traceback."""
    sweep = tmp_path / "sweep"
    _study(sweep)
    damage(sweep / "optuna.db")
    line = _one_line(_sweep(sweep, "hydra.sweeper.n_trials=2"), reason)
    assert line.startswith(f"error: {sweep / 'optuna.db'} is not a readable Optuna study")


@pytest.mark.slow
def test_two_concurrent_sweeps_of_one_study(tmp_path, data_dir):
    """A real first sweep, its trial running; the second stops with one line and the first's trial completes."""
    sweep = tmp_path / "sweep"
    args = ["sweep=cnn_qat", *TINY, f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}", "logger=csv"]
    first = subprocess.Popen(
        [sys.executable, "train.py", "-m", *args, "hydra.sweeper.n_trials=1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (sweep / "0").is_dir():  # the trial's run directory: its trial is running
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()[-3000:]
            time.sleep(0.5)
        _one_line(_train([*args, "hydra.sweeper.n_trials=2"], 120), "another sweep of study cnn_qat is running")
        assert first.wait(timeout=600) == 0, first.stdout.read()[-3000:]
    finally:
        first.kill()
    study = optuna.load_study(study_name="cnn_qat", storage=f"sqlite:///{sweep}/optuna.db")
    assert [(t.number, t.state.name) for t in study.trials] == [(0, "COMPLETE")]
    assert (sweep / "0" / "metrics.json").is_file()
