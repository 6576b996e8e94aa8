"""The figures of a run: training curves of both phases, forecasts against the actual series, and the
confusion matrix of a classifier. Small PNGs (matplotlib, Agg) written with :func:`qatzoo.files.write_figure`;
every function returns the path it wrote.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from qatzoo.files import write_figure

#: Colour of each training phase in the curves.
PHASE_COLOURS = {"float": "tab:blue", "qat": "tab:orange"}
PHASE_LABELS = {"float": "float", "qat": "QAT"}

#: The run's figures, by the file name the trainer writes them to (and the card links to).
FIGURES = {
    "training.png": "Training: loss and validation metric per epoch, both phases",
    "forecast.png": "The int8 model's forecasts against the actual series over the test period",
    "confusion.png": "Confusion matrix of the int8 model on the test split",
    "regression.png": "The int8 model's predictions against the true values of the test split",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---- training curves


def read_history(path: str | Path) -> list[dict]:
    """The rows of a run's history.csv: ``phase`` a string, ``epoch`` an int, every other column a float
    (an empty cell is NaN)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out = {"phase": row.pop("phase"), "epoch": int(row.pop("epoch"))}
            out.update({k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()})
            rows.append(out)
    return rows


def _on_one_axis(rows: list[dict]) -> list[tuple[str, list[dict], int]]:
    """Rows grouped by phase in the order the phases ran, each with the epoch offset that puts it after
    the phases before it; a repeated (phase, epoch) row (a resumed run) keeps its last values."""
    phases: dict[str, dict[int, dict]] = {}
    for row in rows:
        phases.setdefault(row["phase"], {})[int(row["epoch"])] = row
    out, offset = [], 0
    for phase, by_epoch in phases.items():
        out.append((phase, [by_epoch[e] for e in sorted(by_epoch)], offset))
        offset += max(by_epoch)
    return out


def training_curves(rows: list[dict], metric: str, unit: str, path: str | Path) -> Path:
    """Training loss and the validation metric per epoch, the float phase then QAT on one epoch axis, with a
    vertical line where QAT starts. ``rows``: :func:`read_history`'s records (``val_<metric>`` in ``unit``)."""
    column = f"val_{metric}"
    if not rows or not any(column in row for row in rows):
        raise ValueError(
            f"training_curves: no {column!r} column in the history (columns: {sorted(set().union(*rows))})"
        )
    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.6))
    for phase, phase_rows, offset in _on_one_axis(rows):
        x = [offset + int(r["epoch"]) for r in phase_rows]
        style = {
            "marker": "o",
            "markersize": 3,
            "color": PHASE_COLOURS.get(phase),
            "label": PHASE_LABELS.get(phase, phase),
        }
        ax_loss.plot(x, [r.get("loss", np.nan) for r in phase_rows], **style)
        ax_metric.plot(x, [r.get(column, np.nan) for r in phase_rows], **style)
        if offset:
            for ax in (ax_loss, ax_metric):
                ax.axvline(offset + 0.5, color="grey", linestyle="--", linewidth=1)
            ax_metric.annotate(
                f"{PHASE_LABELS.get(phase, phase)} starts",
                (offset + 0.5, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color="grey",
            )
    ax_loss.set_title("training loss")
    ax_loss.set_ylabel("loss (training objective)")
    ax_metric.set_title(f"validation {metric}")
    ax_metric.set_ylabel(f"{metric} ({unit})")
    for ax in (ax_loss, ax_metric):
        ax.set_xlabel("epoch (float phase, then QAT)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    return write_figure(path, fig)


# ---- forecasts


def forecast_vs_actual(
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    unit: str,
    path: str | Path,
    start_week: int | None = None,
    dates: list[str] | None = None,
    step: str = "week",
) -> Path:
    """The actual series over the test period with each model's 1-week-ahead and horizon-weeks-ahead
    forecasts, and below them the forecast errors (mean absolute error in the legend).

    ``actual`` and each forecast: (n_windows, horizon) arrays in ``unit`` for consecutive test windows
    (window i's first target is the week after window i-1's). ``start_week``: the week number of the
    first target, for the x axis (default: weeks counted from the start of the test period). ``dates``: the
    ISO dates of the weeks from the first target on, when the series has them: the x axis is then dated
    (ISO times, ``2000-08-15T09:30``, for a series of shorter steps). ``step``: what one step of the series is
    (the contract's ``period``: week, hour, half-hour), for the labels.
    """
    actual = np.asarray(actual, dtype=np.float64)
    if actual.ndim != 2:
        raise ValueError(f"forecast_vs_actual: actual must be (n_windows, horizon), got {actual.shape}")
    n, horizon = actual.shape
    for name, f in forecasts.items():
        if np.shape(f) != actual.shape:
            raise ValueError(f"forecast_vs_actual: {name!r} has shape {np.shape(f)}, actual {actual.shape}")
    first = 0 if start_week is None else int(start_week)
    series = np.concatenate([actual[:, 0], actual[-1, 1:]])  # week first .. first + n + horizon - 2
    weeks = first + np.arange(n + horizon - 1)
    dated = dates is not None and len(dates) >= n + horizon - 1
    if dated:
        timed = any("T" in d for d in dates[: n + horizon - 1])
        weeks = np.array(dates[: n + horizon - 1], dtype="datetime64[m]" if timed else "datetime64[D]")
    leads = [1] if horizon == 1 else [1, horizon]

    plt = _pyplot()
    fig, (ax, ax_err) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax.plot(weeks, series, color="black", linewidth=1.4, label="actual")
    for i, (name, f) in enumerate(forecasts.items()):
        f = np.asarray(f, dtype=np.float64)
        colour = f"C{i}"
        for lead in leads:
            x = weeks[lead - 1 : lead - 1 + n]  # window i's lead-week forecast is for week i + lead - 1
            error = f[:, lead - 1] - actual[:, lead - 1]
            style = {"color": colour, "linewidth": 1, "linestyle": "-" if lead == 1 else "--"}
            ahead = f"{lead} {step}{'s' if lead > 1 else ''} ahead"
            ax.plot(x, f[:, lead - 1], label=f"{name}, {ahead}", **style)
            ax_err.plot(x, error, label=f"{name}, {ahead}: MAE {np.mean(np.abs(error)):.3g} {unit}", **style)
    ax_err.axhline(0, color="black", linewidth=0.8)
    period = f"{weeks[0]} to {weeks[-1]}, " if dated else ""
    ax.set_title(
        f"Forecasts against the actual series, test period ({period}{n} windows, horizon {horizon} {step}s)",
        fontsize=10 if dated else None,
    )
    ax.set_ylabel(f"value ({unit})")
    ax.legend(fontsize=8)
    ax_err.set_ylabel(f"error ({unit})")
    ax_err.set_xlabel(
        (f"date of the {step}" if step == "week" else "time")
        if dated
        else step
        if start_week is not None
        else f"{step} of the test period"
    )
    ax_err.legend(fontsize=7, ncol=2)
    for a in (ax, ax_err):
        a.grid(alpha=0.3)
    fig.tight_layout()
    return write_figure(path, fig)


# ---- confusion matrix


def confusion_counts(y_true, y_pred, n_classes: int) -> np.ndarray:
    """``counts[t, p]``: how many examples of true class t were predicted as p."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64).ravel(), np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_counts: {y_true.size} true labels but {y_pred.size} predictions")
    for y in (y_true, y_pred):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"confusion_counts: class indices must be in [0, {n_classes})")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def confusion_matrix(
    y_true, y_pred, class_names: list[str], path: str | Path, title: str = "Confusion matrix (test split)"
) -> Path:
    """Counts of true class (rows) against predicted class (columns), written in the cells; the colour is
    each row's share, so classes of different sizes read alike."""
    k = len(class_names)
    counts = confusion_counts(y_true, y_pred, k)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)

    plt = _pyplot()
    side = 2.5 + 0.45 * k
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("share of the true class (row-normalized)")
    for t in range(k):
        for p in range(k):
            ax.text(
                p,
                t,
                str(counts[t, p]),
                ha="center",
                va="center",
                fontsize=8 if k <= 12 else 6,
                color="white" if share[t, p] > 0.5 else "black",
            )
    rotate = max(map(len, class_names)) > 2
    ax.set_xticks(range(k), class_names, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\n{int(counts.sum())} examples, {np.trace(counts) / max(counts.sum(), 1):.2%} correct")
    fig.tight_layout()
    return write_figure(path, fig)


def predicted_vs_true(y_true, y_pred, unit: str, path: str | Path, title: str = "Regression (test split)") -> Path:
    """Each test target against the int8 model's prediction (every output on one axis), with the identity line:
    points on it are exact; the MAE in the title."""
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.scatter(y_true, y_pred, s=8, alpha=0.5, linewidths=0)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="exact")
    suffix = f" ({unit})" if unit else ""
    ax.set_xlabel(f"true{suffix}")
    ax.set_ylabel(f"predicted by the int8 model{suffix}")
    mae = float(np.mean(np.abs(y_pred - y_true)))
    ax.set_title(f"{title}\n{y_true.size} values, MAE {mae:.4g}{suffix}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return write_figure(path, fig)
