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
* Refusals, one line on stderr and exit 2, like train.py's start-up checks (the sweeper makes them itself, so
  they hold however Hydra was started, ``--config-name`` included): an ``n_trials`` that is not an integer >= 1;
  a second sweep of the same study while one runs (an ``fcntl`` lock on ``<storage file>.lock``, held by the
  sweeping process; the second would fail the first's running trial and retrain it in the same directory);
  a study file that is not a readable SQLite database; and a stored study whose direction, sampler or search
  space is not this sweep's (the sampler and space are recorded in the study's user attributes).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from qatzoo.errors import ConfigError
from qatzoo.sweep import TRIAL_ENV

try:
    import optuna
except ImportError:  # without qatzoo[sweeps]: Hydra imports every plugin as it starts; a sweep that names this
    optuna = None  # sweeper is refused before that, in one line (qatzoo.extras.for_config)

log = logging.getLogger(__name__)
States = optuna.trial.TrialState if optuna else None
#: Study user attributes the sweeper records when it creates a study, and checks when it resumes one.
SAMPLER_ATTR, SPACE_ATTR = "qatzoo_sweep_sampler", "qatzoo_sweep_space"


def _refuse(message: str) -> None:
    """Stop the sweep with one line on stderr and exit status 2 (Hydra prints tracebacks for exceptions)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


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
        sampler = config.hydra.sweeper.get("sampler")  # as configured (the built sampler does not say its seed)
        self.sampler_spec = OmegaConf.to_container(sampler, resolve=True) if OmegaConf.is_config(sampler) else None
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

    def _study_file(self) -> Path | None:
        """The SQLite file of ``storage``; None for another (or no) storage."""
        if not self.storage or not str(self.storage).startswith("sqlite"):
            return None
        from sqlalchemy.engine import make_url

        database = make_url(str(self.storage)).database
        return Path(database) if database and database != ":memory:" else None

    def _lock(self) -> int:
        """Hold an exclusive lock for this sweep's study (its storage file's, else its sweep directory's);
        refuse if another process holds it. The lock goes with the process, however it ends."""
        path = self._study_file()
        path = path.with_name(path.name + ".lock") if path else Path(self.config.hydra.sweep.dir) / ".sweep.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            _refuse(
                f"another sweep of study {self.study_name} is running ({path} is locked"
                f"{f' by process {holder}' if holder.isdigit() else ''}); let it finish or stop it, then rerun "
                "to resume the study"
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _check_file(self) -> None:
        """Refuse a study file that SQLite cannot read whole (not a database, truncated, damaged)."""
        import sqlite3

        path = self._study_file()
        if path is None or not path.is_file() or path.stat().st_size == 0:
            return
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                found = db.execute("PRAGMA quick_check").fetchall()
            problem = None if found == [("ok",)] else "; ".join(str(row[0]) for row in found[:1])
        except sqlite3.Error as error:
            problem = str(error)
        if problem:
            _refuse(f"{path} is not a readable Optuna study ({problem}); move it away to start a new study")

    def _check_resumed(self, storage, space: dict) -> None:
        """Refuse to resume a stored study whose direction, sampler or search space is not this sweep's: its
        best trial would be the worst (another direction), or its trials came from another search."""
        try:
            study_id = storage.get_study_id_from_name(self.study_name)
        except KeyError:
            return  # a new study
        where = f"study {self.study_name} in {self._study_file() or self.storage}"
        advice = "use another hydra.sweep.dir (or study_name) for a new study, or rerun with the study's settings"
        stored = [d.name.lower() for d in storage.get_study_directions(study_id)]
        if stored != [str(self.direction).lower()]:
            _refuse(f"{where} has direction {', '.join(stored)}, this sweep {self.direction}; {advice}")
        attrs = storage.get_study_user_attrs(study_id)
        if SAMPLER_ATTR in attrs and attrs[SAMPLER_ATTR] != self.sampler_spec:
            _refuse(
                f"{where} has sampler {json.dumps(attrs[SAMPLER_ATTR])}, this sweep "
                f"{json.dumps(self.sampler_spec)}; {advice}"
            )
        if SPACE_ATTR in attrs:
            before = {k: optuna.distributions.json_to_distribution(json.dumps(v)) for k, v in attrs[SPACE_ATTR].items()}
        else:  # a study recorded before the space was: the distributions its trials were asked with
            before = {}
            for trial in storage.get_all_trials(study_id, deepcopy=False):
                before.update(trial.distributions)
            if not before:
                return
        for key in sorted(set(before) | set(space)):
            if before.get(key) != space.get(key):
                was, now = before.get(key, "not searched"), space.get(key, "not searched")
                _refuse(f"{where} has another search space: {key} was {was}, this sweep {now}; {advice}")

    def _study(self, space: dict) -> optuna.Study:
        """Create the study, or load the stored one after checking it is this sweep's."""
        if not self.storage:
            return optuna.create_study(sampler=self.sampler, pruner=self.pruner, direction=self.direction)
        from sqlalchemy.exc import SQLAlchemyError

        self._check_file()
        try:
            storage = optuna.storages.get_storage(self.storage)
            if self.study_name:
                self._check_resumed(storage, space)
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=self.sampler,
                pruner=self.pruner,
                direction=self.direction,
                load_if_exists=True,
            )
            attrs = study.user_attrs
            if SAMPLER_ATTR not in attrs:  # a new study (or one made before these were recorded)
                study.set_user_attr(SAMPLER_ATTR, self.sampler_spec)
            if SPACE_ATTR not in attrs:
                space_json = {k: json.loads(optuna.distributions.distribution_to_json(d)) for k, d in space.items()}
                study.set_user_attr(SPACE_ATTR, space_json)
        except SQLAlchemyError as error:
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            _refuse(f"cannot open the study in {self._study_file() or self.storage}: {reason[:300]}")
        return study

    def sweep(self, arguments: list[str]) -> None:
        from qatzoo.sweep.check import check_n_trials

        try:  # train.py checks it at start-up too, but not when started with --config-name; before any file
            check_n_trials(self.n_trials)
        except ConfigError as error:
            _refuse(str(error))
        space, fixed = self._space(arguments)
        lock = self._lock()
        try:
            self._sweep(self._study(space), space, fixed)
        finally:
            os.close(lock)

    def _sweep(self, study: optuna.Study, space: dict, fixed: list[str]) -> None:
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
