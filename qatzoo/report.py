"""The typed result of a run: :class:`RunReport`, written once to a schema-versioned metrics.json and
read back typed by every consumer (card, publish, sweep summary, W&B, scripts); and :class:`RunDir`,
the run directory's named paths with one atomic writer.

metrics.json keeps the shape it always had (``results[model][metric]``, ``int8.parity``, ...), plus
``schema``; a consumer reads it with :meth:`RunReport.read` and gets attributes, not string keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qatzoo.files import write_bytes, write_json
from qatzoo.task import Task

#: Version of metrics.json's layout. 1: this layout with ``schema``, ``files`` and the typed fields below.
SCHEMA_VERSION = 1

#: Model names in the order they are reported.
MODELS = ("float", "float_tflite", "ptq_int8", "ptq_a16w8", "qat", "qat_int8")


class ReportError(ValueError):
    """A metrics.json that is not a complete run report; ``str()`` is one line."""


@dataclass
class RunReport:
    """Everything a finished run reports. Numbers of int8 models come from LiteRT on the test split."""

    name: str
    arch: str
    data: str
    quant: str
    scheme: dict
    task: str
    metric: str
    unit: str
    higher_is_better: bool
    int8_model: str | None
    dataset: dict
    results: dict[str, dict[str, float]]
    validation: dict[str, dict[str, float]]
    provenance: dict
    distribute: dict
    agreement: dict[str, float]
    command: str
    sizes: dict[str, float] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    int8: dict | None = None
    ptq_int8: dict | None = None
    checks: dict | None = None
    lowbit: dict | None = None
    baselines: dict | None = None
    """Classical models on the same test split (:mod:`qatzoo.baselines`): name -> {metric, val_metric, about}."""
    contract: dict | None = None
    """The model contract (:mod:`qatzoo.contract`): raw input, preprocessing, int8 I/O, output meaning."""
    deployment: dict | None = None
    """How the int8 file runs on LiteRT's CPU, TensorFlow Lite Micro and an Ethos-U55 (:mod:`qatzoo.deploy.report`)."""
    schema: int = SCHEMA_VERSION

    # ---- typed reading

    @property
    def task_kind(self) -> Task:
        return Task(self.task, target_unit=self.unit if self.task == "forecast" else "")

    def value(self, model: str, split: str = "test") -> float | None:
        """The metric of ``model`` (``float``, ``qat_int8``, ...) on the test or validation split."""
        table = self.results if split == "test" else self.validation
        return table.get(model, {}).get(self.metric) if model else None

    @property
    def int8_value(self) -> float | None:
        return self.value(self.int8_model) if self.int8_model else None

    def format(self, value: float | None) -> str:
        return self.task_kind.format(value)

    @property
    def passed(self) -> bool:
        """The int8 model passed the full-integer and parity checks."""
        return bool(self.checks and self.checks.get("full_integer") is True and self.checks.get("parity") is True)

    # ---- JSON

    def to_dict(self) -> dict:
        """metrics.json's content: optional sections that are empty are left out."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in (
                "int8",
                "ptq_int8",
                "checks",
                "lowbit",
                "baselines",
                "contract",
                "deployment",
            ):
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "metrics.json") -> RunReport:
        """A report from parsed JSON, its required fields checked for presence and type."""
        if not isinstance(data, dict):
            raise ReportError(f"{where} is not a run report (not a JSON object)")
        names = {f.name for f in dataclasses.fields(cls)}
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [key for key in required if key not in data]
        if missing:
            raise ReportError(f"{where} is not a complete run report (missing {missing[0]!r})")
        report = cls(**{k: v for k, v in data.items() if k in names})
        problem = report._problem()
        if problem:
            raise ReportError(f"{where} is not a complete run report ({problem})")
        return report

    def _problem(self) -> str | None:
        for key in ("name", "arch", "data", "quant", "task", "metric", "unit", "command"):
            if not isinstance(getattr(self, key), str):
                return f"{key} is not a string"
        if self.metric not in ("accuracy", "mae") or self.task not in ("classification", "forecast"):
            return f"unknown metric {self.metric!r} or task {self.task!r}"
        for key in ("scheme", "dataset", "results", "validation", "provenance", "distribute", "agreement"):
            if not isinstance(getattr(self, key), dict):
                return f"{key} is not an object"
        for table in ("results", "validation"):
            for model, values in getattr(self, table).items():
                value = values.get(self.metric) if isinstance(values, dict) else None
                if not _finite(value):
                    return f"{table}.{model}.{self.metric} is not a finite number"
        if self.int8_model is not None and (self.int8_model not in self.results or not isinstance(self.int8, dict)):
            return f"int8_model {self.int8_model!r} has no results or no int8 section"
        sizes = self.dataset.get("sizes")
        if not isinstance(sizes, dict) or not all(isinstance(sizes.get(k), int) for k in ("train", "val", "test")):
            return "dataset.sizes is not {train, val, test} counts"
        for key in ("sizes", "timing", "files"):
            if not isinstance(getattr(self, key), dict):
                return f"{key} is not an object"
        for name, record in self.files.items():
            if not (
                isinstance(record, dict)
                and isinstance(record.get("bytes"), int)
                and isinstance(record.get("sha256"), str)
            ):
                return f"files.{name} is not {{bytes, sha256}}"
        for key in ("int8", "ptq_int8", "checks", "lowbit"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), dict):
                return f"{key} is not an object"
        if self.baselines is not None:
            trouble = baselines_problem(self.baselines, self.metric)
            if trouble:
                return trouble
        if self.contract is not None:
            from qatzoo.contract import problem as contract_problem

            trouble = contract_problem(self.contract)
            if trouble:
                return trouble
        if self.deployment is not None:
            from qatzoo.deploy.report import problem

            return problem(self.deployment)
        return None

    @classmethod
    def read(cls, run_dir: str | Path) -> RunReport:
        """The report of the run in ``run_dir``; ReportError (one line) if it is missing or malformed."""
        path = Path(run_dir) / "metrics.json"

        def no_constants(name):
            raise ValueError(f"{name} is not a number")

        try:
            data = json.loads(path.read_bytes(), parse_constant=no_constants)
        except FileNotFoundError:
            raise ReportError(f"{path.parent} has no metrics.json: the run did not finish") from None
        except (OSError, ValueError, RecursionError) as error:
            raise ReportError(f"{path} is not a readable run report ({type(error).__name__})") from None
        return cls.from_dict(data, str(path))


def baselines_problem(baselines, metric: str) -> str | None:
    """What is wrong with a baselines table read from a file (``None``: well formed)."""
    if not isinstance(baselines, dict):
        return "baselines is not an object"
    for name, values in baselines.items():
        if not (isinstance(name, str) and isinstance(values, dict) and _finite(values.get(metric))):
            return f"baselines.{str(name)[:40]}.{metric} is not a finite number"
        if not isinstance(values.get("about", ""), str) or (
            "val_" + metric in values and not _finite(values["val_" + metric])
        ):
            return f"baselines.{name[:40]} has a malformed about or val_{metric}"
    return None


def _finite(value) -> bool:
    """A finite float64 number (not a bool; an integer too large for a float64 is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return abs(value) <= 2**53 if isinstance(value, int) else math.isfinite(value)


@dataclass(frozen=True)
class RunDir:
    """A run directory's files by name, and the one way to write them (temporary file, then rename)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def card(self) -> Path:
        return self.path / "card.md"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def contract(self) -> Path:
        return self.path / "contract.json"

    @property
    def float_keras(self) -> Path:
        return self.path / "model_float.keras"

    #: The .tflite file each exported model is written to.
    MODEL_FILES = {"float": "model_float.tflite", "ptq_int8": "model_ptq_int8.tflite", "int8": "model_int8.tflite"}

    def model(self, kind: str) -> Path:
        return self.path / self.MODEL_FILES[kind]

    def finished(self) -> bool:
        return self.metrics.is_file()

    def write(self, path: Path, content: bytes | str | dict) -> dict:
        """Write ``content`` atomically to ``path`` (inside this run); return its size and sha256."""
        if isinstance(content, dict):
            write_json(path, content)
            blob = path.read_bytes()
        else:
            blob = content.encode() if isinstance(content, str) else content
            write_bytes(path, blob)
        return {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
