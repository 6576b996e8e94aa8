"""The sample input the zoo ships beside each published card, and the card's "Use it" section that reads it.

A sample is the test split's first input, as raw as a user would hold it: a PNG of the first test image
(``sample.png``; ``sample.npy`` for float images), or for a forecaster the weeks up to the test split's first
forecast origin as ``date,value`` rows (``sample.csv``; the dates when the dataset has them). The card's snippet
(:func:`qatzoo.render.card.use_it`) reads that file as written; ``tests/test_zoo.py`` runs every card's snippet.
"""

from __future__ import annotations

import io

import numpy as np

#: Values a forecaster's sample holds beyond the window it needs (a year of weeks: enough to plot).
EXTRA_HISTORY = 52


def sample(data, contract: dict) -> tuple[str, bytes, str]:
    """``(file name, bytes, sentence for the card)`` of the first test input of ``data`` (:class:`Splits`)."""
    raw = contract["input"]["raw"]
    if raw["kind"] == "image":
        return _image(data, contract)
    return _series(data, contract)


def _image(data, contract: dict) -> tuple[str, bytes, str]:
    from PIL import Image

    first = np.asarray(data.raw["x_test"][0])
    classes = contract["output"].get("classes") or []
    label = int(data.y_test[0]) if classes else -1  # a regression's target is not a class
    truth = f' (class "{classes[label]}")' if 0 <= label < len(classes) else ""
    if first.dtype != np.uint8:  # a user's own scaled images: a .npy of them, as the snippet reads
        buffer = io.BytesIO()
        np.save(buffer, first.astype(np.float32), allow_pickle=False)
        return "sample.npy", buffer.getvalue(), f"`sample.npy` beside this card is the test split's first image{truth}."
    buffer = io.BytesIO()
    Image.fromarray(first, "RGB" if first.ndim == 3 else "L").save(buffer, format="PNG")
    words = (
        f"`sample.png` beside this card is the test split's first image{truth}, as a {first.shape[1]} x "
        f"{first.shape[0]} PNG: the snippet and the shell line run on it as written."
    )
    return "sample.png", buffer.getvalue(), words


def _series(data, contract: dict) -> tuple[str, bytes, str]:
    raw, output = contract["input"]["raw"], contract["output"]
    series, origin = data.raw["series"], int(data.raw["test_starts"][0])
    first = max(0, origin - raw["min_length"] - EXTRA_HISTORY)
    dates = data.raw.get("dates")
    unit = raw.get("unit") or "value"
    rows = [f"date,{unit}" if dates else unit]
    for i in range(first, origin):
        rows.append(f"{dates[i]},{series[i]:.2f}" if dates else f"{series[i]:.2f}")
    horizon = output["horizon"]
    actual = ", ".join(f"{v:.2f}" for v in series[origin : origin + horizon])
    if dates:
        span = f"the {origin - first} {raw.get('frequency', '')} values from {dates[first]} to {dates[origin - 1]}"
        target = f"{dates[origin]} to {dates[origin + horizon - 1]}"
    else:
        span, target = f"the {origin - first} values before the test split's first forecast", "the next steps"
    words = (
        f"`sample.csv` beside this card holds {span} (up to the test split's first forecast origin): the forecast "
        f"is for {target}, whose actual values are {actual} {unit}. The snippet and the shell line run on it as "
        "written; the shell prints each forecast week with its date."
    )
    return "sample.csv", ("\n".join(rows) + "\n").encode(), words


def with_use_it(card: str, name: str, contract: dict, words: str) -> str:
    """``card`` with its "## Use it" section for ``name`` (``NAME@VERSION``) reading the sample: the section
    replaced where the card has one (through its "Contract:" paragraph), else inserted before "## The int8 model"
    (or at the end)."""
    from qatzoo.render.card import use_it

    section = "\n".join(use_it(name, contract, sample=words)) + "\n"
    start = card.find("## Use it\n")
    if start >= 0:
        contract_at = card.index("\nContract: ", start)
        end = card.index("\n", contract_at + 1) + 1
        end += 1 if card[end : end + 1] == "\n" else 0
        return card[:start] + section + card[end:]
    at = card.find("## The int8 model")
    at = len(card) if at < 0 else at
    return card[:at] + section + card[at:]
