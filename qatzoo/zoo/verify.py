"""``verify NAME``: download, check the hash, re-measure the metric in LiteRT on the test split.

The dataset is rebuilt from the project's own table (:mod:`qatzoo.data.catalog`) by the entry's
dataset name, with only the plain parameters that table declares: nothing in an index is instantiated.
"""

from __future__ import annotations

from pathlib import Path

from qatzoo.zoo.download import Clock, Limits, fetch_entry, open_index
from qatzoo.zoo.index import ZooError, find

#: How far a re-measured metric may be from the index: LiteRT kernels are deterministic on one
#: machine, but another CPU may pick other XNNPACK kernels and round a few values differently.
TOLERANCE = {"accuracy": 0.2, "mae": 0.01}  # points of accuracy; relative MAE


def load_test_data(dataset: str, params: dict, data_dir: str | None = None, recorded: str | None = None):
    """The splits of a catalogued dataset (in ``data_dir``, else as :func:`qatzoo.data.catalog.data_dir` says,
    ``recorded`` being the run's own directory); a dataset that cannot be built is one ZooError line."""
    from qatzoo.data import catalog
    from qatzoo.data.catalog import CatalogError, build
    from qatzoo.errors import DataSourceMissing

    try:
        return build(dataset, params, catalog.data_dir(data_dir, recorded))
    except (CatalogError, DataSourceMissing) as error:
        raise ZooError(str(error)) from None


def predictions(model: bytes | str | Path, data, progress: bool = False):
    """The outputs of a .tflite model run in LiteRT on the full test split (dequantized); ZooError (one line)
    for a file LiteRT cannot load or whose input does not take the dataset's examples."""
    from qatzoo.export import litert

    model = model if isinstance(model, bytes) else str(model)
    try:
        it = litert.interpreter(model)
        shape = tuple(int(d) for d in it.get_input_details()[0]["shape"][1:])
        if shape != tuple(data.x_test.shape[1:]):
            raise ZooError(
                f"the model takes inputs of shape {shape}, the test split has {tuple(data.x_test.shape[1:])}"
            )
        return litert.predict(it, data.x_test, progress="LiteRT" if progress else None)
    except ZooError:
        raise
    except (ValueError, RuntimeError) as error:
        raise ZooError(f"LiteRT cannot run the model ({str(error).strip().splitlines()[0][:160]})") from None


def measure(model: bytes | str | Path, data, progress: bool = False) -> float:
    """The task metric of a .tflite model run in LiteRT on the full test split (see :func:`predictions`)."""
    from qatzoo.export import evaluate

    return evaluate.score(data, predictions(model, data, progress))


def gap(metric: str, measured: float, expected: float) -> float:
    """Distance in verify's terms: accuracy points, or MAE relative to the expected value."""
    return abs(measured - expected) if metric == "accuracy" else abs(measured - expected) / max(abs(expected), 1e-12)


def verify(
    spec: str,
    index=None,
    data_dir: str | None = None,
    progress: bool = True,
    timeout: float | None = None,
    deadline: float | None = None,
    speed_limit: float | None = None,
    speed_time: float | None = None,
    trust=None,
    pin: bool = False,
) -> dict:
    """Return ``{"name", "version", "metric", "index", "measured", "ok"}``; raise ZooError if it is off.

    ``timeout``, ``deadline``, ``speed_limit``, ``speed_time``: the download's limits; ``trust``, ``pin``: a signed
    zoo's root (see :func:`qatzoo.zoo.download.fetch`).
    """
    limits = Limits.resolve(stall=timeout, deadline=deadline, speed_limit=speed_limit, speed_time=speed_time)
    clock = Clock(limits)  # one deadline for index and model
    opened = open_index(index, clock, trust=trust, pin=pin)
    entry = find(opened.index, spec)
    path = fetch_entry(entry, opened.url, clock, progress=progress, signed=opened.signed)
    from qatzoo.extras import missing

    if missing("train"):  # the test split is read through TensorFlow Datasets
        raise ZooError(
            f"{entry['name']}@{entry['version']}: sha256 ok; re-measuring its {entry['metric']} on the test split "
            "needs qatzoo's [train] extra: pip install 'qatzoo[train]'"
        )
    data = load_test_data(entry["dataset"]["name"], entry["config"].get("data", {}), data_dir)
    if len(data.x_test) != entry["dataset"]["examples"]:
        raise ZooError(
            f"{entry['name']}: the local test split has {len(data.x_test)} examples, the index says {entry['dataset']['examples']}"
        )
    measured = measure(path, data, progress)
    expected = entry["metrics"][entry["int8_model"]]
    metric = entry["metric"]
    result = {
        "name": entry["name"],
        "version": entry["version"],
        "metric": metric,
        "index": expected,
        "measured": measured,
        "tolerance": TOLERANCE[metric],
        "ok": gap(metric, measured, expected) <= TOLERANCE[metric],
    }
    if not result["ok"]:
        raise ZooError(
            f"{entry['name']}@{entry['version']}: measured {metric} {measured:.4f}, index says {expected:.4f} "
            f"(tolerance {TOLERANCE[metric]})"
        )
    return result
