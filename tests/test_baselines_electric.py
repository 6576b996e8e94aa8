"""Classical baselines of the electricity demand series (taylor, vic_elec: a daily and a weekly cycle), on the
models' own test windows: fitted on the training steps, chosen on validation, each forecast from the past only."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from omegaconf import OmegaConf

from qatzoo.baselines import (
    baselines,
    moving_average_trend,
    seasonal_forecast_baselines,
    seasonal_forecasters,
    smoothing_states,
)
from qatzoo.config import CONF_DIR
from qatzoo.data.load import electricity_forecast

NAMES = {"seasonal_naive_day", "seasonal_naive_week", "mstl_ets", "ridge_lags_fourier", "nlinear", "dlinear"}


def _electricity(name: str):
    """The series as its shipped config (qatzoo/conf/data/NAME.yaml) windows and splits it."""
    conf = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml"))
    params = {key: value for key, value in conf.items() if key not in {"_target_", "name", "task", "data_dir"}}
    data_dir = os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")  # where taylor's pinned wheel is kept
    return electricity_forecast(name=name, data_dir=data_dir, **params)


@pytest.fixture(scope="module", params=["taylor", "vic_elec"])
def electric(request):
    return _electricity(request.param)


@pytest.fixture(scope="module")
def results(electric):
    return baselines(electric)


def _persistence_mae(data) -> float:
    raw = data.raw
    return float(np.mean(np.abs(raw["y_test"] - raw["series"][raw["test_starts"] - 1, None])))


@pytest.mark.slow
def test_baselines_dispatches_to_the_six_seasonal_baselines(electric, results):
    assert electric.info["seasonal_periods"] and set(results) == NAMES
    for name, result in results.items():
        assert np.isfinite(result["mae"]) and np.isfinite(result["val_mae"]) and result["about"], name
        losses = results.losses[name]
        assert losses.shape == electric.raw["y_test"].shape and np.all(losses >= 0), name
        assert float(np.mean(losses)) == result["mae"], name


@pytest.mark.slow
def test_seasonal_naive_errors_are_the_value_a_day_and_a_week_before(electric, results):
    series, starts, targets = electric.raw["series"], electric.raw["test_starts"], electric.raw["y_test"]
    day, week = electric.info["seasonal_periods"]
    for name, period in (("seasonal_naive_day", day), ("seasonal_naive_week", week)):
        for row in (0, 1, len(starts) // 2, len(starts) - 1):
            for step in (0, 7, electric.info["horizon"] - 1):
                expected = abs(series[starts[row] + step - period] - targets[row, step])
                assert results.losses[name][row, step] == expected, (name, row, step)


@pytest.mark.slow
def test_every_forecast_reads_only_the_values_before_its_origin(electric):
    """The series changed from a test origin on: every baseline's forecasts from that origin and earlier stay
    the same (to rounding); forecasts from later origins see the change."""
    series, starts = electric.raw["series"], electric.raw["test_starts"]
    origin = int(starts[-1]) - electric.info["seasonal_periods"][1]  # the last origins read a week-old value after it
    assert origin > starts[0]
    changed = series.copy()
    changed[origin:] += np.cumsum(np.random.default_rng(0).normal(0.0, 500.0, len(series) - origin))
    earlier, later = starts[starts <= origin], starts[starts > origin]
    for name, (forecast, _) in seasonal_forecasters(electric).items():
        # The same up to rounding (BLAS may sum in another order for other arrays); a leak would move them by MW.
        np.testing.assert_allclose(
            forecast(changed, earlier), forecast(series, earlier), rtol=0, atol=1e-6, err_msg=name
        )
        assert not np.array_equal(forecast(changed, later), forecast(series, later)), name


@pytest.mark.slow
def test_no_test_step_reaches_a_fit_or_a_choice(electric, results):
    """Test steps replaced by noise: every chosen setting, fitted parameter and validation MAE stays."""
    first_test, horizon = electric.info["first_test_step"], electric.info["horizon"]
    series = electric.raw["series"].copy()
    series[first_test:] = np.random.default_rng(1).uniform(series.min(), series.max(), len(series) - first_test)
    starts = electric.raw["test_starts"]
    raw = {**electric.raw, "series": series, "y_test": series[starts[:, None] + np.arange(horizon)]}
    changed = seasonal_forecast_baselines(dataclasses.replace(electric, raw=raw))
    for name, result in results.items():
        assert changed[name]["about"] == result["about"], name
        assert changed[name]["val_mae"] == pytest.approx(result["val_mae"], rel=1e-12, abs=0), name  # rounding only
        assert changed[name]["mae"] != result["mae"], name


@pytest.mark.slow
def test_the_baselines_capture_the_daily_and_weekly_cycles(electric, results):
    """Day-ahead, the last value is far off (the daily cycle); the baseline validation picks is far better."""
    persistence = _persistence_mae(electric)
    best = min(results, key=lambda name: results[name]["val_mae"])
    assert results[best]["mae"] < 0.5 * persistence, (best, results[best]["mae"], persistence)
    for name, result in results.items():
        assert result["mae"] < persistence, name


def test_dlinear_trend_is_the_edge_padded_moving_average():
    x = np.random.default_rng(2).normal(size=(3, 40))
    padded = np.concatenate([np.repeat(x[:, :1], 12, axis=1), x, np.repeat(x[:, -1:], 12, axis=1)], axis=1)
    expected = np.stack([np.convolve(row, np.full(25, 1 / 25), mode="valid") for row in padded])
    np.testing.assert_allclose(moving_average_trend(x, 25), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(moving_average_trend(np.ones((1, 5)) * 7.0, 25), 7.0)
    with pytest.raises(ValueError, match="odd kernel"):
        moving_average_trend(x, 24)


@pytest.mark.parametrize(
    "params",
    [{"alpha": 0.3}, {"alpha": 0.3, "beta": 0.1, "phi": 0.9, "trend": 25.0}],
    ids=["simple", "damped_holt"],
)
def test_smoothing_filter_gives_statsmodels_one_step_forecasts(params):
    """The filter mstl_ets runs over the whole series, in statsmodels' parameterisation: its one-step forecasts
    l_{t-1} + phi b_{t-1} are statsmodels' fitted values with the same parameters and initial states."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    values = _electricity("vic_elec").raw["series"][:1000]
    params = {**params, "level": float(values[0])}
    damped = "beta" in params
    model = ExponentialSmoothing(
        values,
        trend="add" if damped else None,
        damped_trend=damped,
        initialization_method="known",
        initial_level=params["level"],
        initial_trend=params.get("trend"),
    )
    fitted = model.fit(
        smoothing_level=params["alpha"],
        smoothing_trend=params.get("beta"),
        damping_trend=params.get("phi"),
        optimized=False,
    )
    levels, trends = smoothing_states(values, **params)
    phi, trend = params.get("phi", 1.0), params.get("trend", 0.0)
    one_step = np.r_[params["level"] + phi * trend, levels[:-1] + phi * trends[:-1]]
    np.testing.assert_allclose(one_step, fitted.fittedvalues, rtol=1e-10)
    assert not np.allclose(one_step[1:], values[:-1])  # a real smoothing, not the last value
