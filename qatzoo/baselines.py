"""Classical baselines on a dataset's own splits: what a model's test number has to beat to mean something.

Every baseline is fitted on the training part only, every choice (Fourier order, drift, C, gamma) is made on
the validation part, and the number reported is the project's metric on exactly the model's test split:
MAE in the series' unit over all test windows and horizon steps, or accuracy in percent.

Forecasts (:func:`forecast_baselines`): the series is split as the loader splits it (weeks before
``first_val_week`` train, then validation, then test weeks from ``first_test_week``); a window's origin is its
first target week ``s`` and its forecast uses only the weeks before ``s``. Validation windows are those whose
first target week is a validation week and whose targets all precede the first test week, so no test week
informs a choice. The ARIMA models are fitted once on the training weeks; their fixed parameters are then
run through one Kalman filter pass over the whole series, and the forecasts of every origin are read from
the filter's one-step predicted states (see :meth:`Sarima.forecast`): hundreds of origins cost well under
a second, the same numbers as filtering each truncated series and calling ``forecast``.

Series with a daily and a weekly cycle (:func:`seasonal_forecast_baselines`: data whose ``info`` has
``seasonal_periods``, the electricity demand series) follow the same rules in steps (``first_val_step``,
``first_test_step``): each model is fitted once, and its forecaster applies the fixed parameters to the whole
series, every origin's forecast read from the values before it (:func:`seasonal_forecasters`).

Classification (:func:`classification_baselines`): logistic regression and an RBF SVM from scikit-learn on
flattened pixels in [0, 1], training set subsampled (stratified, fixed seed) to ``max_train`` images.

Linear algebra runs on one thread: the matrices here are small, and on a busy two-core machine threaded
BLAS spins (scikit-learn's logistic regression ran 15 times slower with two threads than with one).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

#: A year in weeks: the period of the Fourier terms. With 52 their phase would drift by eight weeks over
#: the 44 years of the weekly CO2 series (validation MAE 0.46 ppm against 0.35).
YEAR_WEEKS = 365.25 / 7
#: Fourier orders K (pairs of yearly sine and cosine terms) the validation split chooses from.
FOURIER_ORDERS = (1, 2, 3, 4, 6)
#: Inverse regularisation strengths of the logistic regression; C and gamma of the RBF SVM.
LOGISTIC_C = (0.01, 0.1, 1.0)
SVM_C = (1.0, 10.0)
SVM_GAMMA = (0.01, 0.03)
#: The strongest classical image baseline here: an RBF SVM on the first PCA_COMPONENTS principal components
#: (PCA fitted on the training images), trained on every training image - on all 55,000 of MNIST about 10 s a
#: fit on one core of an AMD EPYC - C and gamma chosen on validation.
PCA_COMPONENTS = 50
PCA_SVM_C = (5.0, 10.0)
PCA_SVM_GAMMA = (0.01, 0.02, 0.04)
#: Training images the classifiers see by default: an RBF SVM's cost grows with the square of the
#: training set and its predictions with the support vectors, so 5,000 images keep Fashion-MNIST's
#: grid within about a minute on two cores (MNIST-5k's 3,500 are all used).
MAX_TRAIN = 5000
SEED = 0


@contextlib.contextmanager
def _quiet_single_thread() -> Iterator[None]:
    """No library warnings (convergence, frequency, future changes) and one BLAS/OpenMP thread in the block."""
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        yield


class Fitted(dict):
    """The baselines' table, name -> ``{metric, "val_<metric>", "about"}`` (plain JSON, as before), with
    ``losses``: name -> the baseline's per-example test losses in :meth:`qatzoo.task.Task.losses`'s form
    (absolute errors ``(examples, horizon)`` in the unit, or whether each class is right), for
    :mod:`qatzoo.significance`."""

    def __init__(self, table: dict | None = None, losses: dict | None = None):
        super().__init__(table or {})
        self.losses = dict(losses or {})


def _mae(forecasts: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(np.abs(forecasts - targets)))


def _windows(series: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    return series[starts[:, None] + np.arange(horizon)]


# ----------------------------------------------------------------------------------------------- forecasts


def persistence(series: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    """The last observed week, for every step of the horizon."""
    return np.repeat(series[starts - 1, None], horizon, axis=1)


def seasonal_naive(series: np.ndarray, starts: np.ndarray, horizon: int, period: int, drift: np.ndarray | float):
    """The value ``period`` weeks before each target week plus ``drift`` (the change over one period).

    Needs ``horizon <= period`` so that every value used precedes the origin.
    """
    if horizon > period:
        raise ValueError(f"seasonal naive needs horizon <= period, got {horizon} > {period}")
    return _windows(series, starts - period, horizon) + np.reshape(drift, (-1, 1))


def training_drift(train: np.ndarray, period: int) -> float:
    """Mean change over ``period`` weeks across the training weeks."""
    return float(np.mean(train[period:] - train[:-period]))


def window_drift(series: np.ndarray, starts: np.ndarray, period: int) -> np.ndarray:
    """Per origin: the change across the ``period`` weeks before it, scaled to one period."""
    return (series[starts - 1] - series[starts - period]) * period / (period - 1)


@dataclass(frozen=True)
class Sarima:
    """A regression on ``fourier`` pairs of yearly sine/cosine terms with (seasonal) ARIMA errors.

    The model is statsmodels' SARIMAX with the differencing applied to the data first (``simple_differencing``:
    an ARMA model of the differenced series, whose state stays small even with a 52-week seasonal
    difference), ``drift`` a constant in that ARMA equation, and the noise variance concentrated out.
    """

    order: tuple[int, int, int]
    seasonal_order: tuple[int, int, int, int] = (0, 0, 0, 0)
    fourier: int = 0
    drift: bool = False
    period: float = YEAR_WEEKS

    @property
    def lost(self) -> int:
        """Leading weeks the differencing drops: week ``t`` of the series is observation ``t - lost``."""
        return self.order[1] + self.seasonal_order[1] * self.seasonal_order[3]

    def exog(self, weeks: int) -> np.ndarray | None:
        if not self.fourier:
            return None
        angle = 2 * np.pi * np.arange(weeks)[:, None] * np.arange(1, self.fourier + 1) / self.period
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)

    def model(self, endog: np.ndarray):
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        model = SARIMAX(
            endog,
            exog=self.exog(len(endog)),
            order=self.order,
            seasonal_order=self.seasonal_order,
            trend="c" if self.drift else None,
            simple_differencing=True,
            concentrate_scale=True,
        )
        model.ssm.filter_chandrasekhar = True  # time-invariant stationary model: much faster filtering
        return model

    def fit(self, train: np.ndarray):
        """statsmodels' maximum-likelihood results on the training weeks ``train`` (nothing else is passed)."""
        with _quiet_single_thread():
            return self.model(np.asarray(train, dtype=np.float64)).fit(disp=False)

    def forecast(self, params: np.ndarray, series: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
        """Forecasts ``(len(starts), horizon)`` of the weeks ``s .. s + horizon - 1`` from the weeks before each ``s``.

        One Kalman filter pass with the fixed ``params`` over the whole series gives at every week ``s`` the
        predicted state from the weeks before it; iterating the transition from there gives the differenced
        series' forecasts, which are then undifferenced with the known weeks before ``s``.
        """
        starts = np.asarray(starts)
        if np.any(starts - self.lost < 1) or np.any(starts + horizon > len(series)):
            raise ValueError("every origin needs history before it and its targets inside the series")
        with _quiet_single_thread():
            system = self.model(np.asarray(series, dtype=np.float64)).filter(params).filter_results

        def at(matrix: np.ndarray, t: np.ndarray) -> np.ndarray:  # time is the last axis, length 1 if fixed
            return matrix[..., t] if matrix.shape[-1] > 1 else matrix[..., 0, None]

        if system.design.shape[-1] > 1 or system.transition.shape[-1] > 1:
            raise ValueError("forecast expects a time-invariant design and transition")
        design, transition = system.design[:, :, 0], system.transition[:, :, 0]
        t = starts - self.lost  # observation index of each origin's first target week
        state = system.predicted_state[:, t]  # predicted from the observations before t
        differenced = np.empty((len(starts), horizon))
        for step in range(horizon):
            differenced[:, step] = at(system.obs_intercept, t + step)[0] + (design @ state)[0]
            state = transition @ state + at(system.state_intercept, t + step)
        return self._undifference(differenced, series, starts)

    def _undifference(self, differenced: np.ndarray, series: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """y_t = w_t - sum_m delta_m y_{t-m} with delta the coefficients of (1 - B)^d (1 - B^s)^D."""
        delta = np.array([1.0])
        for _ in range(self.order[1]):
            delta = np.convolve(delta, [1.0, -1.0])
        for _ in range(self.seasonal_order[1]):
            delta = np.convolve(delta, np.r_[1.0, np.zeros(self.seasonal_order[3] - 1), -1.0])
        out = np.empty_like(differenced)
        for step in range(differenced.shape[1]):
            value = differenced[:, step].copy()
            for lag in np.flatnonzero(delta[1:]) + 1:
                known = out[:, step - lag] if lag <= step else series[starts + step - lag]
                value -= delta[lag] * known
            out[:, step] = value
        return out

    def describe(self) -> str:
        text = f"ARIMA{self.order}"
        if any(self.seasonal_order):
            text = f"SARIMA{self.order}{self.seasonal_order[:3]}{self.seasonal_order[3]}"
        if self.fourier:
            text = f"Fourier(K={self.fourier}, period {self.period:.2f} weeks) regression with {text} errors"
        return text + (" with drift" if self.drift else "")


def _parameters(fitted) -> str:
    """The fitted ARMA and drift parameters (not the Fourier coefficients), and a non-convergence warning."""
    shown = [
        f"{name}={value:.3g}"
        for name, value in zip(fitted.param_names, fitted.params, strict=True)
        if not name.startswith("x")
    ]
    converged = fitted.mle_retvals is None or fitted.mle_retvals.get("converged", True)
    return ", ".join(shown) + ("" if converged else " (the optimizer did not converge)")


def forecast_baselines(data, *, seasonal_period: int = 52) -> Fitted:
    """Test and validation MAE (in the series' unit) of classical forecasts of a windowed series.

    ``data``: the forecast :class:`~qatzoo.data.splits.Splits` (``raw`` holds the series, the test windows'
    first target weeks and their raw targets). Returns ``{name: {"mae", "val_mae", "about"}}`` for
    ``persistence``, ``seasonal_naive_drift``, ``fourier_arima`` and ``seasonal_arima``; ``about`` names
    the method and its chosen settings and fitted parameters.
    """
    series = np.asarray(data.raw["series"], dtype=np.float64)
    info = data.info
    horizon, first_val, first_test = int(info["horizon"]), int(info["first_val_week"]), int(info["first_test_week"])
    test_starts = np.asarray(data.raw["test_starts"])
    test_targets = np.asarray(data.raw["y_test"], dtype=np.float64)
    if not np.array_equal(_windows(series, test_starts, horizon), test_targets):
        raise ValueError("the raw test targets are not the series' weeks after each test origin")
    val_starts = np.arange(max(int(info["window"]), first_val), first_test - horizon + 1)
    val_targets = _windows(series, val_starts, horizon)
    train = series[:first_val].copy()  # all that any baseline is fitted on
    weeks = f"fitted on weeks 0-{first_val - 1}"

    losses = {}

    def scores(forecast, name: str) -> dict[str, float]:
        losses[name] = np.abs(forecast(test_starts) - test_targets)
        return {"mae": float(np.mean(losses[name])), "val_mae": _mae(forecast(val_starts), val_targets)}

    out = {
        "persistence": {
            **scores(lambda s: persistence(series, s, horizon), "persistence"),
            "about": "last observed week",
        }
    }

    drifts = {
        "training": lambda s: training_drift(train, seasonal_period),
        "window": lambda s: window_drift(series, s, seasonal_period),
    }
    candidates = {
        name: scores(lambda s, d=drift: seasonal_naive(series, s, horizon, seasonal_period, d(s)), name)
        for name, drift in drifts.items()
    }
    chosen = min(candidates, key=lambda name: candidates[name]["val_mae"])
    losses["seasonal_naive_drift"] = losses.pop(chosen)
    losses.pop(next(name for name in candidates if name != chosen))
    drift_text = {
        "training": f"the mean {seasonal_period}-week change of the training weeks "
        f"({training_drift(train, seasonal_period):.3f})",
        "window": f"the change across the {seasonal_period} weeks before the origin",
    }[chosen]
    tried = ", ".join(f"{name} {result['val_mae']:.3f}" for name, result in candidates.items())
    out["seasonal_naive_drift"] = {
        **candidates[chosen],
        "about": f"value {seasonal_period} weeks before each target week + drift, the drift being {drift_text}; "
        f"chosen on validation (val MAE {tried})",
    }

    def arima_result(model: Sarima) -> tuple[dict, str, np.ndarray]:
        fitted = model.fit(train)
        forecasts = model.forecast(fitted.params, series, np.r_[test_starts, val_starts], horizon)
        errors = np.abs(forecasts[: len(test_starts)] - test_targets)
        result = {"mae": float(np.mean(errors)), "val_mae": _mae(forecasts[len(test_starts) :], val_targets)}
        return result, _parameters(fitted), errors

    fits = {k: arima_result(Sarima((2, 1, 1), fourier=k, drift=True)) for k in FOURIER_ORDERS}
    k = min(fits, key=lambda k: fits[k][0]["val_mae"])
    model = Sarima((2, 1, 1), fourier=k, drift=True)
    tried = ", ".join(f"K={j} {fits[j][0]['val_mae']:.3f}" for j in FOURIER_ORDERS)
    out["fourier_arima"] = {
        **fits[k][0],
        "about": f"{model.describe()}; K chosen on validation (val MAE {tried}); {fits[k][1]}; {weeks}",
    }
    losses["fourier_arima"] = fits[k][2]
    seasonal = Sarima((1, 1, 1), (0, 1, 1, seasonal_period))  # about 5 s to fit on one core
    result, params, losses["seasonal_arima"] = arima_result(seasonal)
    out["seasonal_arima"] = {**result, "about": f"{seasonal.describe()}; {params}; {weeks}"}
    return Fitted(out, losses)


# -------------------------------------------------------------------------------------- seasonal forecasts

#: Fourier orders K of ridge_lags_fourier (K daily and K weekly sine/cosine pairs of the origin's position;
#: below half a day of hourly steps, so that no daily term aliases), chosen on validation.
SEASONAL_FOURIER_ORDERS = (1, 2, 4, 6, 8, 10)
#: Ridge penalties of ridge_lags_fourier, on inputs and targets in units of the data's scale.
LAG_RIDGE_ALPHA = (0.01, 0.1, 1.0, 10.0)
#: The small ridge penalties of the least-squares NLinear and DLinear (on their weights, not their biases).
LTSF_ALPHA = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
#: DLinear's moving-average kernel (Zeng et al. 2023).
DLINEAR_KERNEL = 25

#: ``forecast(series, starts) -> (len(starts), horizon)``: fixed fitted parameters applied to ``series``, each
#: row from the values before its origin only.
Forecaster = Callable[[np.ndarray, np.ndarray], np.ndarray]


def fourier_terms(starts: np.ndarray, periods, order: int) -> np.ndarray:
    """sin and cos of 2 pi k s / p for k = 1 .. ``order`` and each period p at each origin s: ``(len(starts),
    2 * order * len(periods))``."""
    k = np.arange(1, order + 1)
    angle = 2 * np.pi * np.asarray(starts, dtype=np.float64)[:, None, None] * k / np.asarray(periods, float)[:, None]
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1).reshape(len(angle), -1)


def moving_average_trend(x: np.ndarray, kernel: int = DLINEAR_KERNEL) -> np.ndarray:
    """DLinear's trend of each row of ``x``: the mean of the ``kernel`` (odd) values centred on each step, the row
    padded by repeating its first and its last value ``(kernel - 1) // 2`` times (Zeng et al.'s ``moving_avg``)."""
    if kernel % 2 != 1:
        raise ValueError(f"the moving average needs an odd kernel, got {kernel}")
    pad = (kernel - 1) // 2
    padded = np.concatenate([np.repeat(x[:, :1], pad, axis=1), x, np.repeat(x[:, -1:], pad, axis=1)], axis=1)
    sums = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    return (sums[:, kernel:] - sums[:, :-kernel]) / kernel


def smoothing_states(
    values: np.ndarray, *, alpha: float, beta: float = 0.0, phi: float = 1.0, level: float, trend: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Level and trend of (damped Holt) exponential smoothing after each of ``values``, in statsmodels'
    parameterisation: l_t = alpha y_t + (1 - alpha)(l_{t-1} + phi b_{t-1}), b_t = beta (l_t - l_{t-1}) +
    (1 - beta) phi b_{t-1}, from the initial ``level`` and ``trend``; simple exponential smoothing with beta and
    trend 0. The forecast h steps after t is l_t + (phi + ... + phi^h) b_t."""
    levels, trends = np.empty(len(values)), np.empty(len(values))
    for t, value in enumerate(np.asarray(values, dtype=np.float64).tolist()):
        new = alpha * value + (1 - alpha) * (level + phi * trend)
        trend = beta * (new - level) + (1 - beta) * phi * trend
        level = levels[t] = new
        trends[t] = trend
    return levels, trends


def _smoothing_fit(values: np.ndarray, damped: bool) -> tuple[dict[str, float], str]:
    """statsmodels' maximum-likelihood (simple or damped Holt) exponential smoothing of ``values``: the
    :func:`smoothing_states` parameters, and them as text."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    fitted = ExponentialSmoothing(
        values, trend="add" if damped else None, damped_trend=damped, initialization_method="estimated"
    ).fit()
    p = fitted.params
    params = {"alpha": float(p["smoothing_level"]), "level": float(p["initial_level"])}
    if damped:
        params |= {"beta": float(p["smoothing_trend"]), "phi": float(p["damping_trend"])}
        params["trend"] = float(p["initial_trend"])
    converged = getattr(fitted.mle_retvals, "success", True)
    text = ", ".join(f"{name}={value:.4g}" for name, value in params.items())
    return params, text + ("" if converged else " (the optimizer did not converge)")


@dataclass(frozen=True)
class _Parts:
    """A windowed series' parts as :func:`~qatzoo.data.load.forecast_windows` cuts them: origins are first
    target steps; training windows' targets all precede the first validation step, validation windows' the
    first test step."""

    series: np.ndarray
    window: int
    horizon: int
    first_val: int
    first_test: int
    periods: tuple[int, ...]
    scale: float

    @classmethod
    def of(cls, data) -> _Parts:
        info = data.info
        return cls(
            np.asarray(data.raw["series"], dtype=np.float64),
            int(info["window"]),
            int(info["horizon"]),
            int(info["first_val_step"]),
            int(info["first_test_step"]),
            tuple(sorted(int(p) for p in info["seasonal_periods"])),
            float(info["scale"]),
        )

    @property
    def train_starts(self) -> np.ndarray:
        return np.arange(self.window, self.first_val - self.horizon + 1)

    @property
    def val_starts(self) -> np.ndarray:
        return np.arange(max(self.window, self.first_val), self.first_test - self.horizon + 1)


def _inputs(series: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    return series[np.asarray(starts)[:, None] + np.arange(-window, 0)]


def _least_squares(parts: _Parts, features, offset, scale: float, alphas) -> tuple[Forecaster, float, float]:
    """Ridge regressions (one fit, every horizon step an output) of ``(targets - offset) / scale`` on the training
    windows' ``features``, one per penalty in ``alphas``: the forecaster whose validation MAE is lowest (the first
    on ties), its penalty and that MAE. ``features`` and ``offset`` are ``f(series, starts)``."""
    from sklearn.linear_model import Ridge

    series, train, val = parts.series, parts.train_starts, parts.val_starts
    x, y = features(series, train), (_windows(series, train, parts.horizon) - offset(series, train)) / scale
    x_val, offset_val, y_val = features(series, val), offset(series, val), _windows(series, val, parts.horizon)
    best = None
    for alpha in alphas:
        model = Ridge(alpha=alpha).fit(x, y)
        mae = _mae(model.predict(x_val) * scale + offset_val, y_val)
        if best is None or mae < best[2]:
            best = (model, alpha, mae)
    model, alpha, mae = best
    return (lambda series, starts: model.predict(features(series, starts)) * scale + offset(series, starts)), alpha, mae


def _mstl_ets(parts: _Parts) -> tuple[Forecaster, str]:
    """MSTL of the training steps; exponential smoothing (simple or damped Holt, chosen on validation) of the
    series minus its seasonal components, run as a filter over the whole series."""
    from statsmodels.tsa.seasonal import MSTL

    first_val, horizon = parts.first_val, parts.horizon
    train = parts.series[:first_val]
    seasonal = np.asarray(MSTL(train, periods=parts.periods).fit().seasonal).reshape(first_val, -1)

    def seasonal_at(steps: np.ndarray) -> np.ndarray:
        """MSTL's seasonal components on the training steps, their last cycle repeated after (as STLForecast)."""
        out = np.zeros(np.shape(steps))
        for column, period in zip(seasonal.T, parts.periods, strict=True):
            later = first_val - period + (steps - first_val) % period
            out += column[np.where(steps < first_val, np.minimum(steps, first_val - 1), later)]
        return out

    def forecaster(params: dict[str, float]) -> Forecaster:
        damping = np.cumsum(params.get("phi", 1.0) ** np.arange(1, horizon + 1))

        def forecast(series: np.ndarray, starts: np.ndarray) -> np.ndarray:
            end = int(np.max(starts))  # the filter reads the values before the last origin, no further
            levels, trends = smoothing_states(series[:end] - seasonal_at(np.arange(end)), **params)
            before = np.asarray(starts) - 1
            return (
                levels[before, None]
                + trends[before, None] * damping
                + seasonal_at(before[:, None] + 1 + np.arange(horizon))
            )

        return forecast

    deseasonalised = train - seasonal_at(np.arange(first_val))
    val, val_targets = parts.val_starts, _windows(parts.series, parts.val_starts, horizon)
    fits = {}
    for damped, name in ((False, "simple exponential smoothing"), (True, "damped Holt")):
        params, text = _smoothing_fit(deseasonalised, damped)
        forecast = forecaster(params)
        fits[name] = (forecast, text, _mae(forecast(parts.series, val), val_targets))
    chosen = min(fits, key=lambda name: fits[name][2])
    tried = ", ".join(f"{name} {fit[2]:.1f}" for name, fit in fits.items())
    about = (
        f"MSTL (periods {', '.join(map(str, parts.periods))} steps, statsmodels' defaults) of steps 0-{first_val - 1}"
        f"; its seasonal components there, their last cycle repeated after; the rest forecast by {chosen} "
        f"({fits[chosen][1]}), chosen on validation (val MAE {tried}), fitted on the training steps' deseasonalised "
        "values and run as a filter over the whole series (each origin's level from the values before it)"
    )
    return fits[chosen][0], about


def seasonal_forecasters(data) -> dict[str, tuple[Forecaster, str]]:
    """The electricity baselines of :func:`seasonal_forecast_baselines`, fitted and chosen: name -> (forecaster,
    about). A forecaster applies its fixed parameters to any series (of the same steps), so a test can change the
    values after an origin and see that origin's forecast stay."""
    # Imported before the thread limit, which reaches only the libraries already loaded: scikit-learn brings
    # scipy's own OpenBLAS, and with two threads the first run's fits differ from later runs' in the last bits.
    import sklearn.linear_model  # noqa: F401
    import statsmodels.tsa.api  # noqa: F401

    with _quiet_single_thread():
        return _seasonal_forecasters(_Parts.of(data))


def _seasonal_forecasters(parts: _Parts) -> dict[str, tuple[Forecaster, str]]:
    day, week = parts.periods[0], parts.periods[-1]
    horizon, window, scale = parts.horizon, parts.window, parts.scale
    if parts.val_starts.min() < week or parts.first_val - horizon < window:
        raise ValueError("the seasonal baselines need a week before every validation origin and training windows")
    train = parts.train_starts
    windows = f"{len(train):,} training windows (first targets at steps {train[0]}-{train[-1]})"
    out: dict[str, tuple[Forecaster, str]] = {
        f"seasonal_naive_{name}": (
            lambda series, starts, p=period: seasonal_naive(series, starts, horizon, p, 0.0),
            f"the value {period} steps (a {name}) before each target step; nothing fitted",
        )
        for name, period in (("day", day), ("week", week))
    }
    out["mstl_ets"] = _mstl_ets(parts)

    def last(series, starts):
        return _inputs(series, starts, window)[:, -1:]

    def relative(series, starts):
        inputs = _inputs(series, starts, window)
        return (inputs - inputs[:, -1:]) / scale

    best = None
    for order in SEASONAL_FOURIER_ORDERS:

        def features(series, starts, order=order):
            return np.concatenate([relative(series, starts), fourier_terms(starts, parts.periods, order)], axis=1)

        forecast, alpha, mae = _least_squares(parts, features, last, scale, LAG_RIDGE_ALPHA)
        if best is None or mae < best[3]:
            best = (forecast, order, alpha, mae)
    forecast, order, alpha = best[:3]
    out["ridge_lags_fourier"] = (
        forecast,
        f"ridge regression (scikit-learn, one fit for all {horizon} steps) of the targets relative to the last input "
        f"on the {window} inputs relative to it (both / scale {scale:.4g}) and K daily and K weekly sine/cosine pairs "
        f"of the origin's position, K={order} and alpha={alpha:g} chosen on validation from K in "
        f"{_choices(SEASONAL_FOURIER_ORDERS)} x alpha in {_choices(LAG_RIDGE_ALPHA)}; {windows}",
    )

    least_squares = (
        "linear in its parameters, so fitted in closed form by least squares: the exact minimum of its training MSE "
        "plus a ridge penalty alpha={alpha:g} on the weights (the paper trains by Adam), alpha chosen on validation "
        "from {grid}"
    )
    forecast, alpha, _ = _least_squares(parts, relative, last, scale, LTSF_ALPHA)
    out["nlinear"] = (
        forecast,
        f"NLinear (Zeng et al. 2023): the window minus its last value, one linear map {window} -> {horizon} steps, "
        f"the last value added back; {least_squares.format(alpha=alpha, grid=_choices(LTSF_ALPHA))}; {windows}",
    )
    mean, std = float(np.mean(parts.series[: parts.first_val])), float(np.std(parts.series[: parts.first_val]))

    def decomposed(series, starts):
        inputs = (_inputs(series, starts, window) - mean) / std
        trend = moving_average_trend(inputs)
        return np.concatenate([inputs - trend, trend], axis=1)

    forecast, alpha, _ = _least_squares(
        parts, decomposed, lambda series, starts: np.full((len(starts), 1), mean), std, LTSF_ALPHA
    )
    out["dlinear"] = (
        forecast,
        f"DLinear (Zeng et al. 2023): the window (standardised by the training steps' mean {mean:.0f} and std "
        f"{std:.0f}) split into a moving-average trend (kernel {DLINEAR_KERNEL}, edges padded by repetition) and "
        f"the remainder, one linear map {window} -> {horizon} each, summed; "
        f"{least_squares.format(alpha=alpha, grid=_choices(LTSF_ALPHA))}; {windows}",
    )
    return out


def seasonal_forecast_baselines(data) -> Fitted:
    """Test and validation MAE (MW) of classical forecasts of a series with a daily and a weekly cycle
    (``data.info["seasonal_periods"]``, in steps: the electricity demand series).

    ``seasonal_naive_day`` and ``seasonal_naive_week``: the value a day or a week before each target step.
    ``mstl_ets``: statsmodels' MSTL with both periods on the training steps, the seasonal components' last cycle
    repeated over the later steps, the rest forecast by exponential smoothing (simple or damped Holt).
    ``ridge_lags_fourier``: ridge regression on the window relative to its last value and Fourier terms of the
    origin. ``nlinear`` and ``dlinear``: the LTSF-Linear models (Zeng et al. 2023), fitted by least squares.
    Everything is fitted on the training steps and chosen on the validation windows; each test origin's forecast
    uses only the values before it, with the fitted parameters (nothing is refitted per origin). Returns a
    :class:`Fitted`: ``{name: {"mae", "val_mae", "about"}}`` and per test window absolute errors in MW.
    """
    parts = _Parts.of(data)
    test_starts = np.asarray(data.raw["test_starts"])
    test_targets = np.asarray(data.raw["y_test"], dtype=np.float64)
    if not np.array_equal(_windows(parts.series, test_starts, parts.horizon), test_targets):
        raise ValueError("the raw test targets are not the series' steps after each test origin")
    val_targets = _windows(parts.series, parts.val_starts, parts.horizon)
    out = Fitted()
    with _quiet_single_thread():
        for name, (forecast, about) in seasonal_forecasters(data).items():
            out.losses[name] = np.abs(forecast(parts.series, test_starts) - test_targets)
            out[name] = {
                "mae": float(np.mean(out.losses[name])),
                "val_mae": _mae(forecast(parts.series, parts.val_starts), val_targets),
                "about": about,
            }
    return out


# ------------------------------------------------------------------------------------------ classification


def _subsample(labels: np.ndarray, size: int | None) -> np.ndarray:
    """Indices of a stratified random subset of ``size`` examples (all of them, in order, when ``size`` is None
    or not smaller)."""
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    chosen, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=SEED)
    return np.sort(chosen)


def _choices(values) -> str:
    return "{" + ", ".join(f"{value:g}" for value in values) + "}"


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i - b_j|^2 for all pairs, in float64 through one matrix product."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    distances = np.einsum("ij,ij->i", a, a)[:, None] - 2.0 * (a @ b.T) + np.einsum("ij,ij->i", b, b)[None, :]
    return np.maximum(distances, 0.0, out=distances)


def _choose(grid: list[dict], fit, y_val: np.ndarray) -> tuple[dict, float, object]:
    """The grid point whose fitted predictor scores best on validation (the first one on ties)."""
    best = None
    for params in grid:
        predict = fit(**params)
        accuracy = float(np.mean(predict("val") == y_val) * 100.0)
        if best is None or accuracy > best[1]:
            best = (params, accuracy, predict)
    return best


def classification_baselines(data, *, max_train: int | None = MAX_TRAIN) -> Fitted:
    """Test and validation accuracy (%) of logistic regression and an RBF SVM on flattened pixels.

    Hyper-parameters are chosen on the validation split from :data:`LOGISTIC_C`, and :data:`SVM_C` x
    :data:`SVM_GAMMA`; the training set is a stratified subsample of ``max_train`` images (None: all).
    The SVM's kernel matrices exp(-gamma |x - x'|^2) are computed with one matrix product per split and
    handed to libsvm precomputed: the same model as ``SVC(kernel="rbf")``, predicted about five times faster
    than by libsvm's own per-example loop (the distances are also shared by the whole grid).
    ``rbf_svm_pca``: an RBF SVM on :data:`PCA_COMPONENTS` principal components of every training image (no
    subsample), C and gamma from :data:`PCA_SVM_C` x :data:`PCA_SVM_GAMMA`.
    Returns ``{"logistic_regression" | "rbf_svm" | "rbf_svm_pca": {"accuracy", "val_accuracy", "about"}}``, a
    :class:`Fitted` whose ``losses`` say which test images each gets right.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    def flat(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32).reshape(len(x), -1)

    keep = _subsample(np.asarray(data.y_train), max_train)
    x_train, y_train = flat(data.x_train)[keep], np.asarray(data.y_train)[keep]
    inputs = {"val": flat(data.x_val), "test": flat(data.x_test)}
    trained_on = f"{len(keep):,} of {len(data.x_train):,} training images" + (
        f" (stratified subsample, seed {SEED})" if len(keep) < len(data.x_train) else ""
    )

    def logistic(C: float):
        model = LogisticRegression(C=C, max_iter=1000, random_state=SEED).fit(x_train, y_train)
        return lambda split: model.predict(inputs[split])

    def rbf_svm(C: float, gamma: float, rows: int = 2000):
        model = SVC(C=C, kernel="precomputed").fit(np.exp(-gamma * train_distances), y_train)

        def predict(split: str) -> np.ndarray:
            if split == "val":
                return model.predict(np.exp(-gamma * val_distances))
            x = inputs[split]  # in blocks of rows: a whole test kernel would take 400 MB for 10,000 x 5,000
            blocks = [_squared_distances(x[i : i + rows], x_train) for i in range(0, len(x), rows)]
            return np.concatenate([model.predict(np.exp(-gamma * block)) for block in blocks])

        return predict

    def rbf_svm_pca(C: float, gamma: float):
        model = SVC(C=C, gamma=gamma, kernel="rbf", cache_size=1000).fit(components["train"], all_labels)
        return lambda split: model.predict(components[split])

    all_labels = np.asarray(data.y_train)
    everything = f"all {len(all_labels):,} training images"
    models = {
        "logistic_regression": (logistic, [{"C": c} for c in LOGISTIC_C], f"C in {_choices(LOGISTIC_C)}"),
        "rbf_svm": (
            rbf_svm,
            [{"C": c, "gamma": g} for c in SVM_C for g in SVM_GAMMA],
            f"C in {_choices(SVM_C)} x gamma in {_choices(SVM_GAMMA)}",
        ),
        "rbf_svm_pca": (
            rbf_svm_pca,
            [{"C": c, "gamma": g} for c in PCA_SVM_C for g in PCA_SVM_GAMMA],
            f"C in {_choices(PCA_SVM_C)} x gamma in {_choices(PCA_SVM_GAMMA)}",
        ),
    }
    out = Fitted()
    what = {name: "flattened pixels" for name in models} | {
        "rbf_svm_pca": f"the first {PCA_COMPONENTS} principal components of the pixels (PCA fitted on the "
        "training images)"
    }
    with _quiet_single_thread():
        train_distances = _squared_distances(x_train, x_train)
        val_distances = _squared_distances(inputs["val"], x_train)
        pca = PCA(PCA_COMPONENTS, random_state=SEED).fit(flat(data.x_train))
        components = {"train": pca.transform(flat(data.x_train))} | {k: pca.transform(v) for k, v in inputs.items()}
        for name, (fit, grid, grid_text) in models.items():
            params, val_accuracy, predict = _choose(grid, fit, np.asarray(data.y_val))
            chosen = ", ".join(f"{key}={value:g}" for key, value in params.items())
            out.losses[name] = predict("test") == np.asarray(data.y_test)
            out[name] = {
                "accuracy": float(np.mean(out.losses[name]) * 100.0),
                "val_accuracy": val_accuracy,
                "about": f"{name.replace('_pca', '').replace('_', ' ')} on {what[name]}, {chosen} chosen on "
                f"validation from {grid_text}; {everything if name == 'rbf_svm_pca' else trained_on}",
            }
    return out


#: Ridge penalties and RBF kernel-ridge (penalty, gamma) pairs tried on validation for regressions.
RIDGE_ALPHA = (0.1, 1.0, 10.0, 100.0)
KERNEL_RIDGE = tuple((a, g) for a in (0.1, 1.0) for g in (0.01, 0.03))


def regression_baselines(data, *, max_train: int | None = MAX_TRAIN) -> Fitted:
    """Test and validation MAE (in the targets' unit) of the training mean, a ridge regression and an RBF
    kernel ridge regression on flattened pixels, their penalties (and kernel widths) chosen on validation; the
    kernel model trains on ``max_train`` examples at most (the first ones). Returns ``{name: {"mae", "val_mae",
    "about"}}`` as the forecast baselines do."""
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import Ridge

    def flat(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)

    scale = data.task.scale
    x = {"train": flat(data.x_train), "val": flat(data.x_val), "test": flat(data.x_test)}
    y = {"train": np.asarray(data.y_train), "val": np.asarray(data.y_val), "test": np.asarray(data.y_test)}

    def mae(predictions: np.ndarray, split: str) -> float:  # sklearn gives (N,) for one target: never broadcast
        return _mae(np.asarray(predictions).reshape(y[split].shape), y[split]) * scale

    def errors(predictions: np.ndarray) -> np.ndarray:
        difference = np.asarray(predictions, dtype=np.float64).reshape(y["test"].shape) - y["test"]
        return (np.abs(difference) * scale).reshape(len(difference), -1)

    out = Fitted(
        {
            "train_mean": {
                "mae": mae(np.zeros_like(y["test"]), "test"),
                "val_mae": mae(np.zeros_like(y["val"]), "val"),
                "about": "the training targets' mean, for every example",
            }
        },
        {"train_mean": errors(np.zeros_like(y["test"]))},
    )
    keep = slice(0, max_train)
    with _quiet_single_thread():
        fits = {
            "ridge": [(f"alpha={a:g}", Ridge(alpha=a).fit(x["train"], y["train"])) for a in RIDGE_ALPHA],
            "rbf_kernel_ridge": [
                (
                    f"alpha={a:g}, gamma={g:g}",
                    KernelRidge(alpha=a, kernel="rbf", gamma=g).fit(x["train"][keep], y["train"][keep]),
                )
                for a, g in KERNEL_RIDGE
            ],
        }
        grids = {
            "ridge": f"alpha in {_choices(RIDGE_ALPHA)}",
            "rbf_kernel_ridge": "alpha in {0.1, 1} x gamma in {0.01, 0.03}",
        }
        for name, fitted in fits.items():
            chosen, model = min(fitted, key=lambda item: mae(item[1].predict(x["val"]), "val"))
            n = min(len(x["train"]), max_train or len(x["train"])) if name == "rbf_kernel_ridge" else len(x["train"])
            out.losses[name] = errors(model.predict(x["test"]))
            out[name] = {
                "mae": mae(model.predict(x["test"]), "test"),
                "val_mae": mae(model.predict(x["val"]), "val"),
                "about": f"{name.replace('_', ' ')} on flattened pixels, {chosen} chosen on validation from "
                f"{grids[name]}; {n:,} training examples",
            }
    return out


def baselines(data, enabled: bool = True) -> Fitted:
    """The baselines of ``data``'s task (forecast, classification or regression), with their per-example test
    losses (:class:`Fitted`); empty when not ``enabled``."""
    if not enabled:
        return Fitted()
    if data.task == "forecast":
        return seasonal_forecast_baselines(data) if "seasonal_periods" in data.info else forecast_baselines(data)
    if data.task == "regression":
        return regression_baselines(data)
    if data.task == "classification":
        return classification_baselines(data)
    raise ValueError(f"no baselines for task {data.task}")
