"""LiteRT latency of a float and an int8 model, side by side, each setting in a fresh child process.

Why a child process: refusing AMX (:func:`qatzoo.bench.cpu.deny_amx`) cannot be undone, and a fresh
process gives every setting the same start (no delegate, thread pool or allocator state left by the
one before). Why interleaved: the models run in alternating blocks, so a change in machine load hits
both alike and their ratio stays meaningful on a busy machine.

    python -m qatzoo.bench.latency SPEC.json   # the worker; prints one JSON line (see measure)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qatzoo.bench.cpu import cpu_name, deny_amx
from qatzoo.bench.xnnpack import Coverage, coverage

MODES = ("xnnpack", "noamx", "builtin")
"""LiteRT settings: the XNNPACK delegate as deployed; the same refused AMX; builtin kernels only (no delegate)."""

BLOCK_S = 0.05
"""Shortest block of invokes of one model before switching to the other (seconds).

On the 2-core Xeon of the README, switching between the float kernels and XNNPACK's AVX512-VNNI int8
kernels every ~3 ms (blocks of 100 invokes) slowed the float invokes by 14% (28.2 vs 24.8 us; blocks of
500: no effect), which a model deployed alone would not see.
"""


@dataclass(frozen=True)
class Latency:
    """What one child process measured in one LiteRT ``mode``, on the CPU named ``cpu``."""

    mode: str
    cpu: str
    us: dict[str, dict[int, float]] = field(default_factory=dict)
    """Model name -> thread count -> median microseconds per invoke."""
    coverage: dict[str, Coverage] = field(default_factory=dict)
    """With the XNNPACK delegate: each model's partitions and the ops left outside them."""
    amx_denied: bool | None = None
    """Mode ``noamx`` only: whether AMX was refused; when it was not, nothing was measured."""


def measure(
    files: dict[str, bytes],
    sample: np.ndarray,
    mode: str,
    threads: list[int],
    runs: int,
    rounds: int = 5,
    block_s: float = BLOCK_S,
) -> Latency:
    """Median latency of each model in ``files`` (name -> .tflite bytes), measured in a fresh Python process.

    ``sample`` is one input (or one batch, for a model with a larger batch), float; int8 models get it
    quantized with their input's scale and zero point. Every model runs at least ``runs`` timed invokes
    per thread count after a warm-up, in ``rounds`` rounds of alternating blocks of at least ``block_s``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    with tempfile.TemporaryDirectory(prefix="qatzoo-bench-") as tmp:
        models = {}
        for name, blob in files.items():
            models[name] = str(Path(tmp, f"{name}.tflite"))
            Path(models[name]).write_bytes(blob)
        np.save(Path(tmp, "sample.npy"), np.asarray(sample, np.float32))
        spec = {"mode": mode, "models": models, "sample": str(Path(tmp, "sample.npy")), "threads": list(threads)}
        spec.update(runs=runs, rounds=rounds, block_s=block_s)
        Path(tmp, "spec.json").write_text(json.dumps(spec))
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(
            [sys.executable, "-m", "qatzoo.bench.latency", str(Path(tmp, "spec.json"))],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    if done.returncode != 0:
        raise RuntimeError(f"latency worker ({mode}) failed:\n{done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Latency(
        mode=mode,
        cpu=found["cpu"],
        us={name: {int(t): us for t, us in by_t.items()} for name, by_t in found["us"].items()},
        coverage={name: Coverage(c["partitions"], tuple(c["outside"])) for name, c in found["coverage"].items()},
        amx_denied=found["amx_denied"],
    )


def _worker(spec: dict) -> dict:
    """The child process's work: measure the models of ``spec`` (see :func:`measure`); a JSON-able dict."""
    result: dict = {"cpu": cpu_name(), "us": {}, "coverage": {}, "amx_denied": None}
    if spec["mode"] == "noamx":
        result["amx_denied"] = deny_amx()
        if not result["amx_denied"]:
            return result
    from qatzoo.export.litert import interpreter, quantize, tensor_quant  # after deny_amx: XNNPACK not started yet

    sample = np.load(spec["sample"])
    delegates = spec["mode"] != "builtin"
    for threads in spec["threads"]:
        its = {}
        for name, path in spec["models"].items():
            it = interpreter(path, num_threads=threads, delegates=delegates)
            inp = it.get_input_details()[0]
            x = sample if sample.shape == tuple(inp["shape"]) else sample[None]  # one example, or a batch
            it.set_tensor(inp["index"], quantize(x, tensor_quant(inp)))
            for _ in range(20):  # warm-up
                it.invoke()
            its[name] = it
            if delegates and threads == spec["threads"][0]:
                c = coverage(it)
                result["coverage"][name] = {"partitions": c.partitions, "outside": list(c.outside)}
        times: dict[str, list[float]] = {name: [] for name in its}
        per_round = max(1, spec["runs"] // spec["rounds"])
        for _ in range(spec["rounds"]):  # the models in alternating blocks: all see the same load
            for name, it in its.items():
                block, began = 0, time.perf_counter()
                while block < per_round or time.perf_counter() - began < spec["block_s"]:
                    start = time.perf_counter()
                    it.invoke()
                    times[name].append(time.perf_counter() - start)
                    block += 1
        for name in its:
            result["us"].setdefault(name, {})[threads] = statistics.median(times[name]) * 1e6
        del its
    return result


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(Path(sys.argv[1]).read_text()))))
