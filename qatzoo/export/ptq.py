"""Post-training quantization of a float .tflite with LiteRT's quantizer (package ``litert-quantizer``).

LiteRT's documentation marks the converter's post-training path deprecated; its replacement works on the
float flatbuffer itself: calibrate every tensor's range in LiteRT on a representative sample, then rewrite
the model with the quantization parameters of a recipe. Two recipes are used here:

* ``a8w8`` (``static_wi8_ai8``): int8 activations (asymmetric, per tensor), int8 weights (symmetric, per
  channel), int32 biases; the model's input and output become int8 too. The PTQ int8 baseline of every run.
* ``a16w8`` (``static_wi8_ai16``): int16 activations (symmetric), int8 weights, int64 biases: LiteRT's
  16x8 kernels; more accurate, twice the activation memory, fewer runtimes.

Calibration takes each tensor's minimum and maximum over the whole sample (the quantizer's ``min_max_update``,
the converter's rule), not the quantizer's default, a moving average (0.95) of each invoke's extremes: with
one example per invoke that average sits inside the sample's range and clips its tails (attention_int8's
forecaster: test MAE 0.5555 ppm with the default against 0.3239 with the converter; see the README's PTQ
section).

The quantizer matches tensors by name, so it must get the float file before names are stripped.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from qatzoo.quiet import native_output

#: The quantizer's recipe for each activation/weight width this project exports.
RECIPES = {"a8w8": "static_wi8_ai8", "a16w8": "static_wi8_ai16"}
PACKAGE = "litert-quantizer"
#: How activation ranges are estimated from the representative sample (``min_max`` or the quantizer's
#: ``moving_average``), recorded in provenance.
CALIBRATION = "min_max"


def _inline_buffers(model: bytes) -> bytes:
    """``model`` with every constant stored inside the flatbuffer.

    From 256 KiB of constants on, the quantizer (``ModelModifier._serialize_model``) appends their data after
    the flatbuffer and points each ``Buffer`` at it by ``offset``/``size``. Anything that unpacks and repacks the
    file through the schema's object API (``strip_names``, ``tensors.named_like``) keeps those offsets but
    drops the appended data, and LiteRT then refuses the file ("Constant buffer N specified an out of range
    offset"). Inline, as the quantizer writes smaller models and the converter writes every model under 2 GB.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    external = [b for b in obj.buffers or [] if b.offset > 1]
    if not external:
        return model
    for buffer in external:
        buffer.data = np.frombuffer(model, np.uint8, buffer.size, buffer.offset).copy()
        buffer.offset = buffer.size = 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def _min_max_keeping_statistics(qsv: dict, new: dict) -> dict:
    """The quantizer's ``min_max_update`` (each tensor's range over the whole sample), keeping the statistics an
    algorithm gathers beside the range: GPTQ's Hessian, averaged over the samples as its own update does. A
    custom update replaces the algorithm's, so ``min_max_update`` alone left GPTQ with one sample's Hessian."""
    from litert_quantizer.utils import qsv_utils

    updated = qsv_utils.min_max_update(qsv, new)
    if qsv and "hessian" in qsv and "hessian" in new:
        total = qsv["num_samples"] + new["num_samples"]
        updated["hessian"] = (
            new["hessian"]
            if total == 0
            else (qsv["hessian"] * qsv["num_samples"] + new["hessian"] * new["num_samples"]) / total
        )
        updated["num_samples"] = total
    return updated


class PTQError(RuntimeError):
    """The quantizer could not quantize a model (one line, the quantizer's reason)."""


def describe(widths: str) -> dict:
    """What made a PTQ file, for provenance: the package, its version and the recipe."""
    return {
        "package": PACKAGE,
        "version": metadata.version(PACKAGE),
        "recipe": RECIPES[widths],
        "calibration": CALIBRATION,
    }


#: The quantizer's algorithms that runs compare QAT with (``qatzoo.export.ptq_suite``), by the names reports use.
ALGORITHMS = {
    "min_max": "MIN_MAX_UNIFORM_QUANT",
    "mse": "MSE",
    "hadamard": "HADAMARD_ROTATION",
    "octav": "OCTAV",
    "gptq": "GPTQ",
}


#: The ops whose weights a scheme's ``weight_bits`` apply to (QAT's kernels); every other op gets 8-bit operands.
WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def quantize_with(
    float_tflite: bytes, representative: np.ndarray, *, weight_bits: int, activation_bits: int = 8, algorithm: str
) -> tuple[bytes, list[str]]:
    """The static-range quantized model of ``float_tflite`` at a scheme's widths, its kernels by one of the
    quantizer's :data:`ALGORITHMS`: every supported op min/max at 8-bit weights and ``activation_bits``-bit
    activations (so that an op with two activation operands, BATCH_MATMUL, stays integer), then the kernels of
    :data:`WEIGHT_OPS` at ``weight_bits`` (per channel) by ``algorithm`` - an op the algorithm or the width
    does not take (GPTQ: convolutions; 4 bits: depthwise convolutions) stays min/max at 8 bits. Calibrated as
    :func:`quantize` is (min/max over ``representative``). Returns the file and the kernel ops that stayed 8-bit
    min/max; PTQError (one line) where the quantizer refuses the model, or the algorithm takes no kernel op."""
    from litert_quantizer import calibrator, qtyping, quantizer, recipe_manager
    from litert_quantizer.algorithm_manager import AlgorithmName

    from qatzoo.export.litert import interpreter

    signatures = interpreter(float_tflite, delegates=False).get_signature_list()
    if len(signatures) != 1 or len(next(iter(signatures.values()))["inputs"]) != 1:
        raise PTQError(f"PTQ needs a model with one signature of one input; this one has {signatures}")
    key, signature = next(iter(signatures.items()))
    samples = [{signature["inputs"][0]: x[None].astype(np.float32)} for x in representative]
    present = {op["op_name"] for op in interpreter(float_tflite, delegates=False)._get_ops_details()}  # noqa: SLF001
    ops = list(WEIGHT_OPS)
    for _ in range(len(WEIGHT_OPS) + 1):
        try:
            with native_output("LiteRT's quantizer"):
                manager = recipe_manager.RecipeManager()
                manager.add_static_config(
                    regex=".*",
                    operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                    activation_num_bits=activation_bits,
                    weight_num_bits=8,
                    algorithm_key=AlgorithmName.MIN_MAX_UNIFORM_QUANT,
                )
                for op in ops:
                    manager.add_static_config(
                        regex=".*",
                        operation_name=getattr(qtyping.TFLOperationName, op),
                        activation_num_bits=activation_bits,
                        weight_num_bits=weight_bits,
                        algorithm_key=getattr(AlgorithmName, ALGORITHMS[algorithm]),
                    )
                q = quantizer.Quantizer(bytearray(float_tflite), manager.get_quantization_recipe())
                calib = calibrator.Calibrator(
                    bytearray(float_tflite), num_threads=1, qsv_update_func=_min_max_keeping_statistics
                )
                calib.calibrate({key: samples}, manager)
                result = q.quantize(calib.get_model_qsvs(), enable_progress_bar=False, enable_progress_report=False)
            kept = [op for op in WEIGHT_OPS if op not in ops and op in present]  # refused ops the model has
            return _inline_buffers(bytes(result.quantized_model)), kept
        except (ValueError, RuntimeError, KeyError, NotImplementedError) as error:
            text = (str(error).strip().splitlines() or [type(error).__name__])[0]
            refused = next((op for op in ops if "Unsupported op" in text and f"TFLOperationName.{op}" in text), None)
            if refused is None:
                raise PTQError(f"{PACKAGE}: {text[:300]}") from None
            ops.remove(refused)  # the algorithm (or the width) does not take this op: its kernels stay min/max, 8-bit
            if not ops:
                break
    raise PTQError(f"{PACKAGE}: {algorithm} at {weight_bits}-bit weights takes none of {', '.join(WEIGHT_OPS)}")


def quantize(
    float_tflite: bytes, representative: np.ndarray, widths: str = "a8w8", calibration: str = CALIBRATION
) -> bytes:
    """The static-range quantized model of ``float_tflite`` (unstripped: names are how tensors are matched),
    calibrated on ``representative`` (float inputs, batch first, one example per invoke as deployed) with
    ``calibration`` (``min_max``, or the quantizer's default ``moving_average``)."""
    from litert_quantizer import calibrator, quantizer, recipe, recipe_manager
    from litert_quantizer.utils import qsv_utils

    from qatzoo.export.litert import interpreter

    signatures = interpreter(float_tflite, delegates=False).get_signature_list()
    if len(signatures) != 1 or len(next(iter(signatures.values()))["inputs"]) != 1:
        raise PTQError(f"PTQ needs a model with one signature of one input; this one has {signatures}")
    key, signature = next(iter(signatures.items()))
    samples = [{signature["inputs"][0]: x[None].astype(np.float32)} for x in representative]
    try:
        with native_output("LiteRT's quantizer"):
            chosen = getattr(recipe, RECIPES[widths])()
            q = quantizer.Quantizer(bytearray(float_tflite), chosen)
            if calibration == "min_max":
                manager = recipe_manager.RecipeManager()
                manager.load_quantization_recipe(chosen)
                calib = calibrator.Calibrator(
                    bytearray(float_tflite), num_threads=1, qsv_update_func=qsv_utils.min_max_update
                )
                calib.calibrate({key: samples}, manager)
                ranges = calib.get_model_qsvs()
            else:
                ranges = q.calibrate({key: samples}, num_threads=1)
            result = q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError) as error:
        raise PTQError(f"{PACKAGE}: {(str(error).strip().splitlines() or [type(error).__name__])[0][:300]}") from None
    return _inline_buffers(bytes(result.quantized_model))
