"""hydra-optuna-sweeper's sweeper, made resumable (``hydra.sweeper._target_`` of conf/sweep/*).

Hydra accepts sweepers only from classes defined under the ``hydra_plugins`` namespace, so this one
lives here rather than in the ``qatzoo`` package.

The plugin already stores the study (``storage: sqlite:///<sweep dir>/optuna.db``, ``load_if_exists``),
but a rerun after an interruption would run ``n_trials`` *more* trials, restart the job numbers at 0
(clashing with the trial directories already there) and leave the killed trial "running" forever.
Here ``n_trials`` is the study's total: a rerun of the same command

* marks the trials left running by the killed process as failed and queues their parameters again
  (the trainer then finds the killed trial's run directory, same config, and resumes it from its
  checkpoint - see ``trainer.resume=auto``);
* runs only the trials still missing, numbering their directories after the existing ones.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger(__name__)


class _ResumableImpl(OptunaSweeperImpl):
    def sweep(self, arguments):
        if self.n_trials < 1:  # train.py stops this at start-up (qatzoo.sweep.check); before any file is made
            raise ValueError(f"hydra.sweeper.n_trials: expected an integer >= 1, got {self.n_trials}")
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)  # holds the SQLite study
        if self.storage:
            study = optuna.create_study(
                study_name=self.study_name,
                storage=self.storage,
                directions=self._get_directions(),
                load_if_exists=True,
            )
            states = optuna.trial.TrialState
            for trial in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
                study._storage.set_trial_state(trial._trial_id, states.FAIL)  # noqa: SLF001 - no public API in optuna 2
                study.enqueue_trial(trial.params)
                log.info(f"trial {trial.number} was interrupted: queued its parameters again {trial.params}")
            done = len(study.get_trials(deepcopy=False, states=(states.COMPLETE,)))
            waiting = len(study.get_trials(deepcopy=False, states=(states.WAITING,)))
            self.job_idx = len(study.trials) - waiting  # new trial directories continue the numbering
            if done:
                log.info(f"resuming study {self.study_name}: {done} of {self.n_trials} trials complete")
            self.n_trials = max(self.n_trials - done, 0)
            if not self.n_trials:
                log.info("nothing left to run")
        return super().sweep(arguments)


class ResumableOptunaSweeper(OptunaSweeper):
    """``hydra.sweeper._target_`` of the sweep presets; same fields as hydra-optuna-sweeper's."""

    def __init__(
        self,
        sampler,
        direction,
        storage,
        study_name,
        n_trials,
        n_jobs,
        max_failure_rate,
        search_space,
        custom_search_space,
        params,
    ):
        self.sweeper = _ResumableImpl(
            sampler,
            direction,
            storage,
            study_name,
            n_trials,
            n_jobs,
            max_failure_rate,
            search_space,
            custom_search_space,
            params,
        )
