"""Drift: the differences encoding keeps a forecaster's inputs inside the training range when the test years
drift (a steeper trend, a level shift), and ``predict`` says in one line when an input leaves the int8 range."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from qatzoo import contract as contracts
from qatzoo.tools.drift import drifted, outside_range

REPO = Path(__file__).resolve().parents[1]
WEEKS_A_YEAR = 365.25 / 7


def _co2(encoding: str):
    from qatzoo.data.load import co2_forecast

    return co2_forecast(
        name="co2_weekly",
        data_dir="~/tensorflow_datasets",
        window=104,
        horizon=4,
        val_fraction=0.15,
        test_fraction=0.15,
        encoding=encoding,
    )


@pytest.fixture(scope="module")
def encodings():
    return {encoding: _co2(encoding) for encoding in ("relative", "differences")}


def _outside_training(data, x) -> float:
    low, high = data.x_train.min(), data.x_train.max()
    return float(np.mean((x < low) | (x > high)))


def test_the_differences_encoding_is_the_weekly_changes_over_their_training_spread(encodings):
    d = encodings["differences"]
    steps = d.contract["input"]["steps"]
    assert [s["op"] for s in steps] == ["last_window", "difference", "divide", "add_axis"]
    assert steps[0]["length"] == 105 and d.contract["input"]["raw"]["min_length"] == 105
    raw = d.raw["x_test"]
    assert raw.shape[1] == 105 and d.x_test.shape[1:] == (104, 1)
    np.testing.assert_allclose(d.x_test[..., 0], (np.diff(raw, axis=1) / d.info["input_scale"]).astype(np.float32))
    # Targets and their decoding are the relative encoding's: the same numbers for the same test origins.
    r = encodings["relative"]
    common = np.isin(r.raw["test_starts"], d.raw["test_starts"])
    np.testing.assert_array_equal(d.raw["y_test"], r.raw["y_test"][common])
    np.testing.assert_allclose(d.y_test * d.target_scale, r.y_test[common] * r.target_scale, rtol=1e-5, atol=1e-6)
    assert [s["op"] for s in d.contract["output"]["steps"]] == [s["op"] for s in r.contract["output"]["steps"]]


def test_a_level_shift_does_not_move_the_differences_of_windows_past_it(encodings):
    d = encodings["differences"]
    moved = drifted(d, per_step=0.0, shift=25.0)
    after = d.raw["test_starts"] - d.raw["x_test"].shape[1] >= d.info["first_test_week"]  # whole window shifted
    assert after.sum() > 100
    np.testing.assert_allclose(moved.x_test[after], d.x_test[after], atol=1e-5)
    assert not np.allclose(moved.x_test[~after], d.x_test[~after], atol=1e-3)  # the jump is seen where it is
    np.testing.assert_allclose(moved.raw["y_test"] - d.raw["y_test"], 25.0)


def test_a_steeper_trend_leaves_the_relative_inputs_range_but_not_the_differences(encodings):
    """+2 ppm a year on the test years (the drift the forecaster has to survive): the relative encoding's
    inputs leave the training windows' range over 10 times as often as unchanged, the differences' do not."""
    shares = {}
    for encoding, d in encodings.items():
        moved = drifted(d, per_step=2.0 / WEEKS_A_YEAR)
        shares[encoding] = (_outside_training(d, d.x_test), _outside_training(d, moved.x_test))
    relative, differences = shares["relative"], shares["differences"]
    assert relative[1] > 10 * max(relative[0], 1e-3) and relative[1] > 0.02
    assert differences[1] <= differences[0] + 1e-3 and differences[1] < 0.01


def _zoo_forecaster():
    from qatzoo.model import Model
    from qatzoo.zoo.index import find, read_index

    entry = find(read_index(REPO / "zoo" / "index.json"), "attention_int8")
    return Model(REPO / "zoo" / entry["location"], entry["contract"]), entry


def test_predict_warns_in_one_line_when_an_input_leaves_the_int8_range():
    from qatzoo.model import InputRangeWarning

    model, entry = _zoo_forecaster()
    series = model.read(REPO / "zoo" / Path(entry["location"]).parent / "sample.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sample is inside the calibrated range: no warning at all
        model.predict(series)
    contract = json.loads(json.dumps(entry["contract"]))
    steep = series + np.linspace(-40, 0, len(series))  # 40 ppm over two years: far past the training windows
    assert outside_range(contract, steep[None]) > 0.1
    with pytest.warns(InputRangeWarning) as caught:
        model.predict(steep)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "outside" in str(caught[0].message) and "calibrated" in str(caught[0].message)


def test_representable_is_the_int8_grid_half_a_step_beyond():
    low, high = contracts.representable({"dtype": "int8", "scale": 0.5, "zero_point": -10})
    assert (low, high) == ((-128 + 10 - 0.5) * 0.5, (127 + 10 + 0.5) * 0.5)


def test_the_predict_command_prints_the_forecast_and_one_warning_line(tmp_path, capsys, monkeypatch):
    from qatzoo.cli import main

    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    model, entry = _zoo_forecaster()
    sample = REPO / "zoo" / Path(entry["location"]).parent / "sample.csv"
    lines = sample.read_text().splitlines()
    values = model.read(sample)
    ramp = np.linspace(-40, 0, len(values))
    steep = [",".join([*line.split(",")[:-1], f"{v:.3f}"]) for line, v in zip(lines[1:], values + ramp, strict=True)]
    (tmp_path / "steep.csv").write_text("\n".join([lines[0], *steep]) + "\n")
    assert main(["predict", "attention_int8", str(tmp_path / "steep.csv"), "--index", str(REPO / "zoo")]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == entry["contract"]["output"]["horizon"]  # the forecast, still dated
    warned = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "calibrated" in warned[0], err
    assert main(["predict", "attention_int8", str(sample), "--index", str(REPO / "zoo")]) == 0
    assert "warning:" not in capsys.readouterr().err
