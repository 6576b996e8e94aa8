"""Pruning: a sweep trial reports the validation metric of every epoch to its Optuna trial and stops early
when the study's pruner says so.

The sweeper (hydra_plugins/qatzoo_sweeper) tells each job its trial number in ``QATZOO_OPTUNA_TRIAL``
(``hydra.job.env_set``); the job finds the study through ``hydra.sweeper.storage`` and ``study_name``, builds
the preset's pruner, and the trainer adds :class:`TrialReporter` to its loggers. Everything goes through the
study's storage, so it works in the launcher's worker processes as in the sweeper's own. Steps are epochs
counted across both phases (the QAT phase's first epoch is ``float_epochs + 1``); the value is the Keras
model's validation metric in the reported unit - the objective the sweeper is told at the end stays the int8
model's LiteRT metric.
"""

from __future__ import annotations

import os

import optuna

from qatzoo.sweep import TRIAL_ENV
from qatzoo.track import Logger


class Pruned(optuna.TrialPruned):
    """Raised out of the trainer when the pruner stops a trial; ``str()`` says where."""


class TrialReporter(Logger):
    def __init__(self, trial: optuna.trial.Trial, float_epochs: int):
        self.trial, self.float_epochs = trial, float_epochs
        self.last: dict | None = None

    def log(self, phase, epoch, metrics):
        name, value = next((k, v) for k, v in metrics.items() if k.startswith("val_"))
        step = epoch + (self.float_epochs if phase == "qat" else 0)
        self.trial.report(float(value), step)
        self.last = {"phase": phase, "epoch": epoch, "step": step, name: float(value)}
        if self.trial.should_prune():
            raise Pruned(f"trial {self.trial.number} pruned at {phase} epoch {epoch} ({name} {value:.4g})")


def trial_reporter(cfg) -> TrialReporter | None:
    """The reporter of the Optuna trial this Hydra job runs, when it runs one under a pruner; else None."""
    number = os.environ.get(TRIAL_ENV)
    if not number:
        return None
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    if not sweeper.get("pruner") or not sweeper.get("storage") or not sweeper.get("study_name"):
        return None
    study = optuna.load_study(
        study_name=sweeper.study_name, storage=sweeper.storage, pruner=instantiate(sweeper.pruner)
    )
    storage = study._storage  # noqa: SLF001 - Optuna has no public way to attach to a trial asked elsewhere
    study_id = storage.get_study_id_from_name(sweeper.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
    return TrialReporter(optuna.trial.Trial(study, trial_id), int(cfg.schedule.float_epochs))
