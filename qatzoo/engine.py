"""Which quantization engine (and so which Keras) this process runs: chosen once, before any Keras import.

* ``keras3`` (default): Keras 3 (the ``keras`` TensorFlow installs) and this project's own fake-quant wrappers
  (:mod:`qatzoo.quant.keras3`); neither tf_keras nor tensorflow-model-optimization is imported.
* ``tfmot``: Keras 2 (``tf_keras``) and tensorflow-model-optimization's ``quantize_apply``, for models and code
  written for ``tfmot.quantization.keras``; also the engine of every run written before engines existed.

The choice is the config group ``engine`` (``python train.py engine=keras3``), handed to the process
through the environment variable ``QATZOO_ENGINE`` before :mod:`qatzoo.keras` is first imported. A
process holds one Keras: asking for the other engine after that is an error, not a silent mix.
This module imports nothing heavy.
"""

from __future__ import annotations

import os
import sys

ENGINES = ("tfmot", "keras3")
DEFAULT = "keras3"
#: The engine of a config that names none: such configs were written before engines existed, on tfmot.
LEGACY = "tfmot"
ENV = "QATZOO_ENGINE"


class EngineError(ValueError):
    """An engine that does not exist, or one asked for after the process loaded the other; one line."""


def current() -> str:
    """The engine of this process: ``$QATZOO_ENGINE``, else the default."""
    name = os.environ.get(ENV) or DEFAULT
    if name not in ENGINES:
        raise EngineError(f"{ENV}: expected one of {', '.join(ENGINES)}, got {name!r}")
    return name


def loaded() -> str | None:
    """The engine :mod:`qatzoo.keras` was imported with, or None if no Keras is loaded yet."""
    module = sys.modules.get("qatzoo.keras")
    return getattr(module, "ENGINE", None)


def select(name: str) -> str:
    """Make ``name`` this process's engine (before :mod:`qatzoo.keras` is imported); return it.

    Raises :class:`EngineError` if the process already runs the other engine's Keras.
    """
    if name not in ENGINES:
        raise EngineError(f"engine: expected one of {', '.join(ENGINES)}, got {name!r}")
    already = loaded()
    if already is not None and already != name:
        raise EngineError(
            f"engine={name}: this process already loaded engine={already}'s Keras; "
            f"run it in a new process (python train.py engine={name} ..., or {ENV}={name})"
        )
    os.environ[ENV] = name
    return name


def of_run(run_dir) -> str:
    """The engine a run directory's model was trained on: ``engine.name`` of its config.yaml (read as data),
    :data:`LEGACY` for runs from before engines existed. Raises :class:`EngineError` for a name that is not one."""
    from pathlib import Path

    from qatzoo.artifacts import read_yaml

    try:
        config = read_yaml(Path(run_dir) / "config.yaml")
    except (OSError, ValueError):
        return DEFAULT  # the command's own checks name the unreadable config
    section = config.get("engine") if isinstance(config, dict) else None
    name = section.get("name", LEGACY) if isinstance(section, dict) else LEGACY
    if name not in ENGINES:
        raise EngineError(f"{run_dir}/config.yaml: engine.name: expected one of {', '.join(ENGINES)}, got {name!r}")
    return name
