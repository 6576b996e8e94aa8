"""The run config's schema: every field's type, bounds and choices, and the rules across fields, in one place.

One pydantic model per group option (for ``quant`` told apart by ``qat``, for ``logger`` by ``_target_``); an
``arch`` or ``data`` option is checked against the signature of the function it names, so ``arch.num_heads=4``
with ``arch=mnist_cnn`` is refused by name. The YAML files in ``conf/``
hold the values; these models say what a value may be. :func:`check` validates a resolved config (plain
data) and turns pydantic's report into one line. Imports only pydantic and plain Python: no TensorFlow.

An architecture or a dataset is not declared here: its fields are its function's keyword arguments
(:mod:`qatzoo.signature`), so adding one is its module and its YAML file.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, ClassVar, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic.fields import FieldInfo

from qatzoo.engine import LEGACY as LEGACY_ENGINE
from qatzoo.errors import ConfigError
from qatzoo.quant.spec import MAX_BITS, MIN_BITS, RANGES, Spec, check_pattern
from qatzoo.signature import arguments_model
from qatzoo.task import KINDS


def _existing_file(path: str | None) -> str | None:
    if path is not None and not Path(os.path.expanduser(path)).is_file():
        raise ValueError
    return path


def _resume(value: str) -> str:
    if value not in ("auto", "never") and not (Path(os.path.expanduser(value)) / "config.yaml").is_file():
        raise ValueError
    return value


def _low_high(low_high: list[float]) -> list[float]:
    if not (len(low_high) == 2 and low_high[0] <= 0.0 <= low_high[1] and low_high[0] < low_high[1]):
        raise ValueError
    return low_high


Bits = Annotated[int, Field(ge=MIN_BITS, le=MAX_BITS)]


class Group(BaseModel):
    """Strict: no extra fields, no string-to-number or bool-to-int coercion, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


# --- arch and data: a function and its keyword arguments, checked against its signature --------------------

TASKS = KINDS


class _Component(Group):
    """An ``arch`` or ``data`` option: the function it names (``_target_``), its name and task, and the
    keyword arguments it passes, checked against that function's signature (:mod:`qatzoo.signature`)."""

    #: The group's name, and the arguments the builder supplies itself.
    GROUP: ClassVar[str] = ""
    INJECTED: ClassVar[tuple[str, ...]] = ()

    target: str = Field(alias="_target_")
    name: str
    task: Literal[TASKS]
    arguments: dict

    @model_validator(mode="before")
    @classmethod
    def _check_arguments(cls, value):
        if not isinstance(value, dict) or not isinstance(value.get("_target_"), str) or "arguments" in value:
            return value  # not a mapping, or no target: the fields' own checks name it
        target = value["_target_"]
        try:
            model = arguments_model(target, cls.INJECTED)
        except ConfigError as error:
            raise ConfigError(f"{cls.GROUP}._target_: {error}") from None
        # ``name`` and ``task`` describe the option; a loader also takes its name (the dataset's).
        given = {k: v for k, v in value.items() if k not in ("_target_", "task", *({"name"} - set(model.model_fields)))}
        try:
            checked = model.model_validate(given)
        except ValidationError as error:
            raise ConfigError(_argument_line(cls, target, model, error.errors()[0])) from None
        kept = {k: value[k] for k in ("name", "task") if k in value}
        return {"_target_": target, **kept, "arguments": checked.model_dump(exclude_unset=True)}


class Arch(_Component):
    """``arch``: an architecture factory ``f(*, input_shape, num_outputs, **arguments)`` (qatzoo/models/)."""

    GROUP: ClassVar[str] = "arch"
    INJECTED: ClassVar[tuple[str, ...]] = ("input_shape", "num_outputs")


class Data(_Component):
    """``data``: a loader ``f(*, name, **arguments)`` returning Splits (qatzoo/data/load.py)."""

    GROUP: ClassVar[str] = "data"


def _argument_line(component: type[_Component], target: str, model: type[BaseModel], error: dict) -> str:
    """pydantic's report on a function's arguments as one line, named ``arch.<field>`` / ``data.<field>``."""
    group, loc = component.GROUP, error["loc"]
    if len(loc) == 1 and error["type"] == "extra_forbidden":
        fields = sorted({*model.model_fields, "name", "task"})
        hint = _suggestion(f"{group}.{loc[0]}", fields, None)
        return f"{group}.{loc[0]}: unknown field{hint}; {group} fields are: {', '.join(fields)}"
    if len(loc) == 1 and error["type"] == "missing":
        return (
            f"{group}.{loc[0]}: missing; {target} takes it without a default ({_describe(model.model_fields[loc[0]])})"
        )
    return _line(error, root=model, prefix=group)


# --- quant: float or PTQ (no knobs) and QAT (the knobs of conf/quant_knobs.yaml) ----------------------------


class NoQat(Group):
    target: Literal["qatzoo.quant.schemes.scheme"] = Field(alias="_target_")
    name: str
    qat: Literal[False]
    int8: bool
    # The post-training file's activations: int16 is quant=ptq_a16w8 (int8 weights, LiteRT's 16x8 kernels).
    activations: Literal["int8", "int16"] = "int8"


class BitsRule(Group):
    """One entry of ``quant.rules``: other bit widths for the layers ``match`` selects."""

    match: str
    weight_bits: Bits | None = None
    activation_bits: Bits | None = None


class Qat(Group):
    target: Literal["qatzoo.quant.schemes.scheme"] = Field(alias="_target_")
    name: str
    qat: Literal[True]
    int8: bool
    weight_bits: Bits
    activation_bits: Bits
    per_channel: bool
    weight_symmetric: bool
    weight_narrow_range: bool
    activation_per_channel: bool
    activation_symmetric: bool
    activation_narrow_range: bool
    range: Literal[RANGES]
    ema_decay: float = Field(gt=0, lt=1)
    fixed_range: Annotated[list[float], AfterValidator(_low_high)] = Field(
        description="[low, high] with low <= 0 <= high, low < high"
    )
    keep_float: list[str]
    rules: list[BitsRule]
    # How the int8 file stores kernels on a sub-8-bit grid: int4 (packed by the converter), int8 (a byte each:
    # quant=w4a8_npu, for TFLite Micro and Vela) or int4_dense (INT4 FULLY_CONNECTED kernels, convolutions a byte
    # each: quant=w4a8_cpu, the file LiteRT's XNNPACK runs whole on a CPU).
    storage: Literal["int4", "int8", "int4_dense"] = "int4"

    @model_validator(mode="after")
    def _exportable(self) -> Qat:
        """Combinations no runtime or converter can honour."""
        if self.activation_per_channel:
            raise ConfigError(
                "quant.activation_per_channel: must be false; LiteRT's int8 kernels take one activation range "
                "per tensor (per_channel=true gives weights one scale per output channel)"
            )
        for pattern in self.keep_float:
            if problem := check_pattern(pattern):
                raise ConfigError(f"quant.keep_float: {problem}")
        for i, rule in enumerate(self.rules):
            if problem := check_pattern(rule.match):
                raise ConfigError(f"quant.rules[{i}].match: {problem}")
            if rule.weight_bits is None and rule.activation_bits is None:
                raise ConfigError(
                    f"quant.rules[{i}]: sets neither weight_bits nor activation_bits, so it changes nothing"
                )
        if self.int8:
            low = Spec.from_config(self.model_dump()).lowest_activation_bits
            if low < 8:
                raise ConfigError(
                    f"quant.activation_bits: {low}-bit activations cannot be exported (LiteRT's kernels take 8-bit "
                    "activations); set quant.int8=false to train and evaluate in fake quant only"
                )
            if not self.weight_symmetric:
                raise ConfigError(
                    "quant.weight_symmetric: int8 export needs symmetric weights (LiteRT's int8 weights have zero "
                    "point 0); set quant.int8=false to study asymmetric weights in fake quant only"
                )
        return self


# --- schedule, trainer, logger ---------------------------------------------------------------------------


class Schedule(Group):
    float_epochs: int = Field(ge=0)
    qat_epochs: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    qat_lr: float = Field(gt=0)


class Trainer(Group):
    seed: int = Field(ge=0, le=2**31 - 1)
    deterministic: bool
    threads: int = Field(ge=0)
    representative_samples: int = Field(ge=1)
    init_checkpoint: Annotated[str | None, AfterValidator(_existing_file)] = Field(
        description="a path to an existing file or null"
    )
    loop: Literal["tape", "fit"]
    strategy: Literal["none", "mirrored", "multi_worker"]
    verbose: int = Field(ge=0, le=3)  # 3: the libraries' own logs too (qatzoo/quiet.py)
    checkpoint_every_steps: int = Field(ge=0)
    resume: Annotated[str, AfterValidator(_resume)] = Field(description="auto, never, or a run directory")
    keep_checkpoints: int = Field(ge=1)
    epoch_weights: bool
    deployment: bool = True
    baselines: bool = True
    ptq_baselines: bool = True


class NoLogger(Group):
    target: Literal["qatzoo.track.none"] = Field(alias="_target_")


class CsvLogger(Group):
    target: Literal["qatzoo.track.CsvLogger"] = Field(alias="_target_")


class WandbLogger(Group):
    target: Literal["qatzoo.track.wandb.WandbLogger"] = Field(alias="_target_")
    project: str
    entity: str | None
    group: str | None
    mode: Literal["auto", "online", "offline", "disabled"]
    init_timeout: float = Field(gt=0)


class Engine(Group):
    """``engine``: which Keras and which QAT implementation the run uses (qatzoo/engine.py)."""

    name: Literal["keras3", "tfmot"]


class Paths(Group):
    data_dir: str
    runs_dir: str


class RunConfig(Group):
    """A composed, validated run config: one option per group, and the rules across groups.

    The object the code uses (attributes, not string keys). :attr:`plain` is the resolved config it was
    validated from, as plain data, in the order of the YAML: what config.yaml holds and the config hash covers.
    """

    name: str
    paths: Paths
    arch: Arch
    data: Data
    quant: Annotated[NoQat | Qat, Field(discriminator="qat")]
    schedule: Schedule
    trainer: Trainer
    logger: Annotated[NoLogger | CsvLogger | WandbLogger, Field(discriminator="target")]
    # Configs written before engines existed have none: they ran on tfmot (engine.LEGACY).
    engine: Engine = Engine(name=LEGACY_ENGINE)

    @model_validator(mode="after")
    def _groups_fit(self) -> RunConfig:
        arch, data = self.arch, self.data
        if arch.task != data.task:
            raise ConfigError(
                f"arch={arch.name} is a {arch.task} model but data={data.name} is a {data.task} dataset; "
                f"pick a {arch.task} dataset"
            )
        heads, dim = arch.arguments.get("num_heads"), arch.arguments.get("dim")
        if isinstance(heads, int) and isinstance(dim, int) and heads and dim % heads:
            raise ConfigError(f"arch.num_heads: must divide arch.dim={dim}, got {heads}")
        patch, window = arch.arguments.get("patch", 1), data.arguments.get("window")
        if isinstance(window, int) and isinstance(patch, int) and window % patch:
            raise ConfigError(f"arch.patch: must divide data.window={window}, got {patch}")
        if self.quant.qat and self.schedule.qat_epochs < 1:
            raise ConfigError(
                f"schedule.qat_epochs: expected an integer >= 1 with quant={self.quant.name} (QAT), got "
                f"{self.schedule.qat_epochs}; use quant=ptq_int8 for int8 without fine-tuning"
            )
        return self

    _plain: dict = PrivateAttr(default_factory=dict)

    @property
    def plain(self) -> dict:
        """The resolved config as plain data (a copy)."""
        return copy.deepcopy(self._plain)


def check(plain: dict) -> RunConfig:
    """The :class:`RunConfig` of the resolved config ``plain``; :class:`ConfigError` naming the first field
    that cannot work."""
    try:
        config = RunConfig.model_validate(plain)
    except ValidationError as error:
        raise ConfigError(_line(error.errors()[0], plain=plain)) from None
    config._plain = copy.deepcopy(plain)
    return config


# --- pydantic's report as one line ------------------------------------------------------------------------


def _suggestion(name: str, fields: list[str], plain: dict | None) -> str:
    """``; did you mean trainer.seed?`` for an unknown field: the same name in a group (a top-level ``seed=1``),
    or a close spelling among its parent's fields (``trainer.sed``)."""
    import difflib

    parent, _, leaf = name.rpartition(".")
    if not parent and isinstance(plain, dict):
        found = [f"{group}.{leaf}" for group, section in plain.items() if isinstance(section, dict) and leaf in section]
        if found:
            return f"; did you mean {' or '.join(found)}?"
    close = difflib.get_close_matches(leaf, fields, n=1, cutoff=0.75)
    return f"; did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""


def _line(error: dict, root: type[BaseModel] | None = None, prefix: str = "", plain: dict | None = None) -> str:
    """One pydantic error on ``root`` (the run config, or a function's arguments named under ``prefix``);
    ``plain``: the config validated, for suggestions."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        return str(cause)
    name, holder, field = _walk(error["loc"], root or RunConfig)
    name = f"{prefix}.{name}" if prefix else name
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, fields = name.rpartition(".")[0] or "top-level", _fields(holder)
        hint = _suggestion(name, fields, plain)
        return f"{name}: unknown field{hint}; {parent} fields are: {', '.join(fields) or 'none'}"
    if kind.startswith("union_tag"):
        key = field.discriminator
        members = get_args(field.annotation)
        tags = [_text(get_args(m.model_fields[key].annotation)[0]) for m in members]
        alias = members[0].model_fields[key].alias or key
        got = f"got {error['ctx']['tag']!r}" if kind == "union_tag_invalid" else "got none"
        return f"{name}.{alias}: expected one of {', '.join(tags)}, {got}"
    if kind == "missing":
        if holder is RunConfig and name in RunConfig.model_fields:
            return f"{name}: missing config group; pick one with {name}=OPTION"
        return f"{name}: missing; expected {_describe(field)}"
    if kind == "finite_number":
        return f"{name}: expected a finite number, got {error['input']}"
    return f"{name}: expected {_describe(field)}, got {error['input']!r}"


def _walk(loc: tuple, root: type[BaseModel]) -> tuple[str, type[BaseModel], FieldInfo | None]:
    """Follow an error location through the schema: its dotted name (union tags left out), the model that
    holds its last key, and the field there (None for a key the model does not have)."""
    name, holder, model, field = "", root, root, None
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if isinstance(part, int):  # a list index: the field is now the list's item
            name += f"[{part}]"
            field = FieldInfo.from_annotation(get_args(field.annotation)[0]) if field else None
            model = _model_in(field)
            continue
        holder = model
        field = _field(model, part) if model else None
        name = f"{name}.{part}" if name else str(part)
        if field is not None and field.discriminator and parts:
            tag = parts.pop(0)
            key = field.discriminator
            model = next(m for m in get_args(field.annotation) if tag in get_args(m.model_fields[key].annotation))
        else:
            model = _model_in(field)
    return name, holder, field


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    return next((f for n, f in model.model_fields.items() if key in (n, f.alias)), None)


def _fields(model: type[BaseModel]) -> list[str]:
    return sorted(f.alias or n for n, f in model.model_fields.items() if f.alias != "_target_")


def _model_in(field: FieldInfo | None) -> type[BaseModel] | None:
    annotation = field.annotation if field else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = get_args(annotation) if get_origin(annotation) is list else ()
    return args[0] if args and isinstance(args[0], type) and issubclass(args[0], BaseModel) else None


def _describe(field: FieldInfo | None) -> str:
    """What a field accepts, in words: "an integer >= 1", "one of tape, fit", "true or false or null"."""
    if field is None:
        return "nothing (unknown field)"
    return field.description or _words(field.annotation, field.metadata)


def _words(annotation, metadata: list) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        extra = [m for info in args[1:] for m in (info.metadata if isinstance(info, FieldInfo) else [info])]
        return _words(args[0], [*metadata, *extra])
    if type(None) in args:
        return _words(next(a for a in args if a is not type(None)), metadata) + " or null"
    if origin is Literal:
        return "one of " + ", ".join(map(_text, args))
    if annotation in (int, float):
        bounds = [
            f"{sign} {getattr(m, key)}"
            for m in metadata
            for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
            if hasattr(m, key)
        ]
        return " ".join(["an integer" if annotation is int else "a number", " and ".join(bounds)]).strip()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a mapping of {', '.join(_fields(annotation))}"
    return {bool: "true or false", str: "a string", list: "a list"}.get(origin or annotation, str(annotation))


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
