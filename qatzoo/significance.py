"""Is a model's test number better than a baseline's, or only different by chance? The tests of the field.

A comparison here is a claim: "beats" means significantly, at :data:`ALPHA`, on the same test examples.

* **Forecasts** (and regressions): the Diebold-Mariano test of equal predictive accuracy on absolute errors (the
  MAE's loss), with Harvey, Leybourne and Newbold's small-sample correction and Student's t with n - 1 degrees
  of freedom (Diebold and Mariano 1995; Harvey et al. 1997; the form the ``forecast`` R package's ``dm.test``
  computes). The test windows of a series start a week apart, so an h-step forecast's errors overlap: the loss
  differential's variance sums its autocovariances up to lag h - 1. Per horizon step k the test uses that
  step's errors (lag k - 1); overall it uses each window's mean absolute error over the horizon (lag H - 1).
* **Classifiers**: McNemar's exact test (statsmodels' ``mcnemar``, binomial) on the examples exactly one of the
  two gets right.

Every p-value is two-sided. The verdict is ``beats`` where the model is better with p < ALPHA, ``loses`` where
it is worse with p < ALPHA, ``ties`` otherwise.
"""

from __future__ import annotations

import numpy as np

#: The significance level of every verdict.
ALPHA = 0.05


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> tuple[float, float]:
    """(statistic, two-sided p) of H0 "equal expected loss" for the paired losses of ``h``-step forecasts
    (one value per origin, origins one step apart). Negative statistic: ``a``'s loss is lower."""
    from scipy import stats

    d = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    n = d.size
    if d.ndim != 1:
        raise ValueError(f"Diebold-Mariano needs one loss differential per origin; got shape {d.shape}")
    correction = (n + 1 - 2 * horizon + horizon * (horizon - 1) / max(n, 1)) / max(n, 1)
    if n < 3 or correction <= 0:
        return 0.0, 1.0  # too few origins for the test (n < 3, or n below about 2h): no evidence either way
    mean = d.mean()
    centred = d - mean
    autocov = [float(centred[k:] @ centred[: n - k]) / n for k in range(min(horizon, n))]
    variance = autocov[0] + 2.0 * sum(autocov[1:])
    if variance <= 0.0:  # the truncated sum can go negative for long horizons: fall back to lag 0
        variance = autocov[0]
    if variance == 0.0:
        return 0.0, 1.0  # identical losses everywhere (or a constant difference, which no test can weigh)
    statistic = mean / np.sqrt(variance / n)
    statistic *= np.sqrt(correction)
    p = 2.0 * stats.t.sf(abs(statistic), df=n - 1)
    return float(statistic), float(p)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """(examples only ``a`` gets right, examples only ``b`` gets right, exact two-sided p)."""
    from statsmodels.stats.contingency_tables import mcnemar as test

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"McNemar needs one outcome per example for both models; got {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 0, 0, 1.0
    table = [[int(np.sum(a & b)), only_a], [only_b, int(np.sum(~a & ~b))]]
    return only_a, only_b, float(test(table, exact=True).pvalue)


def verdict(better: bool, p: float) -> str:
    """``beats`` / ``loses`` at :data:`ALPHA`, else ``ties``; ``better``: the model's number is the better one."""
    if p < ALPHA:
        return "beats" if better else "loses"
    return "ties"


def compare(task, model_losses: np.ndarray, baseline_losses: np.ndarray) -> dict:
    """The model against one baseline on the same test examples.

    ``task``: the :class:`~qatzoo.task.Task`; the losses are :meth:`~qatzoo.task.Task.losses` (per example:
    correct or not for a classifier; absolute errors ``(n, horizon)`` in the unit otherwise).
    Returns ``{"test", "p", "statistic", "verdict"}``, with ``per_step`` (forecasts of more than one step:
    ``[{"p", "statistic"}]`` for each step) or ``only_model`` / ``only_baseline`` (classifiers).
    """
    a, b = np.asarray(model_losses), np.asarray(baseline_losses)
    if a.shape != b.shape:
        raise ValueError(f"the model's losses {a.shape} and the baseline's {b.shape} are not on the same examples")
    if task.classification:
        only_model, only_baseline, p = mcnemar(a, b)
        return {
            "test": "mcnemar",
            "p": p,
            "statistic": float(only_model - only_baseline),
            "verdict": verdict(only_model > only_baseline, p),
            "only_model": only_model,
            "only_baseline": only_baseline,
        }
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    horizon = a.shape[1] if task.name == "forecast" else 1
    statistic, p = diebold_mariano(a.mean(axis=1), b.mean(axis=1), horizon)
    out = {"test": "diebold_mariano", "p": p, "statistic": statistic, "verdict": verdict(a.mean() < b.mean(), p)}
    if task.name == "forecast" and a.shape[1] > 1:
        steps = [diebold_mariano(a[:, k], b[:, k], k + 1) for k in range(a.shape[1])]
        out["per_step"] = [{"p": p_k, "statistic": s_k} for s_k, p_k in steps]
    return out


def against(task, model_losses: np.ndarray, baselines: dict, losses: dict) -> dict:
    """The model against every baseline (``baselines``: the table, name -> {metric, ...}; ``losses``: name ->
    per-example losses), and which one is the strongest (best test metric).

    Returns ``{"alpha", "best", "baselines": {name: compare(...)}}``; ``{}`` without baselines.
    """
    names = [name for name in baselines if name in losses]
    if not names:
        return {}
    metric = task.metric
    best = (max if task.higher_is_better else min)(names, key=lambda name: baselines[name][metric])
    return {
        "alpha": ALPHA,
        "best": best,
        "baselines": {name: compare(task, model_losses, losses[name]) for name in names},
    }


TEST_NAMES = {"diebold_mariano": "Diebold-Mariano", "mcnemar": "McNemar"}


def cell(significance: dict | None) -> str:
    """A table cell: the verdict against the strongest baseline, ``ties fourier_arima (Diebold-Mariano p =
    0.32)``; ``-`` without a test."""
    if not significance:
        return "-"
    best = significance["best"]
    result = significance["baselines"][best]
    return f"{result['verdict']} {best} ({TEST_NAMES[result['test']]} p = {result['p']:.2g})"


def sentence(significance: dict, metric: str) -> str:
    """One line: the verdict against the strongest baseline, its test and p (per step for forecasts)."""
    best = significance["best"]
    result = significance["baselines"][best]
    words = {"beats": "beats", "ties": "ties with", "loses": "loses to"}[result["verdict"]]
    text = (
        f"Against the strongest baseline ({best}, best test {metric}) the int8 model **{words}** it: "
        f"{TEST_NAMES[result['test']]} p = {result['p']:.3g}"
    )
    if "per_step" in result:
        text += " overall; per horizon step " + ", ".join(f"{step['p']:.2g}" for step in result["per_step"])
    if result["test"] == "mcnemar":
        text += (
            f" ({result['only_model']} test examples only the int8 model gets right, "
            f"{result['only_baseline']} only the baseline)"
        )
    return text + f"; significant means p < {significance['alpha']:g}, two-sided."
