"""The deployment report of an int8 file: how it runs on each registered runtime (:data:`qatzoo.deploy.RUNTIMES`).

Each runtime's module (``qatzoo/deploy/<runtime>.py``) says what its section holds, how it is measured,
read back, put on the card and into the summary; this module only loops over them. The report is data
(plain JSON types), written into metrics.json, the card and the zoo index, and read back with
:func:`problem` (the index's and the run report's strict readers, through :data:`Deployment`) and
:func:`lines` (card and ``qatzoo check``). A runtime that cannot take the model is part of the report
(``runs: false``, ``error``), not an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field, ValidationError, create_model

from qatzoo.artifacts import ABSENT, Dtype, Record, one_line, one_of
from qatzoo.deploy import RUNTIMES
from qatzoo.deploy.runtime import ModelFile, Runtime

#: Version of the report's layout.
SCHEMA_VERSION = 1


def build(
    int8: bytes,
    float_model: bytes | None,
    x: np.ndarray,
    score: Callable[[np.ndarray], float] | None = None,
    *,
    latency_runs: int | None = None,
    predictions: np.ndarray | None = None,
    inputs: str | None = None,
    runtimes=None,
) -> dict:
    """The report of the int8 flatbuffer ``int8`` (and its float model, for the CPU ratio).

    ``x``: float inputs of the test split (batch first), quantized with the model's input scale and zero
    point as a deployment would; ``score``: the task metric of dequantized outputs (``None``: not scored);
    ``predictions``: ``int8``'s LiteRT outputs on ``x`` when the caller has them (``litert.predict``), so
    the file is not run over ``x`` again; ``latency_runs``: timed invokes (``None``: the runtime's default);
    ``inputs``: what ``x`` is when it is not the test split; ``runtimes``: the runtimes measured (default:
    every registered one).
    """
    from qatzoo.export import litert

    file = ModelFile(int8, x, float_model, score, predictions, latency_runs, inputs)
    return {
        "schema": SCHEMA_VERSION,
        # int8, or int16 for a file with 16-bit activations (quant=ptq_a16w8): what the "int8" numbers are of.
        "activations": litert.io_quant(litert.interpreter(int8))[0].dtype,
        **{runtime.key: runtime.measure(file) for runtime in (RUNTIMES if runtimes is None else runtimes)},
    }


def measure(key: str, int8: bytes, x: np.ndarray | None = None, **known) -> dict:
    """One runtime's section on its own (``known``: the other :class:`ModelFile` fields)."""
    return RUNTIMES[key].measure(ModelFile(int8, x, **known))


def __getattr__(name: str):
    # ``report.<runtime key>(int8, x, ...)``: one runtime's section, as scripts/engine_compare.py calls it.
    if name in RUNTIMES:
        return lambda int8, x=None, **known: measure(name, int8, x, **known)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def installed() -> tuple[list, list[str]]:
    """The registered runtimes whose extra is installed, and the extras of those that are not."""
    from qatzoo import extras

    absent = {r.extra for r in RUNTIMES if r.extra and extras.missing(r.extra)}
    return [r for r in RUNTIMES if r.extra not in absent], sorted(absent)


def of_file(path: str | Path, float_path: str | Path | None = None, latency_runs: int | None = None) -> dict:
    """The report of a .tflite on its own (``qatzoo check``): random inputs, no metric; the installed runtimes."""
    from qatzoo.export import litert

    blob = Path(path).read_bytes()
    shape = litert.interpreter(blob).get_input_details()[0]["shape"][1:]
    x = np.random.default_rng(0).uniform(-1.0, 1.0, size=(100, *shape)).astype(np.float32)
    float_model = Path(float_path).read_bytes() if float_path else None
    runtimes, _ = installed()
    return build(blob, float_model, x, latency_runs=latency_runs, inputs="100 random inputs", runtimes=runtimes)


# ---- reading (the run report's and the zoo index's strict readers)


@lru_cache(maxsize=8)
def deployment_model(runtimes: tuple[Runtime, ...]) -> type[Record]:
    """The strict model of a report with these runtimes' sections (each read with its runtime's model)."""
    sections = {r.key: (r.model, ... if r.required else ABSENT) for r in runtimes}
    return create_model(
        "Deployment",
        __base__=Record,
        __doc__="A deployment report read back (metrics.json, an index entry).",
        version=(one_of(SCHEMA_VERSION), Field(alias="schema")),
        activations=(Dtype, ABSENT),
        **sections,
    )


#: A deployment report read back (metrics.json, an index entry): the registered runtimes' sections.
Deployment = deployment_model(tuple(RUNTIMES))


def problem(report) -> str | None:
    """What is wrong with a deployment report read from a file (``None``: a well-formed one)."""
    try:
        deployment_model(tuple(RUNTIMES)).model_validate(report)
    except ValidationError as error:
        return one_line(error, "deployment")
    return None


def lines(report: dict, unit: str = "") -> list[str]:
    """The report as markdown bullet lines (card, ``qatzoo check``), one per runtime in the report."""
    return [f"- {r.card_line(report[r.key], report, unit)}" for r in RUNTIMES if r.key in report]


def summary(report: dict) -> str:
    """One line: each registered runtime's part of it, in order, joined by " | "."""
    return " | ".join(r.summary(report[r.key], report) for r in RUNTIMES if r.key in report)
