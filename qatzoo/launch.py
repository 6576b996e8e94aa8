"""``qatzoo train`` and the checkout's ``python train.py``: train, quantize, export and evaluate one recipe.

    qatzoo train recipe=attention_int8
    qatzoo train recipe=mnist_cnn_int8 quant=ptq_int8 schedule.qat_epochs=1
    qatzoo train --config-dir ~/myconf recipe=mine      # your own arch/, data/, quant/, recipe/ options
    qatzoo train -m recipe=mnist_cnn_int8 schedule.qat_lr=0.0001,0.0003

``engine=tfmot`` trains on tf_keras + tfmot instead of Keras 3 (conf/engine/); the engine is set before any
Keras import. The config is checked before TensorFlow is imported: a wrong group option, field, type or value
stops the run in about a second with one line, and leaves no run directory behind. A ``--config-dir`` folder
is the user's own: its options may name functions in their own modules (in the current directory or on
``PYTHONPATH``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from qatzoo import config, quiet
from qatzoo.config import CONF_DIR, check_overrides, use_config_dir, validate
from qatzoo.errors import ConfigError, error_line
from qatzoo.extras import MissingExtra, for_overrides


def _fail(message: str) -> None:
    print(error_line(message), file=sys.stderr)
    sys.exit(2)


def _drop_empty(run_dir: Path, cfg: DictConfig) -> None:
    """Remove the run directory Hydra made for a run that failed before writing anything, and its recipe
    folder under paths.runs_dir when that is empty too: a refused run leaves no trace."""
    runs = Path(os.path.expanduser(str(cfg.get("paths", {}).get("runs_dir", "runs")))).absolute()
    for path in (run_dir, run_dir.parent):
        inside = path == run_dir or runs in path.absolute().parents
        if inside and path.is_dir() and not any(path.iterdir()):
            path.rmdir()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf, open_dict

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    if sweep and OmegaConf.select(cfg, "logger.group", default="absent") in (None, ""):
        with open_dict(cfg):  # W&B: every trial of a sweep in one group, named after the sweep directory
            cfg.logger.group = Path(HydraConfig.get().sweep.dir).name
    try:
        run_config = validate(cfg)  # the typed config the run uses from here on
    except ConfigError as error:
        _drop_empty(run_dir, cfg)
        _fail(str(error))
    quiet.configure(run_config.trainer.verbose)  # before TensorFlow is first imported; verbose=3 shows its logs
    from qatzoo import engine

    engine.select(run_config.engine.name)  # before any Keras import: engine=keras3 never loads tf_keras or tfmot
    from qatzoo.errors import DataError, DataSourceMissing, TrainingError
    from qatzoo.train.trainer import train

    trial = None
    if sweep:  # an Optuna trial under a pruner reports every epoch
        from qatzoo.sweep.prune import trial_reporter

        trial = trial_reporter(run_config)
    try:
        metrics = train(run_config, run_dir, trial=trial)
    except (ConfigError, DataError, DataSourceMissing) as error:  # found once data or model exist
        _drop_empty(run_dir, cfg)
        _fail(str(error))
    except TrainingError as error:
        _fail(str(error))
    except OSError as error:  # unwritable or full disk: say which file, not a traceback pile
        where = f" {error.filename}" if error.filename else ""
        _fail(f"cannot write{where}: {error.strerror or error}")
    except Exception as error:  # TensorFlow's own file errors (checkpoints on a full disk)
        import tensorflow as tf

        if not isinstance(
            error, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.UnknownError)
        ):
            raise
        message = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", str(error).splitlines()[0])
        _fail(f"cannot write in {run_dir}: {message[:300]}")
    # The value a sweeper optimises: the int8 model's metric (LiteRT) on the *validation* split when
    # there is one (tuning on the test split would leak it); test numbers stay for reporting.
    name = metrics.get("int8_model") or "float"
    return metrics["validation"][name][metrics["metric"]]


def _config_dir(args: list[str]) -> tuple[str | None, list[str]]:
    """Hydra's ``--config-dir DIR`` (``-cd DIR``, ``--config-dir=DIR``) and the other arguments."""
    rest, chosen, i = [], None, 0
    while i < len(args):
        arg = args[i]
        if arg in ("--config-dir", "-cd"):
            if i + 1 >= len(args):
                _fail(f"{arg}: expected a folder after it")
            chosen, i = args[i + 1], i + 2
            continue
        if arg.startswith("--config-dir="):
            chosen = arg.partition("=")[2]
        else:
            rest.append(arg)
        i += 1
    return chosen, rest


#: The groups ``--help`` lists, in the order a user picks them.
HELP_GROUPS = ("recipe", "arch", "data", "quant", "schedule", "trainer", "engine", "logger", "sweep")
#: The groups whose fields ``--help`` describes (from the comments of their default YAML files).
DESCRIBED = ("schedule", "trainer")


def described_fields(path: Path) -> list[tuple[str, str, str]]:
    """``(key, default, description)`` for each top-level key of a config YAML file, the description being the
    comment block just above the key (a blank line ends a block, so a file's own heading is no key's)."""
    rows, comments = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            comments = []
        elif line.startswith("#"):
            comments.append(line.lstrip("# ").strip())
        elif not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            rows.append((key.strip(), value.strip(), " ".join(comments)))
            comments = []
    return rows


def help_text(prog: str) -> str:
    """What ``--help`` prints: usage, examples, every group's options (the default marked), and the fields of
    the schedule and trainer with their defaults and what they do."""
    import textwrap

    from qatzoo.config import group_options

    command = "qatzoo train" if prog == "qatzoo train" else "python train.py"
    defaults = {}
    for item in parse_yaml_file(CONF_DIR / "config.yaml").get("defaults") or []:
        if isinstance(item, dict):
            defaults.update({str(k).removeprefix("optional "): v for k, v in item.items()})
    lines = [
        f"usage: {command} [--config-dir DIR] [GROUP=OPTION ...] [KEY=VALUE ...]",
        f"       {command} -m [sweep=PRESET | KEY=V1,V2 ...]     (a sweep: grid or Optuna)",
        "",
        "Train a model float, then with quantization-aware training; export its int8 TFLite file and measure it on",
        "itself (LiteRT on the test split; TensorFlow Lite Micro and Ethos-U for deployment). The config is checked",
        "before TensorFlow loads: a wrong option, field or value is one line and no run directory.",
        "",
        "examples:",
        f"  {command} recipe=attention_int8",
        f"  {command} recipe=mnist_cnn_int8 quant=w4a8 schedule.qat_epochs=5",
        f"  {command} -m sweep=cnn_qat",
        f"  {command} --config-dir myconf recipe=mine        (your own arch/, data/, recipe/ ... options)",
        "",
        "groups (GROUP=OPTION; * the default):",
    ]
    for group in HELP_GROUPS:
        options = [f"{o}*" if defaults.get(group) == o else o for o in group_options(group)]
        lines += textwrap.wrap(", ".join(options), 110, initial_indent=f"  {group:<9} ", subsequent_indent=" " * 12)
    for group in DESCRIBED:
        lines += ["", f"{group} fields (KEY=VALUE):"]
        for key, default, about in described_fields(CONF_DIR / group / "default.yaml"):
            env = re.fullmatch(r"\$\{oc\.decode:\$\{oc\.env:(\w+),(\w+)\}\}", default)
            head = f"  {group}.{key}={env[2]}" if env else f"  {group}.{key}={default}"
            about = f"{about} (default from ${env[1]})" if env else about
            lines += textwrap.wrap(about, 112, initial_indent=f"{head:<38} ", subsequent_indent=" " * 39) or [head]
    lines += [
        "",
        "An option's own fields (arch.*, data.*, quant.*) are those of its YAML file in qatzoo/conf/<group>/;",
        f"`{command} ... --cfg job` prints the whole composed config. README: 'Run', 'Your own model'.",
    ]
    return "\n".join(lines)


def parse_yaml_file(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text()) or {}  # the package's own file


def cli(argv: list[str] | None = None, prog: str = "train.py") -> None:
    """Check the command line's config (one line and exit 2 if it cannot work), then run it under Hydra."""
    args = list(sys.argv[1:] if argv is None else argv)
    if os.getcwd() not in sys.path:  # a user's own modules in the folder they run from, as `python -m` finds them
        sys.path.insert(1, os.getcwd())
    config_dir, rest = _config_dir(args)
    if {"--help", "-h"} & set(rest):  # the project's help (Hydra's own: --hydra-help)
        if config_dir is not None:
            use_config_dir(config_dir)
        print(help_text(prog))
        return
    flags = [a for a in rest if a.startswith("-")]
    config.ENTRY = "qatzoo train" if prog == "qatzoo train" else "python train.py"
    try:
        if config_dir is not None:
            use_config_dir(config_dir)
        for_overrides(rest)
        if not flags:  # plain runs: check overrides first, one-line errors
            check_overrides(rest)
        elif set(flags) <= {"-m", "--multirun"}:  # sweeps: every trial's config and the ranges
            from qatzoo.sweep.check import check_sweep

            check_sweep([a for a in rest if not a.startswith("-")])
    except (ConfigError, MissingExtra) as error:
        _fail(str(error))
    sys.argv = [prog, *(["--config-dir", str(use_config_dir(config_dir))] if config_dir else []), *rest]
    main()
