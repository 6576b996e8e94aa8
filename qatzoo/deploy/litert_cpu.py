"""LiteRT on this machine's CPU: int8 and float latency side by side, the CPU named, and how the XNNPACK
delegate takes each model (partitions, ops left to builtin kernels).

1 thread, batch 1, in a child process, interleaved blocks (:mod:`qatzoo.bench.latency`).
"""

from __future__ import annotations

from qatzoo.artifacts import ABSENT, Count, NonNegative, Record
from qatzoo.deploy.runtime import ModelFile, Runtime

#: Timed invokes per model for the CPU latency (in 5 interleaved rounds, after a warm-up).
LATENCY_RUNS = 1000


def measure(file: ModelFile) -> dict:
    """Median latency of the int8 (and float) model on this CPU, 1 thread, batch 1, with XNNPACK."""
    from qatzoo.bench.latency import measure as timed

    float_model = file.float_model
    files = {"int8": file.int8, **({"float": float_model} if float_model is not None else {})}
    lat = timed(files, file.x[0], "xnnpack", [1], runs=file.timed_runs or LATENCY_RUNS)
    out = {"cpu": lat.cpu, "threads": 1, "int8_us": round(lat.us["int8"][1], 2)}
    if float_model is not None:
        out["float_us"] = round(lat.us["float"][1], 2)
        out["int8_over_float"] = round(lat.us["int8"][1] / lat.us["float"][1], 3)
    out["xnnpack"] = {
        name: {"partitions": c.partitions, "outside": list(c.outside)} for name, c in lat.coverage.items()
    }
    return out


class LitertCpu(Record):
    cpu: str
    threads: Count = ABSENT
    int8_us: NonNegative
    float_us: NonNegative = ABSENT
    int8_over_float: NonNegative = ABSENT


def card_line(cpu: dict, report: dict, unit: str) -> str:
    kind = "int16-activation" if report.get("activations") == "int16" else "int8"
    latency = f"{kind} {cpu['int8_us']:.1f} us"
    if "float_us" in cpu:
        latency += f", float {cpu['float_us']:.1f} us: {kind} {cpu['int8_over_float']:.2f}x float"
    xnn = cpu.get("xnnpack", {}).get("int8")
    if xnn:
        latency += f"; XNNPACK: {xnn['partitions']} partition(s), outside: {_counts(xnn['outside'])}"
    return f"LiteRT CPU ({cpu['cpu']}, {cpu['threads']} thread, batch 1): {latency}"


def summary(cpu: dict, report: dict) -> str:
    ratio = f" ({cpu['int8_over_float']:.2f}x float)" if "int8_over_float" in cpu else ""
    kind = "int16-activation model" if report.get("activations") == "int16" else "int8"
    return f"{kind} on {cpu['cpu']}: {cpu['int8_us']:.0f} us{ratio}"


def _counts(ops: list[str]) -> str:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "none"


RUNTIME = Runtime(
    key="litert_cpu",
    measure=measure,
    model=LitertCpu,
    card_line=card_line,
    summary=summary,
    zoo_note="the card has the LiteRT CPU latency, with the CPU named",
)
