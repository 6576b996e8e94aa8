"""The run config's schema: every field's type, bounds and choices, and the rules across fields, in one place.

One pydantic model per group option, told apart by the builder it names (``_target_``; for ``quant``, by
``qat``), so ``arch.num_heads=4`` with ``arch=mnist_cnn`` is refused by name. The YAML files in ``conf/``
hold the values; these models say what a value may be. :func:`check` validates a resolved config (plain
data) and turns pydantic's report into one line. Imports only pydantic and plain Python: no TensorFlow.

Adding an architecture or dataset: one model here, added to the group's union in :class:`Config`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from qatzoo.errors import ConfigError
from qatzoo.quant.spec import MAX_BITS, MIN_BITS, RANGES, Spec, check_pattern


def _existing_file(path: str | None) -> str | None:
    if path is not None and not Path(os.path.expanduser(path)).is_file():
        raise ValueError
    return path


def _resume(value: str) -> str:
    if value not in ("auto", "never") and not (Path(os.path.expanduser(value)) / "config.yaml").is_file():
        raise ValueError
    return value


def _directory(path: str | None) -> str | None:
    if path is not None and not Path(os.path.expanduser(path)).is_dir():
        raise ConfigError(f"data.source_dir: {path} is not a directory; it must hold the dataset's files")
    return path


def _low_high(low_high: list[float]) -> list[float]:
    if not (len(low_high) == 2 and low_high[0] <= 0.0 <= low_high[1] and low_high[0] < low_high[1]):
        raise ValueError
    return low_high


Bits = Annotated[int, Field(ge=MIN_BITS, le=MAX_BITS)]
Fraction = Annotated[float, Field(gt=0, lt=0.5)]


class Group(BaseModel):
    """Strict: no extra fields, no string-to-number or bool-to-int coercion, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


# --- arch: one model per architecture (the factory's keyword arguments) ---------------------------------


class MnistCnn(Group):
    target: Literal["qatzoo.models.mnist_cnn.mnist_cnn"] = Field(alias="_target_")
    name: str
    task: Literal["classification"]
    filters: int = Field(ge=1)
    dense_units: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)


class _Attention(Group):
    dim: int = Field(ge=1)
    depth: int = Field(ge=1)
    num_heads: int = Field(ge=1)
    mlp_dim: int = Field(ge=1)
    ffn_activation: Literal["gelu", "relu"] = "gelu"
    symmetric_kv: bool = False
    attention: Literal["softmax", "relu"] = "softmax"

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> _Attention:
        if self.dim % self.num_heads:
            raise ConfigError(f"arch.num_heads: must divide arch.dim={self.dim}, got {self.num_heads}")
        return self


class SmallTransformer(_Attention):
    target: Literal["qatzoo.models.small_transformer.small_transformer"] = Field(alias="_target_")
    name: str
    task: Literal["classification"]
    patch_size: int = Field(ge=1)
    patchify: Literal["conv", "dense"] = "conv"
    norm: Literal["layer", "nonorm", "none"] = "layer"


class TsAttention(_Attention):
    target: Literal["qatzoo.models.ts_attention.ts_attention"] = Field(alias="_target_")
    name: str
    task: Literal["forecast"]
    norm: Literal["layer", "nonorm", "none"] | bool = "none"
    skip: Literal["none", "linear"] = "none"
    patch: int = Field(ge=1, default=1)


# --- data: one model per loader ---------------------------------------------------------------------------


class Splits(Group):
    """TFDS split names for the three parts."""

    train: str
    val: str
    test: str


class ImageClassification(Group):
    target: Literal["qatzoo.data.load.image_classification"] = Field(alias="_target_")
    name: str
    task: Literal["classification"]
    builder: str
    data_dir: str
    splits: Splits
    source_dir: Annotated[str | None, AfterValidator(_directory)] = None


class Co2Forecast(Group):
    target: Literal["qatzoo.data.load.co2_forecast"] = Field(alias="_target_")
    name: str
    task: Literal["forecast"]
    data_dir: str
    window: int = Field(ge=2)
    horizon: int = Field(ge=1)
    val_fraction: Fraction
    test_fraction: Fraction


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

    name: Literal["tfmot", "keras3"]


class Paths(Group):
    data_dir: str
    runs_dir: str


class Config(Group):
    """A composed run config: one option per group, and the rules across groups."""

    name: str
    paths: Paths
    arch: Annotated[MnistCnn | SmallTransformer | TsAttention, Field(discriminator="target")]
    data: Annotated[ImageClassification | Co2Forecast, Field(discriminator="target")]
    quant: Annotated[NoQat | Qat, Field(discriminator="qat")]
    schedule: Schedule
    trainer: Trainer
    logger: Annotated[NoLogger | CsvLogger | WandbLogger, Field(discriminator="target")]
    # Configs written before engines existed have none: they ran on tfmot.
    engine: Engine = Engine(name="tfmot")

    @model_validator(mode="after")
    def _groups_fit(self) -> Config:
        arch, data = self.arch, self.data
        if arch.task != data.task:
            raise ConfigError(
                f"arch={arch.name} is a {arch.task} model but data={data.name} is a {data.task} dataset; "
                f"pick a {arch.task} dataset"
            )
        patch, window = getattr(arch, "patch", 1), getattr(data, "window", None)
        if window is not None and window % patch:
            raise ConfigError(f"arch.patch: must divide data.window={window}, got {patch}")
        if self.quant.qat and self.schedule.qat_epochs < 1:
            raise ConfigError(
                f"schedule.qat_epochs: expected an integer >= 1 with quant={self.quant.name} (QAT), got "
                f"{self.schedule.qat_epochs}; use quant=ptq_int8 for int8 without fine-tuning"
            )
        return self


def check(plain: dict) -> None:
    """Raise :class:`ConfigError` naming the first field of the resolved config ``plain`` that cannot work."""
    try:
        Config.model_validate(plain)
    except ValidationError as error:
        raise ConfigError(_line(error.errors()[0])) from None


# --- pydantic's report as one line ------------------------------------------------------------------------


def _line(error: dict) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        return str(cause)
    name, holder, field = _walk(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = name.rpartition(".")[0] or "top-level"
        return f"{name}: unknown field; {parent} fields are: {', '.join(_fields(holder)) or 'none'}"
    if kind.startswith("union_tag"):
        key = field.discriminator
        members = get_args(field.annotation)
        tags = [_text(get_args(m.model_fields[key].annotation)[0]) for m in members]
        alias = members[0].model_fields[key].alias or key
        got = f"got {error['ctx']['tag']!r}" if kind == "union_tag_invalid" else "got none"
        return f"{name}.{alias}: expected one of {', '.join(tags)}, {got}"
    if kind == "missing":
        if holder is Config and name in Config.model_fields:
            return f"{name}: missing config group; pick one with {name}=OPTION"
        return f"{name}: missing; expected {_describe(field)}"
    if kind == "finite_number":
        return f"{name}: expected a finite number, got {error['input']}"
    return f"{name}: expected {_describe(field)}, got {error['input']!r}"


def _walk(loc: tuple) -> tuple[str, type[BaseModel], FieldInfo | None]:
    """Follow an error location through the schema: its dotted name (union tags left out), the model that
    holds its last key, and the field there (None for a key the model does not have)."""
    name, holder, model, field = "", Config, Config, None
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
