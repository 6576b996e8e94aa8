"""Composing and checking a run config before any data or TensorFlow work.

The schema (types, bounds, choices and the rules across fields) is :mod:`qatzoo.schema`; this module
composes the config with Hydra, resolves it and checks it there. It imports only Hydra, OmegaConf and
pydantic: ``python train.py`` with a bad config fails in about a second with one line naming the field
and what is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from qatzoo.errors import ConfigError
from qatzoo.schema import RunConfig, check

__all__ = [
    "CONF_DIR",
    "RECIPES_DIR",
    "ConfigError",
    "RunConfig",
    "check_overrides",
    "compose",
    "group_options",
    "recipe_names",
    "use_config_dir",
    "validate",
]

#: The config groups, package data (a checkout links conf/ and recipes/ at its top to them).
CONF_DIR = Path(__file__).resolve().parent / "conf"
#: The recipes; Hydra finds them as the config group ``recipe`` through the link conf/recipe -> ../recipes.
RECIPES_DIR = CONF_DIR.parent / "recipes"


#: A user's own config folders (``--config-dir DIR``), searched after the project's: their ``arch/``,
#: ``data/``, ``quant/``, ``recipe/`` ... options compose with the project's (:func:`use_config_dir`).
USER_DIRS: list[Path] = []
#: The command that started this process's runs, as a card's "Reproduce" line gives it: ``python train.py`` in a
#: checkout, ``qatzoo train`` from an installed package (set by :func:`qatzoo.launch.cli`).
ENTRY = "python train.py"


def use_config_dir(path: str | Path) -> Path:
    """Add a user's config folder to every later composition (Hydra's ``--config-dir``); ConfigError (one
    line) if it is not a folder. Its options may name the user's own code (modules in the current
    directory or on ``PYTHONPATH``): the folder is theirs."""
    folder = Path(os.path.expanduser(str(path))).absolute()
    if not folder.is_dir():
        raise ConfigError(f"--config-dir: {path} is not a folder")
    if folder not in USER_DIRS:
        USER_DIRS.append(folder)
    return folder


def _dirs() -> list[Path]:
    return [CONF_DIR, *USER_DIRS]


def validate(cfg: DictConfig) -> RunConfig:
    """The typed :class:`RunConfig` of a composed config; :class:`ConfigError` for the first field that cannot
    work. Imports nothing heavy."""
    return check(_resolved(cfg))


def _resolved(cfg: DictConfig) -> dict:
    """The config as plain data; an interpolation that cannot be resolved (a cycle, a missing key) is one line."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        key = error.full_key or "config"
        raise ConfigError(f"{key}: missing; give it on the command line ({key}=VALUE)") from None
    except OmegaConfBaseException as error:
        key = error.full_key or "config"
        reason = (str(error.msg or error).strip().splitlines() or [type(error).__name__])[0]
        if not isinstance(error, InterpolationResolutionError):  # e.g. a mandatory value (???) left unset
            raise ConfigError(f"{key}: {reason}") from None
        try:
            raw = OmegaConf.to_container(cfg, resolve=False)
            for part in key.split("."):
                raw = raw[part]
        except (KeyError, TypeError):
            raw = None
        what = f" {raw!r}" if isinstance(raw, str) else ""
        raise ConfigError(f"{key}: cannot resolve the interpolation{what}: {reason}") from None


def compose(overrides=(), *, hydra: bool = False) -> DictConfig:
    """The project's config (``conf/`` and ``recipes/``, and a user's :data:`USER_DIRS`) composed with Hydra for ``overrides``: the one
    composition every caller uses (train.py's check, sweeps, sensitivity, scripts and tests).

    ``hydra=True`` keeps the ``hydra`` node (a sweep preset's sweeper settings). Hydra's own exceptions
    pass through; callers turn them into their one-line errors.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    search = [f"hydra.searchpath=[{','.join(f'file://{d}' for d in USER_DIRS)}]"] if USER_DIRS else []
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose("config", overrides=[*search, *overrides], return_hydra_config=hydra)
    finally:
        GlobalHydra.instance().clear()


def recipe_names() -> list[str]:
    """The recipes shipped in ``recipes/``, and a user's in their config folders' ``recipe/``, by stem."""
    return group_options("recipe")


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` in the project's and the user's config folders: their YAML files
    by stem (``_*`` files are shared parts)."""
    return sorted({p.stem for d in _dirs() for p in (d / group).glob("*.yaml") if not p.stem.startswith("_")})


def check_overrides(overrides: list[str]) -> DictConfig:
    """Compose the config for command-line ``overrides`` once, validate it and return it; ConfigError if not.

    A group option that does not exist is refused first (Hydra skips a missing option of an optional group
    such as ``recipe`` silently). Field overrides are composed as ``++key=value``, so that an unknown field
    reaches the schema, whose message lists the fields allowed there, instead of failing composition with
    Hydra's multi-line report.
    """
    from hydra.errors import HydraException

    composed = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ConfigError(f"{override}: expected KEY=VALUE")
        if key.startswith("hydra."):
            continue
        if "." not in key and any((d / key).is_dir() for d in _dirs()):
            options = group_options(key)
            if value not in options:
                raise ConfigError(f"{key}={value}: no such option; {key} is one of: {', '.join(options)}")
        elif not key.startswith(("+", "~")) and not any(c in key for c in "/@"):
            override = f"++{override}"
        composed.append(override)
    try:
        cfg = compose(composed)
    except HydraException as error:
        line = _first_line(error)
        bracketed = next((o for o in overrides if "[" in o.partition("=")[2] and "'" not in o and '"' not in o), None)
        if bracketed and ("mismatched input" in line or "Error parsing override" in line):  # a TFDS slice, unquoted
            key, _, value = bracketed.partition("=")
            line = f"{bracketed}: Hydra reads [ ] as a list; quote the value: {key}='\"{value}\"'"
        raise ConfigError(line) from error
    validate(cfg)
    run_dir = next((o.partition("=")[2] for o in overrides if o.startswith("hydra.run.dir=")), None)
    _check_writable("hydra.run.dir" if run_dir else "paths.runs_dir", run_dir or cfg.paths.runs_dir)
    from qatzoo.extras import for_config

    for_config(cfg)  # the deployment report, W&B: their extras installed (MissingExtra, one line)
    return cfg


def _check_writable(field: str, path: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory (Hydra creates the rest)."""
    existing = Path(os.path.expanduser(path)).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{field}: {existing} is a file, so {path} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{field}: {existing} is not writable")


def _first_line(error: BaseException) -> str:
    while error.__cause__ is not None and not str(error).strip():
        error = error.__cause__
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
