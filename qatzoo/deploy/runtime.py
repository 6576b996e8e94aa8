"""What a deployment runtime declares, and the registry the deployment report is built from.

A runtime is one module (:mod:`qatzoo.deploy.litert_cpu`, :mod:`~qatzoo.deploy.tflm`,
:mod:`~qatzoo.deploy.vela`) that defines a :class:`Runtime`: its key in the report, how it measures a
model file, the typed model its section is read back with, its card line, its part of the one-line summary
and its zoo README column. The report (:mod:`qatzoo.deploy.report`), its validation, the card and the zoo
table loop over :data:`qatzoo.deploy.RUNTIMES`; nothing else names a runtime.

The registry is a plain list filled by one explicit line (``qatzoo/deploy/__init__.py``), not by import
side effects; :meth:`Registry.added` adds one for a block (a test's, a plugin's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from qatzoo.artifacts import Record


@dataclass(frozen=True, eq=False)
class ModelFile:
    """What a runtime measures: the int8 flatbuffer and what the caller knows about it.

    ``x``: float inputs (batch first; the test split, or random ones) that a runtime quantizes with the
    model's input scale as a deployment would; ``float_model``: the float flatbuffer (for a latency ratio);
    ``score``: the task metric of dequantized outputs; ``predictions``: the int8 file's LiteRT outputs on
    ``x`` when the caller has them; ``timed_runs``: timed invokes for a runtime that times the model
    (``None``: its default); ``inputs``: what ``x`` is when it is not the test split ("100 random inputs").
    """

    int8: bytes
    x: np.ndarray | None = None
    float_model: bytes | None = None
    score: Callable[[np.ndarray], float] | None = None
    predictions: np.ndarray | None = None
    timed_runs: int | None = None
    inputs: str | None = None


@dataclass(frozen=True)
class ZooColumn:
    """A runtime's column of the zoo README table: ``header``, its ``name`` in the sentence above the table,
    and ``cell(section, text)`` (``text`` escapes a string for a table cell)."""

    header: str
    name: str
    cell: Callable[[dict, Callable[[str], str]], str]


@dataclass(frozen=True)
class Runtime:
    """One deployment runtime.

    ``key``: its section of the report; ``measure``: that section (plain JSON data) of a :class:`ModelFile`;
    ``model``: the strict :class:`~qatzoo.artifacts.Record` a section read from a file is validated with;
    ``card_line(section, report, unit)``: its bullet on the card (without the ``- ``); ``summary(section,
    report)``: its part of the one-line summary; ``zoo``: its zoo README column, or ``zoo_note``: what the
    README says of it instead. ``required``: a report without the section is malformed (a runtime added
    later can be ``False``, so reports written before it still read). ``extra``: the pip extra that installs
    it (:mod:`qatzoo.extras`), None when the zoo client's own packages run it.
    """

    key: str
    measure: Callable[[ModelFile], dict]
    model: type[Record]
    card_line: Callable[[dict, dict, str], str]
    summary: Callable[[dict, dict], str]
    zoo: ZooColumn | None = None
    zoo_note: str | None = None
    required: bool = True
    extra: str | None = None


class Registry:
    """The runtimes, in the order of the report, the card and the summary."""

    def __init__(self, *runtimes: Runtime):
        self._runtimes: list[Runtime] = []
        for runtime in runtimes:
            self.register(runtime)

    def register(self, runtime: Runtime) -> Runtime:
        if runtime.key in self:
            raise ValueError(f"a deployment runtime {runtime.key!r} is registered already")
        self._runtimes.append(runtime)
        return runtime

    def unregister(self, key: str) -> None:
        self._runtimes.remove(self[key])

    @contextmanager
    def added(self, runtime: Runtime) -> Iterator[Runtime]:
        """``runtime`` registered for the ``with`` block."""
        self.register(runtime)
        try:
            yield runtime
        finally:
            self.unregister(runtime.key)

    def __iter__(self) -> Iterator[Runtime]:
        return iter(tuple(self._runtimes))

    def __contains__(self, key) -> bool:
        return any(r.key == key for r in self._runtimes)

    def __getitem__(self, key: str) -> Runtime:
        for runtime in self._runtimes:
            if runtime.key == key:
                return runtime
        raise KeyError(key)

    def keys(self) -> list[str]:
        return [r.key for r in self._runtimes]
