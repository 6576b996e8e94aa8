"""``zoo/index.json``: a versioned schema, validated on every read and write, written atomically
under a lock so concurrent publishers never lose an entry or leave a broken file.

An index comes from outside (a server, a file someone sent): it is data, never code. Every field a
command reads is required and typed here, so a valid index never crashes ``list``/``info``;
Hydra's instantiation keys (``_target_``, ``_args_``, ...) and ``${...}`` interpolations are refused
anywhere in an entry, so no value of an index can ever be instantiated or resolved.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
from contextlib import contextmanager
from pathlib import Path

from qatzoo.engine import ENGINES
from qatzoo.files import write_json

#: 2: entries hold plain data only (schema 1 entries carried Hydra ``_target_`` keys in ``config``).
SCHEMA_VERSION = 2
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VERSION = re.compile(r"^[1-9][0-9]{0,5}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: One path segment of a location: no '%', '\\', whitespace or control characters, not '.' or '..'.
SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
MAX_SIZE = 256 * 1024 * 1024
MAX_DEPTH = 24
MAX_STRING = 4096
#: Integers beyond this are not exact in a float64 (and ``math.isfinite`` overflows on far larger ones).
MAX_INT = 2**53
#: Keys Hydra's ``instantiate`` acts on (``_target_``, ``_args_``, ``_partial_``, ...).
CODE_KEY = re.compile(r"^_.*_$")
#: Characters that rewrite a terminal or reorder text: control characters and bidi overrides.
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class ZooError(RuntimeError):
    """A zoo operation that cannot go on; ``str()`` is one line for the user."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ZooError(f"bad model name {name!r}: use 1-64 of a-z, 0-9, _ and -, starting with a letter or digit")
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION.match(version):
        raise ZooError(f"bad version {version!r}: versions are positive integers (1, 2, ...)")
    return version


def check_location(location: str) -> str:
    """A relative path of plain segments inside the zoo, or an https URL whose path is made of the same.

    Plain means ``[A-Za-z0-9_.-]`` and not ``.`` or ``..``: no percent-encoding, backslashes,
    whitespace, NUL or absolute paths, so no decoding step can turn a location into another path.
    """
    bad = ZooError(
        f"bad location {location!r}: a path relative to the index made of plain segments ([A-Za-z0-9_.-], "
        "no '..', no %-encoding), or an https URL of the same"
    )
    if not isinstance(location, str) or len(location) > 1024:
        raise bad
    path = location
    if location.startswith("https://"):
        host, _, path = location[len("https://") :].partition("/")
        if not HOST.match(host):
            raise bad
    if not all(SEGMENT.match(segment) for segment in path.split("/")):
        raise bad
    return location


class _Bad(ValueError):
    pass


def _plain(value, where: str, depth: int = 0) -> None:
    """JSON data only: no Hydra code keys, interpolations, unprintable characters, non-finite numbers."""
    if depth > MAX_DEPTH:
        raise _Bad(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or CODE_KEY.match(key) or "${" in key or UNPRINTABLE.search(key):
                raise _Bad(f"{where}: key {key!r} is not allowed (index entries are data, never code)")
            _plain(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _plain(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        if "${" in value:
            raise _Bad(f"{where}: interpolations ('${{...}}') are not allowed (index entries are data, never code)")
        if UNPRINTABLE.search(value) or len(value) > MAX_STRING:
            raise _Bad(f"{where}: control characters or a string over {MAX_STRING} characters")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not finite_number(value):
            raise _Bad(f"{where}: {value!r:.40} is not a finite number of float64 range")
    elif value is not None and not isinstance(value, (bool, int)):
        raise _Bad(f"{where}: {type(value).__name__} is not JSON data")


def _get(node: dict, key: str, where: str):
    if key not in node:
        raise _Bad(f"{where}{key}: missing")
    return node[key]


def _str(node: dict, key: str, where: str = "", pattern: re.Pattern | None = None, choices=None, optional=False):
    value = _get(node, key, where)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _Bad(f"{where}{key}: must be a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise _Bad(f"{where}{key}: {value!r} is not a plain identifier")
    if choices is not None and value not in choices:
        raise _Bad(f"{where}{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _int(node: dict, key: str, low: int, high: int, where: str = "") -> int:
    value = _get(node, key, where)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Bad(f"{where}{key}: must be an integer in [{low}, {high}]")
    return value


def finite_number(value) -> bool:
    """A JSON number that is a finite float64: not a bool, NaN, infinity or an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_INT
    return math.isfinite(value)


def _number(value, where: str) -> float:
    if not finite_number(value):
        raise _Bad(f"{where}: must be a finite number")
    return value


def _dict(node: dict, key: str, where: str = "") -> dict:
    value = _get(node, key, where)
    if not isinstance(value, dict):
        raise _Bad(f"{where}{key}: must be an object")
    return value


def _entry_fields(entry: dict) -> None:
    _plain(entry, "entry")
    check_name(_str(entry, "name"))
    check_version(_str(entry, "version"))
    _str(entry, "task", choices=("classification", "forecast"))
    dataset = _dict(entry, "dataset")
    _str(dataset, "name", "dataset.", IDENT)
    _str(dataset, "builder", "dataset.", IDENT, optional=True)
    _str(dataset, "version", "dataset.", IDENT, optional=True)
    _str(dataset, "split", "dataset.", choices=("test",))
    _int(dataset, "examples", 1, 10**8, "dataset.")
    for key in ("arch", "scheme", "recipe"):
        _str(entry, key, pattern=IDENT)
    _str(entry, "metric", choices=("accuracy", "mae"))
    unit = _str(entry, "unit")
    if len(unit) > 16:
        raise _Bad("unit: at most 16 characters")
    if not isinstance(_get(entry, "higher_is_better", ""), bool):
        raise _Bad("higher_is_better: must be true or false")
    metrics = _dict(entry, "metrics")
    for key, value in metrics.items():
        if not IDENT.match(key):
            raise _Bad(f"metrics.{key}: not a plain identifier")
        _number(value, f"metrics.{key}")
    if _str(entry, "int8_model", pattern=IDENT) not in metrics:
        raise _Bad(f"int8_model: {entry['int8_model']!r} has no value in metrics")
    _int(entry, "size", 1, MAX_SIZE)
    _str(entry, "sha256", pattern=SHA256)
    _str(entry, "config_sha256", pattern=SHA256)
    check_location(_str(entry, "location"))
    card = _str(entry, "card", optional=True)
    if card is not None:
        check_location(card)
    for key in ("input", "output"):
        quant = _dict(entry, key)
        _str(quant, "dtype", f"{key}.", choices=("int8", "uint8", "int16", "float32"))
        _number(_get(quant, "scale", f"{key}."), f"{key}.scale")
        _int(quant, "zero_point", -(2**15), 2**16, f"{key}.")
    for key in ("config", "provenance"):
        _dict(entry, key)
    if "engine" in entry:  # entries published before the field have none (their provenance says tfmot)
        engine = _dict(entry, "engine")
        _str(engine, "name", "engine.", choices=ENGINES)
        _str(engine, "keras", "engine.", IDENT)
    for key in ("date", "command"):
        _str(entry, key)
    if "baselines" in entry:
        from qatzoo.report import baselines_problem

        trouble = baselines_problem(entry["baselines"], entry["metric"])
        if trouble:
            raise _Bad(trouble)
    if "contract" in entry:  # entries published before the contract have none
        from qatzoo.contract import problem as contract_problem

        trouble = contract_problem(entry["contract"])
        if trouble:
            raise _Bad(trouble)
    if "deployment" in entry:  # entries published before the deployment report have none
        from qatzoo.deploy.report import problem

        trouble = problem(entry["deployment"])
        if trouble:
            raise _Bad(trouble)


def validate_entry(entry: dict) -> dict:
    if not isinstance(entry, dict):
        raise ZooError(f"index entry is not an object but {type(entry).__name__}")
    name = entry.get("name") if isinstance(entry.get("name"), str) else "?"
    try:
        _entry_fields(entry)
    except _Bad as error:
        raise ZooError(f"index entry {name[:64]!r}: {error}") from None
    return entry


def validate_index(index: dict) -> dict:
    if isinstance(index, dict) and index.get("schema") == 1:
        raise ZooError(
            f"this index is of schema 1 (its entries may carry Hydra _target_ keys); qatzoo reads schema "
            f"{SCHEMA_VERSION}: republish the models or get a current index"
        )
    if (
        not isinstance(index, dict)
        or index.get("schema") != SCHEMA_VERSION
        or not isinstance(index.get("models"), list)
    ):
        raise ZooError(
            f"not a zoo index of schema {SCHEMA_VERSION} (expected {{'schema': {SCHEMA_VERSION}, 'models': [...]}})"
        )
    seen = set()
    for entry in index["models"]:
        validate_entry(entry)
        key = (entry["name"], entry["version"])
        if key in seen:
            raise ZooError(f"index lists {entry['name']}@{entry['version']} twice")
        seen.add(key)
    return index


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_index(text: str | bytes) -> dict:
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise ZooError(f"the zoo index is not valid JSON ({error.msg} at line {error.lineno})") from None
    except UnicodeDecodeError:
        raise ZooError("the zoo index is not valid JSON (it is not UTF-8 text)") from None
    except RecursionError:
        raise ZooError(f"the zoo index is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as error:
        raise ZooError(f"the zoo index is not valid JSON ({error})") from None
    return validate_index(data)


def read_index(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        return {"schema": SCHEMA_VERSION, "models": []}
    try:
        return parse_index(path.read_bytes())
    except OSError as error:
        raise ZooError(f"cannot read {path}: {error.strerror or error}") from None


@contextmanager
def locked_index(zoo_dir: Path):
    """Hold an exclusive lock on the zoo's index while reading, changing and writing it."""
    try:
        zoo_dir.mkdir(parents=True, exist_ok=True)
        lock = open(zoo_dir / ".index.lock", "a")  # noqa: SIM115 - held for the block below
    except OSError as error:
        raise ZooError(f"cannot write to the zoo {zoo_dir}: {error.strerror or error}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield read_index(zoo_dir / "index.json")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_index(zoo_dir: Path, index: dict) -> None:
    validate_index(index)
    index["models"].sort(key=lambda e: (e["name"], int(e["version"])))
    write_json(zoo_dir / "index.json", index)


def find(index: dict, spec: str) -> dict:
    """The entry for ``NAME`` (newest version) or ``NAME@VERSION``."""
    name, _, version = spec.partition("@")
    check_name(name)
    entries = [e for e in index["models"] if e["name"] == name]
    if not entries:
        known = ", ".join(sorted({e["name"] for e in index["models"]})) or "none"
        raise ZooError(f"no model {name!r} in the zoo; published: {known}")
    if version:
        check_version(version)
        match = [e for e in entries if e["version"] == version]
        if not match:
            raise ZooError(f"{name} has no version {version}; versions: {', '.join(e['version'] for e in entries)}")
        return match[0]
    return max(entries, key=lambda e: int(e["version"]))


def default_zoo_dir() -> Path:
    """Where ``publish`` writes: ``$QATZOO_ZOO_DIR``, else the source checkout's ``zoo/``."""
    if os.environ.get("QATZOO_ZOO_DIR"):
        return Path(os.environ["QATZOO_ZOO_DIR"])
    checkout = checkout_zoo()
    if checkout is None:
        raise ZooError(
            "no zoo folder: pass --zoo DIR or set QATZOO_ZOO_DIR (qatzoo is not run from its source checkout)"
        )
    return checkout


def checkout_zoo() -> Path | None:
    """The source checkout's ``zoo/`` when qatzoo runs from one (an editable install), else None."""
    repo = Path(__file__).resolve().parents[2]
    return repo / "zoo" if (repo / "pyproject.toml").is_file() and (repo / "zoo").is_dir() else None


def plain_config(config: dict) -> dict:
    """A resolved run config as plain data: Hydra's ``_target_``-style keys dropped at every level."""
    if isinstance(config, dict):
        return {k: plain_config(v) for k, v in config.items() if not (isinstance(k, str) and CODE_KEY.match(k))}
    if isinstance(config, list):
        return [plain_config(v) for v in config]
    return config
