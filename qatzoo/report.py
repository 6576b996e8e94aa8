"""The typed result of a run: :class:`RunReport`, written once to a schema-versioned metrics.json and
read back typed by every consumer (card, publish, sweep summary, W&B, scripts); and :class:`RunDir`,
the run directory's named paths with one atomic writer.

metrics.json keeps the shape it always had (``results[model][metric]``, ``int8.parity``, ...), plus
``schema``; a consumer reads it with :meth:`RunReport.read` and gets attributes, not string keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, WrapValidator, model_validator

from qatzoo.artifacts import (
    ABSENT,
    Count,
    FiniteFloat,
    NonNegative,
    Quantization,
    Record,
    Sha256,
    finite,
    one_line,
    one_of,
    parse_json,
    read_bounded,
    rule,
)
from qatzoo.contract import Contract
from qatzoo.deploy.report import Deployment
from qatzoo.errors import TrainingError
from qatzoo.files import write_bytes, write_json
from qatzoo.task import KINDS, Task

#: Version of metrics.json's layout. 1: this layout with ``schema``, ``files`` and the typed fields below.
SCHEMA_VERSION = 1
#: A metrics.json larger than this is not read (one is some tens of kilobytes).
MAX_BYTES = 64 * 1024 * 1024

#: Model names in the order they are reported.
MODELS = ("float", "float_tflite", "ptq_int8", "ptq_a16w8", "qat", "qat_int8")
METRICS = ("accuracy", "mae")
TASKS = KINDS


class ReportError(ValueError):
    """A metrics.json that is not a complete run report; ``str()`` is one line."""


def _as_is(value, handler):
    handler(value)  # validated: a bad value raises here, naming its field
    return value


#: Validated against the type it annotates, then kept as the JSON it was (for sections other code copies
#: into files as they are: the index entry's baselines, the recorded hashes publish checks).
AsIs = WrapValidator(_as_is)


class Scores(Record):
    accuracy: FiniteFloat = ABSENT
    mae: FiniteFloat = ABSENT


class Results(Record):
    """One model's scores per name (``report.results.qat_int8.accuracy``); iterates over the names present."""

    float: Scores | None = None
    float_tflite: Scores | None = None
    ptq_int8: Scores | None = None
    ptq_a16w8: Scores | None = None
    qat: Scores | None = None
    qat_int8: Scores | None = None


class Scheme(Record):
    """What the quantization scheme was (:class:`qatzoo.quant.spec.Spec` fields for a QAT scheme)."""

    qat: bool = ABSENT
    int8: bool = ABSENT
    runtime: str = ABSENT
    kept_float: list[str] = []
    layers: dict[str, str] = {}
    weight_bits: Count = ABSENT
    activation_bits: Count = ABSENT
    weight_symmetric: bool = ABSENT
    weight_narrow_range: bool = ABSENT
    activation_symmetric: bool = ABSENT
    per_channel: bool = ABSENT
    range: str = ABSENT


class SplitSizes(Record):
    train: Count
    val: Count
    test: Count


class Dataset(Record):
    sizes: SplitSizes
    builder: str | None = None
    version: str | None = None


class FileSizes(Record):
    float_tflite: Count = ABSENT
    int8_tflite: Count = ABSENT
    int8_over_float: NonNegative = ABSENT
    int8_packed: Count = ABSENT
    packed_over_float: NonNegative = ABSENT


class FileRecord(Record):
    bytes: Count
    sha256: Sha256


class Parity(Record):
    """The int8 model against its Keras model: agreement (classification) or MAE gap (forecast)."""

    passed: bool = Field(alias="pass")
    threshold: FiniteFloat = ABSENT
    agreement: FiniteFloat = ABSENT
    mae_gap: FiniteFloat = ABSENT
    mean_abs_diff: FiniteFloat = ABSENT


class Int8(Record):
    input: Quantization
    output: Quantization
    ops: list[str] = []
    full_integer: bool
    non_integer_tensors: list[dict] = []
    parity_reference: str | None = None
    parity: Parity


class Checks(Record):
    full_integer: bool
    parity: bool


class PtqInt8(Record):
    full_integer: bool


class Lowbit(Record):
    weight_bits: Count
    kernels: Count
    kernels_on_grid: Count
    file_bytes: Count
    packed_bytes: Count
    storage: list[str] = []


class Baseline(Record):
    """A classical model on the same split (:mod:`qatzoo.baselines`): test and validation metric, what it is."""

    accuracy: FiniteFloat = ABSENT
    mae: FiniteFloat = ABSENT
    val_accuracy: FiniteFloat = ABSENT
    val_mae: FiniteFloat = ABSENT
    about: str = ""


#: name -> baseline, kept as plain JSON (an index entry copies it).
Baselines = Annotated[dict[str, Baseline], AsIs]


Probability = Annotated[float, rule(lambda v: isinstance(v, float) and 0.0 <= v <= 1.0, "a p-value in [0, 1]")]


class StepTest(Record):
    p: Probability
    statistic: FiniteFloat


class Comparison(Record):
    """The int8 model against one baseline on the same test examples (:func:`qatzoo.significance.compare`)."""

    test: one_of("diebold_mariano", "mcnemar")
    p: Probability
    statistic: FiniteFloat
    verdict: one_of("beats", "ties", "loses")
    per_step: list[StepTest] = ABSENT
    only_model: Count = ABSENT
    only_baseline: Count = ABSENT


class Significance(Record):
    """The int8 model against every baseline, and the strongest one (:func:`qatzoo.significance.against`)."""

    alpha: Probability
    best: str
    baselines: dict[str, Comparison]

    @model_validator(mode="after")
    def _best_is_compared(self):
        if self.best not in self.baselines:
            raise ValueError(f"best baseline {self.best[:40]!r} has no comparison")
        return self


class PtqMethod(Record):
    """One post-training file at the scheme's widths: its test metric and size, or why there is none."""

    accuracy: FiniteFloat = ABSENT
    mae: FiniteFloat = ABSENT
    bytes: Count = ABSENT
    p_vs_float: Probability = ABSENT
    full_integer: bool = ABSENT
    note: str = ABSENT
    kept_8bit: list[str] = ABSENT
    error: str = ABSENT


class PtqBaselines(Record):
    """The strongest PTQ at the scheme's widths against the QAT int8 file (:func:`qatzoo.export.ptq_suite.summarize`)."""

    widths: str
    methods: dict[str, PtqMethod]
    reference: dict[str, PtqMethod] = {}
    float: FiniteFloat
    qat_int8: FiniteFloat
    best: str = ABSENT
    recovered: FiniteFloat | None = None


def wider(summary: dict) -> str:
    """What makes the best PTQ file wider than the scheme's widths: the kernel ops the quantizer kept at 8 bits
    where the scheme's weights are narrower (4 bits: depthwise convolutions), as a clause; "" when none. QAT
    compared with that file is not compared at the same widths: a rule giving those layers 8-bit weights is."""
    kept = summary["methods"].get(summary.get("best"), {}).get("kept_8bit") or []
    bits = str(summary.get("widths", ""))[1:].partition("a")[0]  # "w4a8"; an index's odd string: no clause
    return f"; its {', '.join(kept)} kernels stayed 8-bit" if kept and bits.isdigit() and int(bits) < 8 else ""


def unscored(baselines: dict, metric: str) -> str | None:
    """The line saying which baseline has no test value of ``metric`` (``None``: all have one)."""
    name = next((n for n, values in baselines.items() if values.get(metric) is None), None)
    return None if name is None else f"baselines.{name[:40]}.{metric} is not a finite number"


class RunReport(BaseModel):
    """Everything a finished run reports. Numbers of int8 models come from LiteRT on the test split.

    Built in the run (its fields validated as they are set: a non-finite number is the trainer's one-line
    TrainingError naming it) or read back from metrics.json (:meth:`read`: ReportError, one line).
    """

    model_config = ConfigDict(
        strict=True, validate_assignment=True, extra="ignore", allow_inf_nan=False, populate_by_name=True
    )

    name: str
    arch: str
    data: str
    quant: str
    scheme: Scheme
    task: str
    metric: str
    unit: str
    higher_is_better: bool
    int8_model: str | None
    dataset: Dataset
    results: Results
    validation: Results
    provenance: dict
    distribute: dict
    agreement: dict[str, FiniteFloat]
    command: str
    sizes: FileSizes = FileSizes()
    timing: dict[str, FiniteFloat] = {}
    files: Annotated[dict[str, FileRecord], AsIs] = {}
    int8: Int8 | None = None
    ptq_int8: PtqInt8 | None = None
    checks: Checks | None = None
    lowbit: Lowbit | None = None
    baselines: Baselines | None = None
    """Classical models on the same test split (:mod:`qatzoo.baselines`): name -> {metric, val_metric, about}."""
    ptq_baselines: Annotated[PtqBaselines, AsIs] | None = None
    """QAT runs: LiteRT's quantizer's algorithms at the scheme's widths, each file in LiteRT (:mod:`qatzoo.export.ptq_suite`)."""
    significance: Annotated[Significance, AsIs] | None = None
    """The int8 file's test predictions against each baseline's: Diebold-Mariano or McNemar (:mod:`qatzoo.significance`)."""
    contract: Contract | None = None
    """The model contract (:mod:`qatzoo.contract`): raw input, preprocessing, int8 I/O, output meaning."""
    deployment: Deployment | None = None
    """How the int8 file runs on LiteRT's CPU, TensorFlow Lite Micro and an Ethos-U55 (:mod:`qatzoo.deploy.report`)."""
    version: int = Field(SCHEMA_VERSION, alias="schema")

    @model_validator(mode="wrap")
    @classmethod
    def _finite_in_the_run(cls, data, handler, info: ValidationInfo):
        """In the run (no ``reading`` context), a non-finite number stops it with the trainer's one line."""
        try:
            return handler(data)
        except ValidationError as error:
            first = error.errors()[0]
            value = first.get("input")
            if (info.context or {}).get("reading") or not (isinstance(value, float) and not finite(value)):
                raise
            where = ".".join(str(p) for p in first["loc"])
            raise TrainingError(
                f"metric {where} is {value}: the model's outputs are not finite; no metrics.json written"
            ) from None

    # ---- typed reading

    @property
    def schema(self) -> int:
        return self.version

    @property
    def task_kind(self) -> Task:
        return Task(self.task, target_unit=self.unit if self.task == "forecast" else "")

    def value(self, model: str, split: str = "test") -> float | None:
        """The metric of ``model`` (``float``, ``qat_int8``, ...) on the test or validation split."""
        scores = getattr(self.results if split == "test" else self.validation, model, None) if model else None
        return getattr(scores, self.metric, None) if isinstance(scores, Scores) else None

    @property
    def int8_value(self) -> float | None:
        return self.value(self.int8_model) if self.int8_model else None

    def format(self, value: float | None) -> str:
        return self.task_kind.format(value)

    @property
    def passed(self) -> bool:
        """The int8 model passed the full-integer and parity checks."""
        return bool(self.checks and self.checks.full_integer and self.checks.parity)

    # ---- JSON

    def to_dict(self) -> dict:
        """metrics.json's content: optional sections that are empty are left out."""
        out = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None and info.default is None:
                continue
            out[info.alias or name] = value.plain if isinstance(value, Record) else value
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "metrics.json") -> RunReport:
        """A report from parsed JSON, its fields checked for presence and type."""
        if not isinstance(data, dict):
            raise ReportError(f"{where} is not a run report (not a JSON object)")
        try:
            report = cls.model_validate(data, context={"reading": True})
        except ValidationError as error:
            raise ReportError(f"{where} is not a complete run report ({one_line(error)})") from None
        problem = report._incomplete()
        if problem:
            raise ReportError(f"{where} is not a complete run report ({problem})")
        return report

    def _incomplete(self) -> str | None:
        """What a report read back needs beyond its fields' types (a report being built may lack it yet)."""
        if self.metric not in METRICS or self.task not in TASKS:
            return f"unknown metric {self.metric!r} or task {self.task!r}"
        for table in ("results", "validation"):
            for model in getattr(self, table):
                if self.value(model, "test" if table == "results" else "val") is None:
                    return f"{table}.{model}.{self.metric} is not a finite number"
        if self.int8_model is not None and (self.int8_model not in self.results or self.int8 is None):
            return f"int8_model {self.int8_model!r} has no results or no int8 section"
        return unscored(self.baselines, self.metric) if self.baselines is not None else None

    @classmethod
    def read(cls, run_dir: str | Path) -> RunReport:
        """The report of the run in ``run_dir``; ReportError (one line) if it is missing or malformed."""
        path = Path(run_dir) / "metrics.json"
        try:
            data = parse_json(read_bounded(path, MAX_BYTES))
        except FileNotFoundError:
            raise ReportError(f"{path.parent} has no metrics.json: the run did not finish") from None
        except (OSError, ValueError, RecursionError) as error:
            raise ReportError(f"{path} is not a readable run report ({type(error).__name__})") from None
        return cls.from_dict(data, str(path))


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

    def write(self, path: Path, content: bytes | str | dict | Record) -> dict:
        """Write ``content`` atomically to ``path`` (inside this run); return its size and sha256."""
        if isinstance(content, Record):
            content = content.plain
        if isinstance(content, dict):
            write_json(path, content)
            blob = path.read_bytes()
        else:
            blob = content.encode() if isinstance(content, str) else content
            write_bytes(path, blob)
        return {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
