"""Arm Ethos-U NPU estimates from Vela: which ops the NPU takes, cycles, inference time and memory.

Vela compiles a .tflite for an Ethos-U: the ops the NPU supports become one ``ethos-u`` custom op, the rest
stay TFLite ops that the CPU (TFLM) runs. Its numbers are the compiler's performance model at the chosen
system configuration (clock, memory bandwidths), not a measurement.

Vela runs in a child process (``python -m ethosu.vela``) in a temporary directory: its C++ core crashes
the process on a truncated file, it prints warnings and a long summary to stdout, and its entry point sets
the interpreter's recursion limit. The numbers come from its summary CSV, whose units are: ``inference_time``
in seconds (``cycles_total`` at the accelerator clock), memory in KiB; the operator counts only from its
printed summary (``CPU operators = N``), and the names of the CPU ops from the compiled file.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from qatzoo.artifacts import Count, NonNegative, Record
from qatzoo.deploy.runtime import ModelFile, Runtime, ZooColumn

NPU_OP = "ethos-u"  # the custom op Vela puts in place of everything the NPU runs
TIMEOUT_S = 600
#: The Ethos-U configuration the deployment report's estimates are for.
ACCELERATOR = "ethos-u55-128"


class VelaError(RuntimeError):
    """Vela could not compile the model; the message is its last line of output."""


@dataclass(frozen=True)
class VelaReport:
    """Vela's estimates for one model on one accelerator.

    ``npu_ops``/``cpu_ops``: Vela's own operator counts, as it prints them (``NPU operators = N``): its ops
    after graph rewriting, not the .tflite's (a fused activation counts apart, a RESHAPE can vanish: 6 for
    the zoo CNN's 7 TFLite ops); ``npu_share`` is Vela's share. ``cpu_op_names``: the TFLite ops left to
    the CPU in the compiled file, in graph order (custom ops by their custom code). ``cycles``: NPU clock cycles per
    inference; ``inference_ms``: those cycles at the system configuration's clock. ``sram_bytes``: peak SRAM
    (feature maps); ``flash_bytes``: flash used (on- and off-chip), the compiled weights and command streams.
    """

    accelerator: str
    system_config: str
    memory_mode: str
    npu_ops: int
    cpu_ops: int
    cpu_op_names: tuple[str, ...]
    npu_share: float
    cycles: int
    inference_ms: float
    sram_bytes: int
    flash_bytes: int
    vela_version: str

    def as_dict(self) -> dict:
        """The report as plain JSON-ready values."""
        return {**dataclasses.asdict(self), "cpu_op_names": list(self.cpu_op_names)}


def compile(model: bytes | str | Path, accelerator: str = ACCELERATOR) -> VelaReport:
    """Compile ``model`` (bytes or a path) with Vela for ``accelerator`` at Vela's default system config.

    For an Ethos-U55 that is ``Ethos_U55_High_End_Embedded`` with the ``Shared_Sram`` memory mode (the
    report names what was used). Raises ``VelaError`` with one line when Vela fails.
    """
    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    with tempfile.TemporaryDirectory(prefix="qatzoo-vela-") as tmp:
        source, out = Path(tmp, "model.tflite"), Path(tmp, "out")
        source.write_bytes(data)
        command = [sys.executable, "-m", "ethosu.vela", str(source), "--accelerator-config", accelerator]
        try:
            done = subprocess.run(
                [*command, "--output-dir", str(out)], capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp
            )
        except subprocess.TimeoutExpired:
            raise VelaError(f"Vela took longer than {TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise VelaError(_why(done))
        summaries = sorted(out.glob("model_summary_*.csv"))
        counts = dict(re.findall(r"^(CPU|NPU) operators = (\d+)", done.stdout, re.MULTILINE))
        if not summaries or len(counts) != 2:
            raise VelaError("Vela finished without its summary (no summary CSV or operator counts)")
        with summaries[0].open(newline="") as f:
            row = next(csv.DictReader(f))
        cpu_op_names = _cpu_ops((out / "model_vela.tflite").read_bytes())
    npu_ops, cpu_ops = int(counts["NPU"]), int(counts["CPU"])
    return VelaReport(
        accelerator=accelerator,
        system_config=row["system_config"],
        memory_mode=row["memory_mode"],
        npu_ops=npu_ops,
        cpu_ops=cpu_ops,
        cpu_op_names=cpu_op_names,
        npu_share=npu_ops / (npu_ops + cpu_ops) if npu_ops + cpu_ops else 0.0,
        cycles=int(float(row["cycles_total"])),
        inference_ms=float(row["inference_time"]) * 1e3,
        sram_bytes=_kib(row["sram_memory_used"]),
        flash_bytes=_kib(row["on_chip_flash_memory_used"]) + _kib(row["off_chip_flash_memory_used"]),
        vela_version=importlib.metadata.version("ethos-u-vela"),
    )


def _kib(value: str) -> int:
    return round(float(value) * 1024)


def _cpu_ops(compiled: bytes) -> tuple[str, ...]:
    """The ops of a Vela-compiled .tflite other than the NPU's, in graph order."""
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = Model.GetRootAsModel(compiled, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    found = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            code = codes[graph.Operators(o).OpcodeIndex()]
            custom = code.CustomCode()
            name = custom.decode() if custom else names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
            if name != NPU_OP:
                found.append(str(name))
    return tuple(found)


def _why(done: subprocess.CompletedProcess) -> str:
    """One line on why Vela failed: its last line of output that is not a warning, and the signal if it crashed."""
    lines = [
        line.strip()
        for text in (done.stdout, done.stderr)  # stderr last: a traceback's final line says what went wrong
        for line in text.splitlines()
        if line.strip() and not line.startswith("Warning:")
    ]
    last = lines[-1] if lines else "no output"
    if done.returncode < 0:
        return f"Vela crashed ({signal.Signals(-done.returncode).name}): {last}"
    return f"Vela failed (exit {done.returncode}): {last}"


# ---- the deployment runtime (qatzoo.deploy.runtime)


def measure(file: ModelFile) -> dict:
    """Vela's estimates for an Ethos-U55; ``{"error": line}`` when Vela cannot compile the model."""
    try:
        return compile(file.int8, ACCELERATOR).as_dict()
    except VelaError as error:
        return {"accelerator": ACCELERATOR, "error": str(error)}


ESTIMATES = ("npu_ops", "cpu_ops", "cycles", "sram_bytes", "flash_bytes", "npu_share", "inference_ms")


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


def card_line(npu: dict, report: dict, unit: str) -> str:
    if "error" in npu:
        return f"Arm Ethos-U55 (Vela): does not compile: {npu['error']}"
    cpu_ops = f" (on the CPU: {', '.join(npu['cpu_op_names'])})" if npu.get("cpu_op_names") else ""
    return (
        f"Arm Ethos-U55 ({npu['accelerator']}, {npu['system_config']}, Vela {npu['vela_version']}): "
        f"{npu['npu_share']:.0%} of operators on the NPU{cpu_ops}, {npu['cycles']:,} cycles, "
        f"{npu['inference_ms']:.3f} ms estimated, SRAM {npu['sram_bytes']:,} bytes, flash {npu['flash_bytes']:,} bytes"
    )


def summary(npu: dict, report: dict) -> str:
    if "error" in npu:
        return "Ethos-U55: Vela failed"
    return f"Ethos-U55: {npu['npu_share']:.0%} on the NPU, {npu['inference_ms']:.2f} ms"


def zoo_cell(npu: dict, text) -> str:
    return "no" if "error" in npu else f"{npu['npu_share']:.0%} NPU, {npu['inference_ms']:.2f} ms"


RUNTIME = Runtime(
    key="ethos_u55",
    extra="deploy",
    measure=measure,
    model=EthosU55,
    card_line=card_line,
    summary=summary,
    zoo=ZooColumn("Ethos-U55", "Ethos-U55 (Vela)", zoo_cell),
)
