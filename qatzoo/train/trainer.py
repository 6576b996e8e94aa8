"""The one trainer all recipes share: float phase, quantize, QAT phase, export, evaluate, report.

``train(cfg, run_dir)`` reads top to bottom; each step is one call with plain inputs and outputs.
This module imports TensorFlow; train.py imports it only after the config has been checked.
"""

from __future__ import annotations

import qatzoo.tf_quiet  # noqa: F401  (first: TensorFlow's start-up lines held back)

# isort: split

import hashlib
import math
import numbers
import os
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from qatzoo.artifacts import read_yaml
from qatzoo.build import build_model, build_scheme, load_data
from qatzoo.config import RunConfig, validate
from qatzoo.deploy import report as deploy_report
from qatzoo.errors import ConfigError, DataError, DataSourceMissing, TrainingError
from qatzoo.export.scheme_files import export_float, export_qat, ptq_provenance
from qatzoo.keras import keras
from qatzoo.provenance import config_hash, provenance
from qatzoo.quant.schemes import QATScheme, engine_module
from qatzoo.render.card import render as render_card
from qatzoo.report import RunDir, RunReport
from qatzoo.train import distribute
from qatzoo.train.loop import Phase, run_phase
from qatzoo.train.results import assemble

__all__ = ["DataError", "DataSourceMissing", "TrainingError", "train"]


def train(
    cfg: RunConfig | DictConfig, run_dir: str | Path, overrides: list[str] | None = None, trial=None, command=None
) -> dict:
    """Run one recipe end to end and return its metrics (also written to ``run_dir/metrics.json``).

    ``cfg``: the validated :class:`RunConfig` (train.py passes it), or a composed DictConfig, validated here.

    ``overrides``: the command line's overrides, for the card's reproduce command (default: Hydra's);
    ``command``: that command's text itself (a run started from Python, :func:`qatzoo.api.train`).
    ``trial``: a sweep trial's :class:`~qatzoo.sweep.prune.TrialReporter`; it gets every epoch's validation
    metric and may stop the run (``Pruned``; the run directory then holds ``pruned.json`` and no results).
    """
    if not isinstance(cfg, RunConfig):
        cfg = validate(cfg)
    _check_engine(cfg)
    run = RunDir(resume_dir(cfg, Path(run_dir)))
    _seed(cfg.trainer, cfg.trainer.seed)
    # Before any TensorFlow op: logical devices and collective ops are configured at start-up.
    strategy = distribute.make_strategy(cfg.trainer.strategy, cfg.trainer.loop)
    clock = Stopwatch()
    data = _load(cfg, clock)
    with distribute.scope(strategy):  # the model's variables are mirrored on every replica
        model = build_model(cfg.arch, data)
    scheme = build_scheme(cfg.quant)
    scheme.check(model)  # a keep-float pattern that matches nothing, a layer without config: fail now
    formats = scheme.layer_formats(model) if scheme.qat else {}
    if cfg.trainer.init_checkpoint:  # before the run directory is written: a bad file leaves nothing
        _load_init_checkpoint(model, cfg.trainer.init_checkpoint)
    run.path.mkdir(parents=True, exist_ok=True)
    if not run.config.exists():
        run.write(run.config, OmegaConf.to_yaml(OmegaConf.create(cfg.plain)))
    origin = provenance(cfg, data)  # now: the code that runs is the code checked out at the start
    logger = _logger(cfg, run.path, strategy, trial)
    parallel = distribute.describe(strategy, cfg.trainer.strategy)
    _announce(cfg, model, data, formats, parallel)
    keras_models, files, representative = _train(cfg, run, data, model, scheme, strategy, logger, clock, trial, origin)
    with clock("export_s"):
        files |= export_qat(scheme, keras_models.get("qat"), representative)
    # The truth: every number is measured on the full test split; int8 ones in LiteRT, on the bytes written.
    with clock("evaluate_s"):
        report, predictions = assemble(
            cfg=cfg,
            data=data,
            scheme=scheme,
            formats=formats,
            keras_models=keras_models,
            files=files,
            provenance=origin,
            distribute=parallel,
            command=command or reproduce_command(cfg, overrides),
        )
    int8_predictions = predictions.get(scheme.int8_model)  # measured once: the deployment report and figures reuse it
    _measure_beside(cfg, report, data, scheme, files, int8_predictions, clock)
    if cfg.trainer.ptq_baselines and isinstance(scheme, QATScheme) and scheme.int8_model in report.results:
        with clock("ptq_baselines_s"):  # QAT's reason to exist: the strongest PTQ at the scheme's own widths
            report.ptq_baselines = _ptq_baselines(scheme, keras_models["float"], representative, data, report)
    metrics = _write_results(cfg, run, report, data, scheme, files, int8_predictions, clock, logger)
    logger.summary(report)
    logger.finish()
    _print_summary(run.path, report)
    return metrics


def _load(cfg: RunConfig, clock):
    """The run's splits, their task checked against the config's (a user's file decides by its targets' dtype).
    The generators are seeded again after: preparing a dataset (a machine's first run of it) draws from them,
    and a model built after that would differ from a later run's, which finds the data prepared."""
    with clock("data_s"):
        data = load_data(cfg.data)
    if data.task.name != cfg.data.task:
        raise DataError(
            f"data {cfg.data.name}: its targets make a {data.task.name} dataset, the config says data.task="
            f"{cfg.data.task}; set data.task={data.task.name} (with an arch whose task is {data.task.name})"
        )
    _seed(cfg.trainer, cfg.trainer.seed)
    return data


def _train(cfg: RunConfig, run: RunDir, data, model, scheme, strategy, logger, clock, trial, origin: dict):
    """The float phase (unless ``trainer.init_checkpoint`` gave the weights), its exports, the QAT clone and
    the QAT phase. Returns the Keras models by name, the exported files and the representative sample. A
    sweep trial the pruner stops leaves ``pruned.json`` and re-raises ``Pruned``."""
    run_phase = _loop(cfg.trainer.loop)
    try:
        with clock("float_train_s"):
            if not cfg.trainer.init_checkpoint:
                run_phase(model, data, _phase(cfg, "float"), run.checkpoints, logger, strategy=strategy)
        _save_keras(model, run.float_keras)
        representative = data.representative(cfg.trainer.representative_samples, cfg.trainer.seed)
        keras_models = {"float": model}
        with clock("export_s"):
            files = export_float(scheme, model, representative)
        if made := ptq_provenance(scheme):
            origin["ptq"] = made  # LiteRT's quantizer: package, version, recipe of each post-training file
        if scheme.qat:
            _seed(cfg.trainer, cfg.trainer.seed + 1)  # a resumed run that skipped the float phase builds the same model
            with distribute.scope(strategy), clock("export_s"):  # the QAT clone, its ranges and their calibration
                qat_model = keras_models["qat"] = scheme.quantize(model, representative)
            with clock("qat_train_s"):
                run_phase(qat_model, data, _phase(cfg, "qat"), run.checkpoints, logger, strategy=strategy)
    except Exception as error:
        from qatzoo.sweep.prune import Pruned

        if trial is None or not isinstance(error, Pruned):
            raise
        logger.finish()
        run.write(run.path / "pruned.json", {"reason": str(error), **(trial.last or {}), "timing": clock.total()})
        print(f"[qatzoo] {error}")
        raise
    return keras_models, files, representative


def _measure_beside(cfg: RunConfig, report: RunReport, data, scheme, files: dict, int8_predictions, clock) -> None:
    """What the int8 model is compared with and where it runs: classical baselines on the same split, and the
    deployment report (LiteRT CPU latency, TensorFlow Lite Micro, Ethos-U55 through Vela), whose TFLM
    comparison takes the int8 file's LiteRT test predictions the report was measured on."""
    if cfg.trainer.baselines:
        from qatzoo.baselines import baselines

        with clock("baselines_s"):  # classical models on the same split: what the int8 model has to beat
            fitted = baselines(data)
            report.baselines = dict(fitted)
        if int8_predictions is not None and fitted:
            from qatzoo.significance import against

            model_losses = data.task.losses(data.y_test, int8_predictions)  # the int8 file's, from LiteRT
            report.significance = against(data.task, model_losses, report.baselines, fitted.losses) or None
    if scheme.int8_model and cfg.trainer.deployment:
        with clock("deployment_s"):
            report.deployment = deploy_report.build(
                files[scheme.int8_model],
                files["float"],
                data.x_test,
                lambda y: data.task.score(data.y_test, y),
                predictions=int8_predictions,
            )


def _ptq_baselines(scheme, float_model, representative, data, report: RunReport) -> dict:
    """LiteRT's quantizer's algorithms on the float model at the scheme's widths, against the QAT int8 file
    (:mod:`qatzoo.export.ptq_suite`); the float file is converted again, with the tensor names the quantizer
    matches by (the written one is stripped: the same graph and weights)."""
    from qatzoo.export import ptq_suite
    from qatzoo.export.tflite import to_float_tflite

    bits = scheme.spec.bits
    widths = ptq_suite.widths_name(bits.weight_bits, bits.activation_bits)

    def done(name: str, result: dict) -> None:
        value = data.task.format(result[data.task.metric]) if data.task.metric in result else result["error"][:120]
        print(f"[qatzoo] PTQ {widths} {name}: {value}", flush=True)

    table = ptq_suite.measure(
        to_float_tflite(float_model),
        representative,
        data,
        weight_bits=bits.weight_bits,
        activation_bits=bits.activation_bits,
        done=done,
    )
    return ptq_suite.summarize(table, data.task, report.value("float_tflite"), report.int8_value)


def _write_results(
    cfg: RunConfig, run: RunDir, report: RunReport, data, scheme, files: dict, int8_predictions, clock, logger
) -> dict:
    """The model files, contract, figures (of ``int8_predictions``, the int8 file's LiteRT test predictions),
    card and (last: it marks a complete run) metrics.json."""
    _check_finite(report.to_dict())  # before any model file: a broken model leaves no files that look like results
    for kind, name in (("float", "float"), ("ptq_int8", "ptq_int8"), ("int8", scheme.int8_model)):
        if name in files and not (kind == "ptq_int8" and name == scheme.int8_model):
            report.files[run.model(kind).name] = run.write(run.model(kind), files[name])
    report.contract = _contract(data, files.get(scheme.int8_model or "float", files["float"]))
    report.files[run.contract.name] = run.write(run.contract, report.contract)
    report.timing = clock.total()
    report.provenance["wandb_run"] = logger.url
    metrics = report.to_dict()
    _check_finite(metrics)  # again, with parity and sizes: metrics.json is strict JSON
    figures = _figures(run, report, data, int8_predictions)
    for name in figures:
        blob = (run.path / name).read_bytes()
        report.files[name] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    run.write(run.card, render_card(report, cfg, figures))
    run.write(run.metrics, metrics)
    return metrics


def _check_engine(cfg: RunConfig) -> None:
    """The config's engine must be the one this process loaded (qatzoo.engine: one Keras per process)."""
    from qatzoo.engine import EngineError, select

    try:
        select(cfg.engine.name)
    except EngineError as error:
        raise ConfigError(str(error)) from None


def _figures(run: RunDir, report: RunReport, data, int8_predictions) -> tuple[str, ...]:
    """The card's figures (qatzoo.export.plots): training curves from history.csv; from the int8 model's
    LiteRT test predictions (``None``: no int8 model), its forecasts against the actual series, or its
    confusion matrix. Returns the file names written."""
    import numpy as np

    from qatzoo import contract
    from qatzoo.export import plots

    written = []
    history = run.path / "history.csv"
    if history.is_file():
        rows = plots.read_history(history)
        if rows and f"val_{report.metric}" in rows[0]:
            plots.training_curves(rows, report.metric, report.unit, run.path / "training.png")
            written.append("training.png")
    if int8_predictions is None:
        return tuple(written)
    y = int8_predictions
    if report.task == "forecast":
        forecast = contract.decode(data.contract["output"]["steps"], y, data.raw["x_test"])
        dates = data.raw.get("dates")  # the weeks' dates, when the series has them: a dated x axis
        plots.forecast_vs_actual(
            data.raw["y_test"],
            {"int8 (LiteRT)": forecast},
            report.unit,
            run.path / "forecast.png",
            dates=dates[int(data.raw["test_starts"][0]) :] if dates else None,
            step=data.info.get("period", "week"),
        )
        written.append("forecast.png")
    elif report.task == "regression":
        steps = data.contract["output"]["steps"]
        truth = contract.decode(steps, data.y_test, data.raw["x_test"])  # in the unit, as the contract decodes
        plots.predicted_vs_true(
            truth, contract.decode(steps, y, data.raw["x_test"]), report.unit, run.path / "regression.png"
        )
        written.append("regression.png")
    else:
        classes = data.contract["output"]["classes"]
        plots.confusion_matrix(data.y_test, np.argmax(y, axis=-1), classes, run.path / "confusion.png")
        written.append("confusion.png")
    return tuple(written)


def _contract(data, blob: bytes) -> dict:
    """The model contract of the file ``blob`` (its I/O quantization) on ``data`` (raw input and meaning)."""
    from qatzoo.contract import as_produced, contract
    from qatzoo.export.checks import output_op
    from qatzoo.export.litert import interpreter, io_quant

    in_q, out_q = io_quant(interpreter(blob))
    float_io = in_q.dtype == "float32"
    return contract(
        data.task.name,
        data.contract["input"],
        as_produced(data.contract["output"], output_op(blob)),
        None if float_io else in_q,
        None if float_io else out_q,
    )


class Stopwatch:
    """Seconds spent in named parts of a run (a part entered twice adds up), and the total."""

    def __init__(self):
        self.start, self.parts = time.perf_counter(), {}

    @contextmanager
    def __call__(self, name: str):
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - begin

    def total(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in {**self.parts, "total_s": time.perf_counter() - self.start}.items()}


def reproduce_command(cfg: RunConfig, overrides: list[str] | None = None) -> str:
    """``python train.py`` (or ``qatzoo train``, as the run was started) with the overrides actually given (Hydra's, when it runs), so the card's
    command rebuilds this run; ``hydra.*`` and ``paths.*`` (where this machine keeps things) left out."""
    if overrides is None:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None
    if overrides is None:  # called without Hydra and without overrides: the recipe is all we know
        overrides = [f"recipe={cfg.name}"] if cfg.name != "custom" else []
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/", "paths."))]
    from qatzoo.config import ENTRY, USER_DIRS

    folders = [f"--config-dir {shlex.quote(str(d))}" for d in USER_DIRS]  # a user's own config folder
    return " ".join([ENTRY, *folders, *(shlex.quote(o) for o in kept)])


def _announce(cfg: RunConfig, model, data, formats: dict, parallel: dict) -> None:
    strategy_name = cfg.trainer.strategy
    print(f"[qatzoo] {cfg.name}: {model.name} ({model.count_params():,} parameters) on {data.name} {data.sizes()}")
    kept = [name for name, bits in formats.items() if bits is None]
    if kept:
        print(f"[qatzoo] kept float during QAT: {', '.join(kept)}")
    if strategy_name != "none":
        replicas, batch = parallel["num_replicas_in_sync"], cfg.schedule.batch_size
        print(
            f"[qatzoo] data parallel ({strategy_name}): {replicas} replicas in sync on {parallel['num_workers']} "
            f"worker(s); global batch {batch}, about {batch / replicas:g} per replica"
        )


def _load_init_checkpoint(model, path: str) -> None:
    """Load ``trainer.init_checkpoint``; a file that is not this model's Keras weights is a one-line ConfigError."""
    try:
        model.load_weights(os.path.expanduser(path))
    except Exception as error:  # noqa: BLE001 - h5py, TensorFlow and Keras each raise their own kind
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ConfigError(
            f"trainer.init_checkpoint: cannot read {path} as weights of {model.name} ({reason}); "
            "use a <phase>-NNN.weights.h5 (tfmot: .h5) from the checkpoints/ of a run of the same arch and engine (written with "
            "trainer.epoch_weights=true)"
        ) from None


def _check_finite(metrics, where: str = "") -> None:
    """Raise TrainingError naming the first non-finite number in ``metrics`` (it would not be strict JSON)."""
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            _check_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(metrics, (list, tuple)):
        for i, value in enumerate(metrics):
            _check_finite(value, f"{where}[{i}]")
    elif isinstance(metrics, numbers.Real) and not isinstance(metrics, numbers.Integral) and not math.isfinite(metrics):
        raise TrainingError(f"metric {where} is {metrics}: the model's outputs are not finite; no metrics.json written")


def _loop(name: str):
    """The training loop: ``tape`` (GradientTape steps, bit-exact resume) or ``fit`` (Keras fit)."""
    if name == "fit":
        from qatzoo.train.fit import run_phase_fit

        return run_phase_fit
    return run_phase


def _logger(cfg: RunConfig, run_dir: Path, strategy, trial=None):
    """The configured logger, and always the run's own history.csv (per-epoch metrics of both phases: the
    card's training plot; a resumed run appends to it); with several workers only the chief logs. A sweep
    trial gets every epoch too."""
    from qatzoo.track import CsvLogger, Logger, Tee

    if trial is not None:
        return Tee(_logger(cfg, run_dir, strategy), trial)
    if not distribute.is_chief(strategy):
        return Logger()
    plain = cfg.plain
    chosen = instantiate(
        plain["logger"],
        _convert_="all",
        _recursive_=False,  # run_config holds other groups' _target_ keys: data, not things to build
        run_dir=str(run_dir),
        run_config=plain,
        tags=[cfg.name, cfg.arch.name, cfg.quant.name],
    )
    return chosen if isinstance(chosen, CsvLogger) else Tee(chosen, CsvLogger(str(run_dir)))


def _phase(cfg: RunConfig, name: str) -> Phase:
    return Phase(
        name=name,
        epochs=cfg.schedule.float_epochs if name == "float" else cfg.schedule.qat_epochs,
        lr=cfg.schedule.lr if name == "float" else cfg.schedule.qat_lr,
        batch_size=cfg.schedule.batch_size,
        seed=cfg.trainer.seed,
        checkpoint_every_steps=cfg.trainer.checkpoint_every_steps,
        verbose=cfg.trainer.verbose,
        keep_checkpoints=cfg.trainer.keep_checkpoints,
        epoch_weights=cfg.trainer.epoch_weights,
        config_hash=config_hash(cfg.plain),
    )


def _seed(trainer, seed: int) -> None:
    """Seed Python, NumPy and TensorFlow; dropout draws from tf.random.Generator state that checkpoints hold."""
    if trainer.threads and not tf.config.threading.get_intra_op_parallelism_threads():
        tf.config.threading.set_intra_op_parallelism_threads(trainer.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    engine_module().prepare_seeding()
    keras.utils.set_random_seed(seed)
    if trainer.deterministic:
        tf.config.experimental.enable_op_determinism()


def resume_dir(cfg: RunConfig, run_dir: Path) -> Path:
    """The directory this run works in: ``run_dir``, or an unfinished run of the same config to resume.

    ``trainer.resume``: ``auto`` resumes the newest unfinished run of the same config (same config
    hash, no metrics.json) beside ``run_dir``; ``never`` always starts afresh; a path resumes that run.
    A directory that holds a run of another config is refused, and so is one whose config.yaml cannot
    be read; an unreadable sibling is only skipped, with a warning (it must not stop every later run).
    """
    wanted = config_hash(cfg.plain)
    mode = cfg.trainer.resume

    def same_config(path: Path) -> bool:
        saved, problem = _saved_config_hash(path)
        if problem:
            raise ConfigError(f"{path}/config.yaml: {problem}; pick another run directory")
        return saved == wanted

    def sibling_of_same_config(path: Path) -> bool:
        saved, problem = _saved_config_hash(path)
        if problem:
            print(f"warning: ignoring the run in {path}: its config.yaml {problem}", file=sys.stderr)
        return saved == wanted

    if mode not in ("auto", "never"):
        target = Path(os.path.expanduser(mode))
        if not same_config(target):
            raise ConfigError(f"trainer.resume: {target} holds a run of another config; start a new run instead")
        _drop_if_empty(run_dir, keep=target)
        return target
    if (run_dir / "config.yaml").exists():
        if not same_config(run_dir):
            raise ConfigError(f"{run_dir} holds a run of another config; pick another hydra.run.dir")
        return run_dir
    if mode == "auto" and run_dir.parent.is_dir():
        unfinished = [
            p
            for p in run_dir.parent.iterdir()
            if p != run_dir
            and (p / "config.yaml").is_file()
            and (p / "checkpoints").is_dir()
            and not (p / "metrics.json").exists()
            and sibling_of_same_config(p)
        ]
        if unfinished:
            target = max(unfinished, key=lambda p: p.stat().st_mtime)
            print(f"[qatzoo] resuming the unfinished run in {target}")
            _drop_if_empty(run_dir, keep=target)
            return target
    return run_dir


def _saved_config_hash(run: Path) -> tuple[str | None, str | None]:
    """The config hash of the run in ``run``, or None and why its config.yaml cannot be read (one line)."""
    try:
        saved = read_yaml(run / "config.yaml")  # bounded: a sibling's alias bomb must not stall this run
        if not isinstance(saved, dict):
            return None, f"is not a mapping ({type(saved).__name__})"
        return config_hash(saved), None
    except Exception as error:  # noqa: BLE001 - YAML, OmegaConf, OS and decoding errors alike
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        return None, f"cannot be read ({reason})"


def _drop_if_empty(path: Path, keep: Path) -> None:
    if path != keep and path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def _save_keras(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _print_summary(run_dir: Path, report: RunReport) -> None:
    print(f"[qatzoo] run directory: {run_dir}")
    line = f"[qatzoo] {report.metric}: float {report.format(report.value('float'))}"
    if "ptq_int8" in report.results:
        line += f" | PTQ int8 {report.format(report.value('ptq_int8'))}"
    if "ptq_a16w8" in report.results:
        line += f" | PTQ int16 activations {report.format(report.value('ptq_a16w8'))}"
    if "qat" in report.results:
        line += f" | QAT fake-quant {report.format(report.value('qat'))}"
        line += f" | QAT int8 (LiteRT) {report.format(report.value('qat_int8'))}"
    print(line)
    if report.ptq_baselines and "best" in report.ptq_baselines:
        table = report.ptq_baselines
        share = table["recovered"]
        from qatzoo.report import wider

        value = report.format(table["methods"][table["best"]][report.metric])
        best = f"the best PTQ {table['widths']} ({table['best']}, {value}{wider(table)})"
        print(
            f"[qatzoo] {best} is not significantly worse than float: nothing for QAT to recover"
            if share is None
            else f"[qatzoo] QAT recovers {share:.0%} of what {best} loses against float"
        )
    if report.int8:
        parity = report.int8["parity"]
        agree = f"agreement {parity['agreement']:.2%}" if "agreement" in parity else f"MAE gap {parity['mae_gap']:.2%}"
        print(
            f"[qatzoo] int8 file {report.sizes['int8_over_float']:.2f}x float | full integer: "
            f"{report.int8['full_integer']} | parity: {agree} ({'pass' if parity['pass'] else 'FAIL'})"
        )
    if report.deployment:
        print(f"[qatzoo] {deploy_report.summary(report.deployment)}")
