"""Configuration checks that run before any data or TensorFlow work, and recipe registration.

This module imports only Hydra/OmegaConf: ``python train.py`` with a bad config fails in about a
second with one line naming the field and what is allowed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from qatzoo.quant.spec import MAX_BITS, MIN_BITS, RANGES  # plain Python: no TensorFlow import

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
RECIPES_DIR = REPO / "recipes"
GROUPS = ("arch", "data", "quant", "schedule", "trainer", "logger")


class ConfigError(ValueError):
    """A config value that cannot work; ``str()`` is the one line shown to the user."""


@dataclass(frozen=True)
class Rule:
    """What one field accepts: a kind (int, float, bool, path) and bounds."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "path":
            text = "a path to an existing file"
        elif self.kind == "resume":
            text = "auto, never, or a run directory"
        else:
            text = "an integer" if self.kind == "int" else "a number"
            if self.low is not None:
                text += f" {'>' if self.low_open else '>='} {self.low:g}"
            if self.high is not None:
                text += f"{' and' if self.low is not None else ''} {'<' if self.high_open else '<='} {self.high:g}"
        return f"{text} or null" if self.optional else text

    def accepts(self, value) -> bool:
        if value is None:
            return self.optional
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "path":
            return isinstance(value, str) and Path(os.path.expanduser(value)).is_file()
        if self.kind == "resume":
            return value in ("auto", "never") or (
                isinstance(value, str) and (Path(os.path.expanduser(value)) / "config.yaml").is_file()
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


def _int(low=None, high=None):
    return Rule("int", low, high)


def _frac():
    return Rule("float", 0, 0.5, low_open=True, high_open=True)


#: Every field a config group may hold (beyond ``_target_``, ``name`` and ``task``), and what it accepts.
RULES: dict[str, dict[str, Rule]] = {
    "schedule": {
        "float_epochs": _int(0),
        "qat_epochs": _int(0),
        "batch_size": _int(1),
        "lr": Rule("float", 0, low_open=True),
        "qat_lr": Rule("float", 0, low_open=True),
    },
    "trainer": {
        "seed": _int(0, 2**31 - 1),
        "representative_samples": _int(1),
        "threads": _int(0),
        "deterministic": Rule("bool"),
        "init_checkpoint": Rule("path", optional=True),
        "verbose": _int(0, 2),
        "checkpoint_every_steps": _int(0),
        "resume": Rule("resume"),
        "loop": Rule("choice", choices=("tape", "fit")),
        "strategy": Rule("choice", choices=("none", "mirrored", "multi_worker")),
    },
    "quant": {
        "qat": Rule("bool"),
        "int8": Rule("bool"),
        "weight_bits": _int(MIN_BITS, MAX_BITS),
        "activation_bits": _int(MIN_BITS, MAX_BITS),
        "per_channel": Rule("bool"),
        "weight_symmetric": Rule("bool"),
        "weight_narrow_range": Rule("bool"),
        "activation_per_channel": Rule("bool"),
        "activation_symmetric": Rule("bool"),
        "activation_narrow_range": Rule("bool"),
        "range": Rule("choice", choices=RANGES),
        "ema_decay": Rule("float", 0, 1, low_open=True, high_open=True),
        "fixed_range": Rule("list"),
        "keep_float": Rule("list"),
        "rules": Rule("list"),
    },
    "arch": {
        "filters": _int(1),
        "dense_units": _int(1),
        "dropout": Rule("float", 0, 1, high_open=True),
        "patch_size": _int(1),
        "dim": _int(1),
        "depth": _int(1),
        "num_heads": _int(1),
        "mlp_dim": _int(1),
        "norm": Rule("bool"),
    },
    "data": {
        "builder": Rule("str"),
        "data_dir": Rule("str"),
        "source_dir": Rule("str", optional=True),
        "splits": Rule("dict"),
        "window": _int(2),
        "horizon": _int(1),
        "val_fraction": _frac(),
        "test_fraction": _frac(),
    },
    "logger": {
        "project": Rule("str"),
        "entity": Rule("str", optional=True),
        "group": Rule("str", optional=True),
        "mode": Rule("choice", choices=("auto", "online", "offline", "disabled")),
        "init_timeout": Rule("float", 0, low_open=True),
    },
}
COMMON = {"_target_", "name", "task"}


def _check_field(group: str, key: str, value) -> None:
    rules = RULES.get(group, {})
    if key in COMMON:
        return
    if key not in rules:
        allowed = ", ".join(sorted(rules)) or "none"
        raise ConfigError(f"{group}.{key}: unknown field; {group} fields are: {allowed}")
    rule = rules[key]
    if rule.kind == "str":
        ok = (value is None and rule.optional) or isinstance(value, str)
        if not ok:
            raise ConfigError(f"{group}.{key}: expected a string, got {value!r}")
    elif rule.kind == "list":
        if not isinstance(value, list):
            raise ConfigError(f"{group}.{key}: expected a list, got {value!r}")
    elif rule.kind == "dict":
        if not isinstance(value, dict):
            raise ConfigError(f"{group}.{key}: expected a mapping, got {value!r}")
    elif not rule.accepts(value):
        raise ConfigError(f"{group}.{key}: expected {rule.describe()}, got {value!r}")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first field that cannot work. Imports nothing heavy."""
    plain = _resolved(cfg)
    _check_finite(plain)
    for group in GROUPS:
        node = plain.get(group)
        if not isinstance(node, dict):
            raise ConfigError(f"{group}: missing config group; pick one with {group}=OPTION")
        for key, value in node.items():
            _check_field(group, key, value)
    arch, data, quant, schedule = plain["arch"], plain["data"], plain["quant"], plain["schedule"]
    if arch.get("task") != data.get("task"):
        raise ConfigError(
            f"arch={arch.get('name')} is a {arch.get('task')} model but data={data.get('name')} is a "
            f"{data.get('task')} dataset; pick a {arch.get('task')} dataset"
        )
    if "dim" in arch and "num_heads" in arch and arch["dim"] % arch["num_heads"]:
        raise ConfigError(f"arch.num_heads: must divide arch.dim={arch['dim']}, got {arch['num_heads']}")
    _check_quant(quant)
    if quant["qat"] and schedule["qat_epochs"] < 1:
        raise ConfigError(
            f"schedule.qat_epochs: expected an integer >= 1 with quant={quant['name']} (QAT), got "
            f"{schedule['qat_epochs']}; use quant=ptq_int8 for int8 without fine-tuning"
        )
    source = data.get("source_dir")
    if source and not Path(os.path.expanduser(source)).is_dir():
        raise ConfigError(f"data.source_dir: {source} is not a directory; it must hold the dataset's files")


def _resolved(cfg: DictConfig) -> dict:
    """The config as plain data; an interpolation that cannot be resolved (a cycle, a missing key) is one line."""
    from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True)
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


def _check_finite(node, where: str = "") -> None:
    """Refuse NaN and infinity in every field: a bound check lets NaN through (every comparison with it is
    false), and a NaN learning rate would only show up later as a NaN loss."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_finite(value, f"{where}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{where}: expected a finite number, got {node}")


def _check_quant(quant: dict) -> None:
    """Cross-field checks of a scheme: combinations no runtime or converter can honour."""
    from qatzoo.quant.spec import Spec, check_pattern

    if quant.get("activation_per_channel"):
        raise ConfigError(
            "quant.activation_per_channel: must be false; LiteRT's int8 kernels take one activation range "
            "per tensor (per_channel=true gives weights one scale per output channel)"
        )
    if "fixed_range" in quant:
        low_high = quant["fixed_range"]
        if not (
            len(low_high) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in low_high)
            and low_high[0] <= 0.0 <= low_high[1]
            and low_high[0] < low_high[1]
        ):
            raise ConfigError(
                f"quant.fixed_range: expected [low, high] with low <= 0 <= high, low < high; got {low_high}"
            )
    for pattern in quant.get("keep_float", []):
        problem = check_pattern(pattern)
        if problem:
            raise ConfigError(f"quant.keep_float: {problem}")
    for i, rule in enumerate(quant.get("rules", [])):
        where = f"quant.rules[{i}]"
        if not isinstance(rule, dict) or "match" not in rule:
            raise ConfigError(f"{where}: expected {{match: PATTERN, weight_bits: N, activation_bits: N}}, got {rule!r}")
        unknown = set(rule) - {"match", "weight_bits", "activation_bits"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}; keys are: match, weight_bits, activation_bits"
            )
        problem = check_pattern(rule["match"])
        if problem:
            raise ConfigError(f"{where}.match: {problem}")
        for key in ("weight_bits", "activation_bits"):
            value = rule.get(key)
            if value is not None and not _int(MIN_BITS, MAX_BITS).accepts(value):
                raise ConfigError(f"{where}.{key}: expected an integer >= {MIN_BITS} and <= {MAX_BITS}, got {value!r}")
        if rule.get("weight_bits") is None and rule.get("activation_bits") is None:
            raise ConfigError(f"{where}: sets neither weight_bits nor activation_bits, so it changes nothing")
    if quant.get("qat") and quant.get("int8"):
        low = Spec.from_config(quant).lowest_activation_bits
        if low < 8:
            raise ConfigError(
                f"quant.activation_bits: {low}-bit activations cannot be exported (LiteRT's kernels take 8-bit "
                "activations); set quant.int8=false to train and evaluate in fake quant only"
            )
        if quant.get("weight_symmetric") is False:
            raise ConfigError(
                "quant.weight_symmetric: int8 export needs symmetric weights (LiteRT's int8 weights have zero "
                "point 0); set quant.int8=false to study asymmetric weights in fake quant only"
            )


def recipe_names() -> list[str]:
    """The recipes shipped in ``recipes/``: every ``*.yaml`` file, by stem."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def register_recipes() -> None:
    """Make ``recipes/*.yaml`` selectable as ``recipe=NAME`` (a Hydra config group outside conf/)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name in recipe_names():
        store.store(group="recipe", name=name, node=OmegaConf.load(RECIPES_DIR / f"{name}.yaml"), package="_global_")


def group_options(group: str) -> list[str]:
    if group == "recipe":
        return recipe_names()
    # Files starting with "_" are shared parts (conf/quant/_knobs.yaml), not options.
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def check_overrides(overrides: list[str]) -> DictConfig:
    """Compose the config for command-line ``overrides`` and validate it; one-line ConfigError if not.

    Group choices and field names are checked first, so the message names the override that is
    wrong and lists what is allowed instead of Hydra's multi-line composition report.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    register_recipes()
    choices = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ConfigError(f"{override}: expected KEY=VALUE")
        bare = key.lstrip("+~")
        if "." not in bare and (bare in GROUPS or bare in ("recipe", "sweep")) and not key.startswith(("+", "~")):
            options = group_options(bare)
            if value not in options:
                raise ConfigError(f"{bare}={value}: no such option; {bare} is one of: {', '.join(options)}")
            choices.append(override)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = _compose_checked(compose, overrides, choices)
    except HydraException as error:
        raise ConfigError(_first_line(error)) from error
    finally:
        GlobalHydra.instance().clear()
    validate(cfg)
    run_dir = next((o.partition("=")[2] for o in overrides if o.startswith("hydra.run.dir=")), None)
    _check_writable("hydra.run.dir" if run_dir else "paths.runs_dir", run_dir or cfg.paths.runs_dir)
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


def _compose_checked(compose, overrides: list[str], choices: list[str]) -> DictConfig:
    base = compose("config", overrides=choices)
    for override in overrides:
        key = override.partition("=")[0]
        if key.startswith(("+", "~")) or override in choices or key.startswith("hydra."):
            continue
        if OmegaConf.select(base, key, default=_MISSING) is _MISSING:
            parent = key.rpartition(".")[0]
            node = OmegaConf.select(base, parent) if parent else base
            keys = [k for k in node.keys() if not str(k).startswith("_")] if isinstance(node, DictConfig) else []
            allowed = ", ".join(sorted(keys)) or "none"
            raise ConfigError(f"{key}: unknown field; {parent or 'top-level'} fields are: {allowed}")
    return compose("config", overrides=[o for o in overrides if not o.startswith("hydra.")])


_MISSING = object()
