"""Assemble a run's :class:`~qatzoo.report.RunReport` from what the trainer built, exported and measured.

Every number here is measured on the full test split (the validation split where it says so); int8
numbers come from the written .tflite bytes run in LiteRT, and the full-integer check runs on those bytes.
"""

from __future__ import annotations

import numpy as np

from qatzoo.export import checks, evaluate, litert, lowbit
from qatzoo.report import MODELS, RunReport

#: Model pairs whose test predictions are compared in ``agreement``.
PAIRS = (("ptq_int8", "float"), ("ptq_a16w8", "float"), ("qat", "float"), ("qat_int8", "qat"), ("qat_int8", "float"))


def assemble(
    *,
    cfg,
    data,
    scheme,
    formats: dict,
    keras_models: dict,
    files: dict[str, bytes],
    provenance: dict,
    distribute: dict,
    command: str,
) -> tuple[RunReport, dict[str, np.ndarray]]:
    """The report of one run, and the test-split predictions it was measured on (model name -> outputs,
    as :func:`~qatzoo.export.evaluate.all_predictions` names them), for the deployment report and the
    figures; ``files`` are the stripped .tflite bytes that will be written."""
    task = data.task
    predictions = evaluate.all_predictions(keras_models, files, data)
    int8_name = scheme.int8_model
    validation_models = [*keras_models.items(), *([(int8_name, files[int8_name])] if int8_name else [])]
    report = RunReport(
        name=cfg.name,
        arch=cfg.arch.name,
        data=data.name,
        quant=scheme.name,
        scheme={
            "qat": scheme.qat,
            "int8": scheme.int8,
            **(scheme.spec.as_dict() if scheme.qat else {}),
            "kept_float": [name for name, bits in formats.items() if bits is None],
            "layers": {name: _format(bits) for name, bits in formats.items()},
            "runtime": scheme.runtime,
        },
        task=task.name,
        metric=task.metric,
        unit=task.unit,
        higher_is_better=task.higher_is_better,
        int8_model=int8_name,
        dataset={"sizes": data.sizes(), **data.info},
        results={
            name: {task.metric: evaluate.score(data, predictions[name])} for name in MODELS if name in predictions
        },
        # Choices (sweeps, schemes) are made on validation numbers; the int8 model's runs in LiteRT.
        validation={name: {task.metric: evaluate.validation_score(m, data)} for name, m in validation_models},
        provenance=provenance,
        distribute=distribute,
        agreement={
            f"{a} vs {b}": evaluate.agreement(data, predictions[a], predictions[b])
            for a, b in PAIRS
            if a in predictions and b in predictions
        },
        command=command,
    )
    sizes = {"float_tflite": len(files["float"])}
    if int8_name:
        blob = files[int8_name]
        full = checks.full_integer(
            blob, scheme.integer_types
        )  # on the bytes written, not the converter's unstripped output
        in_q, out_q = litert.io_quant(litert.interpreter(blob))
        parity = evaluate.parity(data, predictions[int8_name], predictions[scheme.parity_reference])
        report.int8 = {
            "input": vars(in_q),
            "output": vars(out_q),
            "ops": full.ops,
            "full_integer": full.ok,
            "non_integer_tensors": full.non_integer,
            "parity_reference": scheme.parity_reference,
            "parity": parity,
        }
        if "ptq_int8" in files and int8_name != "ptq_int8":
            report.ptq_int8 = {"full_integer": checks.full_integer(files["ptq_int8"]).ok}
        report.checks = {"full_integer": full.ok, "parity": parity["pass"]}
        sizes.update(int8_tflite=len(blob), int8_over_float=len(blob) / len(files["float"]))
        if scheme.qat and scheme.spec.lowest_weight_bits < 8:
            report.lowbit = lowbit.report(blob, scheme.spec.lowest_weight_bits)
            sizes["int8_packed"] = report.lowbit["packed_bytes"]
            sizes["packed_over_float"] = sizes["int8_packed"] / len(files["float"])
    report.sizes = sizes
    return report, predictions


def _format(bits) -> str:
    return "float" if bits is None else f"w{bits.weight_bits}a{bits.activation_bits}"
