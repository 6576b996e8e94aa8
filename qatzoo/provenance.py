"""Where a run came from: code version, config hash, package versions and a fingerprint of the data."""

from __future__ import annotations

import copy
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from qatzoo.bench.cpu import cpu_name
from qatzoo.engine import LEGACY as LEGACY_ENGINE

REPO = Path(__file__).resolve().parent.parent
PACKAGES = (
    "tensorflow",
    "tf-keras",
    "keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "litert-quantizer",
    "hydra-core",
    "tensorflow-datasets",
    "numpy",
)
#: Config keys that say where things go or how much is printed, not what is computed.
#: Keys that change what is printed or kept on disk, never the model: a run with other values resumes
#: and hashes like the same run.
NOT_HASHED = (
    "paths",
    "logger",
    "trainer.verbose",
    "trainer.resume",
    "trainer.checkpoint_every_steps",
    "trainer.keep_checkpoints",
    "trainer.epoch_weights",
    "trainer.deployment",
    "trainer.baselines",
    "trainer.ptq_baselines",
)


def git_state(repo: Path = REPO) -> dict:
    """The commit checked out and whether tracked files differ from it (None outside a git checkout)."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return {"commit": None, "dirty": None}
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def config_hash(cfg: DictConfig | dict) -> str:
    """sha256 of the resolved config (a DictConfig, or plain data: ``RunConfig.plain``) without the keys that do
    not change results (paths, logging, resuming)."""
    plain = copy.deepcopy(cfg) if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    if plain.get("engine", {}).get("name", LEGACY_ENGINE) == LEGACY_ENGINE:
        plain.pop("engine", None)  # tfmot hashes as before engines existed: earlier runs resume, old entries match
    for key in NOT_HASHED:
        node, *rest = key.split(".")
        if rest:
            plain.get(node, {}).pop(rest[0], None)
        else:
            plain.pop(node, None)
    text = OmegaConf.to_yaml(OmegaConf.create(plain), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def data_fingerprint(splits) -> str:
    """sha256 over the exact arrays used (every split's inputs and targets, with their shapes and types)."""
    digest = hashlib.sha256()
    for part in ("train", "val", "test"):
        for array in (getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}")):
            array = np.ascontiguousarray(array)
            digest.update(f"{part}{array.shape}{array.dtype}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def engine_of(prov: dict) -> dict:
    """``{"name", "keras"}``: the QAT engine a run's provenance records; runs from before engines existed
    ran on tfmot, with the tf-keras of their ``versions``."""
    return prov.get("engine") or {"name": LEGACY_ENGINE, "keras": prov.get("versions", {}).get("tf-keras", "?")}


def provenance(cfg, splits) -> dict:
    """Where the run of the :class:`~qatzoo.schema.RunConfig` ``cfg`` on ``splits`` came from."""
    from qatzoo.keras import ENGINE, KERAS_VERSION

    return {
        # The QAT engine and the Keras it ran on (tf_keras 2.x for tfmot, Keras 3 for keras3).
        "engine": {"name": ENGINE, "keras": KERAS_VERSION},
        "git": git_state(),
        "config_sha256": config_hash(cfg.plain),
        # The function that built the model, as text (a zoo entry of a user's model names it; nothing imports it).
        "factory": "a model built in Python (qatzoo.api.train)"
        if cfg.arch.target == "qatzoo.api.given_model"
        else cfg.arch.target,
        "versions": versions(),
        "platform": platform.platform(),
        # Same config, same code, another CPU: the weights may differ in the last bits (oneDNN/XNNPACK pick
        # kernels by instruction set), so the bytes of a model are only promised for the CPU named here.
        "cpu": cpu_name(),
        "dataset": {
            "name": splits.name,
            **{k: splits.info[k] for k in ("builder", "version", "file", "file_sha256") if k in splits.info},
        },
        "data_sha256": data_fingerprint(splits),
    }
