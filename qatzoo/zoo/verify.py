"""``verify NAME``: download, check the hash, re-measure the metric in LiteRT on the test split."""

from __future__ import annotations

import os

from hydra.utils import instantiate
from omegaconf import OmegaConf

from qatzoo.zoo.download import fetch, read_index
from qatzoo.zoo.index import ZooError, find

#: How far a re-measured metric may be from the index: LiteRT kernels are deterministic on one
#: machine, but another CPU may pick other XNNPACK kernels and round a few values differently.
TOLERANCE = {"accuracy": 0.2, "mae": 0.01}  # points of accuracy; relative MAE


def verify(spec: str, index=None, data_dir: str | None = None, progress: bool = True) -> dict:
    """Return ``{"name", "version", "metric", "index", "measured", "ok"}``; raise ZooError if it is off."""
    from qatzoo.export import evaluate, litert

    index_data, _ = read_index(index)
    entry = find(index_data, spec)
    path = fetch(f"{entry['name']}@{entry['version']}", index=index, progress=progress)
    data_cfg = dict(entry["config"]["data"])
    data_cfg.pop("task", None)
    # This machine's TFDS directory, not the publisher's.
    data_cfg["data_dir"] = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    data = instantiate(OmegaConf.create(data_cfg), _convert_="all")
    if len(data.x_test) != entry["dataset"]["examples"]:
        raise ZooError(
            f"{entry['name']}: the local test split has {len(data.x_test)} examples, the index says {entry['dataset']['examples']}"
        )
    measured = evaluate.score(data, litert.predict(str(path), data.x_test, progress="LiteRT" if progress else None))
    expected = entry["metrics"][entry["int8_model"]]
    metric = entry["metric"]
    gap = abs(measured - expected) if metric == "accuracy" else abs(measured - expected) / max(abs(expected), 1e-12)
    result = {
        "name": entry["name"],
        "version": entry["version"],
        "metric": metric,
        "index": expected,
        "measured": measured,
        "tolerance": TOLERANCE[metric],
        "ok": gap <= TOLERANCE[metric],
    }
    if not result["ok"]:
        raise ZooError(
            f"{entry['name']}@{entry['version']}: measured {metric} {measured:.4f}, index says {expected:.4f} "
            f"(tolerance {TOLERANCE[metric]})"
        )
    return result
