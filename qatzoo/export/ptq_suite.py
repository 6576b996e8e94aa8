"""QAT against the strongest post-training quantization at the scheme's own widths.

A QAT recipe earns its name only where it beats what LiteRT's quantizer gives the float model with no training:
each of the quantizer's algorithms (:data:`qatzoo.export.ptq.ALGORITHMS`: min/max, MSE, Hadamard rotation,
OCTAV, GPTQ) at the scheme's weight and activation widths (weights per channel), and int16 activations with
int8 weights for reference. Every file is run in LiteRT on the full test split, as the QAT int8 file is; an
algorithm the quantizer refuses, or whose file LiteRT cannot run, is kept as its one-line reason, and a file
that is not full integer (Hadamard rotation's here: a float custom op) is shown but is not a candidate for
the best; kernels an algorithm or width refuses (GPTQ: convolutions; 4 bits: depthwise ones) stay 8-bit
min/max, and the row says so.

The summary is torchao's "% recovered": of the accuracy (or MAE) the best PTQ file loses against float, the
share the QAT int8 file wins back, ``(best PTQ gap - QAT gap) / best PTQ gap``: 1 is float's number, 0 is no
better than PTQ, negative worse. Each file is also tested against the float file on the same test examples
(:func:`qatzoo.significance.compare`: McNemar or Diebold-Mariano, ``p_vs_float``): where the best PTQ file is
not significantly worse than float there is nothing to recover (``None``), whatever the point estimates say.
"""

from __future__ import annotations

import numpy as np

from qatzoo.export import checks, evaluate, ptq
from qatzoo.export.tflite import strip_names
from qatzoo.report import wider


def widths_name(weight_bits: int, activation_bits: int) -> str:
    return f"w{weight_bits}a{activation_bits}"


def gap(task, value: float, reference: float) -> float:
    """How much worse ``value`` is than ``reference`` in the metric's own terms (points, or the unit)."""
    return (reference - value) if task.higher_is_better else (value - reference)


def recovered(task, float_value: float, best_ptq: float, qat: float, p_vs_float: float = 0.0) -> float | None:
    """The share of the best PTQ file's loss against float that QAT wins back; None when PTQ loses nothing, or
    nothing significant (``p_vs_float``: its test against the float file)."""
    from qatzoo.significance import ALPHA

    lost = gap(task, best_ptq, float_value)
    if lost <= 0 or p_vs_float >= ALPHA:
        return None
    return float((lost - gap(task, qat, float_value)) / lost)


def measure(
    float_tflite: bytes,
    representative: np.ndarray,
    data,
    *,
    weight_bits: int,
    activation_bits: int = 8,
    algorithms: tuple[str, ...] = tuple(ptq.ALGORITHMS),
    done=None,
) -> dict:
    """Every algorithm's file at the widths, and the a16w8 reference, scored on ``data``'s test split.

    ``float_tflite``: the float file with its tensor names (the quantizer matches tensors by name).
    Returns ``{"widths", "methods": {name: {metric, "bytes"} | {"error"}}, "reference": {"a16w8_min_max": ...}}``;
    ``done(name, result)`` is called as each file is measured (the trainer prints a line).
    """
    from qatzoo.significance import compare

    metric, task = data.task.metric, data.task
    float_losses = task.losses(data.y_test, evaluate.predict(float_tflite, data.x_test))

    def scored(name: str, make) -> dict:
        notes = []
        try:
            made = make()
            blob, kept = made if isinstance(made, tuple) else (made, [])
            if kept:  # kernels the algorithm (or the width) refused: 8-bit min/max, not the scheme's width
                notes.append(f"{', '.join(kept)} kernels 8-bit min/max")
            blob = strip_names(blob)
            try:
                predictions = evaluate.predict(blob, data.x_test)
            except (ValueError, RuntimeError) as error:  # a file LiteRT refuses to load or run
                raise ptq.PTQError(
                    f"LiteRT cannot run its file: {(str(error).strip().splitlines() or ['?'])[0][:200]}"
                ) from None
            result = {
                metric: evaluate.score(data, predictions),
                "bytes": len(blob),
                "p_vs_float": compare(task, task.losses(data.y_test, predictions), float_losses)["p"],
            }
            integer = checks.full_integer(blob, checks.INTEGER_TYPES + (("int16", "int64") if "a16" in name else ()))
            if not integer.ok:  # float tensors left (e.g. GPTQ's DEQUANTIZE of float weights): not like for like
                kinds = sorted({t["dtype"] for t in integer.non_integer})
                result["full_integer"] = False
                notes.append(f"not full integer: {len(integer.non_integer)} {'/'.join(kinds)} tensors computed")
            if kept:
                result["kept_8bit"] = list(kept)
            if notes:
                result["note"] = "; ".join(notes)
        except ptq.PTQError as error:
            result = {"error": str(error)}
        except Exception as error:  # noqa: BLE001 - an experimental quantizer's failure is a row, not a lost run
            text = (str(error).strip().splitlines() or [""])[0][:200]
            result = {"error": f"{type(error).__name__}: {text}"}
        if done is not None:
            done(name, result)
        return result

    methods = {
        name: scored(
            name,
            lambda name=name: ptq.quantize_with(
                float_tflite, representative, weight_bits=weight_bits, activation_bits=activation_bits, algorithm=name
            ),
        )
        for name in algorithms
    }
    reference = {"a16w8_min_max": scored("a16w8_min_max", lambda: ptq.quantize(float_tflite, representative, "a16w8"))}
    return {"widths": widths_name(weight_bits, activation_bits), "methods": methods, "reference": reference}


def summarize(table: dict, task, float_value: float, qat_value: float) -> dict:
    """``table`` (:func:`measure`) with the float and QAT int8 numbers, the best PTQ method at the widths and
    the share QAT recovers."""
    metric = task.metric
    scored = {name: m[metric] for name, m in table["methods"].items() if metric in m and m.get("full_integer", True)}
    out = {**table, "float": float_value, "qat_int8": qat_value}
    if scored:
        pick = max if task.higher_is_better else min
        best = pick(scored, key=scored.get)
        out["best"] = best
        p = table["methods"][best].get("p_vs_float", 0.0)
        out["recovered"] = recovered(task, float_value, scored[best], qat_value, p)
    return out


def lines(summary: dict, metric: str, unit: str) -> list[str]:
    """The card's "## QAT against post-training quantization" section."""

    def fmt(value: float) -> str:
        return f"{value:.2f}" if metric == "accuracy" else f"{value:.4f}"

    widths = summary["widths"]
    rows = [
        "## QAT against post-training quantization",
        "",
        f"Test {metric} ({unit}) of LiteRT's quantizer on the float model at this scheme's widths ({widths}, weights "
        "per channel, calibrated on the run's representative sample), each file run in LiteRT on the full test "
        "split, beside the QAT int8 file.",
        "",
        f"| model | test {metric} | against float (p) | file |",
        "|---|---|---|---|",
        f"| float (TFLite) | {fmt(summary['float'])} | - | - |",
    ]

    def row(label: str, m: dict) -> str:
        if metric not in m:
            return f"| {label} | - | - | {m['error'].replace('|', '/')[:200]} |"
        p = f"{m['p_vs_float']:.2g}" if "p_vs_float" in m else "-"
        note = f"; {m['note']}" if "note" in m else ""
        return f"| {label} | {fmt(m[metric])} | {p} | {m['bytes']:,} B{note} |"

    rows += [row(f"PTQ {widths} {name}", m) for name, m in summary["methods"].items()]
    rows += [row(f"PTQ {name.replace('_', ' ')} (reference)", m) for name, m in summary["reference"].items()]
    rows.append(f"| **QAT int8 (this file)** | {fmt(summary['qat_int8'])} | - | - |")
    rows.append("")
    if "best" not in summary:
        rows.append(f"No PTQ algorithm gave a full-integer {widths} file LiteRT runs.")
    elif summary["recovered"] is None:
        rows.append(
            f"The best PTQ file ({summary['best']}{wider(summary)}) is not significantly worse than float (p = "
            f"{summary['methods'][summary['best']].get('p_vs_float', 1.0):.2g}): there is nothing for QAT to recover."
        )
    else:
        rows.append(
            f"QAT recovers {summary['recovered']:.0%} of what the best PTQ file at {widths} ({summary['best']}"
            f"{wider(summary)}) loses against float (1 - QAT's gap / PTQ's gap)."
        )
    return [*rows, ""]
