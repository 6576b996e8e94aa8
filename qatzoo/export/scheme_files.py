"""The model files a :class:`~qatzoo.quant.schemes.Scheme` exports: the float file, its post-training int8
baselines and the QAT model's int8 file (all stripped, as written), and what made the post-training ones.

Here rather than on the scheme: a scheme says what to export (``int8``, ``qat``, ``int8_model``), and the
conversion (:mod:`qatzoo.export.tflite`, :mod:`qatzoo.export.ptq`) sits above ``quant/``, which it uses.
"""

from __future__ import annotations

import numpy as np

from qatzoo.export import ptq
from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
from qatzoo.keras import keras
from qatzoo.quant.schemes import QATScheme, Scheme


def export_float(scheme: Scheme, model: keras.Model, representative: np.ndarray) -> dict[str, bytes]:
    """The float model's files (stripped, as written): ``float``, and the PTQ int8 baseline when int8 or QAT
    (LiteRT's quantizer on the float file, calibrated on ``representative``; ``qatzoo.export.ptq``)."""
    files = {"float": to_float_tflite(model)}
    if scheme.int8 or scheme.qat:  # PTQ int8: the baseline beside every QAT scheme, exportable or not
        files["ptq_int8"] = ptq.quantize(files["float"], representative, "a8w8")
    if scheme.int8_model == "ptq_a16w8":
        files["ptq_a16w8"] = ptq.quantize(files["float"], representative, "a16w8")
    return {name: strip_names(blob) for name, blob in files.items()}


def ptq_provenance(scheme: Scheme) -> dict:
    """What made the scheme's post-training files (package, version, recipe), by model name."""
    if not (scheme.int8 or scheme.qat):
        return {}
    made = {"ptq_int8": ptq.describe("a8w8")}
    if scheme.int8_model == "ptq_a16w8":
        made["ptq_a16w8"] = ptq.describe("a16w8")
    return made


#: The kernels each ``quant.storage`` stores a byte each (None: every one): ``int8`` for TFLite Micro, which
#: unpacks INT4 kernels into its arena, and Vela, which crashes on them; ``int4_dense`` the convolutions only,
#: which XNNPACK runs only as INT8, keeping INT4 FULLY_CONNECTED kernels, which it runs.
STORED_AS_INT8 = {"int8": None, "int4_dense": frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})}


def export_qat(scheme: Scheme, qat_model: keras.Model | None, representative: np.ndarray) -> dict[str, bytes]:
    """The QAT model's int8 file (stripped), when the scheme exports one (a QAT scheme with ``int8``)."""
    if not isinstance(scheme, QATScheme) or not scheme.int8 or qat_model is None:
        return {}
    blob = strip_names(to_int8_tflite(qat_model, lambda: representative))
    if scheme.storage in STORED_AS_INT8:  # kernels on a low-bit grid, (some) a byte each
        from qatzoo.export.lowbit import int8_storage

        blob = int8_storage(blob, STORED_AS_INT8[scheme.storage])
    return {"qat_int8": blob}
