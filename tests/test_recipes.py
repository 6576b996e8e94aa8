"""Every recipe in recipes/ runs end to end on a tiny budget on both QAT engines (recipes and engines
discovered, not listed by hand), and the int8 numbers it reports are what the exported .tflite gives in
LiteRT on the full test split."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from qatzoo.config import recipe_names
from qatzoo.engine import ENGINES
from tests.conformance import assert_deploys, assert_int8_conformance
from tests.conftest import ENGINE

TINY = ["schedule.float_epochs=1", "schedule.qat_epochs=1", "trainer.verbose=0", "trainer.representative_samples=64"]
#: The image recipes' data on the other engine (tfmot, in train.py): the 5,000 digits, to keep the suite short (the
#: engine quantizes the same architecture and scheme whatever the images; this process's engine runs the recipe's
#: own data).
SMALL_DATA = {"mnist": "data=mnist_5k", "fashion_mnist": "data=mnist_5k"}
#: Recipes whose architecture has layers only the Keras 3 engine quantizes (qatzoo.quant.policy.KERAS3_LAYERS):
#: on tfmot, train.py refuses them at start with one line.
KERAS3_ONLY = {"ds_cnn_fashion_int8"}
#: Recipes of an architecture another recipe already runs on the other engine (the forecaster on other series or
#: encodings: attention_int8; the CNN on Fashion-MNIST: mnist_cnn_int8, on the same 5,000 digits there): on this
#: process's engine only (each recipe more on the other engine costs a training process, about a minute).
ONE_ENGINE = {"attention_drift_int8", "attention_taylor_int8", "attention_vic_int8", "mnist_cnn_fashion_int8"}


def _run_recipe(recipe: str, engine: str, compose_cfg, data_dir: str, tmp_path):
    """Train ``recipe`` on ``engine``: this process's engine (the default, Keras 3) in this process, the other in
    ``train.py`` (a process holds one Keras). Returns (cfg, metrics)."""
    given = [f"recipe={recipe}", *TINY, "trainer.baselines=true", "trainer.deployment=true"]
    if engine == ENGINE and compose_cfg(f"recipe={recipe}").data.name in SMALL_DATA:
        # Tiny budget: 5,000 training images, 2,000 validation and the first 2,000 official test images.
        given += [
            "data.splits.train='train[:5000]'",
            "data.splits.val='train[55000:57000]'",
            "data.splits.test='test[:2000]'",
        ]
    if engine == ENGINE:
        from qatzoo.train.trainer import train

        cfg = compose_cfg(*given)
        metrics = train(cfg, tmp_path)
        assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
        return cfg, metrics
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    data = SMALL_DATA.get(compose_cfg(f"recipe={recipe}").data.name)
    given += [f"engine={engine}", *([data] if data else [])]
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "QATZOO_ENGINE")}
    done = subprocess.run(
        [sys.executable, "train.py", *given, f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path}"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The reproduce command: the overrides given, quoted for a shell.
    assert metrics["provenance"]["engine"]["name"] == engine
    assert metrics["command"] == "python train.py " + shlex.join(given)
    return compose_cfg(*given), metrics


def _assert_refused_on_tfmot(recipe: str, data_dir: str, tmp_path) -> None:
    """A keras3-only recipe on engine=tfmot: one error line naming the engine that quantizes it, no results."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    environment = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "QATZOO_ENGINE")}
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"recipe={recipe}",
            "engine=tfmot",
            "data=mnist_5k",
            f"paths.data_dir={data_dir}",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:") or "Error" in line]
    assert done.returncode != 0 and "is quantized by the keras3 engine only (engine=keras3" in done.stderr, done.stderr
    assert len([e for e in errors if "keras3 engine only" in e]) == 1, done.stderr
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "engine"),
    [(r, e) for r in recipe_names() for e in ENGINES if r not in ONE_ENGINE or e == ENGINE],
)
def test_recipe_runs_end_to_end_and_reports_true_int8_numbers(recipe, engine, compose_cfg, data_dir, tmp_path):
    if recipe in KERAS3_ONLY and engine == "tfmot":
        _assert_refused_on_tfmot(recipe, data_dir, tmp_path)
        return
    cfg, metrics = _run_recipe(recipe, engine, compose_cfg, data_dir, tmp_path)

    for name in (
        "config.yaml",
        "metrics.json",
        "card.md",
        "contract.json",
        "model_float.keras",
        "model_float.tflite",
        "model_int8.tflite",
        "model_ptq_int8.tflite",
    ):
        assert (tmp_path / name).is_file(), name
    # Per-epoch weights only with trainer.epoch_weights=true; the resumable checkpoints always.
    assert not list((tmp_path / "checkpoints").glob("*.h5"))
    assert (tmp_path / "checkpoints" / "qat" / "checkpoint").is_file()
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"
    assert set(metrics["results"]) == {"float", "float_tflite", "ptq_int8", "qat", "qat_int8"}
    assert metrics["int8_model"] == "qat_int8"
    # Baselines on the same split: finite numbers, the task's metric, in the card's table.
    seasonal = "seasonal_periods" in metrics["dataset"]
    expected = {"mae": {"persistence", "seasonal_naive_drift", "fourier_arima", "seasonal_arima"}}
    if seasonal:  # a series with daily and weekly cycles: the baselines its users reach for
        expected = {
            "mae": {"seasonal_naive_day", "seasonal_naive_week", "mstl_ets", "ridge_lags_fourier", "nlinear", "dlinear"}
        }
    names = expected.get(metrics["metric"], {"logistic_regression", "rbf_svm", "rbf_svm_pca"})
    assert set(metrics["baselines"]) == names
    assert all(np.isfinite(b[metrics["metric"]]) and b["about"] for b in metrics["baselines"].values())
    # Significance of the int8 file against each baseline: the strongest named, "beats" only where p < alpha.
    tested = metrics["significance"]
    pick = max if metrics["higher_is_better"] else min
    assert tested["best"] == pick(names, key=lambda n: metrics["baselines"][n][metrics["metric"]])
    assert set(tested["baselines"]) == names
    for result in tested["baselines"].values():
        assert result["test"] == ("mcnemar" if metrics["metric"] == "accuracy" else "diebold_mariano")
        assert (result["verdict"] != "ties") == (result["p"] < tested["alpha"])
    assert "the int8 model against it" in (tmp_path / "card.md").read_text()
    assert set(metrics["agreement"]) == {"ptq_int8 vs float", "qat vs float", "qat_int8 vs qat", "qat_int8 vs float"}

    # The truth: recompute the int8 metric from the file on disk, on the full test split.
    data = _data(cfg)
    reported = metrics["results"]["qat_int8"][metrics["metric"]]
    assert _score_file(tmp_path / "model_int8.tflite", data) == pytest.approx(reported, abs=1e-9)
    assert _score_file(tmp_path / "model_ptq_int8.tflite", data) == pytest.approx(
        metrics["results"]["ptq_int8"][metrics["metric"]], abs=1e-9
    )
    assert metrics["dataset"]["sizes"]["test"] == len(data.x_test)
    # The run's contract: raw test inputs through Model.predict give the reported int8 metric.
    from qatzoo.model import Model

    model = Model.from_run(tmp_path)
    assert model.contract == metrics["contract"]
    if metrics["metric"] == "accuracy":
        value = 100.0 * float(np.mean(model.predict(data.raw["x_test"]) == data.y_test))
        assert value == pytest.approx(reported, abs=1e-9)
    else:
        value = float(np.mean(np.abs(model.predict(data.raw["x_test"]) - data.raw["y_test"])))
        assert value == pytest.approx(reported, rel=1e-5)
    from qatzoo.provenance import config_hash, data_fingerprint

    assert metrics["provenance"]["data_sha256"] == data_fingerprint(data)
    assert metrics["provenance"]["config_sha256"] == config_hash(cfg)
    # The float .tflite computes what the float Keras model does.
    float_keras, float_tflite = (metrics["results"][k][metrics["metric"]] for k in ("float", "float_tflite"))
    assert float_tflite == pytest.approx(float_keras, rel=0.01, abs=0.5)

    assert_int8_conformance(tmp_path / "model_int8.tflite", metrics, strict_parity=recipe != "transformer_int8")
    assert_deploys(tmp_path / "model_int8.tflite", metrics)
    if "attention" in cfg.arch.name or "transformer" in cfg.arch.name:
        # K and V on a symmetric grid (zero point 0): XNNPACK runs both int8 attention matmuls.
        assert "BATCH_MATMUL" not in metrics["deployment"]["litert_cpu"]["xnnpack"]["int8"]["outside"]
    card = (tmp_path / "card.md").read_text()
    assert f"python train.py recipe={recipe}" in card
    assert f"zero point {metrics['int8']['input']['zero_point']}" in card
    assert "## Where it runs" in card and "TensorFlow Lite Micro: runs" in card
    # Cards people read: how to call it, and the figures (recorded like every file the run writes).
    assert "## Use it" in card and f'load("{recipe}")' in card and "## Baselines" in card
    figure = "forecast.png" if metrics["metric"] == "mae" else "confusion.png"
    for name in ("training.png", figure):
        assert f"]({name})" in card and metrics["files"][name]["bytes"] == (tmp_path / name).stat().st_size


@pytest.mark.slow
def test_ptq_only_and_float_only_schemes(compose_cfg, tmp_path):
    from qatzoo.train.trainer import train

    given = ["recipe=mnist_cnn_int8", "data=mnist_5k", "quant=ptq_int8", *TINY]
    ptq = train(compose_cfg(*given), tmp_path / "ptq", overrides=given)
    assert ptq["command"] == "python train.py " + " ".join(given)  # not the recipe alone, which would be QAT
    assert set(ptq["results"]) == {"float", "float_tflite", "ptq_int8"}
    assert ptq["int8_model"] == "ptq_int8" and ptq["int8"]["parity_reference"] == "float"
    assert not (tmp_path / "ptq" / "model_ptq_int8.tflite").exists()
    assert_int8_conformance(tmp_path / "ptq" / "model_int8.tflite", ptq)

    none = train(compose_cfg("recipe=mnist_cnn_int8", "data=mnist_5k", "quant=none", *TINY), tmp_path / "none")
    assert set(none["results"]) == {"float", "float_tflite"} and none["int8_model"] is None
    assert not (tmp_path / "none" / "model_int8.tflite").exists()


@pytest.mark.slow
def test_init_checkpoint_skips_the_float_phase(compose_cfg, tmp_path):
    from pathlib import Path

    from qatzoo.quant.schemes import engine_module
    from qatzoo.train.trainer import train

    weights = engine_module().weights_file(Path("float-001.h5")).name  # Keras 3: float-001.weights.h5
    first = train(
        compose_cfg("recipe=mnist_cnn_int8", "data=mnist_5k", "quant=none", "trainer.epoch_weights=true", *TINY),
        tmp_path / "a",
    )
    again = train(
        compose_cfg(
            "recipe=mnist_cnn_int8",
            "data=mnist_5k",
            "quant=none",
            *TINY,
            f"trainer.init_checkpoint={tmp_path}/a/checkpoints/{weights}",
        ),
        tmp_path / "b",
    )
    assert again["results"]["float"] == first["results"]["float"]
    assert again["timing"]["float_train_s"] < first["timing"]["float_train_s"]
    assert not (tmp_path / "b" / "checkpoints" / weights).exists()


def _data(cfg):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.create({k: v for k, v in cfg.data.items() if k != "task"})
    return instantiate(node, _convert_="all")


def _score_file(path, data) -> float:
    from qatzoo.export.litert import interpreter

    it = interpreter(str(path))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    predictions = []
    for x in data.x_test:  # quantize/dequantize written out here, independently of qatzoo.export
        # round(x / scale + zero point), in that order as qatzoo.export.litert.quantize does: rounding x / scale
        # first and adding the zero point after lands a value a float ulp from a half step on the other side.
        q = np.clip(np.round(x / in_scale + in_zero), -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], q[None])
        it.invoke()
        predictions.append((it.get_tensor(out["index"])[0].astype(np.float32) - out_zero) * out_scale)
    predictions = np.stack(predictions)
    if data.task == "classification":
        return float(np.mean(np.argmax(predictions, -1) == data.y_test) * 100.0)
    return float(np.mean(np.abs(predictions - data.y_test)) * data.target_scale)


@pytest.mark.slow
def test_nan_loss_stops_with_one_line_and_keeps_no_bad_checkpoint(compose_cfg, tmp_path):
    from qatzoo.train.trainer import TrainingError, train

    cfg = compose_cfg(
        "recipe=mnist_cnn_int8", "data=mnist_5k", "schedule.float_epochs=2", "schedule.lr=1e12", "trainer.verbose=0"
    )
    with pytest.raises(TrainingError) as error:
        train(cfg, tmp_path)
    assert "\n" not in str(error.value) and "lower schedule.lr" in str(error.value)
    assert not list((tmp_path / "checkpoints").glob("*.h5"))
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow
def test_csv_logger_records_both_phases(compose_cfg, tmp_path):
    import csv

    from qatzoo.train.trainer import train

    train(compose_cfg("recipe=mnist_cnn_int8", "data=mnist_5k", "logger=csv", *TINY), tmp_path)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [(r["phase"], r["epoch"]) for r in rows] == [("float", "1"), ("qat", "1")]
    # In the reported unit, as metrics.json: accuracy in percent.
    assert all(1.0 < float(r["val_accuracy"]) <= 100.0 for r in rows)


@pytest.mark.slow
def test_same_command_twice_gives_identical_weights_and_int8_file(tmp_path, data_dir):
    import hashlib
    import subprocess
    import sys

    from tests.conftest import REPO

    # Both at once: the bytes depend on the command, not on what else the machine runs.
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "train.py",
                "recipe=mnist_cnn_int8",
                "data=mnist_5k",  # determinism, not data: the 5,000 digits keep this test short
                *TINY,
                f"paths.data_dir={data_dir}",
                f"hydra.run.dir={tmp_path / run}",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in ("a", "b")
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    digest = {run: hashlib.sha256((tmp_path / run / "model_int8.tflite").read_bytes()).hexdigest() for run in "ab"}
    # The reproduce command holds the overrides given (not paths.* or hydra.*: where this machine keeps things).
    command = json.loads((tmp_path / "a" / "metrics.json").read_text())["command"]
    assert command == " ".join(["python train.py", "recipe=mnist_cnn_int8", "data=mnist_5k", *TINY])
    assert f"    {command}\n" in (tmp_path / "a" / "card.md").read_text()
    assert digest["a"] == digest["b"]
    a, b = (_checkpoint(tmp_path / run / "checkpoints" / "qat") for run in "ab")
    assert a.keys() == b.keys() and len(a) > 20 and all(np.array_equal(a[k], b[k]) for k in a)


def _checkpoint(directory):
    """Every variable of a phase's last checkpoint, by its object-graph path (stable across runs)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(directory)))
    names = [n for n in reader.get_variable_to_shape_map() if not n.startswith(("_CHECKPOINTABLE", "save_counter"))]
    return {n: reader.get_tensor(n) for n in names}
