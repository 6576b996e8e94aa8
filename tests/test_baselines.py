"""Classical baselines on the models' own test splits: fitted on training weeks only, chosen on validation."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from qatzoo.baselines import Sarima, baselines, forecast_baselines
from qatzoo.config import CONF_DIR
from qatzoo.zoo.verify import load_test_data


def _load(name: str, data_dir: str):
    conf = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / f"{name}.yaml"))
    return load_test_data(name, conf, data_dir)


@pytest.fixture(scope="module")
def co2(data_dir):
    return _load("co2_weekly", data_dir)


@pytest.fixture(scope="module")
def co2_results(co2):
    return baselines(co2)


@pytest.mark.slow
def test_forecast_baselines_rank_as_expected_and_persistence_is_the_last_week(co2, co2_results):
    assert set(co2_results) == {"persistence", "seasonal_naive_drift", "fourier_arima", "seasonal_arima"}
    for result in co2_results.values():
        assert np.isfinite(result["mae"]) and np.isfinite(result["val_mae"]) and result["about"]
    x_test, y_test = co2.raw["x_test"], co2.raw["y_test"]
    assert co2_results["persistence"]["mae"] == float(np.mean(np.abs(y_test - x_test[:, -1:])))
    mae = {name: result["mae"] for name, result in co2_results.items()}
    assert mae["seasonal_naive_drift"] < mae["persistence"]
    assert mae["fourier_arima"] < mae["seasonal_naive_drift"]
    assert mae["seasonal_arima"] < mae["seasonal_naive_drift"]
    assert re.match(
        r"Fourier\(K=\d, period 52.18 weeks\) regression with ARIMA\(2, 1, 1\)", co2_results["fourier_arima"]["about"]
    )


@pytest.mark.slow
def test_no_test_week_reaches_a_fit_or_a_choice(co2, co2_results):
    """Test weeks replaced by a random walk: every fitted parameter, choice and validation MAE stays the same."""
    first_test = co2.info["first_test_week"]
    series = co2.raw["series"].copy()
    rng = np.random.default_rng(0)
    series[first_test:] += np.cumsum(rng.normal(0.0, 1.0, len(series) - first_test))
    starts = co2.raw["test_starts"]
    raw = {
        **co2.raw,
        "series": series,
        "x_test": series[starts[:, None] + np.arange(-co2.info["window"], 0)],
        "y_test": series[starts[:, None] + np.arange(co2.info["horizon"])],
    }
    changed = forecast_baselines(dataclasses.replace(co2, raw=raw))
    for name, result in co2_results.items():
        assert changed[name]["about"] == result["about"]  # the chosen settings and the fitted parameters
        assert changed[name]["val_mae"] == result["val_mae"]
        assert changed[name]["mae"] != result["mae"]


def _truncated_forecast(spec: Sarima, params, series, origin: int, horizon: int) -> np.ndarray:
    """statsmodels' own forecast from the series cut at ``origin``, undifferenced step by step."""
    exog = spec.exog(origin + horizon)
    result = spec.model(series[:origin]).filter(params)
    differenced = result.forecast(horizon, exog=None if exog is None else exog[origin:])
    history = list(series[:origin])
    seasonal = spec.seasonal_order[3]
    for w in differenced:  # (1 - B) y = w, or (1 - B)(1 - B^s) y = w
        if spec.seasonal_order[1]:
            history.append(w + history[-1] + history[-seasonal] - history[-seasonal - 1])
        else:
            history.append(w + history[-1])
    return np.array(history[origin:])


@pytest.mark.parametrize(
    "spec",
    [Sarima((2, 1, 1), fourier=3, drift=True), Sarima((1, 1, 1), (0, 1, 1, 52))],
    ids=["fourier_arima", "seasonal_arima"],
)
def test_one_filter_pass_gives_the_forecasts_of_each_cut_series(co2, spec):
    """Each origin's forecast equals statsmodels' forecast from the series up to that origin, and nothing later."""
    series, horizon = co2.raw["series"], co2.info["horizon"]
    params = spec.model(series[: co2.info["first_val_week"]]).start_params
    origins = np.array([co2.info["first_test_week"], co2.raw["test_starts"][-1]])
    fast = spec.forecast(params, series, origins, horizon)
    for row, origin in enumerate(origins):
        expected = _truncated_forecast(spec, params, series, int(origin), horizon)
        np.testing.assert_allclose(fast[row], expected, rtol=0, atol=1e-8)


@pytest.mark.slow
def test_classification_baselines_on_mnist_5k(data_dir):
    results = baselines(_load("mnist_5k", data_dir))
    assert set(results) == {"logistic_regression", "rbf_svm", "rbf_svm_pca"}
    for result in results.values():
        assert result["accuracy"] > 90.0 and result["val_accuracy"] > 85.0
    assert re.search(r"C=[\d.]+ chosen", results["logistic_regression"]["about"])
    assert re.search(r"C=[\d.]+, gamma=[\d.]+ chosen", results["rbf_svm"]["about"])
    assert "3,500 of 3,500 training images" in results["rbf_svm"]["about"]
    assert "all 3,500 training images" in results["rbf_svm_pca"]["about"]
    assert len(results.losses["rbf_svm_pca"]) == 1000  # one outcome per test image, for McNemar


def test_disabled_baselines_are_empty(co2):
    assert baselines(co2, enabled=False) == {}
