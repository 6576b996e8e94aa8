"""A factory's keyword arguments, read from its source without running it: what ``arch`` and ``data`` accept.

An ``arch`` or ``data`` option names a function (``_target_``: an architecture factory or a data loader) and
gives its keyword arguments. The function's signature is their one declaration: their names, which have
defaults, and their types, where bounds ride along as ``Annotated[int, Field(ge=1)]`` (the aliases below).
:func:`arguments_model` turns the signature into a strict pydantic model, so the schema checks a config
against the function it names before TensorFlow loads: the module's source is parsed with :mod:`ast`, not
imported (a module not on disk as source, or a name it only re-exports, is imported to read its signature).

Only the project's own config and a user's own config folder name functions here; what comes from outside
(an index, a run directory) never does (:mod:`qatzoo.data.catalog`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from functools import cache
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from qatzoo.errors import ConfigError

#: Types with bounds for signatures (the schema reads them; Python ignores them at call time).
Count = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(ge=0, lt=1)]
#: A fraction of a series held out for validation or test (a data loader's argument).
Fraction = Annotated[float, Field(ge=0.01, le=0.49)]


class Strict(BaseModel):
    """Strict: no extra fields, no string-to-number or bool-to-int coercion, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class SplitNames(Strict):
    """TFDS split names for the three parts."""

    train: str
    val: str
    test: str


def _directory(path: str | None) -> str | None:
    import os
    from pathlib import Path

    if path is not None and not Path(os.path.expanduser(path)).is_dir():
        raise ConfigError(f"data.source_dir: {path} is not a directory; it must hold the dataset's files")
    return path


def _file(path: str) -> str:
    import os
    from pathlib import Path

    if not Path(os.path.expanduser(path)).is_file():
        raise ConfigError(f"data.path: {path} is not a file")
    return path


#: A file that must exist (a user's own data file).
DataFile = Annotated[str, AfterValidator(_file)]
#: A folder that must exist (a dataset's own files).
SourceDir = Annotated[Optional[str], AfterValidator(_directory)]  # noqa: UP045 - evaluated from source text

_NAMES = {
    **{t.__name__: t for t in (int, float, str, bool, list, dict, tuple, bytes)},
    "None": None,
    "Annotated": Annotated,
    "Any": Any,
    "Literal": Literal,
    "Optional": Optional,
    "Union": Union,
    "Field": Field,
    **{
        name: globals()[name]
        for name in ("Count", "NonNegative", "Rate", "Fraction", "SplitNames", "SourceDir", "DataFile")
    },
}
_NO_DEFAULT = inspect.Parameter.empty


def _type(node: ast.expr | None):
    """The annotation ``node`` as a type, evaluated with builtin types, typing's forms and the aliases above
    only; anything else (``keras.Model``, a user's own alias) is ``Any``: present, not checked."""
    if node is None:
        return Any
    try:
        return eval(compile(ast.Expression(node), "<annotation>", "eval"), {"__builtins__": {}}, dict(_NAMES))  # noqa: S307
    except Exception:  # noqa: BLE001 - a name outside the few above
        return Any


def _default(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except ValueError:  # a default that is an expression: optional, its value not needed here
        return None


def _from_source(module: str, name: str) -> tuple[dict[str, tuple[Any, Any]], bool] | None:
    """``{argument: (type, default)}`` and whether it takes ``**kwargs``, from the module's source; None if the
    module is not source on disk or does not define ``name`` at its top level."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise ConfigError(f"cannot import {module}: no module named {module!r}")
    if not spec.origin or not spec.origin.endswith(".py"):
        return None
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=spec.origin)
    node = next(
        (n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None
    )
    if node is None:
        if not any(name in _defined(n) for n in tree.body):
            raise ConfigError(f"module {module} defines no function {name!r}")
        return None  # imported or assigned there: read from the module itself
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [_NO_DEFAULT] * (len(positional) - len(args.defaults)) + list(args.defaults)
    found = {}
    for arg, default in [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]:
        value = _NO_DEFAULT if default in (_NO_DEFAULT, None) else _default(default)
        found[arg.arg] = (_type(arg.annotation), value)
    return found, args.kwarg is not None


def _defined(node: ast.stmt) -> set[str]:
    """The top-level names a statement of a module binds."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name)}
    return {node.name} if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else set()


def _from_import(module: str, name: str) -> tuple[dict[str, tuple[Any, Any]], bool]:
    function = getattr(importlib.import_module(module), name, None)
    if not callable(function):
        raise ConfigError(f"module {module!r} has no function {name!r}")
    found, var_kw = {}, False
    for p in inspect.signature(function).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not p.VAR_POSITIONAL:
            found[p.name] = (Any, p.default)
    return found, var_kw


@cache
def arguments_model(target: str, injected: tuple[str, ...] = ()) -> type[BaseModel]:
    """A strict model of the keyword arguments of the function ``target`` (``package.module.function``), less
    the ``injected`` ones the caller supplies itself. Raises :class:`ConfigError` (without the field name) for
    a target that names no function."""
    module, _, name = target.rpartition(".")
    if not module or not name.isidentifier():
        raise ConfigError(f"expected an importable package.module.function, got {target!r}")
    try:
        found = _from_source(module, name) or _from_import(module, name)
    except ConfigError:
        raise
    except ModuleNotFoundError as error:
        raise ConfigError(f"cannot import {module}: no module named {error.name!r}") from None
    except Exception as error:  # noqa: BLE001 - a missing parent package, a syntax error: one line
        raise ConfigError(
            f"cannot read {target} ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    arguments, var_kw = found
    fields = {
        key: (kind, ... if default is _NO_DEFAULT else default)
        for key, (kind, default) in arguments.items()
        if key not in injected
    }
    config = ConfigDict(extra="allow" if var_kw else "forbid", strict=True, allow_inf_nan=False, frozen=True)
    return create_model(name, __config__=config, **fields)
