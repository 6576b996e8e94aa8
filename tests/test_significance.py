"""Significance of a comparison: Diebold-Mariano (forecasts) and McNemar (classifiers), checked against
scipy's own tests where they coincide and by their error rate under the null; the card and index carry them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from qatzoo import significance
from qatzoo.render import card
from qatzoo.report import Significance
from qatzoo.task import Task


def test_one_step_diebold_mariano_is_the_paired_t_test():
    """At h = 1 the corrected statistic is exactly scipy's paired t-test on the losses (same df, same p)."""
    rng = np.random.default_rng(0)
    a, b = rng.gamma(2.0, 1.0, 300), rng.gamma(2.0, 1.05, 300)
    statistic, p = significance.diebold_mariano(a, b, horizon=1)
    reference = stats.ttest_rel(a, b)
    assert statistic == pytest.approx(reference.statistic, rel=1e-10)
    assert p == pytest.approx(reference.pvalue, rel=1e-8)


def test_diebold_mariano_holds_its_level_on_overlapping_forecast_errors():
    """Loss differentials with MA(3) dependence (4-step forecasts from origins a step apart): under H0 the
    test rejects about 5% of the time; ignoring the overlap (h = 1) rejects far more often."""
    rng = np.random.default_rng(1)
    rejected = {4: 0, 1: 0}
    trials = 1000
    for _ in range(trials):
        shocks = rng.normal(size=343)
        d = shocks[3:] + shocks[2:-1] + shocks[1:-2] + shocks[:-3]  # MA(3), mean 0
        for h in rejected:
            rejected[h] += significance.diebold_mariano(d, np.zeros_like(d), horizon=h)[1] < 0.05
    assert 0.02 <= rejected[4] / trials <= 0.09
    assert rejected[1] / trials > 0.2


def test_diebold_mariano_finds_a_real_difference_and_its_sign():
    rng = np.random.default_rng(2)
    base = rng.gamma(2.0, 1.0, 400)
    statistic, p = significance.diebold_mariano(base * 0.8, base + rng.normal(0, 0.1, 400), horizon=2)
    assert statistic < 0 and p < 1e-6


def test_too_few_origins_for_the_test_are_a_tie_not_a_crash():
    assert significance.diebold_mariano(np.array([1.0, 2.0]), np.array([0.0, 0.0]), horizon=1) == (0.0, 1.0)
    assert significance.diebold_mariano(np.ones(4) + np.arange(4), np.zeros(4), horizon=4) == (0.0, 1.0)  # HLN factor 0


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_examples():
    rng = np.random.default_rng(3)
    a, b = rng.random(2000) < 0.97, rng.random(2000) < 0.96
    only_a, only_b, p = significance.mcnemar(a, b)
    assert (only_a, only_b) == (int(np.sum(a & ~b)), int(np.sum(~a & b)))
    assert p == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-9)
    assert significance.mcnemar(a, a) == (0, 0, 1.0)


def test_compare_gives_verdicts_only_where_significant():
    task = Task("classification")
    truth = np.r_[np.ones(900, bool), np.zeros(100, bool)]
    better = truth.copy()
    better[900:960] = True  # right on 60 more examples than the baseline
    assert significance.compare(task, better, truth)["verdict"] == "beats"
    assert significance.compare(task, truth, better)["verdict"] == "loses"
    close = truth.copy()
    close[900:903] = True
    result = significance.compare(task, close, truth)
    assert result["verdict"] == "ties" and result["p"] > 0.05 and result["only_model"] == 3


def test_against_names_the_strongest_baseline_and_compares_every_step():
    task = Task("forecast", target_unit="ppm")
    rng = np.random.default_rng(4)
    model = np.abs(rng.normal(0, 0.30, (340, 4)))
    losses = {"weak": np.abs(rng.normal(0, 0.60, (340, 4))), "strong": np.abs(rng.normal(0, 0.31, (340, 4)))}
    table = {name: {"mae": float(loss.mean()), "val_mae": 0.0, "about": name} for name, loss in losses.items()}
    result = significance.against(task, model, table, losses)
    assert result["best"] == "strong"
    assert result["baselines"]["weak"]["verdict"] == "beats"
    assert len(result["baselines"]["strong"]["per_step"]) == 4
    Significance.model_validate(result)  # the shape metrics.json and the index validate
    assert significance.against(task, model, {}, {}) == {}


def test_losses_average_to_the_score():
    rng = np.random.default_rng(5)
    forecast = Task("forecast", scale=2.5, target_unit="ppm")
    y, p = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    assert forecast.losses(y, p).mean() == pytest.approx(forecast.score(y, p), rel=1e-6)
    classes = Task("classification")
    labels, logits = rng.integers(0, 10, 200), rng.normal(size=(200, 10))
    assert classes.losses(labels, logits).mean() * 100 == pytest.approx(classes.score(labels, logits))


def test_the_card_says_beats_only_where_the_test_does():
    task = Task("forecast", target_unit="ppm")
    rng = np.random.default_rng(6)
    model = np.abs(rng.normal(0, 0.30, (340, 4)))
    losses = {"near": model * 1.01 + np.abs(rng.normal(0, 0.01, (340, 4))), "far": model * 2.0}
    table = {name: {"mae": float(loss.mean()), "val_mae": 0.5, "about": name} for name, loss in losses.items()}
    result = significance.against(task, model, table, losses)
    lines = card.baseline_lines(table, "mae", "ppm", float(model.mean()), False, result)
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ")}
    assert "**beats** it" in rows["far"]
    verdict = result["baselines"]["near"]["verdict"]
    assert ("**beats** it" in rows["near"]) == (verdict == "beats")
    summary = lines[-2]
    assert summary.startswith("Of 2 baselines the int8 model") and "strongest baseline (near" in summary
    assert "Diebold-Mariano p = " in summary and "per horizon step" in summary
