"""The run's figures (real matplotlib, real PNG files) and the card sections built from data: the "Use it"
snippet of every zoo contract runs against the committed zoo, the baselines table is ordered and marked."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from qatzoo.export import plots
from qatzoo.render import card
from tests.conftest import REPO

#: The newest version's contract of each zoo model (what ``load(name)`` gets).
CONTRACTS = {
    path.parent.parent.name: path
    for path in sorted(REPO.glob("zoo/*/*/contract.json"), key=lambda p: (p.parent.parent.name, int(p.parent.name)))
}


def png_size(path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 5_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


# ---- training curves


def test_training_curves_read_a_history_with_both_phases(tmp_path):
    history = tmp_path / "history.csv"  # the layout the run's CsvLogger writes
    history.write_text(
        "phase,epoch,loss,val_accuracy\n"
        "float,1,1.2376513887535443,85.39999999999999\n"
        "float,2,0.48210791891271415,88.8\n"
        "float,3,0.40,89.1\n"
        "qat,1,0.4332915994254026,89.8\n"
        "qat,2,0.421102529222315,89.4\n"
    )
    rows = plots.read_history(history)
    assert rows[0] == {"phase": "float", "epoch": 1, "loss": 1.2376513887535443, "val_accuracy": 85.39999999999999}
    assert [(r["phase"], r["epoch"]) for r in rows][-2:] == [("qat", 1), ("qat", 2)]
    # QAT goes after the float phase on one axis
    assert [(p, off, len(rs)) for p, rs, off in plots._on_one_axis(rows)] == [("float", 0, 3), ("qat", 3, 2)]

    path = plots.training_curves(rows, "accuracy", "%", tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    width, height = png_size(path)
    assert 600 < width < 1600 and 250 < height < 800 and width > height  # two panels side by side

    with pytest.raises(ValueError, match="val_mae"):
        plots.training_curves(rows, "mae", "ppm", tmp_path / "no.png")


# ---- forecasts


def test_forecast_vs_actual_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    n, horizon = 60, 4
    weeks = np.arange(n + horizon - 1)
    series = 415 + 0.05 * weeks + 3 * np.sin(2 * np.pi * weeks / 52)
    actual = np.stack([series[i : i + horizon] for i in range(n)])  # window i starts one week after i-1
    forecasts = {
        "int8 (LiteRT)": actual + rng.normal(0, 0.3, actual.shape),
        "last value": np.repeat(np.concatenate([[series[0]], series[: n - 1]])[:, None], horizon, axis=1),
    }
    path = plots.forecast_vs_actual(actual, forecasts, "ppm", tmp_path / "forecast.png", start_week=1500)
    width, height = png_size(path)
    assert 600 < width < 1600 and 400 < height < 1000
    with pytest.raises(ValueError, match="shape"):
        plots.forecast_vs_actual(actual, {"bad": actual[:, :2]}, "ppm", tmp_path / "bad.png")
    dates = [str(np.datetime64("1995-06-10") + 7 * int(w)) for w in weeks]
    dated = plots.forecast_vs_actual(actual, forecasts, "ppm", tmp_path / "dated.png", dates=dates)
    undated = plots.forecast_vs_actual(actual, forecasts, "ppm", tmp_path / "undated.png")
    assert png_size(dated) == png_size(undated) and dated.read_bytes() != undated.read_bytes()  # a dated axis


# ---- confusion matrix


def test_confusion_matrix_counts_and_cells(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    names = ["t-shirt", "trouser", "pullover", "dress", "coat"]
    y_true = rng.integers(0, 5, 400)
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, 5, 400))
    counts = plots.confusion_counts(y_true, y_pred, 5)
    assert np.array_equal(counts, np.bincount(y_true * 5 + y_pred, minlength=25).reshape(5, 5))
    assert np.array_equal(counts.sum(axis=1), np.bincount(y_true, minlength=5))
    assert np.array_equal(counts.sum(axis=0), np.bincount(y_pred, minlength=5))

    written = []
    real_write = plots.write_figure

    def spy(path, fig):  # the cell labels, read off the real figure before it is written
        written.append([t.get_text() for t in fig.axes[0].texts])
        return real_write(path, fig)

    monkeypatch.setattr(plots, "write_figure", spy)
    path = plots.confusion_matrix(y_true, y_pred, names, tmp_path / "confusion.png")
    assert written == [[str(c) for c in counts.ravel()]]
    width, height = png_size(path)
    assert 300 < width < 1600 and 300 < height < 1600

    with pytest.raises(ValueError, match="class indices"):
        plots.confusion_counts([0, 5], [0, 1], 5)


# ---- card: Use it


def python_lines(lines: list[str]) -> list[str]:
    start = lines.index("```python")
    return lines[start + 1 : lines.index("```", start)]


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    """The committed zoo (load's default index in a checkout), a fresh cache, inputs in the working folder."""
    monkeypatch.delenv("QATZOO_INDEX", raising=False)
    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_use_it_comes_from_the_contract(name):
    contract = json.loads(CONTRACTS[name].read_text())
    lines = card.use_it(name, contract)
    text = "\n".join(lines)
    code = python_lines(lines)
    assert lines[0] == "## Use it" and len(code) == (5 if contract["task"] == "classification" else 4)
    assert code[-4:-2] == ["from qatzoo.zoo import load", f'model = load("{name}")']
    assert "model.predict(" in code[-1]
    assert re.search(rf"^qatzoo predict {name} \S+\.(png|csv)$", text, re.M)
    compile("\n".join(code), name, "exec")
    q_in, q_out = contract["input"]["quantization"], contract["output"]["quantization"]
    assert f"zero point {q_in['zero_point']}" in text and f"zero point {q_out['zero_point']}" in text
    for step in contract["input"]["steps"]:
        assert card.STEP_WORDS[step["op"]](step) in text
    if contract["task"] == "classification":
        assert all(f'"{c}"' in text for c in contract["output"]["classes"])
    else:
        out = contract["output"]
        assert f"{out['horizon']} weekly values in {out['unit']} starting {out['starts']}" in text
        assert (
            'model.read("sample.csv")' in code[-2] and f">= {contract['input']['raw']['min_length']} weekly" in code[2]
        )


def test_use_it_snippet_runs_for_mnist(zoo_env):
    name = "mnist_cnn_int8"
    contract = json.loads(CONTRACTS[name].read_text())
    digit = np.zeros((56, 56), np.uint8)  # any size: the snippet resizes to the contract's shape
    digit[12:44, 26:31] = 255  # a bar: a one
    Image.fromarray(digit).save(zoo_env / "sample.png")
    scope: dict = {}
    exec("\n".join(python_lines(card.use_it(name, contract))), scope)
    assert scope["label"] in contract["output"]["classes"] and scope["label"] == "1"
    assert np.asarray(scope["pixels"]).shape == (28, 28)
    assert scope["label"] == scope["model"].predict(np.asarray(scope["pixels"]), labels=True)


def test_use_it_snippet_runs_for_a_forecaster(zoo_env):
    name = "attention_int8"
    contract = json.loads(CONTRACTS[name].read_text())
    weeks = np.arange(contract["input"]["raw"]["min_length"] + 30)
    co2 = 420 + 0.05 * weeks + 3 * np.sin(2 * np.pi * weeks / 52)
    np.savetxt(zoo_env / "sample.csv", np.stack([weeks, co2], axis=1), delimiter=",", fmt="%.3f", header="week,co2")
    scope: dict = {}
    exec("\n".join(python_lines(card.use_it(name, contract))), scope)
    forecast = scope["forecast"]
    assert forecast.shape == (contract["output"]["horizon"],)
    assert np.all(np.abs(forecast - co2[-1]) < 5)  # ppm, a few weeks on from the last value


# ---- card: baselines


def test_baseline_lines_best_first_and_marked():
    baselines = {
        "last value": {"mae": 0.9, "val_mae": 0.95, "about": "the last week's value"},
        "seasonal naive": {"mae": 0.2, "val_mae": 0.21, "about": "a | in the text"},
        "linear": {"mae": 0.5, "val_mae": 0.52, "about": "least squares on the window"},
    }
    lines = card.baseline_lines(baselines, "mae", "ppm", 0.36, higher_is_better=False)
    assert lines[0] == "## Baselines"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "seasonal naive",
        "**int8 model (this run, LiteRT)**",
        "linear",
        "last value",
    ]
    assert "**yes**, by 0.1600 ppm" in rows[0] and "a / in the text" in rows[0]
    assert "no (0.1400 ppm worse)" in rows[2] and "no (" in rows[3]
    assert "1 of 3 baselines beat the int8 model: seasonal naive." in lines

    accuracy = {"majority class": {"accuracy": 11.35, "val_accuracy": 11.0, "about": "always the commonest"}}
    lines = card.baseline_lines(accuracy, "accuracy", "%", 98.2, higher_is_better=True)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| model")]
    assert rows[0].startswith("| **int8 model") and "| 98.20 |" in rows[0]
    assert "no (86.85 points worse)" in rows[1]
    assert "The int8 model beats the baseline." in lines
