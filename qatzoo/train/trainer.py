"""The one trainer all recipes share: float phase, quantize, QAT phase, export, evaluate, report.

``train(cfg, run_dir)`` reads top to bottom; each step is one call with plain inputs and outputs.
This module imports TensorFlow; train.py imports it only after the config has been checked.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import sys
import time
from pathlib import Path

import tensorflow as tf
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from qatzoo.config import ConfigError, validate
from qatzoo.data.splits import DataError, DataSourceMissing
from qatzoo.export import checks, evaluate, litert, lowbit
from qatzoo.export.card import write_card
from qatzoo.export.tflite import strip_names, to_float_tflite, to_int8_tflite
from qatzoo.files import write_bytes, write_json, write_text
from qatzoo.keras import keras
from qatzoo.provenance import config_hash, provenance
from qatzoo.train import distribute
from qatzoo.train.loop import Phase, TrainingError, run_phase

__all__ = ["DataError", "DataSourceMissing", "TrainingError", "train"]


def train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run one recipe end to end and return its metrics (also written to ``run_dir/metrics.json``)."""
    validate(cfg)
    run_dir = resume_dir(cfg, Path(run_dir))
    _seed(cfg.trainer, cfg.trainer.seed)
    # Before any TensorFlow op: logical devices and collective ops are configured at start-up.
    strategy_name = cfg.trainer.get("strategy", "none")
    strategy = distribute.make_strategy(strategy_name, cfg.trainer.get("loop", "tape"))

    timing, start = {}, time.perf_counter()
    data = _load_data(cfg)
    timing["data_s"] = time.perf_counter() - start
    with distribute.scope(strategy):  # the model's variables are mirrored on every replica
        model = instantiate(_kwargs(cfg.arch), input_shape=data.input_shape, num_outputs=data.num_outputs)
    scheme = instantiate(cfg.quant, _convert_="all")
    scheme.check(model)  # a keep-float pattern that matches nothing, a layer without config: fail now
    formats = scheme.layer_formats(model) if scheme.qat else {}
    if cfg.trainer.init_checkpoint:  # before the run directory is written: a bad file leaves nothing
        _load_init_checkpoint(model, cfg.trainer.init_checkpoint)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    origin = provenance(cfg, data)  # now: the code that runs is the code checked out at the start
    logger = _logger(cfg, run_dir, strategy)
    print(f"[qatzoo] {cfg.name}: {model.name} ({model.count_params():,} parameters) on {data.name} {data.sizes()}")
    kept = [name for name, bits in formats.items() if bits is None]
    if kept:
        print(f"[qatzoo] kept float during QAT: {', '.join(kept)}")
    run_phase = _loop(cfg.trainer.get("loop", "tape"))
    parallel = distribute.describe(strategy, strategy_name)
    if strategy is not None:
        replicas, batch = parallel["num_replicas_in_sync"], cfg.schedule.batch_size
        print(
            f"[qatzoo] data parallel ({strategy_name}): {replicas} replicas in sync on {parallel['num_workers']} "
            f"worker(s); global batch {batch}, about {batch / replicas:g} per replica"
        )

    phase_start = time.perf_counter()
    ckpt_dir = run_dir / "checkpoints"
    if not cfg.trainer.init_checkpoint:
        run_phase(model, data, _phase(cfg, "float"), ckpt_dir, logger, strategy=strategy)
    timing["float_train_s"] = time.perf_counter() - phase_start
    _save_keras(model, run_dir / "model_float.keras")

    representative = data.representative(cfg.trainer.representative_samples, cfg.trainer.seed)
    phase_start = time.perf_counter()
    exported = {"float": to_float_tflite(model)}
    keras_models = {"float": model}
    if scheme.int8 or scheme.qat:  # PTQ int8: the baseline beside every QAT scheme, exportable or not
        exported["ptq_int8"] = to_int8_tflite(model, lambda: representative)
    if scheme.qat:
        # Re-seed: a resumed run that skipped the float phase builds the same QAT model.
        _seed(cfg.trainer, cfg.trainer.seed + 1)
        with distribute.scope(strategy):  # the QAT clone, its quantizer ranges and their calibration
            qat_model = scheme.quantize(model, representative)
        qat_start = time.perf_counter()
        run_phase(qat_model, data, _phase(cfg, "qat"), ckpt_dir, logger, strategy=strategy)
        timing["qat_train_s"] = time.perf_counter() - qat_start
        keras_models["qat"] = qat_model
        if scheme.int8:
            exported["qat_int8"] = to_int8_tflite(qat_model, lambda: representative)
    timing["export_s"] = time.perf_counter() - phase_start - timing.get("qat_train_s", 0.0)

    # The truth: every number below is measured on the full test split; int8 ones in LiteRT.
    phase_start = time.perf_counter()
    predictions = {name: evaluate.keras_predictions(m, data) for name, m in keras_models.items()}
    files = {name: strip_names(blob) for name, blob in exported.items()}
    for name, blob in files.items():
        predictions[f"{name}_tflite" if name == "float" else name] = evaluate.tflite_predictions(blob, data, name)
    timing["evaluate_s"] = time.perf_counter() - phase_start

    metric = evaluate.metric_name(data)
    order = ("float", "float_tflite", "ptq_int8", "qat", "qat_int8")
    results = {name: {metric: evaluate.score(data, predictions[name])} for name in order if name in predictions}
    int8_name = ("qat_int8" if scheme.qat else "ptq_int8") if scheme.int8 else None
    metrics = {
        "name": cfg.name,
        "arch": cfg.arch.name,
        "data": data.name,
        "quant": scheme.name,
        "scheme": {
            "qat": scheme.qat,
            "int8": scheme.int8,
            **(scheme.spec.as_dict() if scheme.qat else {}),
            "kept_float": kept,
            "layers": {name: _format(bits) for name, bits in formats.items()},
            "runtime": _runtime(scheme),
        },
        "task": data.task,
        "metric": metric,
        "unit": "%" if metric == "accuracy" else data.target_unit,
        "higher_is_better": evaluate.higher_is_better(data),
        "int8_model": int8_name,
        "dataset": {"sizes": data.sizes(), **data.info},
        "results": results,
        # Keras models on the validation split: what to choose settings by (never the test numbers).
        # The int8 model's validation score (LiteRT) is what sweeps optimise: tuning on test would leak.
        "validation": {
            name: {metric: evaluate.validation_score(m, data)}
            for name, m in [*keras_models.items(), *([(int8_name, files[int8_name])] if int8_name else [])]
        },
        "provenance": origin,
        # tf.distribute: strategy, replicas in sync, workers (trainer.strategy).
        "distribute": parallel,
        # Pairwise agreement of test predictions: share of equal classes, or mean |difference| in the unit.
        "agreement": {
            f"{a} vs {b}": evaluate.agreement(data, predictions[a], predictions[b])
            for a, b in (("ptq_int8", "float"), ("qat", "float"), ("qat_int8", "qat"), ("qat_int8", "float"))
            if a in predictions and b in predictions
        },
    }
    _check_finite(metrics)  # before any model file: a broken model leaves no files that look like results
    # Size and sha256 of each model file, from the bytes written: what publish checks the files against.
    metrics["files"] = {}

    def write_model(name: str, blob: bytes) -> None:
        write_bytes(run_dir / name, blob)
        metrics["files"][name] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}

    write_model("model_float.tflite", files["float"])
    sizes = {"float_tflite": len(files["float"])}
    if "ptq_int8" in files and int8_name != "ptq_int8":
        write_model("model_ptq_int8.tflite", files["ptq_int8"])
    if int8_name:
        write_model("model_int8.tflite", files[int8_name])
        sizes.update(int8_tflite=len(files[int8_name]), int8_over_float=len(files[int8_name]) / len(files["float"]))
        reference = "qat" if scheme.qat else "float"
        report = checks.full_integer(exported[int8_name])
        in_q, out_q = litert.io_quant(litert.interpreter(files[int8_name]))
        metrics["int8"] = {
            "input": vars(in_q),
            "output": vars(out_q),
            "ops": report.ops,
            "full_integer": report.ok,
            "non_integer_tensors": report.non_integer,
            "parity_reference": reference,
            "parity": evaluate.parity(data, predictions[int8_name], predictions[reference]),
        }
        if "ptq_int8" in exported and int8_name != "ptq_int8":
            metrics["ptq_int8"] = {"full_integer": checks.full_integer(exported["ptq_int8"]).ok}
        metrics["checks"] = {"full_integer": report.ok, "parity": metrics["int8"]["parity"]["pass"]}
        if scheme.qat and scheme.spec.lowest_weight_bits < 8:
            metrics["lowbit"] = lowbit.report(files[int8_name], scheme.spec.lowest_weight_bits)
            sizes["int8_packed"] = metrics["lowbit"]["packed_bytes"]
            sizes["packed_over_float"] = sizes["int8_packed"] / len(files["float"])
    metrics["sizes"] = sizes
    timing["total_s"] = time.perf_counter() - start
    metrics["timing"] = {k: round(v, 2) for k, v in timing.items()}
    metrics["command"] = f"python train.py recipe={cfg.name}" if cfg.name != "custom" else "python train.py"

    metrics["provenance"]["wandb_run"] = logger.url
    _check_finite(metrics)  # again, with parity and sizes: metrics.json is strict JSON
    write_card(run_dir / "card.md", metrics, cfg)
    write_json(run_dir / "metrics.json", metrics)  # last: its presence marks a complete run
    logger.summary(metrics)
    logger.finish()
    _print_summary(run_dir, metrics)
    return metrics


def _load_data(cfg: DictConfig):
    """The data group's Splits; its one-line errors (missing source, non-finite values) unwrapped from Hydra's."""
    try:
        return instantiate(_kwargs(cfg.data, drop=("task",)))
    except InstantiationException as error:
        if isinstance(error.__cause__, (DataError, DataSourceMissing)):
            raise error.__cause__ from None
        raise


def _load_init_checkpoint(model, path: str) -> None:
    """Load ``trainer.init_checkpoint``; a file that is not this model's Keras weights is a one-line ConfigError."""
    try:
        model.load_weights(os.path.expanduser(path))
    except Exception as error:  # noqa: BLE001 - h5py, TensorFlow and Keras each raise their own kind
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ConfigError(
            f"trainer.init_checkpoint: cannot read {path} as weights of {model.name} ({reason}); "
            "use a <phase>-NNN.h5 from the checkpoints/ of a run of the same arch"
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


def _logger(cfg: DictConfig, run_dir: Path, strategy):
    """The configured logger; with several workers only the chief logs (the others record nothing)."""
    if not distribute.is_chief(strategy):
        from qatzoo.track import Logger

        return Logger()
    return instantiate(
        cfg.logger,
        _convert_="all",
        _recursive_=False,  # run_config holds other groups' _target_ keys: data, not things to build
        run_dir=str(run_dir),
        run_config=OmegaConf.to_container(cfg, resolve=True),
        tags=[cfg.name, cfg.arch.name, cfg.quant.name],
    )


def _format(bits) -> str:
    if bits is None:
        return "float"
    return f"w{bits.weight_bits}a{bits.activation_bits}"


def _runtime(scheme) -> str:
    """What executes this scheme's reported int8 numbers, in words."""
    if not scheme.int8:
        if scheme.qat:
            return (
                "no int8 export of the QAT model: its numbers are fake quant (simulated); the PTQ int8 "
                "baseline runs in LiteRT's int8 kernels"
            )
        return "no int8 export: float only"
    if not scheme.qat:
        return "LiteRT int8 kernels (post-training full-integer)"
    text = "LiteRT int8 kernels"
    if scheme.spec.lowest_weight_bits < 8:
        text += (
            f"; kernels on the {scheme.spec.lowest_weight_bits}-bit grid, stored packed (INT4) by the converter "
            "and unpacked by LiteRT"
        )
    if scheme.spec.keep_float:
        text += "; layers kept float during QAT are quantized by the converter from the representative sample"
    return text


def _kwargs(node: DictConfig, drop: tuple[str, ...] = ("name", "task")) -> DictConfig:
    """A group's config without the descriptive keys that are not arguments of its ``_target_``."""
    return OmegaConf.create({k: v for k, v in node.items() if k not in drop} | {"_convert_": "all"})


def _phase(cfg: DictConfig, name: str) -> Phase:
    return Phase(
        name=name,
        epochs=cfg.schedule.float_epochs if name == "float" else cfg.schedule.qat_epochs,
        lr=cfg.schedule.lr if name == "float" else cfg.schedule.qat_lr,
        batch_size=cfg.schedule.batch_size,
        seed=cfg.trainer.seed,
        checkpoint_every_steps=cfg.trainer.checkpoint_every_steps,
        verbose=cfg.trainer.verbose,
    )


def _seed(trainer: DictConfig, seed: int) -> None:
    """Seed Python, NumPy and TensorFlow; dropout draws from tf.random.Generator state that checkpoints hold."""
    if trainer.threads and not tf.config.threading.get_intra_op_parallelism_threads():
        tf.config.threading.set_intra_op_parallelism_threads(trainer.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.backend.experimental.enable_tf_random_generator()
    keras.utils.set_random_seed(seed)
    if trainer.deterministic:
        tf.config.experimental.enable_op_determinism()


def resume_dir(cfg: DictConfig, run_dir: Path) -> Path:
    """The directory this run works in: ``run_dir``, or an unfinished run of the same config to resume.

    ``trainer.resume``: ``auto`` resumes the newest unfinished run of the same config (same config
    hash, no metrics.json) beside ``run_dir``; ``never`` always starts afresh; a path resumes that run.
    A directory that holds a run of another config is refused, and so is one whose config.yaml cannot
    be read; an unreadable sibling is only skipped, with a warning (it must not stop every later run).
    """
    wanted = config_hash(cfg)
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
        saved = OmegaConf.load(run / "config.yaml")
        if not isinstance(saved, DictConfig):
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


def _print_summary(run_dir: Path, metrics: dict) -> None:
    metric, unit, results = metrics["metric"], metrics["unit"], metrics["results"]

    def fmt(name):
        value = results.get(name, {}).get(metric)
        return "-" if value is None else (f"{value:.2f}%" if unit == "%" else f"{value:.4f} {unit}")

    print(f"[qatzoo] run directory: {run_dir}")
    line = f"[qatzoo] {metric}: float {fmt('float')}"
    if "ptq_int8" in results:
        line += f" | PTQ int8 {fmt('ptq_int8')}"
    if "qat" in results:
        line += f" | QAT fake-quant {fmt('qat')} | QAT int8 (LiteRT) {fmt('qat_int8')}"
    print(line)
    if "int8" in metrics:
        parity = metrics["int8"]["parity"]
        agree = f"agreement {parity['agreement']:.2%}" if "agreement" in parity else f"MAE gap {parity['mae_gap']:.2%}"
        print(
            f"[qatzoo] int8 file {metrics['sizes']['int8_over_float']:.2f}x float | full integer: "
            f"{metrics['int8']['full_integer']} | parity: {agree} ({'pass' if parity['pass'] else 'FAIL'})"
        )
