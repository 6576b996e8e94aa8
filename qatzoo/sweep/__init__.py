"""Hyperparameter sweeps: start-up checks of sweep definitions, a resumable Optuna sweeper, summaries.

Sweeps use Hydra's own machinery: ``python train.py -m ...`` (basic grid sweeper) or a preset of the
``sweep`` group (Optuna through the project's sweeper, hydra_plugins/qatzoo_sweeper), launched locally one by one, in parallel
(``hydra/launcher=joblib``) or on a Ray cluster (``hydra/launcher=ray``). Every trial is a normal run
directory; the objective is the int8 model's metric in LiteRT (what ``train.py``'s main returns).
"""

#: How a job of an Optuna sweep learns its trial number (set by the sweeper, read by qatzoo.sweep.prune).
TRIAL_ENV = "QATZOO_OPTUNA_TRIAL"
