"""The deployment report of an int8 file: how it runs on the three runtimes people ship int8 models to.

* ``litert_cpu``: LiteRT on this machine's CPU, int8 and float latency side by side (1 thread, batch 1, a
  child process, interleaved blocks: :mod:`qatzoo.bench.latency`), the CPU named, and how the XNNPACK
  delegate takes each model (partitions, ops left to builtin kernels).
* ``tflm``: TensorFlow Lite Micro's kernels (:mod:`qatzoo.deploy.tflm`): runs or not (missing ops named),
  the arena it needs, flash (file bytes), and on the test split the task metric and how its int8 outputs
  compare with LiteRT's (share of equal elements, largest difference in quantization steps).
* ``ethos_u55``: Vela's compile for an Arm Ethos-U55 (:mod:`qatzoo.deploy.vela`): share of operators on the
  NPU, estimated cycles and time, SRAM and flash.

It is data (plain JSON types), written into metrics.json, the card and the zoo index, and read back with
:func:`problem` (the index's and the run report's strict readers) and :func:`lines` (card and ``qatzoo check``).
A runtime that cannot take the model is part of the report (``runs: false``, ``error``), not an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from qatzoo.artifacts import ABSENT, Count, Dtype, NonNegative, Record, one_line, one_of

#: Version of the report's layout.
SCHEMA_VERSION = 1
#: Timed invokes per model for the CPU latency (in 5 interleaved rounds, after a warm-up).
LATENCY_RUNS = 1000
#: The Ethos-U configuration the estimates are for.
ACCELERATOR = "ethos-u55-128"


def build(
    int8: bytes,
    float_model: bytes | None,
    x: np.ndarray,
    score: Callable[[np.ndarray], float] | None = None,
    *,
    latency_runs: int = LATENCY_RUNS,
    predictions: np.ndarray | None = None,
) -> dict:
    """The report of the int8 flatbuffer ``int8`` (and its float model, for the CPU ratio).

    ``x``: float inputs of the test split (batch first), quantized with the model's input scale and zero
    point as a deployment would; ``score``: the task metric of dequantized outputs (``None``: not scored);
    ``predictions``: ``int8``'s LiteRT outputs on ``x`` when the caller has them (``litert.predict``), so
    the file is not run over ``x`` again.
    """
    from qatzoo.export import litert

    return {
        "schema": SCHEMA_VERSION,
        # int8, or int16 for a file with 16-bit activations (quant=ptq_a16w8): what the "int8" numbers are of.
        "activations": litert.io_quant(litert.interpreter(int8))[0].dtype,
        "litert_cpu": litert_cpu(int8, float_model, x[0], latency_runs),
        "tflm": tflm(int8, x, score, predictions),
        "ethos_u55": ethos_u55(int8),
    }


def litert_cpu(int8: bytes, float_model: bytes | None, sample: np.ndarray, runs: int = LATENCY_RUNS) -> dict:
    """Median latency of the int8 (and float) model on this CPU, 1 thread, batch 1, with XNNPACK."""
    from qatzoo.bench.latency import measure

    files = {"int8": int8, **({"float": float_model} if float_model is not None else {})}
    lat = measure(files, sample, "xnnpack", [1], runs=runs)
    out = {"cpu": lat.cpu, "threads": 1, "int8_us": round(lat.us["int8"][1], 2)}
    if float_model is not None:
        out["float_us"] = round(lat.us["float"][1], 2)
        out["int8_over_float"] = round(lat.us["int8"][1] / lat.us["float"][1], 3)
    out["xnnpack"] = {
        name: {"partitions": c.partitions, "outside": list(c.outside)} for name, c in lat.coverage.items()
    }
    return out


def tflm(
    int8: bytes,
    x: np.ndarray,
    score: Callable[[np.ndarray], float] | None = None,
    predictions: np.ndarray | None = None,
) -> dict:
    """TensorFlow Lite Micro: loads or not, arena, flash; on ``x``, the metric and agreement with LiteRT
    (``predictions``: LiteRT's dequantized outputs on ``x``, computed here when not given)."""
    from qatzoo.deploy import tflm as micro
    from qatzoo.export import litert

    loaded = micro.load(int8)
    out = {
        "runs": loaded.runs,
        "unsupported": list(loaded.unsupported),
        "error": loaded.error,
        "arena_bytes": loaded.arena_bytes,
        "flash_bytes": loaded.flash_bytes,
    }
    if not loaded.runs or len(x) == 0:
        return out
    it = litert.interpreter(int8)
    in_q, out_q = litert.io_quant(it)
    on_micro = micro.run(int8, litert.quantize(x, in_q))
    # LiteRT's integer outputs: its dequantized ones quantized back (exact: litert.dequantize).
    on_litert = litert.quantize(litert.predict(it, x) if predictions is None else predictions, out_q)
    out["examples"] = int(len(x))
    out |= micro.agreement(on_micro, on_litert)
    if score is not None:
        out["metric"] = float(score(litert.dequantize(on_micro, out_q)))
    return out


def ethos_u55(int8: bytes) -> dict:
    """Vela's estimates for an Ethos-U55; ``{"error": line}`` when Vela cannot compile the model."""
    from qatzoo.deploy import vela

    try:
        return vela.compile(int8, ACCELERATOR).as_dict()
    except vela.VelaError as error:
        return {"accelerator": ACCELERATOR, "error": str(error)}


def of_file(path: str | Path, float_path: str | Path | None = None, latency_runs: int = LATENCY_RUNS) -> dict:
    """The report of a .tflite on its own (``qatzoo check``): random inputs, no metric."""
    from qatzoo.export import litert

    blob = Path(path).read_bytes()
    shape = litert.interpreter(blob).get_input_details()[0]["shape"][1:]
    x = np.random.default_rng(0).uniform(-1.0, 1.0, size=(100, *shape)).astype(np.float32)
    report = build(blob, Path(float_path).read_bytes() if float_path else None, x, latency_runs=latency_runs)
    report["tflm"]["inputs"] = "100 random inputs"
    return report


# ---- reading (the run report's and the zoo index's strict readers)


class LitertCpu(Record):
    cpu: str
    threads: Count = ABSENT
    int8_us: NonNegative
    float_us: NonNegative = ABSENT
    int8_over_float: NonNegative = ABSENT


class Tflm(Record):
    runs: bool
    unsupported: list[str]
    error: str | None = None
    arena_bytes: Count | None = None
    flash_bytes: Count
    examples: NonNegative = ABSENT
    equal_share: NonNegative = ABSENT
    max_step_diff: NonNegative = ABSENT
    metric: NonNegative = ABSENT

    @model_validator(mode="after")
    def _arena(self):
        if self.runs and self.arena_bytes is None:
            raise PydanticCustomError("qatzoo", "has no arena_bytes although it runs")
        return self


class EthosU55(Record):
    """Vela's estimates, or ``error`` when it could not compile the model."""

    error: str | None = None
    npu_ops: Count | None = None
    cpu_ops: Count | None = None
    cycles: Count | None = None
    sram_bytes: Count | None = None
    flash_bytes: Count | None = None
    npu_share: NonNegative | None = None
    inference_ms: NonNegative | None = None

    @model_validator(mode="after")
    def _compiled(self):
        missing = [k for k in ESTIMATES if getattr(self, k) is None]
        if "error" not in self.model_fields_set and missing:
            raise PydanticCustomError("qatzoo", f"has no {missing[0]} (and no error)")
        return self


ESTIMATES = ("npu_ops", "cpu_ops", "cycles", "sram_bytes", "flash_bytes", "npu_share", "inference_ms")


class Deployment(Record):
    """A deployment report read back (metrics.json, an index entry)."""

    version: one_of(SCHEMA_VERSION) = Field(alias="schema")
    activations: Dtype = ABSENT
    litert_cpu: LitertCpu
    tflm: Tflm
    ethos_u55: EthosU55


def problem(report) -> str | None:
    """What is wrong with a deployment report read from a file (``None``: a well-formed one)."""
    try:
        Deployment.model_validate(report)
    except ValidationError as error:
        return one_line(error, "deployment")
    return None


def lines(report: dict, unit: str = "") -> list[str]:
    """The report as markdown bullet lines (card, ``qatzoo check``)."""
    cpu, micro, npu = report["litert_cpu"], report["tflm"], report["ethos_u55"]
    kind = "int16-activation" if report.get("activations") == "int16" else "int8"
    latency = f"{kind} {cpu['int8_us']:.1f} us"
    if "float_us" in cpu:
        latency += f", float {cpu['float_us']:.1f} us: {kind} {cpu['int8_over_float']:.2f}x float"
    xnn = cpu.get("xnnpack", {}).get("int8")
    if xnn:
        outside = _counts(xnn["outside"])
        latency += f"; XNNPACK: {xnn['partitions']} partition(s), outside: {outside}"
    out = [f"- LiteRT CPU ({cpu['cpu']}, {cpu['threads']} thread, batch 1): {latency}"]
    if micro["runs"]:
        text = f"runs, arena {micro['arena_bytes']:,} bytes, flash {micro['flash_bytes']:,} bytes"
        if "equal_share" in micro:
            on = micro.get("inputs", f"{micro['examples']:,} test examples")
            text += (
                f"; on {on}: outputs equal to LiteRT's on {micro['equal_share']:.1%} of elements, "
                f"at most {micro['max_step_diff']} step(s) apart"
            )
        if "metric" in micro:
            text += f", metric {micro['metric']:.4g}{' ' + unit if unit and unit != '%' else unit}"
        out.append(f"- TensorFlow Lite Micro: {text}")
    else:
        why = f"missing ops {', '.join(micro['unsupported'])}" if micro["unsupported"] else micro["error"]
        out.append(f"- TensorFlow Lite Micro: does NOT run ({why}); flash {micro['flash_bytes']:,} bytes")
    if "error" in npu:
        out.append(f"- Arm Ethos-U55 (Vela): does not compile: {npu['error']}")
    else:
        cpu_ops = f" (on the CPU: {', '.join(npu['cpu_op_names'])})" if npu.get("cpu_op_names") else ""
        out.append(
            f"- Arm Ethos-U55 ({npu['accelerator']}, {npu['system_config']}, Vela {npu['vela_version']}): "
            f"{npu['npu_share']:.0%} of operators on the NPU{cpu_ops}, {npu['cycles']:,} cycles, "
            f"{npu['inference_ms']:.3f} ms estimated, SRAM {npu['sram_bytes']:,} bytes, flash {npu['flash_bytes']:,} bytes"
        )
    return out


def summary(report: dict) -> str:
    """One line: CPU latency ratio, whether TFLM runs it (and its arena), the Ethos-U55 NPU share and time."""
    cpu, micro, npu = report["litert_cpu"], report["tflm"], report["ethos_u55"]
    ratio = f" ({cpu['int8_over_float']:.2f}x float)" if "int8_over_float" in cpu else ""
    kind = "int16-activation model" if report.get("activations") == "int16" else "int8"
    line = f"{kind} on {cpu['cpu']}: {cpu['int8_us']:.0f} us{ratio}"
    if micro["runs"]:
        line += f" | TFLite Micro: runs, arena {micro['arena_bytes']:,} B"
    else:
        line += f" | TFLite Micro: does NOT run ({', '.join(micro['unsupported']) or micro['error']})"
    if "error" in npu:
        return line + " | Ethos-U55: Vela failed"
    return line + f" | Ethos-U55: {npu['npu_share']:.0%} on the NPU, {npu['inference_ms']:.2f} ms"


def _counts(ops: list[str]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "none"
