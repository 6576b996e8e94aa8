"""The optional parts of qatzoo and the pip extra that installs each.

``pip install qatzoo`` is the zoo client: list, info, download, verify (sha256), predict, check and ``load()``
on LiteRT, without TensorFlow. The rest comes with extras (pyproject.toml's ``optional-dependencies``):

    qatzoo[train]    the trainer: TensorFlow, Keras 3, tf-keras + tfmot, Hydra, TFDS, the baselines, figures
    qatzoo[deploy]   the deployment report: TensorFlow Lite Micro's interpreter, Arm's Vela compiler
    qatzoo[sweeps]   Optuna sweeps and the joblib launcher
    qatzoo[cluster]  the Ray launcher
    qatzoo[wandb]    logger=wandb
    qatzoo[trust]    signed zoos: qatzoo keys, publish --sign, sign, --trust (TUF), verify --bundle (model-signing)
    qatzoo[all]      all of them

A command that needs a part that is not installed stops with one line naming the extra (``require``); the
module checked for each extra is looked up, never imported.
"""

from __future__ import annotations

import importlib.util

#: The modules whose absence means an extra is not installed (one or more per extra; tests/test_extras.py
#: checks each belongs to a distribution the extra lists in pyproject.toml).
MODULES: dict[str, tuple[str, ...]] = {
    "train": ("tensorflow", "keras", "hydra", "omegaconf", "tensorflow_datasets", "litert_quantizer", "sklearn"),
    "deploy": ("tflite_micro", "ethosu"),
    "sweeps": ("optuna", "sqlalchemy", "hydra_plugins.hydra_joblib_launcher"),
    "cluster": ("ray", "hydra_plugins.hydra_ray_launcher"),
    "wandb": ("wandb",),
    "trust": ("tuf", "model_signing", "securesystemslib", "cryptography"),
}


class MissingExtra(RuntimeError):
    """A part of qatzoo whose extra is not installed; ``str()`` is the one line shown to the user."""


def missing(extra: str) -> str | None:
    """The first module of ``extra`` that cannot be found, or None when the extra is installed."""
    for name in MODULES[extra]:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ImportError:  # a parent package missing (hydra_plugins.x), or an import refused
            return name
    return None


def require(extra: str, what: str) -> None:
    """Raise MissingExtra naming the extra when ``what`` (a command, a config option) needs one not installed."""
    absent = missing(extra)
    if absent is not None:
        raise MissingExtra(f"{what} needs qatzoo's [{extra}] extra (no module {absent}): pip install 'qatzoo[{extra}]'")


#: Hydra config options whose plugin comes with an extra (without it Hydra only says the option is not found).
OPTIONS = {"hydra/launcher=joblib": "sweeps", "hydra/launcher=ray": "cluster", "hydra/sweeper=optuna": "sweeps"}


def for_overrides(overrides: list[str]) -> None:
    """The extras of the Hydra plugins a command line names (``hydra/launcher=ray``: [cluster])."""
    for override in overrides:
        extra = OPTIONS.get(override.lstrip("+~").replace("override ", ""))
        if extra:
            require(extra, override)


def for_config(cfg) -> None:
    """The extras a composed run config needs beyond [train]: the deployment report, W&B, a sweeper, a launcher."""
    from omegaconf import OmegaConf

    if OmegaConf.select(cfg, "trainer.deployment", default=False):
        require("deploy", "trainer.deployment=true (the deployment report)")
    if str(OmegaConf.select(cfg, "logger._target_", default="")).endswith("WandbLogger"):
        require("wandb", "logger=wandb")
    sweeper = str(OmegaConf.select(cfg, "hydra.sweeper._target_", default=""))
    if sweeper.startswith("hydra_plugins.qatzoo_sweeper"):
        require("sweeps", "hydra/sweeper=optuna")
    launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))
    if "joblib" in launcher:
        require("sweeps", "hydra/launcher=joblib")
    if "ray" in launcher:
        require("cluster", "hydra/launcher=ray")
