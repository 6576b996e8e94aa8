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
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from pydantic import ValidationError, model_validator
from pydantic_core import PydanticCustomError

from qatzoo.artifacts import (
    ABSENT,
    CODE_KEY,
    MAX_DEPTH,
    FiniteFloat,
    Ident,
    Metric,
    Quantization,
    Record,
    Sha256,
    Task,
    Word,
    data_only,
    integer,
    matching,
    one_line,
    one_of,
    parse_json,
    read_bounded,
    rule,
)
from qatzoo.contract import Contract
from qatzoo.deploy.report import Deployment
from qatzoo.engine import ENGINES
from qatzoo.files import write_text
from qatzoo.report import AsIs, Baselines, PtqBaselines, Significance, unscored

#: 2: entries hold plain data only (schema 1 entries carried Hydra ``_target_`` keys in ``config``).
SCHEMA_VERSION = 2
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VERSION = re.compile(r"^[1-9][0-9]{0,5}$")
#: One path segment of a location: no '%', '\\', whitespace or control characters, not '.' or '..'.
SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
MAX_SIZE = 256 * 1024 * 1024
MAX_INDEX_BYTES = 16 * 1024 * 1024
NAME_RULE = "1-64 of a-z, 0-9, _ and -, starting with a letter or digit"
LOCATION_RULE = (
    "a path relative to the index made of plain segments ([A-Za-z0-9_.-], no '..', no %-encoding), or an https "
    "URL of the same"
)


class ZooError(RuntimeError):
    """A zoo operation that cannot go on; ``str()`` is one line for the user."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ZooError(f"bad model name {name!r}: use {NAME_RULE}")
    return name


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION.match(version):
        raise ZooError(f"bad version {version!r}: versions are positive integers (1, 2, ...)")
    return version


def _is_location(location) -> bool:
    """Plain means ``[A-Za-z0-9_.-]`` and not ``.`` or ``..``: no percent-encoding, backslashes, whitespace,
    NUL or absolute paths, so no decoding step can turn a location into another path."""
    if not isinstance(location, str) or len(location) > 1024:
        return False
    host, path = "", location
    if location.startswith("https://"):
        host, _, path = location[len("https://") :].partition("/")
    return (not host or HOST.match(host) is not None) and all(SEGMENT.match(s) for s in path.split("/"))


def check_location(location: str) -> str:
    """A relative path of plain segments inside the zoo, or an https URL whose path is made of the same."""
    if not _is_location(location):
        raise ZooError(f"bad location {location!r}: {LOCATION_RULE}")
    return location


Location = Annotated[str, rule(_is_location, LOCATION_RULE)]


class DatasetRef(Record):
    name: Ident
    builder: Ident | None
    version: Ident | None
    split: one_of("test")
    examples: integer(1, 10**8)


class Engine(Record):
    name: one_of(*ENGINES)
    keras: Ident


#: A sample input larger than this is not downloaded (the published ones are 0.3-4 kB).
MAX_SAMPLE_BYTES = 1024 * 1024
#: The kinds of sample input the zoo ships (:mod:`qatzoo.zoo.samples`), each saved under this suffix.
SAMPLE_SUFFIXES = (".png", ".npy", ".csv")


class Sample(Record):
    """The sample input shipped beside a card: where it lives and its bytes' size and sha256 (checked on download:
    it is an input a user runs the model on, so it is verified like the model, and is only ever read as data)."""

    location: Annotated[
        str,
        rule(
            lambda v: _is_location(v) and v.endswith(SAMPLE_SUFFIXES),
            f"{LOCATION_RULE}, ending in {', '.join(SAMPLE_SUFFIXES)}",
        ),
    ]
    size: integer(1, MAX_SAMPLE_BYTES)
    sha256: Sha256


class IndexEntry(Record):
    """One published model. Every field a command reads is required and typed; anything else in an entry
    is plain JSON data (:func:`qatzoo.artifacts.check_data`)."""

    check_data = data_only("entry", "index entries")
    name: matching(NAME, f"a model name ({NAME_RULE})")
    version: matching(VERSION, "a version (a positive integer: 1, 2, ...)")
    task: Task
    dataset: DatasetRef
    arch: Ident
    scheme: Ident
    recipe: Ident
    metric: Metric
    unit: Annotated[str, rule(lambda v: isinstance(v, str) and 1 <= len(v) <= 16, "a string of 1-16 characters")]
    higher_is_better: bool
    metrics: dict[Ident, FiniteFloat]
    int8_model: Ident
    size: integer(1, MAX_SIZE)
    sha256: Sha256
    config_sha256: Sha256
    location: Location
    card: Location | None
    input: Quantization
    output: Quantization
    config: dict
    provenance: dict
    date: Word
    command: Word
    # Absent from entries published before them (an explicit null is refused).
    engine: Engine = ABSENT
    baselines: Baselines = ABSENT
    significance: Annotated[Significance, AsIs] = ABSENT
    ptq_baselines: Annotated[PtqBaselines, AsIs] = ABSENT
    contract: Contract = ABSENT
    deployment: Deployment = ABSENT
    sample: Sample = ABSENT

    @model_validator(mode="after")
    def _consistent(self):
        trouble = (
            f"int8_model: {self.int8_model!r} has no value in metrics" if self.int8_model not in self.metrics else None
        )
        trouble = trouble or (self.baselines is not None and unscored(self.baselines, self.metric))
        if trouble:
            raise PydanticCustomError("qatzoo_line", trouble)
        return self


def entry_of(entry) -> IndexEntry:
    """The typed index entry of ``entry`` (a dict from an index); ZooError naming the entry and field otherwise."""
    if not isinstance(entry, (dict, IndexEntry)):
        raise ZooError(f"index entry is not an object but {type(entry).__name__}")
    name = entry.get("name") if isinstance(entry.get("name"), str) else "?"
    try:
        return IndexEntry.model_validate(entry)
    except ValidationError as error:
        raise ZooError(f"index entry {name[:64]!r}: {one_line(error)}") from None


def validate_entry(entry: dict) -> dict:
    """``entry`` itself, once :func:`entry_of` accepts it."""
    entry_of(entry)
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


def entries(index: dict) -> list[IndexEntry]:
    """The typed entries of a validated index."""
    return [entry_of(entry) for entry in index["models"]]


def parse_index(text: str | bytes) -> dict:
    try:
        data = parse_json(text)
    except RecursionError:
        raise ZooError(f"the zoo index is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except UnicodeDecodeError:
        raise ZooError("the zoo index is not valid JSON (it is not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        raise ZooError(f"the zoo index is not valid JSON ({error.msg} at line {error.lineno})") from None
    except ValueError as error:
        raise ZooError(f"the zoo index is not valid JSON ({error})") from None
    return validate_index(data)


def read_index(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        return {"schema": SCHEMA_VERSION, "models": []}
    try:
        return parse_index(read_bounded(path, MAX_INDEX_BYTES))
    except OSError as error:
        raise ZooError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError:
        raise ZooError(f"{path} is larger than {MAX_INDEX_BYTES} bytes: not a zoo index") from None


@contextmanager
def locked_index(zoo_dir: Path):
    """Hold an exclusive lock on the zoo's index while reading, changing and writing it."""
    try:
        zoo_dir.mkdir(parents=True, exist_ok=True)
        # Never through a symlink planted at the lock's name (``open(.., "a")`` would create its target).
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        lock = os.fdopen(os.open(zoo_dir / ".index.lock", flags, 0o644), "a")
    except OSError as error:
        raise ZooError(f"cannot write to the zoo {zoo_dir}: {error.strerror or error}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield read_index(zoo_dir / "index.json")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_index(zoo_dir: Path, index: dict) -> None:
    """Validate, sort and write ``index`` atomically; an index over :data:`MAX_INDEX_BYTES` (what every reader
    refuses) is refused with one line before anything is written, so publish never makes the zoo unreadable."""
    validate_index(index)
    index["models"].sort(key=lambda e: (e["name"], int(e["version"])))
    text = json.dumps(index, indent=2, sort_keys=False, allow_nan=False) + "\n"  # as write_json writes it
    size = len(text.encode())
    if size > MAX_INDEX_BYTES:
        raise ZooError(
            f"the zoo index would be {size} bytes, over the {MAX_INDEX_BYTES} bytes readers accept; not writing it "
            f"(the zoo would become unreadable)"
        )
    write_text(zoo_dir / "index.json", text)


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
    """A resolved run config as plain data: Hydra's ``_target_``-style keys dropped at every level.

    It comes from a run's config.yaml: a node met twice (a YAML alias, which copying would multiply) or
    nesting deeper than :data:`~qatzoo.artifacts.MAX_DEPTH` levels is refused with one line."""
    seen: set[int] = set()

    def plain(node, depth: int):
        if isinstance(node, (dict, list)):
            if id(node) in seen or depth > MAX_DEPTH:
                raise ZooError(
                    f"the run's config is not plain data (a YAML alias, or nested deeper than {MAX_DEPTH} levels)"
                )
            seen.add(id(node))
        if isinstance(node, dict):
            return {k: plain(v, depth + 1) for k, v in node.items() if not (isinstance(k, str) and CODE_KEY.match(k))}
        if isinstance(node, list):
            return [plain(v, depth + 1) for v in node]
        return node

    return plain(config, 0)
