"""``publish RUN_DIR``: copy a finished run's int8 model and card into the zoo and add its entry."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from qatzoo.zoo.index import ZooError, check_name, locked_index, validate_entry, write_index


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(run_dir: Path, name: str, version: str) -> dict:
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise ZooError(f"{run_dir} has no metrics.json: the run did not finish, nothing to publish")
    metrics = json.loads(metrics_file.read_text())
    if not metrics.get("int8_model") or not (run_dir / "model_int8.tflite").is_file():
        raise ZooError(f"{run_dir} has no int8 model (quant={metrics.get('quant')}); the zoo holds int8 models only")
    checks = metrics.get("checks", {})
    failed = [key for key in ("full_integer", "parity") if checks.get(key) is not True]
    if failed:
        raise ZooError(f"{run_dir}: the int8 model failed the {' and '.join(failed)} check(s); not publishing it")
    model = run_dir / "model_int8.tflite"
    metric = metrics["metric"]
    sizes = metrics["dataset"]["sizes"]
    return {
        "name": name,
        "version": version,
        "task": metrics["task"],
        "dataset": {
            "name": metrics["data"],
            "builder": metrics["dataset"].get("builder"),
            "version": metrics["dataset"].get("version"),
            "split": "test",
            "examples": sizes["test"],
        },
        "arch": metrics["arch"],
        "scheme": metrics["quant"],
        "metric": metric,
        "unit": metrics["unit"],
        "higher_is_better": metrics["higher_is_better"],
        "metrics": {key: value[metric] for key, value in metrics["results"].items()},
        "int8_model": metrics["int8_model"],
        "size": model.stat().st_size,
        "sha256": sha256_file(model),
        "location": f"{name}/{version}/model_int8.tflite",
        "card": f"{name}/{version}/card.md",
        "input": metrics["int8"]["input"],
        "output": metrics["int8"]["output"],
        "recipe": metrics["name"],
        # The resolved config without `paths` (where the publisher kept data and runs).
        "config": {
            k: v for k, v in OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")).items() if k != "paths"
        },
        "config_sha256": metrics["provenance"]["config_sha256"],
        "provenance": metrics["provenance"],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": metrics["command"],
    }


def publish(run_dir: str | Path, zoo_dir: str | Path, name: str | None = None) -> dict:
    """Publish ``run_dir`` as the next version of ``name`` (default: the recipe's name). Never overwrites."""
    run_dir, zoo_dir = Path(run_dir), Path(zoo_dir)
    if not run_dir.is_dir():
        raise ZooError(f"{run_dir} is not a run directory")
    with locked_index(zoo_dir) as index:
        recipe = (
            json.loads((run_dir / "metrics.json").read_text())["name"] if (run_dir / "metrics.json").is_file() else None
        )
        name = check_name(name or recipe or run_dir.name)
        versions = [int(e["version"]) for e in index["models"] if e["name"] == name]
        version = str(max(versions, default=0) + 1)
        entry = validate_entry(_entry(run_dir, name, version))
        target = zoo_dir / name / version
        if target.exists():
            raise ZooError(f"{target} already exists; published versions are never overwritten")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
        try:
            shutil.copyfile(run_dir / "model_int8.tflite", staging / "model_int8.tflite")
            shutil.copyfile(run_dir / "card.md", staging / "card.md")
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        index["models"].append(entry)
        write_index(zoo_dir, index)
    write_readme(zoo_dir)
    return entry


def write_readme(zoo_dir: Path) -> None:
    """zoo/README.md: a table generated from index.json."""
    from qatzoo.files import write_text
    from qatzoo.zoo.index import read_index

    index = read_index(zoo_dir / "index.json")
    lines = [
        "# zoo",
        "",
        "Published int8 models (generated from `index.json` by `qatzoo publish`; do not edit by hand).",
        "Every int8 number was measured by running the .tflite in LiteRT on the dataset's full test split.",
        "",
        "    qatzoo download NAME[@VERSION]     # verified by sha256",
        "    qatzoo verify NAME                 # re-measures the metric in LiteRT",
        "",
        "| model | version | dataset | metric | float | PTQ int8 | int8 (this file) | size | sha256 | reproduce |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in index["models"]:
        m, fmt = e["metrics"], ("{:.2f}" if e["unit"] == "%" else "{:.4f}")

        def cell(key, m=m, fmt=fmt):
            return fmt.format(m[key]) if key in m else "-"

        lines.append(
            f"| {e['name']} | {e['version']} | {e['dataset']['name']} | {e['metric']} ({e['unit']}) | {cell('float')} | "
            f"{cell('ptq_int8')} | {cell(e['int8_model'])} | {e['size']:,} B | `{e['sha256'][:12]}` | `{e['command']}` |"
        )
    write_text(zoo_dir / "README.md", "\n".join(lines) + "\n")
