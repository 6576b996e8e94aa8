"""Where an int8 file loses: every tensor of it against the same tensor of its float model.

LiteRT's quantizer's validator (``litert_quantizer.model_validator.compare_model``) runs both models on the
same inputs with every intermediate tensor kept, dequantizes the int8 ones and compares them by tensor name:
SNR (signal power over error power, shown here in dB) and cosine similarity per tensor.

The files a run writes are stripped (no tensor names, no signature), and a QAT or converter file names its
tensors its own way, so the int8 file's tensors are first given the float file's names: the two graphs'
operators are aligned by op code (``difflib``; the converter and the quantizer keep the Keras graph's
order) and each aligned op's outputs take the float op's output names when their shapes agree. Tensors
without a counterpart (a requantize the float graph does not have) are left out, and counted.

    qatzoo sensitivity RUN_DIR            # also writes tensors.{csv,md,png}: the worst tensors of model_int8.tflite
"""

from __future__ import annotations

import csv
import difflib
import math
import os
from pathlib import Path

import numpy as np

from qatzoo.files import write_figure, write_text

#: Rows in the markdown table and bars in the chart.
WORST = 15


def _tensor_shape(t) -> tuple:
    return tuple(int(d) for d in (t.shape if t.shape is not None else ()))


def _op_names(model) -> list[str]:
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return [str(codes[op.opcodeIndex]) for op in model.subgraphs[0].operators]


def named_like(target: bytes, reference: bytes) -> tuple[bytes, int, int]:
    """``target`` with the tensor names and signature of ``reference`` (an unstripped float .tflite of the same
    model), by aligning their operators. Returns the renamed flatbuffer, the number of op outputs matched and
    the number of ``target``'s op outputs."""
    from tensorflow.lite.tools import flatbuffer_utils as fb

    ref = fb.convert_bytearray_to_object(bytearray(reference))
    tgt = fb.convert_bytearray_to_object(bytearray(target))
    rg, tg = ref.subgraphs[0], tgt.subgraphs[0]
    mapping: dict[int, int] = {}  # target tensor index -> reference tensor index
    for a, b in zip(list(rg.inputs) + list(rg.outputs), list(tg.inputs) + list(tg.outputs), strict=False):
        mapping[int(b)] = int(a)
    matcher = difflib.SequenceMatcher(None, _op_names(ref), _op_names(tgt), autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            r_op, t_op = rg.operators[block.a + k], tg.operators[block.b + k]
            for r_out, t_out in zip(r_op.outputs, t_op.outputs, strict=False):
                if _tensor_shape(rg.tensors[r_out]) == _tensor_shape(tg.tensors[t_out]):
                    mapping.setdefault(int(t_out), int(r_out))
    for i, tensor in enumerate(tg.tensors):
        tensor.name = rg.tensors[mapping[i]].name if i in mapping else f"qatzoo_unmatched_{i}".encode()
    computed = {int(o) for op in tg.operators for o in op.outputs if o >= 0}
    signature = ref.signatureDefs[0]
    inverse = {r: t for t, r in mapping.items()}
    for tensor_map in (*signature.inputs, *signature.outputs):
        tensor_map.tensorIndex = inverse[tensor_map.tensorIndex]
    tgt.signatureDefs = [signature]
    return bytes(fb.convert_object_to_bytearray(tgt)), len(computed & set(mapping)), len(computed)


def compare(int8_file: bytes, float_tflite: bytes, x: np.ndarray) -> dict:
    """Per-tensor SNR and cosine similarity of ``int8_file`` against ``float_tflite`` (unstripped) on the float
    inputs ``x`` (batch first, one invoke each), worst SNR first."""
    from litert_quantizer import model_validator
    from litert_quantizer.utils import validation_utils

    from qatzoo.export.litert import interpreter
    from qatzoo.quiet import native_output

    named, matched, computed = named_like(int8_file, float_tflite)
    (key, signature), *_ = interpreter(float_tflite, delegates=False).get_signature_list().items()
    metrics = [validation_utils.ValidationErrorMetric.SNR, validation_utils.ValidationErrorMetric.COSINE_SIMILARITY]
    samples = [{signature["inputs"][0]: example[None].astype(np.float32)} for example in x]
    with native_output("LiteRT's quantizer's validator"):
        result = model_validator.compare_model(
            float_tflite, named, {key: samples}, metrics, use_xnnpack=False, num_threads=1
        )
    per_signature = result.get_signature_comparison_result(key)
    kinds = {
        **{n: "input" for n in per_signature.input_tensors},
        **{n: "output" for n in per_signature.output_tensors},
        **{n: "weight" for n in per_signature.constant_tensors},
        **{n: "activation" for n in per_signature.intermediate_tensors},
    }
    rows = [
        {
            "tensor": name,
            "kind": kinds[name],
            "snr_db": 10.0 * math.log10(max(values["snr"], 1e-30)),
            "cosine": values["cosine_similarity"],
        }
        for name, values in result.get_all_tensor_results().items()
        if not name.startswith("qatzoo_unmatched_")
    ]
    rows.sort(key=lambda r: r["snr_db"])
    return {"rows": rows, "matched": matched, "computed": computed, "examples": len(x)}


def write(result: dict, out_dir: str | Path, title: str) -> list[Path]:
    """Write tensors.csv (every tensor), tensors.md (the worst) and tensors.png (their SNR and cosine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir, rows = Path(out_dir), result["rows"]
    out_dir.mkdir(parents=True, exist_ok=True)  # --out may name a new directory
    csv_path = out_dir / "tensors.csv"
    tmp = csv_path.with_name(".tensors.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["tensor", "kind", "snr_db", "cosine"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)
    worst = rows[:WORST]
    lines = [
        f"# Per-tensor comparison: {title}",
        "",
        f"Every tensor of the int8 file against the same tensor of the float model (LiteRT's quantizer's "
        f"validator), mean over {result['examples']} validation examples; {result['matched']} of the "
        f"{result['computed']} tensors the int8 file computes have a float counterpart. SNR: signal power over "
        "error power, in dB (higher is better); cosine similarity: 1 is identical direction. The worst "
        f"{len(worst)} by SNR:",
        "",
        "| tensor | kind | SNR dB | cosine |",
        "|---|---|---|---|",
        *(f"| {r['tensor']} | {r['kind']} | {r['snr_db']:.1f} | {r['cosine']:.4f} |" for r in worst),
        "",
    ]
    md_path = write_text(out_dir / "tensors.md", "\n".join(lines))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.35 * len(worst) + 1.8), sharey=True)
    labels = [_short(r["tensor"]) for r in worst][::-1]
    ax1.barh(labels, [r["snr_db"] for r in worst][::-1], color="C0")
    ax1.set_xlabel("SNR (dB, higher is better)")
    ax2.barh(labels, [r["cosine"] for r in worst][::-1], color="C2")
    ax2.set_xlabel("cosine similarity")
    ax2.set_xlim(min(0.9, min((r["cosine"] for r in worst), default=1.0)), 1.0)
    fig.suptitle(f"{title}: the worst tensors, int8 vs float")
    fig.tight_layout()
    png_path = write_figure(out_dir / "tensors.png", fig)
    return [csv_path, md_path, png_path]


def _short(name: str, width: int = 48) -> str:
    """A fused tensor's name is every op's name joined by ';': its last part, shortened, labels a bar."""
    last = name.split(";")[-1]
    return last if len(last) <= width else "..." + last[-width + 3 :]
