"""The card's "Limitations": the data's period, the input's conventions, and what changed inputs cost the int8
file, measured in LiteRT on the test split (the int8 file is the truth here too).

Images: shifted by 1 and 2 pixels (right and down, zeros shifted in), and inverted (dark on light). Weekly
forecasts (CO2): the whole window and its targets raised 50 ppm (today's level is above the data's), measurement
noise (0.5 ppm, seeded), and a trend 1 ppm a year steeper than the data's, carried on into the targets. Series of
shorter steps with daily and weekly cycles (electricity): :func:`_cycle_conditions`.
"""

from __future__ import annotations

import numpy as np

#: The seed of the forecaster's noise condition (the same numbers each time a card is written).
SEED = 0


def _shift(images: np.ndarray, step: int) -> np.ndarray:
    """``images`` moved ``step`` pixels right and down, the uncovered rows and columns zero (black)."""
    out = np.zeros_like(images)
    out[:, step:, step:, ...] = images[:, :-step, :-step, ...]
    return out


def conditions(data, contract: dict) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(what, raw inputs, raw targets)`` of each measured condition, the unchanged test split first."""
    raw = contract["input"]["raw"]
    if raw["kind"] == "image":
        x, y = np.asarray(data.raw["x_test"]), data.y_test
        rows = [("as published (the test split)", x, y)]
        rows += [(f"shifted {s} pixel{'s' if s > 1 else ''} right and down", _shift(x, s), y) for s in (1, 2)]
        if x.dtype == np.uint8:
            rows.append(("inverted (dark on light)", 255 - x, y))
        return rows
    x, y = np.asarray(data.raw["x_test"], np.float64), np.asarray(data.raw["y_test"], np.float64)
    unit = raw.get("unit") or ""
    window, horizon = x.shape[1], y.shape[1]
    if raw.get("frequency") != "weekly":
        return _cycle_conditions(x, y, unit, float(np.mean(data.raw["series"])))
    noise = np.random.default_rng(SEED).normal(0.0, 0.5, size=x.shape)
    per_step = 1.0 / 52.18 if raw.get("frequency") == "weekly" else 0.02  # ppm a week: 1 ppm a year
    ramp = per_step * np.arange(window + horizon)
    return [
        ("as published (the test split)", x, y),
        (f"raised 50 {unit} (inputs and targets)", x + 50, y + 50),
        (f"noise of 0.5 {unit} on each input value", x + noise, y),
        (f"a trend 1 {unit} a year steeper (inputs and targets)", x + ramp[:window], y + ramp[window:]),
    ]


def _round2(value: float) -> float:
    """``value`` to two significant figures (the conditions' sizes, as the card states them)."""
    return float(f"{value:.2g}")


def _cycle_conditions(x: np.ndarray, y: np.ndarray, unit: str, level: float):
    """A short-step series with daily and weekly cycles (electricity demand): the level raised by a tenth of the
    series' mean, noise of a hundredth of it, and a tenth more swing (each window and its targets stretched 1.1x
    about the window's mean) - demand that grew, a noisier meter, a hotter summer."""
    raise_by, sigma = _round2(0.1 * level), _round2(0.01 * level)
    noise = np.random.default_rng(SEED).normal(0.0, sigma, size=x.shape)
    centre = x.mean(axis=1, keepdims=True)
    return [
        ("as published (the test split)", x, y),
        (f"raised {raise_by:g} {unit} (inputs and targets)", x + raise_by, y + raise_by),
        (f"noise of {sigma:g} {unit} on each input value", x + noise, y),
        (
            "a tenth more swing (inputs and targets stretched 1.1x about the window's mean)",
            centre + 1.1 * (x - centre),
            centre + 1.1 * (y - centre),
        ),
    ]


def measure(model_bytes: bytes, contract: dict, data) -> list[tuple[str, float]]:
    """``(condition, metric)`` of the int8 file on each condition (accuracy in %, or MAE in the unit)."""
    import warnings

    from qatzoo.model import InputRangeWarning, Model

    model = Model(model_bytes, contract)
    out = []
    for what, x, y in conditions(data, contract):
        with warnings.catch_warnings():  # a changed input outside the int8 range is what the row measures
            warnings.simplefilter("ignore", InputRangeWarning)
            predicted = model.predict(x)
        if contract["task"] == "classification":
            out.append((what, float(np.mean(predicted == y) * 100)))
        else:
            out.append((what, float(np.mean(np.abs(np.asarray(predicted) - y)))))
    return out


def _data_words(data, contract: dict) -> str:
    """The data's period (dated series) or size (images), as the card states it."""
    info, raw = data.info, data.raw
    if contract["input"]["raw"]["kind"] == "series":
        dates = raw.get("dates")
        starts = raw["test_starts"]
        horizon = contract["output"]["horizon"]
        if dates and "first_val_week" in info:
            first_val, first_test = info.get("first_val_week"), info.get("first_test_week")
            return (
                f"weekly values from {dates[0]} to {dates[-1]}: trained on the weeks to {dates[first_val - 1]}, "
                f"validated on those to {dates[first_test - 1]}, tested on forecasts for {dates[int(starts[0])]} to "
                f"{dates[int(starts[-1]) + horizon - 1]}. Nothing after {dates[-1]} was seen; a forecast for a "
                "later week is an extrapolation the test split does not measure."
            )
        if dates:
            first_val, first_test = info["first_val_step"], info["first_test_step"]
            frequency, period = contract["input"]["raw"].get("frequency", ""), info.get("period", "step")
            return (
                f"{frequency} values from {dates[0]} to {dates[-1]}: trained on those to {dates[first_val - 1]}, "
                f"validated on those to {dates[first_test - 1]}, tested on forecasts for {dates[int(starts[0])]} to "
                f"{dates[int(starts[-1]) + horizon - 1]}. One stretch of one place's demand: another season, year or "
                f"grid, holidays and a later {period} are extrapolations the test split does not measure."
            )
        return f"{len(raw['series'])} values; tested on the last {len(starts)} forecasts."
    return (
        f"{data.name}: {len(data.y_train):,} training, {len(data.y_val):,} validation and {len(data.y_test):,} "
        "test images; it knows only what those images show."
    )


def _input_words(contract: dict) -> str:
    raw = contract["input"]["raw"]
    if raw["kind"] == "series":
        return (
            f"the last {raw['min_length']} {raw.get('frequency', '')} values in {raw.get('unit', '')}, oldest first, "
            "with no gap (fill a missing value first"
            + (", as the data's missing weeks were," if raw.get("frequency") == "weekly" else "")
            + " by interpolation). The "
            + (
                "model sees the changes from one value to the next, so neither the level nor a steeper trend moves "
                "its inputs far (the second and fourth rows)."
                if any(step["op"] == "difference" for step in contract["input"]["steps"])
                else "model sees each window relative to its last value, so the level itself does not matter (the "
                "second row)."
            )
            + _calibrated_words(contract)
        )
    height, width = raw["shape"][:2]
    return (
        f"a {height} x {width} image as the training images are: the object light on a black background, centred "
        "and filling the frame as in the dataset. `predict` does no inversion, centring or cropping; the rows "
        "below show what a departure costs."
    )


def _calibrated_words(contract: dict) -> str:
    """What a series model's int8 input holds, in the raw unit (``predict`` warns beyond it); ``""`` for a float
    file or steps other than the loaders' (a difference or a subtraction of the last value, then a division)."""
    from qatzoo.contract import representable

    quantization, steps = contract["input"].get("quantization"), contract["input"]["steps"]
    divide = [step["by"] for step in steps if step["op"] == "divide"]
    if not quantization or len(divide) != 1:
        return ""
    low, high = (value * divide[0] for value in representable(quantization))
    unit = contract["input"]["raw"].get("unit", "")
    what = (
        "changes from one value to the next"
        if any(step["op"] == "difference" for step in steps)
        else "values relative to the window's last value"
    )
    return (
        f" Its int8 input was calibrated on the training windows and holds {what} from {low:.4g} to {high:.4g} "
        f"{unit}; beyond that an input is clipped, and `predict` warns in one line."
    )


def section(rows: list[tuple[str, float]], data, contract: dict, metric: str, unit: str) -> list[str]:
    """Markdown lines of the card's "## Limitations" section."""
    base = rows[0][1]
    fmt = "{:.2f}" if unit == "%" else "{:.4f}"
    table = [f"| input | {metric} ({unit}) | change |", "|---|---|---|"]
    for what, value in rows:
        change = "-" if what == rows[0][0] else f"{value - base:+.2f} points" if unit == "%" else f"{value / base:.2f}x"
        table.append(f"| {what} | {fmt.format(value)} | {change} |")
    return [
        "## Limitations",
        "",
        f"- **Data**: {_data_words(data, contract)}",
        f"- **Input**: {_input_words(contract)}",
        f"- **Changed inputs**, measured on this file in LiteRT on the test split ({len(data.y_test):,} examples):",
        "",
        *table,
        "",
    ]


def with_limitations(card: str, lines: list[str]) -> str:
    """``card`` with its "## Limitations" section: replaced where it has one, else before "## The int8 model"
    (else at the end)."""
    text = "\n".join(lines) + "\n"
    start = card.find("## Limitations\n")
    if start >= 0:
        end = card.find("\n## ", start + 1)
        return card[:start] + text + (card[end + 1 :] if end >= 0 else "")
    at = card.find("## The int8 model")
    at = len(card) if at < 0 else at
    return card[:at] + text + card[at:]
