"""The field types and the base model of the files qatzoo writes and reads back: the run report
(metrics.json), the model contract (contract.json), the deployment report and the zoo index entry.

A file read from outside (a run directory, an index, a download) is data: parsed with bounds
(:func:`read_bounded`, :func:`parse_json`: size, NaN, nesting), validated by a strict pydantic model, and
never instantiated, imported or unpickled. Every number follows one rule (:func:`finite`).

A :class:`Record` keeps the JSON it was validated from: ``.plain`` gives it back, so writing a record gives
the bytes it was read from. Its fields are attributes (``report.int8.parity.passed``); its read-only dict
view (``record["key"]``, ``in``, ``.get``, ``==`` a dict) serves code that still reads string keys.
`one_line` turns pydantic's report into one line naming the field.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, PrivateAttr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from qatzoo.task import KINDS

#: Integers beyond this are not exact in a float64 (and ``math.isfinite`` overflows on far larger ones).
MAX_INT = 2**53
MAX_DEPTH = 24
MAX_STRING = 4096
#: Keys Hydra's ``instantiate`` acts on (``_target_``, ``_args_``, ``_partial_``, ...).
CODE_KEY = re.compile(r"^_.*_$")
#: Characters that rewrite a terminal or reorder text: control characters and bidi overrides.
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def finite(value) -> bool:
    """The number rule: a JSON number that is a finite float64 (not a bool, NaN, infinity, or an integer too
    large for a float64)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= MAX_INT if isinstance(value, int) else math.isfinite(value)


def rule(test, what: str) -> PlainValidator:
    """A field check: ``value`` passes ``test`` (it is kept as it is) or the field "is not {what}"."""

    def check(value):
        if not test(value):
            raise PydanticCustomError("qatzoo", f"is not {what}")
        return value

    return PlainValidator(check)


def integer(low: int = 0, high: int = MAX_INT, what: str | None = None):
    """An integer (not a bool) in ``[low, high]``."""
    ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high  # noqa: E731
    return Annotated[int, rule(ok, what or f"an integer in [{low}, {high}]")]


def matching(pattern: re.Pattern, what: str):
    return Annotated[str, rule(lambda v: isinstance(v, str) and pattern.match(v) is not None, what)]


def one_of(*choices):
    return Annotated[type(choices[0]), rule(lambda v: type(v) is type(choices[0]) and v in choices, _either(choices))]


def _either(choices) -> str:
    return f"one of {', '.join(map(str, choices))}" if len(choices) > 1 else str(choices[0])


FiniteFloat = Annotated[float, rule(finite, "a finite number")]
NonNegative = Annotated[float, rule(lambda v: finite(v) and v >= 0, "a finite number >= 0")]
Count = integer(what="a count (an integer >= 0)")
Sha256 = matching(SHA256, "a sha256 (64 lowercase hex digits)")
Ident = matching(IDENT, "a plain identifier")
Word = matching(re.compile(r"."), "a non-empty string")
Task = one_of(*KINDS)
Metric = one_of("accuracy", "mae")
Dtype = one_of("int8", "uint8", "int16", "float32")
#: The default of a field that may be absent (read as None) but is valid when present: pydantic does not
#: validate defaults, so ``x: FiniteFloat = ABSENT`` refuses an explicit null (``x: FiniteFloat | None`` would not).
ABSENT = None


class Record(BaseModel):
    """Strict (no coercion, no NaN), frozen, the JSON it was validated from kept as ``.plain``."""

    model_config = ConfigDict(strict=True, frozen=True, extra="allow", allow_inf_nan=False, populate_by_name=True)
    _plain: Any = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_plain(cls, data, handler):
        record = handler(data)
        if record._plain is None and isinstance(data, dict):
            record._plain = copy.deepcopy(data)
        return record

    @property
    def plain(self) -> dict:
        """The JSON data of this record (a copy): written back, the bytes it was read from."""
        return copy.deepcopy(self._data)

    @property
    def _data(self) -> dict:
        if self._plain is None:  # built without validation (model_construct)
            return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return self._plain

    # ---- the read-only dict view (for code that still reads string keys)

    def __getitem__(self, key: str):
        return copy.deepcopy(self._data[key])

    def get(self, key: str, default=None):
        return copy.deepcopy(self._data.get(key, default))

    def __contains__(self, key) -> bool:
        return key in self._data

    def __iter__(self):
        yield from list(self._data)

    def keys(self):
        return self.plain.keys()

    def items(self):
        return self.plain.items()

    def __eq__(self, other) -> bool:
        return self.plain == other if isinstance(other, dict) else super().__eq__(other)

    __hash__ = None


class Quantization(Record):
    """How an int8 file's input or output is quantized."""

    dtype: Dtype
    scale: FiniteFloat
    zero_point: integer(-(2**15), 2**16)


# ---- one line for the user


_WORDS = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "typed_dict_type": "an object",
    "list_type": "a list",
}


def one_line(error: ValidationError, prefix: str = "") -> str:
    """pydantic's first error as one line naming the field: ``dataset.name is not a plain identifier (got 'x/y')``."""
    e = error.errors()[0]
    parts = [prefix] if prefix else []
    for part in e["loc"]:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
        elif part == "[key]":
            parts[-1:] = [f"the key {parts[-1]!r} of {'.'.join(parts[:-1]) or 'the top level'}"]
            parts = parts[-1:]
        else:
            parts.append(str(part))
    where, kind = ".".join(parts), e["type"]
    if kind == "qatzoo_line":  # a whole line that names the field itself
        return e["msg"]
    if kind == "missing":
        return f"missing {where!r}"
    if kind == "extra_forbidden":
        return f"{where} is not a known field"
    if kind == "qatzoo":
        what = e["msg"]
    elif kind in _WORDS:
        what = f"is not {_WORDS[kind]}"
    else:
        what = e["msg"].removeprefix("Value error, ")
        what = what[:1].lower() + what[1:]
    value = e.get("input")
    if (kind != "qatzoo" or what.startswith("is not")) and not isinstance(value, (dict, list)):
        what += f" (got {_short(value)})"
    return f"{where} {what}" if where else what


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- data only


def check_data(value, where: str, what: str, depth: int = 0) -> None:
    """JSON data only: no Hydra code keys, interpolations, unprintable characters or strings over
    :data:`MAX_STRING`, only finite numbers, at most :data:`MAX_DEPTH` levels. Raises ValueError naming ``where``;
    ``what``: the kind of file, for the message ("index entries")."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or CODE_KEY.match(key) or "${" in key or UNPRINTABLE.search(key):
                raise ValueError(f"{where}: key {key!r} is not allowed ({what} are data, never code)")
            check_data(item, f"{where}.{key}", what, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_data(item, f"{where}[{i}]", what, depth + 1)
    elif isinstance(value, str):
        if "${" in value:
            raise ValueError(f"{where}: interpolations ('${{...}}') are not allowed ({what} are data, never code)")
        if UNPRINTABLE.search(value) or len(value) > MAX_STRING:
            raise ValueError(f"{where}: control characters or a string over {MAX_STRING} characters")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not finite(value):
            raise ValueError(f"{where}: {value!r:.40} is not a finite number of float64 range")
    elif value is not None and not isinstance(value, bool):
        raise ValueError(f"{where}: {type(value).__name__} is not JSON data")


def data_only(where: str, what: str) -> model_validator:
    """A model's check of its raw input by :func:`check_data` (the whole message names the field)."""

    def check(cls, data):
        try:
            check_data(data, where, what)
        except ValueError as error:
            raise PydanticCustomError("qatzoo_line", str(error)) from None
        return data

    return model_validator(mode="before")(classmethod(check))


# ---- reading with bounds


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes):
    """Strict JSON (no bare NaN or Infinity). Raises ValueError (JSONDecodeError, UnicodeDecodeError, a bare
    constant) or RecursionError (nested too deeply for the parser)."""
    return json.loads(text, parse_constant=_no_constants)


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path``; ValueError if it holds more than ``limit`` bytes (OSError as ``open`` raises)."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


#: A run's config.yaml is a few KiB; 1 MiB is far beyond any real one.
MAX_YAML_BYTES = 1 << 20


def _yaml_loader():
    """OmegaConf's YAML loader (its float and key rules, so values read as a run wrote them) that refuses
    aliases (a 350-byte file of nested aliases expands to 10^6 nodes), nesting deeper than :data:`MAX_DEPTH`
    and every ``python/...`` tag."""
    import yaml
    from omegaconf._utils import get_yaml_loader

    base = get_yaml_loader()

    class BoundedLoader(base):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise ValueError(
                    f"a YAML alias (line {self.peek_event().start_mark.line + 1}); a run's config has none"
                )
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    BoundedLoader.yaml_constructors = {
        tag: make
        for tag, make in base.yaml_constructors.items()
        if not str(tag).startswith("tag:yaml.org,2002:python/")
    }
    return BoundedLoader


def parse_yaml(text: str | bytes):
    """YAML as plain data, with bounds (no aliases, :data:`MAX_DEPTH` levels, no python tags). Every failure is
    a ValueError whose text is one line."""
    import yaml

    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - the loader is SafeLoader's subclass above
    except yaml.YAMLError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"not readable YAML ({first[:200]})") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_yaml(path: str | Path, limit: int = MAX_YAML_BYTES):
    """:func:`parse_yaml` of a file of at most ``limit`` bytes (ValueError; OSError as ``open`` raises)."""
    return parse_yaml(read_bounded(path, limit))
