"""``zoo/index.json``: a versioned schema, validated on every read and write, written atomically
under a lock so concurrent publishers never lose an entry or leave a broken file."""

from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

from qatzoo.files import write_json

SCHEMA_VERSION = 1
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
VERSION = re.compile(r"^[1-9][0-9]{0,5}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REQUIRED = {
    "name": str,
    "version": str,
    "task": str,
    "dataset": dict,
    "arch": str,
    "scheme": str,
    "metric": str,
    "metrics": dict,
    "size": int,
    "sha256": str,
    "location": str,
    "input": dict,
    "output": dict,
    "recipe": str,
    "config": dict,
    "config_sha256": str,
    "provenance": dict,
    "date": str,
    "command": str,
}
MAX_SIZE = 256 * 1024 * 1024


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
    """A relative path inside the zoo (no '..', no absolute path) or an absolute https URL."""
    if location.startswith("https://"):
        return location
    parts = Path(location).parts
    if not location or location.startswith("/") or "\\" in location or ":" in location or ".." in parts:
        raise ZooError(f"bad location {location!r}: a path relative to the index without '..', or an https URL")
    return location


def validate_entry(entry: dict) -> dict:
    for key, kind in REQUIRED.items():
        if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
            raise ZooError(f"index entry {entry.get('name')!r}: field {key!r} must be a {kind.__name__}")
    check_name(entry["name"])
    check_version(entry["version"])
    check_location(entry["location"])
    if not SHA256.match(entry["sha256"]):
        raise ZooError(f"index entry {entry['name']!r}: sha256 must be 64 lowercase hex digits")
    if not 0 < entry["size"] <= MAX_SIZE:
        raise ZooError(f"index entry {entry['name']!r}: size {entry['size']} outside 1..{MAX_SIZE}")
    return entry


def validate_index(index: dict) -> dict:
    if (
        not isinstance(index, dict)
        or index.get("schema") != SCHEMA_VERSION
        or not isinstance(index.get("models"), list)
    ):
        raise ZooError(f"not a zoo index of schema {SCHEMA_VERSION} (expected {{'schema': 1, 'models': [...]}})")
    seen = set()
    for entry in index["models"]:
        validate_entry(entry)
        key = (entry["name"], entry["version"])
        if key in seen:
            raise ZooError(f"index lists {entry['name']}@{entry['version']} twice")
        seen.add(key)
    return index


def parse_index(text: str | bytes) -> dict:
    try:
        return validate_index(json.loads(text))
    except json.JSONDecodeError as error:
        raise ZooError(f"the zoo index is not valid JSON ({error.msg} at line {error.lineno})") from error


def read_index(path: Path) -> dict:
    if not path.exists():
        return {"schema": SCHEMA_VERSION, "models": []}
    return parse_index(path.read_text())


@contextmanager
def locked_index(zoo_dir: Path):
    """Hold an exclusive lock on the zoo's index while reading, changing and writing it."""
    zoo_dir.mkdir(parents=True, exist_ok=True)
    with open(zoo_dir / ".index.lock", "w") as lock:
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
    return Path(os.environ.get("QATZOO_ZOO_DIR", Path(__file__).resolve().parents[2] / "zoo"))
