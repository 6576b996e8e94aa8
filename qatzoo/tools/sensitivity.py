"""Per-layer quantization sensitivity of a finished run: which layers does quantization hurt most?

For each layer that a scheme would quantize, build the fake-quant model with **only that layer
quantized** (every other layer kept float), calibrate it on the run's representative sample, and
measure the validation metric. The harm of a layer is how much worse that is than the model with no
layer quantized (the model input's quantization only). Validation, not test: the suggested
keep-float list is a choice, and choices are made on validation data.

Also measured per layer: the SQNR (dB) of the layer's output with the layer quantized versus float,
on the same validation inputs - a metric-free view of the same question.

    qatzoo sensitivity runs/transformer_int8/<date>           # writes sensitivity.{csv,md,png} there
"""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from qatzoo.files import write_figure, write_text

#: A layer is suggested to stay float when its harm is at least this (accuracy points / relative MAE).
THRESHOLDS = {"accuracy": 0.5, "mae": 0.01}


#: Modules a .keras file may name for its objects: Keras's own. Anything else must be one of the project's
#: registered custom objects (qatzoo.quant.schemes.custom_objects); Keras would import any other module named.
_KERAS_MODULES = ("keras", "tf_keras", "builtins")


def _load_run(run_dir: Path, data_dir: str | None):
    """The run's config, its float model and its data; ConfigError (one line) for anything unreadable or unsafe."""
    from omegaconf import OmegaConf

    from qatzoo.artifacts import read_yaml
    from qatzoo.errors import ConfigError

    model = load_float_model(run_dir / "model_float.keras")  # first: cheap, and no data is loaded for a bad file
    try:
        saved = OmegaConf.create(read_yaml(run_dir / "config.yaml"))
        saved_data = {k: v for k, v in OmegaConf.to_container(saved.data).items() if k != "task"}
        _check_target(saved.quant, "quant")
    except ConfigError:
        raise
    except Exception as error:  # unparsable YAML, no data/quant section
        raise ConfigError(f"{run_dir / 'config.yaml'}: not a run's config ({_first_line(error)})") from error
    _check_target(saved_data, "data")
    from qatzoo.data import catalog
    from qatzoo.errors import DataError, DataSourceMissing

    try:  # the project's own table of datasets, by name, with only its declared parameters
        data = catalog.build(saved_data.get("name"), saved_data, catalog.data_dir(data_dir, saved_data.get("data_dir")))
    except (catalog.CatalogError, DataError, DataSourceMissing) as error:
        raise ConfigError(f"{run_dir / 'config.yaml'}: {error}") from None
    return saved, data, model


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__


def _check_target(section, group: str) -> None:
    """A run dir's ``data``/``quant`` section may only name a builder of the project's own conf/<group> options.

    config.yaml is read from disk, so it is data, not code: a ``_target_`` elsewhere (or nested anywhere) would
    make Hydra import and call whatever it names.
    """
    from omegaconf import DictConfig, OmegaConf

    from qatzoo.config import CONF_DIR, ConfigError

    plain = OmegaConf.to_container(section) if isinstance(section, DictConfig) else section
    allowed = {
        OmegaConf.load(path).get("_target_")
        for path in [*(CONF_DIR / group).glob("*.yaml"), CONF_DIR / f"{group}_knobs.yaml"]
        if path.is_file()
    } - {None}
    if not isinstance(plain, dict) or plain.get("_target_") not in allowed:
        target = plain.get("_target_") if isinstance(plain, dict) else plain
        raise ConfigError(f"config.yaml: {group}._target_ {target!r} is not one of the project's builders")

    def walk(value, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("_target_", "_partial_", "_args_") and where != group:
                    raise ConfigError(f"config.yaml: {where}.{key} is not allowed (a run's config is data, not code)")
                walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif isinstance(value, str) and "${" in value:
            raise ConfigError(f"config.yaml: {where} holds an interpolation; a run's config is saved resolved")

    walk(plain, group)


#: A Keras model file's config.json: a few hundred KiB for the largest architecture here.
MAX_MODEL_CONFIG_BYTES = 16 << 20


def load_float_model(path: Path):
    """Load a run's ``model_float.keras`` as data: ConfigError (one line, naming the file) if it cannot be.

    Keras's safe mode stays on (no Lambda bytecode), and before Keras sees the file every object it names must
    come from Keras itself or from the project's registered custom objects: Keras would otherwise import any
    module the file names.
    """
    import json
    import zipfile

    from qatzoo.errors import ConfigError
    from qatzoo.keras import keras
    from qatzoo.quant.schemes import custom_objects

    try:
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo("config.json").file_size  # from the zip's directory, before inflating
            if size > MAX_MODEL_CONFIG_BYTES:
                raise ValueError(f"its config.json inflates to {size:,} bytes, more than {MAX_MODEL_CONFIG_BYTES:,}")
            with archive.open("config.json") as member:  # zipfile stops at the declared size
                config = json.loads(member.read(MAX_MODEL_CONFIG_BYTES + 1))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, RecursionError) as error:
        raise ConfigError(f"{path}: not a readable Keras model file ({_first_line(error)})") from error
    objects = custom_objects()
    project = set(objects) | {keras.saving.get_registered_name(obj) for obj in objects.values()}

    def walk(value) -> None:
        if isinstance(value, dict):
            module = value.get("module")
            if "class_name" in value and isinstance(module, str) and module.split(".")[0] not in _KERAS_MODULES:
                name = value.get("registered_name") or value.get("class_name")
                if name not in project:
                    raise ConfigError(
                        f"{path}: names {module}.{value.get('class_name')}, which is neither Keras nor one of the "
                        "project's layers; refusing to load it"
                    )
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    try:
        walk(config)
    except RecursionError as error:
        raise ConfigError(f"{path}: not a readable Keras model file (nested too deeply)") from error
    try:
        return keras.models.load_model(path, custom_objects=objects, compile=False, safe_mode=True)
    except Exception as error:  # truncated weights, wrong shapes, Lambda layers refused by safe mode, ...
        raise ConfigError(f"{path}: cannot load the float model ({_first_line(error)})") from error


def _score(data, predictions: np.ndarray) -> float:
    """The task's metric on the validation split (choices are made on validation data)."""
    return data.task.score(data.y_val, predictions)


def _sqnr(reference: np.ndarray, quantized: np.ndarray) -> float:
    noise = float(np.sum((reference - quantized) ** 2))
    signal = float(np.sum(reference**2))
    return float("inf") if noise == 0 else 10.0 * np.log10(max(signal, 1e-30) / noise)


def analyse(run_dir: str | Path, scheme_name: str | None = None, data_dir: str | None = None, progress=True) -> dict:
    """Measure every quantized layer's harm; return the table and the suggested keep-float list."""
    from omegaconf import OmegaConf
    from tqdm import tqdm

    from qatzoo.keras import keras
    from qatzoo.quant.spec import layer_infos

    run_dir = Path(run_dir)
    saved, data, model = _load_run(run_dir, data_dir)
    quant = saved.quant if scheme_name is None else _scheme_config(scheme_name)
    from qatzoo.quant.schemes import engine_module
    from qatzoo.quant.schemes import scheme as make_scheme

    fields = {k: v for k, v in OmegaConf.to_container(quant, resolve=True).items() if k != "_target_"}
    base = make_scheme(**fields)
    if not base.qat:
        base = make_scheme(name="int8", qat=True, int8=True)
    calibration = data.representative(saved.trainer.representative_samples, saved.trainer.seed)
    names = [info.name for info in layer_infos(model)]
    formats = base.layer_formats(model)
    metric = data.task.metric

    def evaluate(keep: list[str]):
        scheme = replace(base, spec=replace(base.spec, keep_float=tuple(keep)))
        qat = scheme.quantize(model, calibration)
        return qat, _score(data, qat.predict(data.x_val, batch_size=256, verbose=0))

    float_score = _score(data, model.predict(data.x_val, batch_size=256, verbose=0))
    _, none_score = evaluate(names)
    quantized = [n for n in names if formats.get(n) is not None and _has_quantizers(model.get_layer(n), base)]
    rows = []
    for name in tqdm(quantized, desc="sensitivity", unit="layer", disable=None if progress else True):
        qat, score = evaluate([n for n in names if n != name])
        # SQNR of this layer's output: float model vs the model with only this layer quantized.
        probe_f = keras.Model(model.inputs, model.get_layer(name).output)
        probe_q = keras.Model(qat.inputs, qat.get_layer(engine_module().quantized_layer_name(name)).output)
        x = data.x_val[:256]
        sqnr = _sqnr(probe_f.predict(x, verbose=0), probe_q.predict(x, verbose=0))
        harm = data.task.harm(score, none_score)
        rows.append(
            {
                "layer": name,
                "class": type(model.get_layer(name)).__name__,
                "format": f"w{formats[name].weight_bits}a{formats[name].activation_bits}",
                metric: score,
                "harm": harm,
                "sqnr_db": sqnr,
            }
        )
    rows.sort(key=lambda r: -r["harm"])
    threshold = THRESHOLDS[metric]
    suggested = [r["layer"] for r in rows if r["harm"] >= threshold]
    return {
        "run_dir": str(run_dir),
        "name": saved.get("name", run_dir.name),
        "scheme": OmegaConf.to_container(quant).get("name"),
        "metric": metric,
        "split": "val",
        "float": float_score,
        "no_layer_quantized": none_score,
        "threshold": threshold,
        "harm_unit": "accuracy points" if metric == "accuracy" else "relative MAE increase",
        "rows": rows,
        "suggested_keep_float": suggested,
    }


#: Validation examples the per-tensor comparison runs (every intermediate tensor of both models is kept).
TENSOR_EXAMPLES = 64


def tensors(run_dir: str | Path, tflite: str | Path | None = None, data_dir: str | None = None) -> tuple[dict, str]:
    """Per-tensor SNR and cosine of an int8 file (default: the run's model_int8.tflite, else its
    model_ptq_int8.tflite) against the run's float model, on validation examples (qatzoo.export.tensors).
    Returns the comparison and a title naming the file."""
    from qatzoo.errors import ConfigError
    from qatzoo.export import tensors as per_tensor
    from qatzoo.export.tflite import to_float_tflite

    run_dir = Path(run_dir)
    if tflite is None:
        found = [run_dir / n for n in ("model_int8.tflite", "model_ptq_int8.tflite") if (run_dir / n).is_file()]
        if not found:
            raise ConfigError(f"{run_dir} has no model_int8.tflite or model_ptq_int8.tflite; pass --tflite FILE")
        tflite = found[0]
    tflite = Path(tflite)
    saved, data, model = _load_run(run_dir, data_dir)
    blob = tflite.read_bytes() if tflite.is_file() else None
    if blob is None:
        raise ConfigError(f"--tflite {tflite}: no such file")
    try:
        result = per_tensor.compare(blob, to_float_tflite(model), data.x_val[:TENSOR_EXAMPLES])
    except (ValueError, KeyError, IndexError, RuntimeError) as error:
        raise ConfigError(f"{tflite}: cannot be compared with {run_dir}'s float model ({_first_line(error)})") from None
    return result, f"{saved.get('name', run_dir.name)}, {tflite.name}"


def _has_quantizers(layer, scheme) -> bool:
    """Whether ``scheme`` puts any quantizer on ``layer`` (Flatten, Dropout, pooling have none)."""
    from qatzoo.quant.schemes import engine_module

    return engine_module().has_quantizers(layer, scheme.spec)


def _scheme_config(name: str):
    from omegaconf import OmegaConf

    from qatzoo.config import compose, group_options
    from qatzoo.errors import ConfigError

    if name not in group_options("quant"):
        raise ConfigError(f"--scheme {name}: no such option; quant is one of: {', '.join(group_options('quant'))}")
    cfg = compose([f"quant={name}"])
    return OmegaConf.create(OmegaConf.to_container(cfg.quant, resolve=True))


def write(result: dict, out_dir: str | Path) -> list[Path]:
    """Write sensitivity.csv, sensitivity.md and sensitivity.png into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    metric, rows = result["metric"], result["rows"]
    out_dir.mkdir(parents=True, exist_ok=True)  # --out may name a new directory
    csv_path = out_dir / "sensitivity.csv"
    tmp = csv_path.with_name(".sensitivity.csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["layer", "class", "format", metric, "harm", "sqnr_db"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, csv_path)

    fmt = (lambda v: f"{v:.2f}") if metric == "accuracy" else (lambda v: f"{v:.4f}")
    lines = [
        f"# Quantization sensitivity: {result['name']} ({result['scheme']}), {Path(result['run_dir']).name}",
        "",
        f"One layer quantized at a time, all others float; {metric} on the validation split. "
        f"Float model: {fmt(result['float'])}; no layer quantized (model input only): "
        f"{fmt(result['no_layer_quantized'])}. Harm in {result['harm_unit']}; SQNR of the layer's output in dB.",
        "",
        f"| layer | class | format | {metric} | harm | SQNR dB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        harm = f"{r['harm']:.2f}" if metric == "accuracy" else f"{r['harm']:.2%}"
        lines.append(
            f"| {r['layer']} | {r['class']} | {r['format']} | {fmt(r[metric])} | {harm} | {r['sqnr_db']:.1f} |"
        )
    keep = result["suggested_keep_float"]
    lines += [
        "",
        f"Suggested keep-float list (harm >= {result['threshold']:g}): "
        + (f"`quant.keep_float=[{','.join(keep)}]`" if keep else "none - every layer is below the threshold"),
        "",
    ]
    if keep:
        rules = ", ".join(f"{{match: {name}, weight_bits: 8, activation_bits: 8}}" for name in keep)
        lines += [
            "keep_float changes training only: the converter still quantizes those layers to int8 in the file. "
            f"To give them 8 bits in the file as well: `'quant.rules=[{rules}]'`.",
            "",
        ]
    md_path = write_text(out_dir / "sensitivity.md", "\n".join(lines))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.35 * len(rows) + 1.8), sharey=True)
    labels = [r["layer"] for r in rows][::-1]
    ax1.barh(labels, [r["harm"] for r in rows][::-1], color=["C3" if r["layer"] in keep else "C0" for r in rows][::-1])
    ax1.axvline(result["threshold"], color="k", linestyle="--", linewidth=1, label="keep-float threshold")
    ax1.set_xlabel(f"harm ({result['harm_unit']})")
    ax1.legend(loc="lower right", fontsize=8)
    ax2.barh(labels, [min(r["sqnr_db"], 80.0) for r in rows][::-1], color="C2")
    ax2.set_xlabel("SQNR of layer output (dB, higher is better)")
    fig.suptitle(f"{result['name']}: one layer quantized at a time ({result['scheme']}, validation split)")
    fig.tight_layout()
    png_path = write_figure(out_dir / "sensitivity.png", fig)
    return [csv_path, md_path, png_path]
