"""The README's tables of zoo numbers, generated from ``zoo/index.json`` so that they cannot drift.

The README marks each generated block with ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->``;
``python scripts/readme_tables.py`` rewrites the blocks from the index, and a test fails when the committed
README differs from what the index gives (``render(text, index) != text``).
"""

from __future__ import annotations

import re

from qatzoo import significance
from qatzoo.zoo.publish import _engine, _text


def _value(entry: dict, value: float) -> str:
    """A metric value as the README prints it: ``99.14%``, ``0.3238 ppm``."""
    return f"{value:.2f}%" if entry["unit"] == "%" else f"{value:.4f} {_text(entry['unit'])}"


def _newest(index: dict) -> list[dict]:
    """The newest version of each model, in the index's order of names."""
    newest: dict[str, dict] = {}
    for e in index["models"]:
        if e["name"] not in newest or e["version"] > newest[e["name"]]["version"]:
            newest[e["name"]] = e
    return list(newest.values())


def results(index: dict) -> list[str]:
    """The newest version of each model: its metrics on the test split, beside the strongest baseline."""
    lines = [
        "| model | data (test examples) | metric | float | PTQ int8 | QAT fake-quant | QAT int8 | strongest "
        "classical baseline (picked on validation) | the int8 file against the best baseline on test | int8 file "
        "| QAT engine |",
        "|---" * 11 + "|",
    ]
    for e in _newest(index):
        m, fmt = e["metrics"], ("{:.2f}" if e["metric"] == "accuracy" else "{:.4f}")
        cell = lambda k, m=m, fmt=fmt: fmt.format(m[k]) if k in m else "-"  # noqa: E731
        fitted = e.get("baselines") or {}
        if fitted:
            pick = max if e["higher_is_better"] else min
            best = pick(fitted, key=lambda k, e=e: fitted[k][f"val_{e['metric']}"])
            baseline = f"{fmt.format(fitted[best][e['metric']])} ({_text(best)})"
        else:
            baseline = "-"
        lines.append(
            f"| {_text(e['name'])}@{e['version']} | {_text(e['dataset']['name'])} ({e['dataset']['examples']:,}) "
            f"| {_text(e['metric'])} ({_text(e['unit'])}) | {cell('float')} | {cell('ptq_int8')} | {cell('qat')} "
            f"| **{cell(e['int8_model'])}** | {baseline} | {_text(significance.cell(e.get('significance')))} "
            f"| {e['size']:,} B | {_engine(e)} |"
        )
    return lines


def _outside(xnnpack: dict) -> str:
    """``4 (BATCH_MATMUL x2, GELU, SOFTMAX outside)``: XNNPACK's int8 partitions and the ops it leaves out."""
    part = xnnpack["int8"]
    ops = sorted(set(part["outside"]))
    if not ops:
        return str(part["partitions"])
    named = ", ".join(f"{op} x{part['outside'].count(op)}" if part["outside"].count(op) > 1 else op for op in ops)
    return f"{part['partitions']} ({named} outside)"


def where_it_runs(index: dict) -> list[str]:
    """Every published file in the three runtimes: LiteRT on the CPU named, TFLite Micro, Ethos-U55 (Vela)."""
    lines = [
        "| model | int8 metric (LiteRT) | CPU | LiteRT int8 (float), 1 thread | XNNPACK partitions | TFLite Micro "
        "| TFLM metric; outputs equal to LiteRT | Ethos-U55 | U55 SRAM / flash |",
        "|---" * 9 + "|",
    ]
    for e in index["models"]:
        d = e.get("deployment")
        if not d:
            continue
        cpu, micro, npu = d["litert_cpu"], d["tflm"], d["ethos_u55"]
        latency = f"{cpu['int8_us']:.1f} us"
        if "float_us" in cpu:
            latency += f" ({cpu['float_us']:.1f} us): {cpu['int8_over_float']:.2f}x"
        if micro["runs"]:
            tflm = f"runs, arena {micro['arena_bytes']:,} B, flash {micro['flash_bytes']:,} B"
            agree = (
                f"{_value(e, micro['metric'])}; {micro['equal_share']:.1%} of elements, at most "
                f"{micro['max_step_diff']} step{'s' if micro['max_step_diff'] != 1 else ''}"
            )
        else:
            missing = ", ".join(_text(op) for op in micro["unsupported"]) or _text(micro["error"] or "?")
            tflm, agree = f"does not run: no {missing} kernel", "-"
        lines.append(
            f"| {_text(e['name'])}@{e['version']} | {_value(e, e['metrics'][e['int8_model']])} "
            f"| {_text(cpu['cpu'])} | {latency} | {_outside(cpu['xnnpack'])} | {tflm} | {agree} "
            f"| {npu['npu_share']:.0%} NPU, {npu['inference_ms']:.2f} ms "
            f"| {npu['sram_bytes']:,} / {npu['flash_bytes']:,} B |"
        )
    return lines


def contract_divisor(index: dict) -> str:
    """The newest forecaster's input scaling, as the README's contract example quotes it."""
    forecaster = next(e for e in _newest(index) if e["task"] == "forecast")
    step = next(s for s in forecaster["contract"]["input"]["steps"] if s["op"] == "divide")
    return f"{step['by']:.4f}"


BLOCKS = {"results": results, "where-it-runs": where_it_runs}


def render(text: str, index: dict) -> str:
    """``text`` with every generated block rewritten from ``index`` (a block named but unknown is an error)."""

    def block(match: re.Match) -> str:
        name = match.group(1)
        if name not in BLOCKS:
            raise ValueError(f"README: unknown generated block {name!r} (known: {', '.join(BLOCKS)})")
        body = "\n".join(BLOCKS[name](index))
        return f"<!-- generated: {name} -->\n{body}\n<!-- end: {name} -->"

    return re.sub(r"<!-- generated: ([\w-]+) -->\n.*?<!-- end: \1 -->", block, text, flags=re.S)
