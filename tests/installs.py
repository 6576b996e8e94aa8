"""Smaller installs of qatzoo, in this environment: a child Python that cannot import any distribution an install
would not bring.

``pip install qatzoo`` brings the packages of pyproject.toml's ``dependencies`` and what they require;
``qatzoo[train]`` adds that extra's. :func:`env` gives a child process an environment in which every module of
any other installed distribution (TensorFlow, Hydra, tflite-micro, ...) fails to import as if it were absent
(``ModuleNotFoundError``), so a test runs the real commands as such an install would, without a network.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent

_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        parts = name.split(".")
        if parts[0] in BLOCKED or ".".join(parts[:2]) in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in this install)", name=name)
        return None
sys.meta_path.insert(0, _Absent())
import pkgutil
_iter_modules = pkgutil.iter_modules
def _iter_present(path=None, prefix=""):  # a namespace package's folders (hydra_plugins) list only what is there
    return (m for m in _iter_modules(path, prefix) if m.name not in BLOCKED)
pkgutil.iter_modules = _iter_present
"""


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions ``pip install qatzoo[extras]`` brings: the closure over this environment's metadata."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
    seen = {"qatzoo"}
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _key(req.name)
        if name == "qatzoo":  # qatzoo[all]: its own extras
            todo += [Requirement(r) for extra in req.extras for r in project["optional-dependencies"][extra]]
            continue
        if name in seen:
            continue
        seen.add(name)
        for extra in req.extras:  # a requirement's own extras (pkg[x]) bring their requirements too
            for line in metadata.requires(req.name) or []:
                sub = Requirement(line)
                if sub.marker is not None and sub.marker.evaluate({"extra": extra}):
                    todo.append(sub)
        todo += [Requirement(line) for line in metadata.requires(req.name) or []]
    return seen


def blocked(extras: tuple[str, ...] = ()) -> set[str]:
    """Module names (top level, or ``namespace.package``) of installed distributions the install would not bring."""
    allowed = requirements(extras)
    provided: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        for top in (dist.read_text("top_level.txt") or "").split() or _tops(dist):
            provided.setdefault(top, set()).add(_key(dist.metadata["Name"]))
    names = set()
    for dist in metadata.distributions():
        name = _key(dist.metadata["Name"])
        if name in allowed:
            continue
        for top in (dist.read_text("top_level.txt") or "").split() or _tops(dist):
            if provided[top] & allowed or top == "hydra_plugins":  # a namespace shared with what stays
                names |= {
                    ".".join(Path(f).parts[:2]).removesuffix(".py")
                    for f in dist.files or ()
                    if Path(f).parts[0] == top and len(Path(f).parts) > 1
                }
            else:
                names.add(top)
    return {n for n in names if n and n not in sys.stdlib_module_names and not n.endswith(".dist-info")}


def _tops(dist) -> list[str]:
    tops = set()
    for f in dist.files or ():
        first = Path(f).parts[0]
        if first.endswith((".dist-info", ".data", ".egg-info")) or first in ("..", "__pycache__"):
            continue
        tops.add(first.removesuffix(".py").split(".")[0])
    return sorted(tops)


def env(folder: Path, extras: tuple[str, ...] = (), base: dict | None = None) -> dict:
    """An environment for a child Python that behaves as ``pip install qatzoo[extras]`` (a sitecustomize in
    ``folder``, first on PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_BLOCKER.format(blocked=sorted(blocked(extras))))
    result = dict(os.environ if base is None else base)
    result["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), result.get("PYTHONPATH", "")) if p)
    return result
