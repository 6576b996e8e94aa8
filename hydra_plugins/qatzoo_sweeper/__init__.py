"""The project's Optuna sweeper, on current Optuna (``hydra.sweeper._target_`` of conf/hydra/sweeper/optuna.yaml).

Hydra accepts sweepers only from classes defined under the ``hydra_plugins`` namespace, so this one lives
here rather than in the ``qatzoo`` package. It reads the preset syntax hydra-optuna-sweeper used
(``params: {key: "choice(...)" | "range(a, b, step)" | "interval(a, b)" | "tag(log, interval(a, b))"}``, a
``sampler`` and ``direction``), plus a ``pruner``:

* The study lives in ``storage`` (SQLite in the sweep directory) and ``n_trials`` is its *total*: a rerun of
  the same command after an interruption fails the trials the killed process left running, queues their
  parameters again (the trainer then finds the killed trial's run directory and resumes it), and runs only
  the trials still missing, numbering their directories after the existing ones.
* Trials are asked ``n_jobs`` at a time and launched together (the joblib and Ray launchers run them in
  parallel processes). Each job learns its trial number through ``hydra.job.env_set`` (``QATZOO_OPTUNA_TRIAL``),
  not through the config: a trial's config, and so its hash, is the one a plain run of the same values has.
* Pruning: with a ``pruner`` the trainer reports the validation metric of every epoch to its trial through
  the study's storage and stops when the pruner says so (:mod:`qatzoo.sweep.prune`); the trial is told
  ``PRUNED`` and the sweep goes on. Works across processes: the pruner reads the other trials from storage.
* ``range(a, b, step)`` means what it means in a Hydra grid sweep: ``a, a + step, ...`` below ``b``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from qatzoo.sweep.prune import TRIAL_ENV

log = logging.getLogger(__name__)
States = optuna.trial.TrialState


def distribution(override: Override) -> optuna.distributions.BaseDistribution | None:
    """The Optuna distribution a sweep override describes; None for a plain (fixed) override."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return None
    value = override.value()
    if isinstance(value, IntervalSweep):
        log_scale = "log" in (value.tags or ())
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(int(value.start), int(value.end), log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    choices = list(override.sweep_iterator(transformer=Transformer.encode))
    if isinstance(value, RangeSweep) and not value.shuffle and all(isinstance(c, int) for c in choices):
        step = int(value.step)
        return IntDistribution(min(choices), max(choices), step=abs(step)) if len(choices) > 1 else None
    return CategoricalDistribution(choices)


class OptunaSweeper(Sweeper):
    """Fields of ``hydra.sweeper`` (conf/hydra/sweeper/optuna.yaml); ``sampler`` and ``pruner`` arrive built."""

    def __init__(
        self,
        sampler,
        direction: str,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        params=None,
        pruner=None,
    ):
        self.sampler, self.pruner = sampler, pruner
        self.direction, self.storage, self.study_name = direction, storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, max(int(n_jobs), 1), max_failure_rate
        self.params = OmegaConf.to_container(params) if params is not None else {}
        self.job_idx = 0

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def _space(self, arguments: list[str]) -> tuple[dict, list[str]]:
        """(distributions by key, fixed overrides): the preset's params, then the command line's."""
        parsed = OverridesParser.create().parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        space, fixed = {}, []
        for override in parsed:
            key = override.get_key_element()
            found = distribution(override)
            if found is None:
                value = override.get_value_element_as_str() if not override.is_sweep_override() else None
                if value is None:  # a one-value range: fixed
                    value = str(next(iter(override.sweep_string_iterator())))
                space.pop(key, None)
                fixed.append(f"{key}={value}")
            else:
                space[key] = found
        return space, fixed

    def _study(self) -> optuna.Study:
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)  # holds the SQLite study
        return optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            pruner=self.pruner,
            direction=self.direction,
            load_if_exists=True,
        )

    def sweep(self, arguments: list[str]) -> None:
        if self.n_trials < 1:  # train.py stops this at start-up (qatzoo.sweep.check); before any file is made
            raise ValueError(f"hydra.sweeper.n_trials: expected an integer >= 1, got {self.n_trials}")
        space, fixed = self._space(arguments)
        study = self._study()
        for trial in study.get_trials(deepcopy=False, states=(States.RUNNING,)):
            study.tell(trial.number, state=States.FAIL)
            study.enqueue_trial(trial.params)
            log.info(f"trial {trial.number} was interrupted: queued its parameters again {trial.params}")
        finished = study.get_trials(deepcopy=False, states=(States.COMPLETE, States.PRUNED))
        waiting = len(study.get_trials(deepcopy=False, states=(States.WAITING,)))
        self.job_idx = len(study.trials) - waiting  # new trial directories continue the numbering
        if finished:
            log.info(f"resuming study {study.study_name}: {len(finished)} of {self.n_trials} trials finished")
        to_go = max(self.n_trials - len(finished), 0)
        if not to_go:
            log.info("nothing left to run")
        while to_go > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, to_go))]
            batch = [
                [*fixed, *(f"{k}={v}" for k, v in t.params.items()), f"+hydra.job.env_set.{TRIAL_ENV}={t.number}"]
                for t in trials
            ]
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            failures = [
                error for trial, ret in zip(trials, returns, strict=True) if (error := _tell(study, trial, ret))
            ]
            if len(failures) / len(returns) > self.max_failure_rate:
                log.error(f"{len(failures)} of {len(returns)} trials failed (max_failure_rate={self.max_failure_rate})")
                for ret in returns:
                    ret.return_value  # noqa: B018 - raises the job's own error, with its traceback
            to_go -= len(returns)
        if any(t.state == States.COMPLETE for t in study.trials):
            best = study.best_trial
            log.info(f"best trial {best.number}: {best.value} with {best.params}")
            result = {"name": "optuna", "best_trial": best.number, "best_params": best.params, "best_value": best.value}
            OmegaConf.save(OmegaConf.create(result), Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")


def _tell(study: optuna.Study, trial: optuna.trial.Trial, ret) -> Exception | None:
    """Tell the study how a job ended; return its error if it failed (a pruned trial is not a failure)."""
    try:
        value = float(ret.return_value)
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=States.PRUNED)
        log.info(f"trial {trial.number} pruned: {pruned}")
        return None
    except Exception as error:  # noqa: BLE001 - recorded as a failed trial; max_failure_rate decides
        study.tell(trial, state=States.FAIL)
        log.warning(f"trial {trial.number} failed: {type(error).__name__}: {str(error)[:300]}")
        return error
    study.tell(trial, value)
    return None
