"""The model contract in use: every zoo model (discovered from the index) fed raw inputs through
``load(name).predict`` reproduces the metric the index records; bad inputs are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qatzoo.contract import ContractError, problem
from qatzoo.zoo.download import load
from qatzoo.zoo.index import find, read_index
from tests.conftest import REPO

INDEX = read_index(REPO / "zoo" / "index.json")
SPECS = [f"{e['name']}@{e['version']}" for e in INDEX["models"]]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_predict_on_raw_inputs_reproduces_the_index_metric(spec, cache, data_dir):
    from qatzoo.zoo.verify import load_test_data

    entry = find(INDEX, spec)
    model = load(spec, index=str(REPO / "zoo"), progress=False)
    assert problem(model.contract) is None and model.contract == entry["contract"]
    data = load_test_data(entry["dataset"]["name"], entry["config"]["data"], data_dir)
    recorded = entry["metrics"][entry["int8_model"]]
    if entry["task"] == "classification":
        pixels = data.raw["x_test"]
        assert pixels.dtype == np.uint8 and pixels.shape[1:] == (28, 28)
        classes = model.predict(pixels)
        assert 100.0 * float(np.mean(classes == data.y_test)) == pytest.approx(recorded, abs=1e-9)
        one = model.predict(pixels[0], labels=True, probabilities=True)
        assert one["labels"] == entry["contract"]["output"]["classes"][classes[0]]
        assert one["probabilities"].sum() == pytest.approx(1.0, abs=1e-5)
    else:
        series, starts = data.raw["series"], data.raw["test_starts"]
        window = entry["contract"]["input"]["raw"]["min_length"]
        history = np.stack([series[s - window - 8 : s] for s in starts])  # longer than the window: fine
        forecasts = model.predict(history)
        assert forecasts.shape == data.raw["y_test"].shape
        mae = float(np.mean(np.abs(forecasts - data.raw["y_test"])))
        assert mae == pytest.approx(recorded, rel=1e-5)
        assert model.predict(series[: starts[0]]) == pytest.approx(forecasts[0])  # one series, all its history


def test_bad_inputs_are_one_clear_error(cache):
    cnn = load("mnist_cnn_int8", index=str(REPO / "zoo"), progress=False)
    for bad, words in (
        (np.zeros((28, 28), np.float32), "uint8 pixels"),
        (np.zeros((27, 28), np.uint8), "one image (28, 28)"),
        (np.zeros((2, 3, 28, 28), np.uint8), "one image (28, 28)"),
        (np.array(["a"]), "must be numbers"),
    ):
        with pytest.raises(ContractError, match=words.replace("(", r"\(").replace(")", r"\)")):
            cnn.predict(bad)
    forecaster = load("attention_int8", index=str(REPO / "zoo"), progress=False)
    need = forecaster.contract["input"]["raw"]["min_length"]
    with pytest.raises(ContractError, match=f"at least {need} values"):
        forecaster.predict(np.ones(need - 1))
    with pytest.raises(ContractError, match="NaN"):
        forecaster.predict(np.full(60, np.nan))


def test_predict_command_reads_png_npy_and_csv_and_refuses_bad_files(cache, tmp_path, capsys):
    from PIL import Image

    from qatzoo.cli import main

    zoo = str(REPO / "zoo")
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 13:16] = 255  # a bar: some digit
    Image.fromarray(digit).save(tmp_path / "x.png")
    np.save(tmp_path / "x.npy", digit[None].repeat(3, axis=0))
    assert main(["predict", "mnist_cnn_int8", str(tmp_path / "x.png"), "--index", zoo]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "%" in out[0]
    assert main(["predict", "mnist_cnn_int8", str(tmp_path / "x.npy"), "--index", zoo, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    (tmp_path / "s.csv").write_text(
        "week,ppm\n" + "\n".join(f"2020-01-{i % 28 + 1:02d},{410 + 0.05 * i}" for i in range(130))
    )
    assert main(["predict", "attention_int8", str(tmp_path / "s.csv"), "--index", zoo, "--json"]) == 0
    forecast = json.loads(capsys.readouterr().out)["forecast"]
    assert len(forecast) == 4 and all(414 < v < 420 for v in forecast)
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "short.csv").write_text("1\n2\n3\n")
    for model, path in (
        ("mnist_cnn_int8", tmp_path / "obj.npy"),  # a pickle: refused, never loaded
        ("attention_int8", tmp_path / "short.csv"),
        ("mnist_cnn_int8", tmp_path / "s.csv"),
        ("mnist_cnn_int8", tmp_path / "missing.png"),
    ):
        assert main(["predict", model, str(path), "--index", zoo]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err


def test_predict_and_check_never_import_tensorflow_and_print_only_their_answer(cache, tmp_path):
    """LiteRT, TFLM and Vela are all they use: no TensorFlow import (it was 93% of `qatzoo predict`'s time)."""
    import os
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "digit.png")
    code = (
        "import sys; from qatzoo.cli import main; code = main(sys.argv[1:]); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, code)"
    )
    model = str(REPO / "zoo" / "mnist_cnn_int8" / "1" / "model_int8.tflite")
    env = {**os.environ, "QATZOO_INDEX": str(REPO / "zoo")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    for argv in (["predict", "mnist_cnn_int8", str(tmp_path / "digit.png")], ["check", "--no-deploy", model]):
        done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=120)
        assert done.stdout.strip().splitlines()[-1] == "False False 0", (argv, done.stdout, done.stderr)
        assert done.stderr == "", (argv, done.stderr)
