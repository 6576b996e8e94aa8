"""Sweeps: start-up checks, Optuna (resumable, SQLite), parallel launchers, the summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

# Deployment checks (TFLite Micro, Vela) are tested elsewhere; a sweep trial here skips them, and trains on
# 1,000 of the 3,500 training digits of data=mnist_5k (what is tested is the sweep, not the model).
TINY = [
    "schedule.float_epochs=1",
    "trainer.verbose=0",
    "trainer.representative_samples=64",
    "trainer.deployment=false",
    "data.splits.train='train[:1000]'",
]


def _train(args, timeout=600, env=None):
    return subprocess.run(
        [sys.executable, "train.py", "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


BAD = [
    (
        ["schedule.qat_lrr=0.1,0.2"],
        "schedule.qat_lrr: unknown field; did you mean schedule.qat_lr?; schedule fields are:",
    ),
    (["schedule.qat_epochs=range(5,1)"], "schedule.qat_epochs: the sweep range(5,1) has no values"),
    (["schedule.lr=interval(0.1,0.01)"], "schedule.lr: interval(0.1, 0.01) is empty"),
    (["quant.weight_bits=choice(4,9)"], "quant.weight_bits: expected an integer >= 2 and <= 8, got 9"),
    (["quant=w4a8,w9"], "quant=w9: no such option; quant is one of:"),
    (["sweep=nope"], "sweep=nope: no such option; sweep is one of: attention_lr, cnn_qat"),
    # No trial to run: stopped before the sweeper creates optuna.db (the test checks the sweep dir is not made).
    (["sweep=cnn_qat", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials: expected the total number of trials"),
    (["sweep=attention_lr", "hydra.sweeper.n_trials=-2"], "an integer >= 1, got -2"),
    (
        ["sweep=cnn_qat", "hydra.sweeper.n_trials=1.5"],
        "n_trials: expected the total number of trials, an integer >= 1, got 1.5",
    ),
    (
        ["sweep=cnn_qat", "hydra.sweeper.n_trails=5"],
        "Could not override 'hydra.sweeper.n_trails': Key 'n_trails' is not in struct",
    ),
    (["sweep=cnn_qat", "+hydra.sweeper.n_trails=5"], "hydra.sweeper.n_trails: unknown field; the Optuna sweeper's"),
    (["sweep=cnn_qat", "hydra.sweeper.pruner._target_=os.system"], "hydra.sweeper.pruner: expected null or"),
    (["sweep=attention_lr", "hydra.sweeper.max_failure_rate=2"], "hydra.sweeper.max_failure_rate: expected a number"),
    (
        ["sweep=cnn_qat", "hydra.sweeper.direction=minimize"],
        "hydra.sweeper.direction: minimize optimises the wrong way; the objective is the int8 model's accuracy",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_sweep_definitions_fail_at_start_up_with_one_line(tmp_path, args, message):
    result = _train([*args, f"paths.runs_dir={tmp_path}/runs", f"hydra.sweep.dir={tmp_path}/sweep"], timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "runs").exists()


def _trials(db):
    import optuna

    study = optuna.load_study(study_name="cnn_qat", storage=f"sqlite:///{db}")
    return study, [(t.number, t.state.name) for t in study.trials]


@pytest.mark.slow
def test_optuna_sweep_optimises_the_int8_validation_metric_and_resumes(tmp_path, data_dir):
    import optuna

    sweep = tmp_path / "sweep"
    args = ["sweep=cnn_qat", *TINY, f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}", "logger=csv"]
    result = _train([*args, "hydra.sweeper.n_trials=2"])
    assert result.returncode == 0, result.stderr[-3000:]
    study, trials = _trials(sweep / "optuna.db")
    assert trials == [(0, "COMPLETE"), (1, "COMPLETE")]
    for trial in study.trials:
        metrics = json.loads((sweep / str(trial.number) / "metrics.json").read_text())
        # The objective Optuna saw is the int8 model's LiteRT accuracy on the validation split.
        assert trial.value == metrics["validation"]["qat_int8"]["accuracy"]
        config = (sweep / str(trial.number) / "config.yaml").read_text()
        assert f"qat_epochs: {trial.params['schedule.qat_epochs']}" in config
        assert f"weight_bits: {trial.params['quant.weight_bits']}" in config

    # The summary: every trial, best validation score first, and the best run's publish command.
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [float(r["val_int8"]) for r in rows] == sorted((t.value for t in study.trials), reverse=True)
    assert {"schedule.qat_lr", "schedule.qat_epochs", "quant.weight_bits", "quant.per_channel"} <= set(rows[0])
    assert f"qatzoo publish {sweep / rows[0]['trial']}" in (sweep / "summary.md").read_text()
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"

    # The best trial's run directory is publishable as is.
    from qatzoo.zoo.publish import publish

    entry = publish(sweep / rows[0]["trial"], tmp_path / "zoo", name="cnn_qat_best")
    assert entry["name"] == "cnn_qat_best" and (tmp_path / "zoo" / "index.json").is_file()

    # An interrupted trial (asked, never told: the process died) and a rerun asking for 4 in total:
    # the stale trial is failed and its parameters run again; the numbering goes on after it.
    stale = study.ask(
        {
            "schedule.qat_lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True),
            "schedule.qat_epochs": optuna.distributions.CategoricalDistribution([1, 2, 3, 5]),
            "quant.weight_bits": optuna.distributions.CategoricalDistribution([4, 6, 8]),
            "quant.per_channel": optuna.distributions.CategoricalDistribution([True, False]),
        }
    )
    result = _train([*args, "hydra.sweeper.n_trials=4"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"trial {stale.number} was interrupted" in result.stdout + result.stderr
    study, trials = _trials(sweep / "optuna.db")
    assert trials == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "FAIL"), (3, "COMPLETE"), (4, "COMPLETE")]
    assert study.trials[3].params == stale.params
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1", "3", "4"]
    assert len(list(csv.DictReader(open(sweep / "summary.csv")))) == 4

    # The summary can be rewritten on demand.
    (sweep / "summary.md").unlink()
    from qatzoo.cli import main

    assert main(["sweep-summary", str(sweep)]) == 0 and (sweep / "summary.md").is_file()


@pytest.mark.slow
def test_a_pruner_stops_trials_in_worker_processes_and_the_summary_marks_them(tmp_path, data_dir):
    """Two trials at once in the joblib launcher's worker processes; each reports its epochs to the study in
    SQLite, and a pruner that stops every trial after its first QAT epoch (accuracy below 100%) ends them
    there: no int8 model, the trial PRUNED, its directory marked, the summary and plot say so."""
    sweep = tmp_path / "sweep"
    pruner = "{_target_:optuna.pruners.ThresholdPruner,lower:100.0,n_warmup_steps:2}"
    args = ["sweep=cnn_qat", *TINY, f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep}", "logger=csv"]
    args += ["hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    result = _train([*args, "~hydra.sweeper.pruner", f"+hydra.sweeper.pruner={pruner}"])
    assert result.returncode == 0, result.stderr[-3000:]
    study, trials = _trials(sweep / "optuna.db")
    assert trials == [(0, "PRUNED"), (1, "PRUNED")]
    for trial in study.trials:
        run = sweep / str(trial.number)
        # Reported from the worker process: the float epoch (step 1) and the first QAT epoch (step 2).
        assert sorted(trial.intermediate_values) == [1, 2]
        marker = json.loads((run / "pruned.json").read_text())
        assert (marker["phase"], marker["epoch"], marker["step"]) == ("qat", 1, 2)
        assert marker["val_accuracy"] == trial.intermediate_values[2]
        assert not (run / "metrics.json").exists() and not (run / "model_int8.tflite").exists()
        # The trial's config is a plain run's: the trial number travelled outside it.
        assert "QATZOO_OPTUNA_TRIAL" not in (run / "config.yaml").read_text()
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert sorted(r["status"] for r in rows) == ["pruned (qat epoch 1)"] * 2
    assert "2 trials (2 pruned)" in (sweep / "summary.md").read_text()
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"

    # A rerun asking for the same total has nothing left to do: pruned trials are finished trials.
    result = _train([*args, "~hydra.sweeper.pruner", f"+hydra.sweeper.pruner={pruner}"])
    assert result.returncode == 0 and "nothing left to run" in result.stdout + result.stderr
    assert _trials(sweep / "optuna.db")[1] == trials


@pytest.mark.slow
def test_grid_sweep_in_parallel_with_the_joblib_launcher(tmp_path, data_dir):
    """On engine=keras3 (the other sweep tests run the default engine): each joblib worker process
    selects the engine from its trial's config; 4- and 8-bit kernels, offline W&B runs grouped by sweep."""
    import os

    from tests.wandb_records import read_complete

    sweep = tmp_path / "sweep"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}
    env.pop("WANDB_API_KEY", None)  # offline W&B runs, readable from disk
    result = _train(
        [
            "recipe=mnist_cnn_int8",
            "data=mnist_5k",
            "engine=keras3",
            "quant.weight_bits=4,8",
            "schedule.qat_epochs=1",
            *TINY,
            f"paths.data_dir={data_dir}",
            f"hydra.sweep.dir={sweep}",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "logger=wandb",
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # One W&B run per trial, grouped under the sweep.
    for n in ("0", "1"):
        (path,) = (sweep / n).glob("wandb/offline-run-*/run-*.wandb")
        (run,) = [r.run for r in read_complete(path) if r.WhichOneof("record_type") == "run"]
        assert run.run_group == sweep.name
    metrics = [json.loads((sweep / n / "metrics.json").read_text()) for n in ("0", "1")]
    assert {m["scheme"]["weight_bits"] for m in metrics} == {4, 8}
    assert {m["provenance"]["engine"]["name"] for m in metrics} == {"keras3"}
    four, eight = sorted(metrics, key=lambda m: m["scheme"]["weight_bits"])
    assert four["lowbit"]["storage"] == ["int4"] and four["lowbit"]["kernels_on_grid"] == four["lowbit"]["kernels"]
    assert four["sizes"]["int8_tflite"] < 0.6 * eight["sizes"]["int8_tflite"]  # its kernels packed in INT4
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert sorted(r["quant.weight_bits"] for r in rows) == ["4", "8"] and all(r["status"] == "ok" for r in rows)


@pytest.mark.slow
def test_grid_sweep_on_a_local_ray_instance(tmp_path, data_dir):
    """hydra-ray-launcher starts a local Ray instance (no address given) and runs each trial as a task."""
    sweep = tmp_path / "sweep"
    result = _train(
        [
            "recipe=mnist_cnn_int8",
            "data=mnist_5k",
            "engine=keras3",
            "quant.weight_bits=4,8",
            "schedule.qat_epochs=1",
            *TINY,
            f"paths.data_dir={data_dir}",
            f"hydra.sweep.dir={sweep}",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "_run_job pid=" in result.stdout + result.stderr  # the trials ran as Ray tasks
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert sorted(r["quant.weight_bits"] for r in rows) == ["4", "8"] and all(r["status"] == "ok" for r in rows)
