"""Start-up checks of a sweep definition, before Hydra launches a single trial.

``python train.py -m ...`` with an unknown field, an option that does not exist, a value a field does
not accept, an empty range or an Optuna direction that optimises the wrong way stops with one line
(exit 2), like a bad single run. Checked: the command line's sweep overrides (``a=1,2``,
``range(...)``, ``choice(...)``, ``interval(...)``), a preset's ``hydra.sweeper.params`` and its
``hydra.sweeper.n_trials`` (>= 1).
"""

from __future__ import annotations

import copy

from omegaconf import OmegaConf

from qatzoo.config import check_overrides, compose, validate
from qatzoo.errors import ConfigError


def _is_hydra(override: str) -> bool:
    key = override.partition("=")[0].lstrip("+~")
    return key.startswith(("hydra.", "hydra/"))


def _values(key: str, parsed) -> list[str]:
    """The values a sweep override takes (interval: its two ends); ConfigError if there are none."""
    from hydra.core.override_parser.types import IntervalSweep

    value = parsed.value()
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if not low < high:
            raise ConfigError(f"{key}: interval({low}, {high}) is empty; the start must be below the end")
        if "log" in (value.tags or ()) and low <= 0:
            raise ConfigError(f"{key}: a log interval needs a start > 0, got {low}")
        is_int = all(isinstance(v, int) for v in (low, high))
        return [str(int(v) if is_int else float(v)) for v in (low, high)]
    values = list(parsed.sweep_string_iterator())
    if not values:
        raise ConfigError(f"{key}: the sweep {parsed.input_line.partition('=')[2]} has no values")
    return values


def check_sweep(overrides: list[str]) -> None:
    """Raise ConfigError (one line) for the first problem in a multirun's overrides or preset."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as error:  # Hydra's grammar errors are several lines; keep the first
        raise ConfigError(str(error).strip().splitlines()[0]) from error
    plain = [o for o, p in zip(overrides, parsed, strict=True) if not p.is_sweep_override() and not _is_hydra(o)]
    sweeps = [p for o, p in zip(overrides, parsed, strict=True) if p.is_sweep_override() and not _is_hydra(o)]
    base = check_overrides(plain)  # the non-swept part must be a valid config on its own

    hydra_cfg = _hydra_config(overrides)
    from qatzoo.extras import for_config

    for_config(hydra_cfg)  # the sweeper's and the launcher's extras
    sweeper = hydra_cfg.hydra.sweeper
    if "n_trials" in sweeper:  # an Optuna sweep (Hydra's basic sweeper has no such field)
        check_n_trials(sweeper.n_trials)
    _check_optuna(sweeper)
    params = OmegaConf.to_container(sweeper.params) if "params" in sweeper and sweeper.params else {}
    if params:
        sweeps += parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    for p in sweeps:
        key = p.key_or_group
        for value in _values(key, p):
            _check_value(base, plain, key, value)
    direction = sweeper.get("direction")
    if isinstance(direction, str):
        wanted = "maximize" if base.arch.task == "classification" else "minimize"
        if direction != wanted:
            metric = "accuracy" if wanted == "maximize" else "MAE"
            raise ConfigError(
                f"hydra.sweeper.direction: {direction} optimises the wrong way; the objective is the int8 "
                f"model's {metric}, use {wanted}"
            )


def _check_value(base, plain: list[str], key: str, value: str) -> None:
    """One trial's value: a field's is set on the composed base config and validated; a group option's is
    composed (it brings other files)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if "." not in key:
        check_overrides([*plain, f"{key}={value}"])
        return
    cfg = copy.deepcopy(base)
    OmegaConf.update(cfg, key, OverridesParser.create().parse_override(f"{key}={value}").value(), force_add=True)
    validate(cfg)


def check_n_trials(n_trials) -> None:
    """An Optuna sweep's ``n_trials`` (the study's total) must be a whole number >= 1 (``null`` is not).

    Checked here, before Hydra starts the sweeper (the sweeper creates the study's SQLite file first, so a sweep
    that could never run a trial would leave an empty optuna.db behind), and by the sweeper itself, before it
    writes anything, for sweeps started past this check (``--config-name``).
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        got = "null" if n_trials is None else n_trials
        raise ConfigError(f"hydra.sweeper.n_trials: expected the total number of trials, an integer >= 1, got {got}")


OPTUNA_FIELDS = {
    "_target_", "sampler", "direction", "storage", "study_name", "n_trials", "n_jobs", "max_failure_rate", "params",
    "pruner",
}  # fmt: skip
PRUNERS = (
    "MedianPruner", "PercentilePruner", "SuccessiveHalvingPruner", "HyperbandPruner", "ThresholdPruner",
    "PatientPruner", "WilcoxonPruner", "NopPruner",
)  # fmt: skip


def _check_optuna(sweeper) -> None:
    """The project's Optuna sweeper: known fields only, a pruner Optuna has, a failure rate in [0, 1]."""
    if not str(sweeper.get("_target_", "")).startswith("hydra_plugins.qatzoo_sweeper."):
        return
    unknown = sorted(set(sweeper) - OPTUNA_FIELDS)
    if unknown:
        raise ConfigError(
            f"hydra.sweeper.{unknown[0]}: unknown field; the Optuna sweeper's fields are: {', '.join(sorted(OPTUNA_FIELDS - {'_target_'}))}"
        )
    pruner = sweeper.get("pruner")
    if pruner is not None:
        target = str(pruner.get("_target_", "")) if OmegaConf.is_dict(pruner) else ""
        if target.removeprefix("optuna.pruners.") not in PRUNERS or not target.startswith("optuna.pruners."):
            raise ConfigError(
                f"hydra.sweeper.pruner: expected null or {{_target_: optuna.pruners.<name>, ...}} with <name> one of "
                f"{', '.join(PRUNERS)}; got {OmegaConf.to_container(pruner) if OmegaConf.is_config(pruner) else pruner!r}"
            )
    rate = sweeper.get("max_failure_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ConfigError(f"hydra.sweeper.max_failure_rate: expected a number in [0, 1], got {rate}")


def _hydra_config(overrides: list[str]):
    """The composed config including ``hydra.*`` (for a preset's sweeper settings)."""
    keep = []
    for o in overrides:
        if "=" not in o:
            continue
        key = o.partition("=")[0]
        if _is_hydra(o) or key.lstrip("+~") in ("sweep", "recipe") or "," not in o and "(" not in o:
            keep.append(o)
    try:
        return compose(keep, hydra=True)
    except Exception as error:
        message = str(error).strip().splitlines()[0]
        if error.__cause__ is not None and str(error.__cause__).strip():  # "Error merging override x=y": why
            message = f"{message.rstrip('.')}: {str(error.__cause__).strip().splitlines()[0]}"
        raise ConfigError(message) from error
