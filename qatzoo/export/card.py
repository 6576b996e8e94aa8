"""The model card: a short markdown page with the numbers of one run, written beside its models."""

from __future__ import annotations

from omegaconf import DictConfig

from qatzoo.report import RunReport

LABELS = {
    "float": "float (Keras)",
    "float_tflite": "float (TFLite, LiteRT)",
    "ptq_int8": "PTQ int8 (LiteRT)",
    "qat": "QAT fake-quant (Keras)",
    "qat_int8": "QAT int8 (LiteRT)",
}


def render(report: RunReport, cfg: DictConfig) -> str:
    """The card of a run, from its report (and the schedule and seed of its config)."""
    metric, unit = report.metric, report.unit
    better = "higher" if report.higher_is_better else "lower"
    sizes = report.dataset["sizes"]
    lines = [
        f"# {report.name}",
        "",
        f"{report.arch} on {report.data} ({report.task}), quantization scheme `{report.quant}`.",
        "",
        "Reproduce:",
        "",
        f"    {report.command}",
        "",
        f"## Test results ({metric}, {unit}, {better} is better; test split of {sizes['test']} examples)",
        "",
        "| model | " + metric + " |",
        "|---|---|",
    ]
    for name in report.results:
        value = report.value(name)
        lines.append(
            f"| {LABELS.get(name, name)} | {value:.2f} |"
            if unit == "%"
            else f"| {LABELS.get(name, name)} | {value:.4f} |"
        )
    lines += ["", "Every int8 number comes from running the exported .tflite in the LiteRT interpreter.", ""]
    if report.agreement:
        what = "share of equal predicted classes" if unit == "%" else f"mean |difference| of forecasts, {unit}"
        lines += [f"Agreement of test predictions ({what}):", ""]
        lines += [f"- {pair}: {value:.4f}" for pair, value in report.agreement.items()]
        lines.append("")
    if report.int8:
        q, sizes = report.int8, report.sizes
        parity = q["parity"]
        lines += [
            f"## The int8 model (`model_int8.tflite`, {report.int8_model})",
            "",
            f"- input: {q['input']['dtype']}, scale {q['input']['scale']:.8g}, zero point {q['input']['zero_point']}",
            f"- output: {q['output']['dtype']}, scale {q['output']['scale']:.8g}, zero point {q['output']['zero_point']}",
            f"- size: {sizes['int8_tflite']:,} bytes, {sizes['int8_over_float']:.2f}x the float .tflite "
            f"({sizes['float_tflite']:,} bytes)",
            f"- ops: {', '.join(q['ops'])}",
        ]
        if q["full_integer"]:
            lines.append("- full integer: yes, every tensor an op computes is int8 or int32")
        else:
            names = ", ".join(f"{t['name']} ({t['dtype']})" for t in q["non_integer_tensors"][:10])
            lines.append(f"- full integer: NO, tensors not int8/int32: {names}")
        if "agreement" in parity:
            lines.append(
                f"- parity with the {q['parity_reference']} Keras model: {parity['agreement']:.2%} of test predictions "
                f"agree (threshold {parity['threshold']:.0%}): {'pass' if parity['pass'] else 'FAIL'}"
            )
        else:
            lines.append(
                f"- parity with the {q['parity_reference']} Keras model: MAE differs by {parity['mae_gap']:.2%} "
                f"(threshold {parity['threshold']:.0%}), mean |difference| {parity['mean_abs_diff']:.4f} {unit}: "
                f"{'pass' if parity['pass'] else 'FAIL'}"
            )
        lines.append("")
    if report.deployment:
        from qatzoo.deploy.report import lines as deployment_lines

        lines += ["## Where it runs", "", *deployment_lines(report.deployment, unit), ""]
    scheme = report.scheme
    if scheme and scheme.get("qat"):
        lines += [
            f"## Quantization scheme `{report.quant}`",
            "",
            f"- weights: {scheme['weight_bits']} bits, {'symmetric' if scheme['weight_symmetric'] else 'asymmetric'}, "
            f"{'narrow' if scheme['weight_narrow_range'] else 'full'} range, "
            f"{'per channel (convolutions)' if scheme['per_channel'] else 'per tensor'}",
            f"- activations: {scheme['activation_bits']} bits, {'symmetric' if scheme['activation_symmetric'] else 'asymmetric'}, "
            f"per tensor, range estimator `{scheme['range']}`",
            f"- layers kept float during QAT: {', '.join(scheme['kept_float']) or 'none'}",
        ]
        other = {name: f for name, f in scheme["layers"].items() if f not in ("float", _default_format(scheme))}
        if other:
            lines.append("- layers with other bit widths: " + ", ".join(f"{n} ({f})" for n, f in other.items()))
        lines += [f"- what runs: {scheme['runtime']}", ""]
    if report.lowbit:
        low = report.lowbit
        lines += [
            f"Low-bit weights: {low['kernels_on_grid']} of {low['kernels']} kernels have at most "
            f"{2 ** low['weight_bits']} levels per channel; kernel storage in the file: {', '.join(low['storage'])}. "
            f"File {low['file_bytes']:,} bytes; with every kernel packed at exactly its width "
            f"{low['packed_bytes']:,} bytes ({report.sizes['packed_over_float']:.2f}x float).",
            "",
        ]
    prov = report.provenance
    if prov:
        git = prov["git"]
        code = (
            f"{git['commit'][:12]}{' (uncommitted changes)' if git['dirty'] else ''}"
            if git["commit"]
            else "not a git checkout"
        )
        lines += [
            "## Provenance",
            "",
            f"- code: {code}",
            f"- config sha256: {prov['config_sha256']}",
            f"- data: {prov['dataset']}, sha256 {prov['data_sha256']}",
            f"- versions: {', '.join(f'{k} {v}' for k, v in prov['versions'].items())}",
            f"- machine: {prov.get('platform', '?')}, CPU {prov.get('cpu', '?')} (the bytes are promised for this CPU)",
            "",
        ]
    lines += [
        "## Settings",
        "",
        f"- schedule: {dict(cfg.schedule)}",
        f"- seed: {cfg.trainer.seed}; data: {report.dataset}",
        f"- time: {report.timing}",
        "",
    ]
    return "\n".join(lines)


def _default_format(scheme: dict) -> str:
    return f"w{scheme['weight_bits']}a{scheme['activation_bits']}"
