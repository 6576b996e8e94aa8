"""The electricity demand series (data=taylor, data=vic_elec): the published values, their times, and windows
split as every forecast dataset is (chronological parts, a window's targets the series' next steps)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from qatzoo.data.catalog import build

PARAMS = {
    "taylor": {"window": 336, "horizon": 48, "val_fraction": 0.15, "test_fraction": 0.15},
    "vic_elec": {"window": 168, "horizon": 24, "val_fraction": 0.15, "test_fraction": 0.15},
}


@pytest.fixture(scope="module", params=sorted(PARAMS))
def splits(request, tmp_path_factory):
    import os

    data_dir = os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    return request.param, build(request.param, PARAMS[request.param], data_dir)


def test_the_series_are_the_published_ones(splits):
    name, data = splits
    series, dates = data.raw["series"], data.raw["dates"]
    if name == "taylor":  # R's forecast::taylor as pmdarima documents it: Monday 5 June to Sunday 27 August 2000
        assert len(series) == 4032 and series[:4].tolist() == [22262.0, 21756.0, 22247.0, 22759.0]
        assert (dates[0], dates[-1]) == ("2000-06-05T00:00", "2000-08-27T23:30")
        assert dt.date(2000, 6, 5).weekday() == 0 and dt.date(2000, 8, 27).weekday() == 6
    else:  # statsmodels' MSTL example data: 150 days of hours
        assert len(series) == 3600 and series[0] == pytest.approx(7926.529376)
        assert (dates[0], dates[-1]) == ("2012-01-01T00:00", "2012-05-29T23:00")
    assert len(dates) == len(series) and data.target_unit == "MW"


def test_windows_split_chronologically_with_a_day_ahead(splits):
    name, data = splits
    info, raw = data.info, data.raw
    day, week = info["seasonal_periods"]
    assert week == 7 * day and info["horizon"] == day and info["window"] == week
    starts = raw["test_starts"]
    assert starts[0] == info["first_test_step"] and starts[-1] == len(raw["series"]) - info["horizon"]
    np.testing.assert_array_equal(raw["y_test"], raw["series"][starts[:, None] + np.arange(info["horizon"])])
    np.testing.assert_array_equal(raw["x_test"], raw["series"][starts[:, None] - week + np.arange(week)])
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) < len(raw["series"])
    # The model sees each window relative to its last value: the int8 input's range holds however the level moves.
    assert data.x_test.shape[1:] == (week, 1) and np.allclose(data.x_test[:, -1, 0], 0.0)
