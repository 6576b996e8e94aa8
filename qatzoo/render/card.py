"""The model card: a short markdown page with the numbers of one run, written beside its models."""

from __future__ import annotations

from omegaconf import DictConfig

from qatzoo.contract import Contract, Inputs, Outputs
from qatzoo.export.plots import FIGURES
from qatzoo.report import Baseline, RunReport, Scheme

LABELS = {
    "float": "float (Keras)",
    "float_tflite": "float (TFLite, LiteRT)",
    "ptq_int8": "PTQ int8 (LiteRT)",
    "ptq_a16w8": "PTQ int16 activations, int8 weights (LiteRT)",
    "qat": "QAT fake-quant (Keras)",
    "qat_int8": "QAT int8 (LiteRT)",
}


def render(report: RunReport, cfg: DictConfig, figures: tuple[str, ...] = ()) -> str:
    """The card of a run, from its report (and the schedule and seed of its config); ``figures``: the file
    names of :data:`FIGURES` written beside it."""
    metric, unit = report.metric, report.unit
    better = "higher" if report.higher_is_better else "lower"
    sizes = report.dataset.sizes
    lines = [
        f"# {report.name}",
        "",
        f"{report.arch} on {report.data} ({report.task}), quantization scheme `{report.quant}`.",
        "",
        "Reproduce:",
        "",
        f"    {report.command}",
        "",
        f"## Test results ({metric}, {unit}, {better} is better; test split of {sizes.test} examples)",
        "",
        "| model | " + metric + " |",
        "|---|---|",
    ]
    for name in report.results:
        value = report.value(name)
        lines.append(
            f"| {LABELS.get(name, name)} | {value:.2f} |"
            if metric == "accuracy"
            else f"| {LABELS.get(name, name)} | {value:.4f} |"
        )
    lines += ["", "Every int8 number comes from running the exported .tflite in the LiteRT interpreter.", ""]
    if report.int8_model == "ptq_a16w8":
        lines += [
            "The shipped file (model_int8.tflite) holds int16 activations and int8 weights (LiteRT's quantizer, "
            f"post-training). What runs it: {report.scheme.runtime}. TensorFlow Lite Micro takes int16 "
            "activations in some kernels only; the deployment section below says whether this file loads and runs "
            "there (measured, not assumed).",
            "",
        ]
    if report.baselines and report.int8_value is not None:
        lines += baseline_lines(
            report.baselines,
            metric,
            unit,
            report.int8_value,
            report.higher_is_better,
            report.significance,
        ) + [""]
    if report.ptq_baselines:
        from qatzoo.export.ptq_suite import lines as ptq_lines

        lines += ptq_lines(report.ptq_baselines, metric, unit)
    for name in figures:
        lines += [f"![{FIGURES[name]}]({name})", ""]
    if report.contract is not None and report.int8_model:
        lines += use_it(report.name, report.contract) + [""]
    if report.agreement:
        things = "forecasts" if report.task == "forecast" else "predictions"
        what = "share of equal predicted classes" if metric == "accuracy" else f"mean |difference| of {things}, {unit}"
        lines += [f"Agreement of test predictions ({what}):", ""]
        lines += [f"- {pair}: {value:.4f}" for pair, value in report.agreement.items()]
        lines.append("")
    if report.int8 is not None:
        q, sizes = report.int8, report.sizes
        parity = q.parity
        lines += [
            f"## The int8 model (`model_int8.tflite`, {report.int8_model})",
            "",
            f"- input: {q.input.dtype}, scale {q.input.scale:.8g}, zero point {q.input.zero_point}",
            f"- output: {q.output.dtype}, scale {q.output.scale:.8g}, zero point {q.output.zero_point}",
            f"- size: {sizes.int8_tflite:,} bytes, {sizes.int8_over_float:.2f}x the float .tflite "
            f"({sizes.float_tflite:,} bytes)",
            f"- ops: {', '.join(q.ops)}",
        ]
        if q.full_integer:
            lines.append("- full integer: yes, every tensor an op computes is an integer (no float op)")
        else:
            names = ", ".join(f"{t['name']} ({t['dtype']})" for t in q.non_integer_tensors[:10])
            lines.append(f"- full integer: NO, tensors that are not integers: {names}")
        verdict = "pass" if parity.passed else "FAIL"
        if parity.agreement is not None:
            lines.append(
                f"- parity with the {q.parity_reference} Keras model: {parity.agreement:.2%} of test predictions "
                f"agree (threshold {parity.threshold:.0%}): {verdict}"
            )
        else:
            lines.append(
                f"- parity with the {q.parity_reference} Keras model: MAE differs by {parity.mae_gap:.2%} "
                f"(threshold {parity.threshold:.0%}), mean |difference| {parity.mean_abs_diff:.4f} {unit}: {verdict}"
            )
        lines.append("")
    if report.deployment is not None:
        from qatzoo.deploy.report import lines as deployment_lines

        lines += ["## Where it runs", "", *deployment_lines(report.deployment.plain, unit), ""]
    scheme = report.scheme
    if scheme.qat:
        lines += [
            f"## Quantization scheme `{report.quant}`",
            "",
            f"- weights: {scheme.weight_bits} bits, {'symmetric' if scheme.weight_symmetric else 'asymmetric'}, "
            f"{'narrow' if scheme.weight_narrow_range else 'full'} range, "
            f"{'per channel (convolutions)' if scheme.per_channel else 'per tensor'}",
            f"- activations: {scheme.activation_bits} bits, {'symmetric' if scheme.activation_symmetric else 'asymmetric'}, "
            f"per tensor, range estimator `{scheme.range}`",
            f"- layers kept float during QAT: {', '.join(scheme.kept_float) or 'none'}",
        ]
        other = {name: f for name, f in scheme.layers.items() if f not in ("float", _default_format(scheme))}
        if other:
            lines.append("- layers with other bit widths: " + ", ".join(f"{n} ({f})" for n, f in other.items()))
        lines += [f"- what runs: {scheme.runtime}", ""]
    if report.lowbit is not None:
        low = report.lowbit
        lines += [
            f"Low-bit weights: {low.kernels_on_grid} of {low.kernels} kernels have at most "
            f"{2**low.weight_bits} levels per channel; kernel storage in the file: {', '.join(low.storage)}. "
            f"File {low.file_bytes:,} bytes; with every kernel packed at exactly its width "
            f"{low.packed_bytes:,} bytes ({report.sizes.packed_over_float:.2f}x float).",
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
            f"- QAT engine: {_engine(prov)}",
            f"- machine: {prov.get('platform', '?')}, CPU {prov.get('cpu', '?')} (the bytes are promised for this CPU)",
            "",
        ]
    lines += [
        "## Settings",
        "",
        f"- schedule: {dict(cfg.schedule)}",
        f"- seed: {cfg.trainer.seed}; data: {report.dataset.plain}",
        f"- time: {report.timing}",
        "",
    ]
    return "\n".join(lines)


def _default_format(scheme: Scheme) -> str:
    return f"w{scheme.weight_bits}a{scheme.activation_bits}"


# ---- sections built from data the card's caller holds (the contract, the baselines)

#: What each contract step does, in words (its constants filled in); a step is a dict or a typed step.
STEP_WORDS = {
    "divide": lambda s: f"divide by {s['by']:.6g}",
    "last_window": lambda s: f"keep the last {s['length']} values",
    "subtract_last": lambda s: "subtract the last value",
    "difference": lambda s: "take the changes from each value to the next",
    "add_axis": lambda s: "add a trailing axis",
    "multiply": lambda s: f"multiply by {s['by']:.6g}",
    "add_last": lambda s: "add the last input value",
    "add": lambda s: f"add {s['by']:.6g}",
}


def _quantization_words(side: Inputs | Outputs) -> str:
    q = side.quantization
    if q is None:
        return "float32"
    return f"{q.dtype} (scale {q.scale:.6g}, zero point {q.zero_point})"


def use_it(name: str, contract: dict | Contract, sample: str | None = None) -> list[str]:
    """Markdown lines of the card's "## Use it" section: five lines of Python that load the published model
    and predict from a raw input made the way the contract asks, the CLI line, and the contract in one sentence.
    Everything comes from ``contract`` (:mod:`qatzoo.contract`), so the snippet stays true for any model.
    ``name`` may carry a version (``mnist_cnn_int8@3``); ``sample``: the sentence on the sample input the zoo
    ships beside the card (:mod:`qatzoo.zoo.samples`), which the snippet reads as written."""
    contract = Contract.model_validate(contract)
    raw, output = contract.input.raw, contract.output
    steps = ", ".join(STEP_WORDS[s.op](s) for s in contract.input.steps) or "none"
    io = f"the model's input is {_quantization_words(contract.input)}, its output {_quantization_words(output)}"
    if raw.kind == "image":
        height, width = raw.shape[:2]
        colour = len(raw.shape) == 3
        low, high = raw.range if raw.range is not None else [0, 255]
        classes = output.classes or []
        shown = ", ".join(f'"{c}"' for c in classes) if len(classes) <= 12 else f'"{classes[0]}", ..., "{classes[-1]}"'
        picture = "sample.png"
        kind, shape = ("colour", f"({height}, {width}, 3)") if colour else ("grey", f"({height}, {width})")
        if raw.dtype == "float32":  # a user's own scaled images: no picture file makes them
            picture = "sample.npy"
            code = [
                "import numpy as np",
                "from qatzoo.zoo import load",
                f'model = load("{name}")',
                f'pixels = np.load("{picture}").astype(np.float32)  # {kind} {shape}, values {low:g} to {high:g}',
            ]
        else:
            code = [
                "from PIL import Image",
                "from qatzoo.zoo import load",
                f'model = load("{name}")',
                f'pixels = Image.open("{picture}").convert("{"RGB" if colour else "L"}").resize(({width}, {height}))  '
                f"# {raw.dtype} {kind}, {shape}, {low}-{high}",
            ]
        image_words = f"Contract: a {raw.dtype} {kind} image {shape}, values {low}-{high}; preprocessing: {steps}; {io}"
        if contract.task == "regression":
            decode = ", ".join(STEP_WORDS[s.op](s) for s in output.steps) or "none"
            code.append(
                f"values = model.predict(pixels)  # {output.count} value(s) in {output.unit or 'the targets unit'}"
            )
            contract_words = (
                f"{image_words}; the output is {output.count} value(s) in {output.unit} (decoding: {decode})."
            )
        else:
            code.append(
                f"label = model.predict(pixels, labels=True)  # one of {len(classes)} class names; "
                "probabilities=True adds the softmax"
            )
            contract_words = (
                f"{image_words}; the output is {output.kind or 'logits'} over {len(classes)} classes ({shown}), "
                f"decoded by {output.decode or 'argmax'}."
            )
        cli = f"qatzoo predict {name} {picture}"
    else:
        need, unit, frequency = raw.min_length, raw.unit, raw.frequency
        horizon = output.horizon
        decode = ", ".join(STEP_WORDS[s.op](s) for s in output.steps) or "none"
        code = [
            "from qatzoo.zoo import load",
            f'model = load("{name}")',
            f'series = model.read("sample.csv")  # the last column (a header row is skipped): >= {need} {frequency} '
            f"values in {unit}, oldest first",
            f"forecast = model.predict(series)  # {horizon} values in {output.unit}, from {output.starts}",
        ]
        cli = f"qatzoo predict {name} sample.csv"
        contract_words = (
            f"Contract: a {frequency} series in {unit}, at least {need} values; preprocessing: {steps}; {io}; "
            f"the output is {horizon} {frequency} values in {output.unit} starting {output.starts} "
            f"(decoding: {decode})."
        )
    return [
        "## Use it",
        "",
        "```python",
        *code,
        "```",
        "",
        "or from the shell (the .csv's last column; a first column of dates dates the forecast; a .npy works too):"
        if raw.kind == "series"
        else "or from the shell (a .npy of uint8 pixels works too):"
        if raw.dtype != "float32"
        else "or from the shell:",
        "",
        "```sh",
        cli,
        "```",
        "",
        sample
        or f"`{'sample.csv' if raw.kind == 'series' else picture}`: the zoo ships one beside each published card.",
        "",
        contract_words,
        "",
    ]


def baseline_lines(
    baselines: dict, metric: str, unit: str, int8_value: float, higher_is_better: bool, significance: dict | None = None
) -> list[str]:
    """Markdown lines of the card's "## Baselines" section: the run's int8 model and each baseline on the
    test split, best first, with which baselines beat the int8 model and by how much - and, with
    ``significance`` (:func:`qatzoo.significance.against`), whether the difference is significant: the int8
    model "beats" a baseline only where p < alpha.

    ``baselines``: name -> ``{metric: test value, "val_<metric>": validation value, "about": str}``.
    """
    if significance:
        return _significant_lines(baselines, metric, unit, int8_value, higher_is_better, significance)

    def fmt(value) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" if metric == "accuracy" else f"{value:.4f}"

    def amount(difference: float) -> str:
        return f"{difference:.2f} points" if metric == "accuracy" else f"{difference:.4f} {unit}"

    int8 = "**int8 model (this run, LiteRT)**"
    rows = [(int8, int8_value, None, "model_int8.tflite (this file, run in LiteRT)")]
    typed = {name: Baseline.model_validate(b) for name, b in baselines.items()}
    rows += [(name, getattr(b, metric), getattr(b, f"val_{metric}"), b.about) for name, b in typed.items()]
    rows.sort(key=lambda row: -row[1] if higher_is_better else row[1])
    better = "higher" if higher_is_better else "lower"
    lines = [
        "## Baselines",
        "",
        f"Test {metric} ({unit}, {better} is better), best first; beside it the same metric on the validation split.",
        "",
        f"| model | test {metric} | validation {metric} | beats the int8 model? | about |",
        "|---|---|---|---|---|",
    ]
    beaten_by = []
    for name, value, val, about in rows:
        if name == int8:
            verdict = "-"
        else:
            gain = (value - int8_value) if higher_is_better else (int8_value - value)
            if gain > 0:
                beaten_by.append(name)
            verdict = (
                f"**yes**, by {amount(gain)}" if gain > 0 else f"no ({amount(-gain)} worse)" if gain else "no (tie)"
            )
        lines.append(f"| {name} | {fmt(value)} | {fmt(val)} | {verdict} | {about.replace('|', '/')} |")
    if not beaten_by:
        summary = "The int8 model beats " + (
            "the baseline." if len(baselines) == 1 else f"all {len(baselines)} baselines."
        )
    else:
        summary = f"{len(beaten_by)} of {len(baselines)} baselines beat the int8 model: {', '.join(beaten_by)}."
    return [*lines, "", summary, ""]


def _significant_lines(
    baselines: dict, metric: str, unit: str, int8_value: float, higher_is_better: bool, significance: dict
) -> list[str]:
    """:func:`baseline_lines` with each baseline's test of the int8 model against it."""
    from qatzoo.significance import TEST_NAMES, sentence

    def fmt(value) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" if metric == "accuracy" else f"{value:.4f}"

    typed = {name: Baseline.model_validate(b) for name, b in baselines.items()}
    order = sorted(typed, key=lambda name: -getattr(typed[name], metric) * (1 if higher_is_better else -1))
    tests = sorted({significance["baselines"][n]["test"] for n in order if n in significance["baselines"]})
    better = "higher" if higher_is_better else "lower"
    lines = [
        "## Baselines",
        "",
        f"Test {metric} ({unit}, {better} is better), best first; beside it the same metric on the validation split, "
        f"and the int8 model against each baseline on the same test examples ({' / '.join(TEST_NAMES[t] for t in tests)}"
        f" test, two-sided; significant at p < {significance['alpha']:g}).",
        "",
        f"| model | test {metric} | validation {metric} | the int8 model against it | about |",
        "|---|---|---|---|---|",
        f"| **int8 model (this run, LiteRT)** | {fmt(int8_value)} | - | - | model_int8.tflite (this file, run in LiteRT) |",
    ]
    words = {"beats": "**beats** it", "ties": "ties", "loses": "**loses**"}
    counts = {"beats": 0, "ties": 0, "loses": 0}
    for name in order:
        b = typed[name]
        result = significance["baselines"].get(name)
        against = "-" if result is None else f"{words[result['verdict']]} (p = {result['p']:.2g})"
        if result is not None:
            counts[result["verdict"]] += 1
        lines.append(
            f"| {name} | {fmt(getattr(b, metric))} | {fmt(getattr(b, f'val_{metric}'))} | {against} | "
            f"{b.about.replace('|', '/')} |"
        )
    tally = ", ".join(
        f"{word} {n}"
        for word, n in (("beats", counts["beats"]), ("ties with", counts["ties"]), ("loses to", counts["loses"]))
        if n
    )
    return [
        *lines,
        "",
        f"Of {sum(counts.values())} baselines the int8 model {tally}. {sentence(significance, metric)}",
        "",
    ]


def _engine(prov: dict) -> str:
    """The engine line: ``keras3 (Keras 3.15.1)``; runs from before engines existed ran on tfmot."""
    from qatzoo.provenance import engine_of

    engine = engine_of(prov)
    return f"{engine['name']} (Keras {engine['keras']})"
