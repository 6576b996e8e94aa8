"""``publish RUN_DIR``: copy a finished run's int8 model and card into the zoo and add its entry.

A run directory is data, not proof: publish re-derives what it writes from the bytes it copies -
size and sha256 (checked against what the run recorded), the full-integer check, and the int8
metric re-measured in LiteRT on the test split. The index holds the measured number.

Everything publish reads from the run directory is read only when it is a regular file, opened without
following symlinks (a ``card.md`` linked to ``/etc/passwd`` or a FIFO is one line, not a published card or a
hang). The metric and its unit come from the dataset's :class:`~qatzoo.task.Task`, not from metrics.json.

Under a kill, publish leaves either the old index or the complete new entry: the version folder
is staged and moved into place first, and the index entry (written atomically) is what makes it
published. Leftovers of a killed publish (a staged folder, a version folder without an entry,
temporary files) are removed by the next publish, under the index lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import textwrap
from pathlib import Path

from qatzoo.artifacts import MAX_YAML_BYTES, parse_yaml
from qatzoo.provenance import engine_of
from qatzoo.zoo.index import (
    NAME,
    VERSION,
    ZooError,
    check_name,
    locked_index,
    plain_config,
    validate_entry,
    write_index,
)

#: Files a published version folder holds.
PUBLISHED_FILES = {
    "model_int8.tflite",
    "card.md",
    "contract.json",
    "training.png",
    "forecast.png",
    "confusion.png",
    "regression.png",
    "sample.png",
    "sample.npy",
    "sample.csv",
    "model.sig",  # the model-signing bundle of a signed zoo (qatzoo.zoo.signing)
}
#: A version folder holds this from its staging until its index entry is written: with it and no entry,
#: the folder is the leftover of a killed publish.
UNPUBLISHED = ".unpublished"
#: ``QATZOO_PUBLISH_FAULT=<step>`` kills publish with SIGKILL at that step (tests of kill safety).
FAULT_STEPS = ("locked", "staged", "moved", "indexed")
#: The steps of discarding a folder (the clean-up of a killed publish), killed the same way.
DISCARD_STEPS = ("discard-renamed", "discard-half")
#: A folder publish works in or is removing: ``.<version>.<anything>`` beside the version folders.
STAGED = re.compile(r"^\.[0-9]+\..+$")


def _fault(step: str) -> None:
    if os.environ.get("QATZOO_PUBLISH_FAULT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


#: The most publish reads of any one run file (an int8 model here is well under 10 MB).
MAX_RUN_FILE = 256 << 20


def read_regular(path: Path, limit: int = MAX_RUN_FILE) -> bytes:
    """The bytes of ``path`` when it is a regular file of at most ``limit`` bytes, opened without following a
    symlink and without blocking (a FIFO would hang ``open``); ZooError (one line) for anything else.
    FileNotFoundError as ``open`` raises."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ZooError(f"{path} is a symlink: publish reads only regular files from a run directory") from None
        raise
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise ZooError(f"{path} is {kind}: publish reads only regular files from a run directory")
        os.set_blocking(fd, True)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ZooError(f"{path} is larger than {limit:,} bytes: not a file a run writes")
    return data


def _check_regular(path: Path) -> None:
    """ZooError (one line) when ``path`` exists and is not a regular file (checked with lstat: no link followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ZooError(f"{path} is {kind}: publish reads only regular files from a run directory")


def _report(run_dir: Path):
    """The run's typed report; one ZooError line if metrics.json is missing or not a complete report."""
    from qatzoo.report import ReportError, RunReport

    _check_regular(run_dir / "metrics.json")  # read_bounded would follow a link or wait on a FIFO
    try:
        return RunReport.read(run_dir)
    except ReportError as error:
        raise ZooError(f"{error}; nothing to publish") from None


def _config(run_dir: Path) -> dict:
    """The run's config.yaml as plain data, parsed with bounds (size, no aliases, depth)."""
    try:
        blob = read_regular(run_dir / "config.yaml", MAX_YAML_BYTES)
    except FileNotFoundError:
        raise ZooError(f"{run_dir} has no config.yaml; pass the directory of a finished run") from None
    except OSError as error:
        raise ZooError(f"{run_dir}/config.yaml cannot be read ({error.strerror or error})") from None
    try:
        config = parse_yaml(blob)
    except ValueError as error:
        raise ZooError(f"{run_dir}/config.yaml: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        raise ZooError(f"{run_dir}/config.yaml is not a run config (no data section)")
    return config


def without_machine_paths(config: dict) -> dict:
    """A published config: where the publisher kept TFDS data is not published (data.data_dir: null), a data
    file is named by its file name only (data.path)."""
    data = config.get("data")
    if isinstance(data, dict):
        data = dict(data)
        if "data_dir" in data:
            data["data_dir"] = None
        if isinstance(data.get("path"), str):
            data["path"] = Path(data["path"]).name
        config = {**config, "data": data}
    return config


def measured_entry(
    run_dir: Path, name: str, data_dir: str | None = None, report=None
) -> tuple[dict, bytes, str, tuple[str, bytes, str] | None]:
    """The index entry (without version) of ``run_dir``, with the bytes and card text to publish and the sample
    input that ships beside the card (:func:`qatzoo.zoo.samples.sample`: file name, bytes, the card's sentence).

    Everything that describes the model file is derived from its bytes, read once, and run over the test
    split once (the metric and the deployment report's TFLM comparison). ``report``: the run's
    :class:`~qatzoo.report.RunReport` when the caller has read it.
    """
    from qatzoo.contract import as_produced, contract
    from qatzoo.deploy.report import lines as deploy_lines
    from qatzoo.export.checks import full_integer, output_op
    from qatzoo.export.evaluate import score
    from qatzoo.export.litert import interpreter, io_quant
    from qatzoo.zoo.verify import TOLERANCE, gap, load_test_data, predictions

    report = _report(run_dir) if report is None else report
    int8_name, metric = report.int8_model, report.metric
    model_file = run_dir / "model_int8.tflite"
    if not int8_name or not os.path.lexists(model_file):
        raise ZooError(f"{run_dir} has no int8 model (quant={report.quant}); the zoo holds int8 models only")
    failed = [key for key in ("full_integer", "parity") if (report.checks or {}).get(key) is not True]
    if failed:
        raise ZooError(f"{run_dir}: the int8 model failed the {' and '.join(failed)} check(s); not publishing it")
    try:
        blob, card = read_regular(model_file), read_regular(run_dir / "card.md").decode()
    except FileNotFoundError as error:
        raise ZooError(f"{run_dir} has no {Path(error.filename).name}; pass the directory of a finished run") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ZooError(f"cannot read the run's files in {run_dir}: {error}") from None
    digest = hashlib.sha256(blob).hexdigest()
    recorded = report.files.get("model_int8.tflite")
    if isinstance(recorded, dict) and (recorded.get("sha256") != digest or recorded.get("bytes") != len(blob)):
        raise ZooError(
            f"{model_file} changed after the run wrote it (sha256 {digest[:12]}..., the run recorded "
            f"{str(recorded.get('sha256'))[:12]}...); not publishing it"
        )
    try:
        full = full_integer(blob)
        in_q, out_q = io_quant(interpreter(blob))
    except (ValueError, RuntimeError) as error:
        raise ZooError(f"{model_file} is not a model LiteRT can load ({str(error).splitlines()[0][:120]})") from None
    if not full.ok or in_q.dtype != "int8" or out_q.dtype != "int8":
        raise ZooError(
            f"{model_file} is not a full-integer int8 model ({len(full.non_integer)} non-integer tensors, input "
            f"{in_q.dtype}, output {out_q.dtype}); not publishing it"
        )
    config = _config(run_dir)
    dataset, test_size = report.data, report.dataset.get("sizes", {}).get("test")
    data = _user_file(run_dir, config, report) or load_test_data(
        dataset, config["data"], data_dir, recorded=config["data"].get("data_dir")
    )
    if len(data.x_test) != test_size:
        raise ZooError(
            f"{run_dir}: the test split has {len(data.x_test)} examples here, the run had {test_size}; "
            "not publishing numbers that cannot be checked"
        )
    task = data.task  # what the dataset's numbers mean: the metric and its unit are the task's, not metrics.json's
    if (report.task, report.metric, report.unit) != (task.name, task.metric, task.unit):
        raise ZooError(
            f"{run_dir}: metrics.json labels the metric {report.metric} ({report.unit}) for a {report.task} run, the "
            f"{dataset} dataset is {task.name}, measured as {task.metric} ({task.unit}); not publishing it"
        )
    claimed = report.value(int8_name)
    int8_predictions = predictions(blob, data)
    measured = score(data, int8_predictions)
    if gap(metric, measured, claimed) > TOLERANCE[metric]:
        raise ZooError(
            f"{run_dir}: the int8 model measures {metric} {measured:.4f} in LiteRT on the test split, metrics.json "
            f"says {claimed:.4f} (tolerance {TOLERANCE[metric]}); not publishing it"
        )
    results = {name: report.value(name) for name in report.results}
    results[int8_name] = measured
    measured_names = [int8_name, *_remeasure_baselines(run_dir, report, data, results)]
    deployment = _deployment(run_dir, report, blob, data, int8_predictions)
    card += (
        "\n## Measured at publish\n\n"
        f"`qatzoo publish` ran this file in LiteRT on the test split ({len(data.x_test)} examples"
        f"{_from_file(data)}): {metric} "
        f"{measured:.4f} ({task.unit}); full integer: yes; sha256 `{digest}`.\n\n"
        "Where it runs, measured on this file at publish:\n\n" + "\n".join(deploy_lines(deployment, task.unit)) + "\n"
    )
    entry = {
        "name": name,
        "version": None,
        "task": task.name,
        "dataset": {
            "name": dataset,
            "builder": report.dataset.get("builder"),
            "version": report.dataset.get("version"),
            "split": "test",
            "examples": len(data.x_test),
        },
        "arch": report.arch,
        "scheme": report.quant,
        "metric": task.metric,
        "unit": task.unit,
        "higher_is_better": task.higher_is_better,
        "metrics": results,
        # Which of those numbers publish measured itself in LiteRT (the others are the run's Keras numbers).
        "measured_at_publish": measured_names,
        "int8_model": int8_name,
        "size": len(blob),
        "sha256": digest,
        "location": None,
        "card": None,
        "input": vars(in_q),
        "output": vars(out_q),
        # LiteRT CPU latency, TensorFlow Lite Micro, Ethos-U55: measured on these bytes at publish.
        "deployment": deployment,
        # Classical models fitted by the run on the same splits (the run's numbers; they do not depend on this file).
        **({"baselines": report.baselines} if report.baselines else {}),
        # The int8 file's test predictions against each baseline's (Diebold-Mariano or McNemar), from the run.
        **({"significance": report.significance} if report.significance else {}),
        # LiteRT's quantizer at the scheme's widths against the QAT int8 file (the run's numbers, in LiteRT).
        **({"ptq_baselines": report.ptq_baselines} if report.ptq_baselines else {}),
        # Raw input, preprocessing, int8 I/O and output meaning: from the data code and these bytes.
        "contract": contract(
            report.task, data.contract["input"], as_produced(data.contract["output"], output_op(blob)), in_q, out_q
        ),
        "recipe": report.name,
        # The resolved config as plain data, without the publisher's machine paths (`paths`, data.data_dir;
        # a data file by its name).
        "config": without_machine_paths(plain_config({k: v for k, v in config.items() if k != "paths"})),
        "config_sha256": report.provenance.get("config_sha256", ""),
        # The QAT engine and its Keras (also in provenance; a field of its own, as dataset and arch are).
        "engine": engine_of(report.provenance),
        "provenance": report.provenance,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": report.command,
    }
    return entry, blob, _with_limitations(card, blob, entry, data), _sample(data, entry["contract"])


def _with_limitations(card: str, blob: bytes, entry: dict, data) -> str:
    """The card with its "Limitations", changed inputs measured on these bytes (:mod:`qatzoo.zoo.limitations`);
    unchanged where the splits hold no raw test input to change."""
    from qatzoo.zoo.limitations import measure, section, with_limitations

    try:
        rows = measure(blob, entry["contract"], data)
    except KeyError:
        return card
    return with_limitations(card, section(rows, data, entry["contract"], entry["metric"], entry["unit"]))


def _sample(data, contract: dict) -> tuple[str, bytes, str] | None:
    """The sample input of the test split, None where the splits hold no raw test input to make it from."""
    from qatzoo.zoo.samples import sample

    try:
        return sample(data, contract)
    except (KeyError, IndexError):
        return None


def _user_file(run_dir: Path, config: dict, report):
    """The run's splits rebuilt from a user's data file (``data=arrays``/``series``), checked by its sha256;
    None for the project's own datasets (the catalog builds them). ZooError (one line) when it cannot be."""
    from qatzoo.data import files
    from qatzoo.errors import DataError

    try:
        return files.from_run(config["data"], report.provenance.get("dataset") or {})
    except DataError as error:
        raise ZooError(
            f"{run_dir}: cannot re-measure the int8 model on the run's data file: {error}; not publishing it"
        ) from None


def _from_file(data) -> str:
    """The card's words for where publish's test split came from, when it was a user's file."""
    file, sha256 = data.info.get("file"), data.info.get("file_sha256")
    return (
        f", from the run's own data file `{Path(file).name}`, sha256 `{sha256[:12]}...` as the run read it"
        if file
        else ""
    )


def _figures(run_dir: Path, report) -> dict[str, bytes]:
    """The card's figures (PNG), when they are the bytes the run recorded; the card links to them."""
    from qatzoo.export.plots import FIGURES

    recorded, out = report.files, {}
    for name in FIGURES:
        path = run_dir / name
        if name in recorded and path.is_file() and not path.is_symlink():
            data = read_regular(path)
            if hashlib.sha256(data).hexdigest() == recorded[name].get("sha256") and data.startswith(b"\x89PNG"):
                out[name] = data
    return out


def _deployment(run_dir: Path, report, blob: bytes, data, int8_predictions) -> dict:
    """The deployment report of ``blob`` (qatzoo.deploy.report), the run's float file beside it for the CPU
    ratio when it is the file the run recorded; ``int8_predictions``: ``blob``'s LiteRT test predictions."""
    from qatzoo.deploy.report import build

    path, recorded = run_dir / "model_float.tflite", report.files.get("model_float.tflite")
    float_blob = read_regular(path) if os.path.lexists(path) and recorded else None
    if float_blob is not None and hashlib.sha256(float_blob).hexdigest() != recorded.get("sha256"):
        raise ZooError(f"{path} changed after the run wrote it; not publishing numbers measured on it")
    return build(blob, float_blob, data.x_test, lambda y: data.task.score(data.y_test, y), predictions=int8_predictions)


def _remeasure_baselines(run_dir: Path, report, data, results: dict) -> list[str]:
    """Measure the run's other .tflite files (float, PTQ int8) in LiteRT too, when they are the bytes the
    run recorded; replace their numbers in ``results``. Returns the names measured."""
    from qatzoo.zoo.verify import TOLERANCE, gap, measure

    done = []
    for name, file_name in (("float_tflite", "model_float.tflite"), ("ptq_int8", "model_ptq_int8.tflite")):
        path, recorded = run_dir / file_name, report.files.get(file_name)
        if name not in results or name == report.int8_model or not os.path.lexists(path) or not recorded:
            continue
        blob = read_regular(path)
        if hashlib.sha256(blob).hexdigest() != recorded.get("sha256"):
            raise ZooError(f"{path} changed after the run wrote it; not publishing numbers measured on it")
        value = measure(blob, data)
        if gap(report.metric, value, results[name]) > TOLERANCE[report.metric]:
            raise ZooError(
                f"{run_dir}: {file_name} measures {report.metric} {value:.4f}, metrics.json says "
                f"{results[name]:.4f}; not publishing it"
            )
        results[name] = value
        done.append(name)
    return done


def clean_leftovers(zoo_dir: Path, index: dict) -> list[Path]:
    """Remove what a killed publish left: staged folders, version folders still marked unpublished that
    the index does not list, markers of listed ones, temporary index/README files. Call under the lock.

    Only folders publish itself marked are ever removed: a zoo whose index.json is lost keeps its models.
    """
    listed = {(e["name"], e["version"]) for e in index["models"]}
    removed = []
    for tmp in [*zoo_dir.glob(".index.json.*.tmp"), *zoo_dir.glob(".README.md.*.tmp")]:
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    for model_dir in (p for p in zoo_dir.iterdir() if p.is_dir() and not p.is_symlink() and NAME.match(p.name)):
        for child in model_dir.iterdir():
            if not child.is_dir() or child.is_symlink():
                continue
            staged = STAGED.match(child.name)
            marker = child / UNPUBLISHED
            if VERSION.match(child.name) and marker.is_file() and (model_dir.name, child.name) in listed:
                marker.unlink()  # killed after the index was written: it is published
                removed.append(marker)
            elif (staged or (VERSION.match(child.name) and marker.is_file())) and {
                p.name for p in child.iterdir()
            } <= PUBLISHED_FILES | {UNPUBLISHED}:
                _discard(child)
                removed.append(child)
    return removed


def _discard(folder: Path) -> None:
    """Remove a flat folder publish made so that a kill at any point leaves something the next clean-up
    removes: a version folder is first renamed to a staged name (atomic), and only then emptied."""
    if not STAGED.match(folder.name):
        doomed = folder.with_name(f".{folder.name}.discard-{secrets.token_hex(4)}")
        os.rename(folder, doomed)
        folder = doomed
    _fault("discard-renamed")
    for i, child in enumerate(sorted(folder.iterdir())):
        child.unlink()
        if i == 0:
            _fault("discard-half")
    folder.rmdir()


def publish(
    run_dir: str | Path,
    zoo_dir: str | Path,
    name: str | None = None,
    data_dir: str | None = None,
    sign: str | Path | None = None,
) -> dict:
    """Publish ``run_dir`` as the next version of ``name`` (default: the recipe's name). Never overwrites.

    ``sign``: the publisher's private key: a model-signing bundle (``model.sig``) is written beside the model and
    the zoo's TUF metadata is re-signed with the new files (:mod:`qatzoo.zoo.signing`). A signed zoo is only ever
    published to with its key (an unsigned publish would change its index under its clients' trusted metadata).
    """
    run_dir, zoo_dir = Path(run_dir), Path(zoo_dir)
    if not run_dir.is_dir():
        raise ZooError(f"{run_dir} is not a run directory")
    key = None
    if sign is not None:  # checked before minutes of measuring: mode, place, format
        from qatzoo.zoo.keys import load_private

        key = load_private(sign, zoo_dir)
    elif (zoo_dir / "metadata" / "root.json").is_file():
        raise ZooError(
            f"the zoo {zoo_dir} is signed (metadata/root.json): publish to it with --sign KEY, or its clients "
            "that trust it would refuse its new index"
        )
    report = _report(run_dir)  # read once: the entry and the figures are checked against it
    name = check_name(name or report.name)
    if name == "metadata":  # the folder of a signed zoo's TUF metadata (qatzoo.zoo.signing.METADATA)
        raise ZooError("the model name 'metadata' is reserved: a signed zoo keeps its TUF metadata in that folder")
    entry, blob, card, sample = measured_entry(run_dir, name, data_dir, report)  # slow part: outside the lock
    figures = _figures(run_dir, report)
    try:
        with locked_index(zoo_dir) as index:
            _fault("locked")
            clean_leftovers(zoo_dir, index)
            versions = [int(e["version"]) for e in index["models"] if e["name"] == name]
            version = str(max(versions, default=0) + 1)
            entry.update(
                version=version,
                location=f"{name}/{version}/model_int8.tflite",
                card=f"{name}/{version}/card.md",
            )
            if sample is not None:  # verified on download like the model: an input users run it on
                entry["sample"] = {
                    "location": f"{name}/{version}/{sample[0]}",
                    "size": len(sample[1]),
                    "sha256": hashlib.sha256(sample[1]).hexdigest(),
                }
            validate_entry(entry)
            if sample is not None:  # the card's snippet names this version and reads the sample beside it
                from qatzoo.zoo.samples import with_use_it

                card = with_use_it(card, f"{name}@{version}", entry["contract"], sample[2])
            target = zoo_dir / name / version
            if target.exists():
                raise ZooError(f"{target} already exists and is not a leftover of a killed publish; not overwriting it")
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(staging, 0o777 & ~umask)  # the version folder as readable as the zoo (mkdtemp's is 0700)
            try:
                contract_json = (json.dumps(entry["contract"], indent=2) + "\n").encode()
                if key is not None:  # the bundle over the model, its contract and its card, beside them
                    from qatzoo.zoo.signing import BUNDLE, sign_bundle

                    bundle = sign_bundle(
                        {"model_int8.tflite": blob, "contract.json": contract_json, "card.md": card.encode()}, key
                    )
                    figures = {**figures, BUNDLE: bundle}
                for file_name, data in (
                    ("model_int8.tflite", blob),
                    ("card.md", card.encode()),
                    ("contract.json", contract_json),
                    *figures.items(),
                    *([sample[:2]] if sample is not None else []),
                    (UNPUBLISHED, b""),
                ):
                    with open(staging / file_name, "xb") as out:
                        out.write(data)
                        out.flush()
                        os.fsync(out.fileno())
                _fault("staged")
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            _fault("moved")
            index["models"].append(entry)
            try:
                write_index(zoo_dir, index)  # the commit point: atomic rename of index.json
            except BaseException:
                with contextlib.suppress(OSError):
                    _discard(target)
                raise
            _fault("indexed")
            (target / UNPUBLISHED).unlink()
            write_readme(zoo_dir)
            if key is not None:  # the new index and files as TUF targets; timestamp.json last (the commit point)
                from qatzoo.zoo.signing import sign_locked

                sign_locked(zoo_dir, index, key)
    except OSError as error:
        raise ZooError(f"cannot write to the zoo {zoo_dir}: {error.strerror or error}") from None
    return entry


#: Characters that mean something in a markdown table cell, backslash-escaped in plain cells.
_MARKDOWN = re.compile(r"([\\|`*\[\]<>])")


def _text(value) -> str:
    """``value`` as the plain text of one table cell: on one line, markdown's and HTML's characters escaped
    (``|`` would split the row, ``[..](..)`` link, ``<..>`` be HTML). Plain names come out unchanged."""
    return _MARKDOWN.sub(r"\\\1", " ".join(str(value).split()))


def _code(value) -> str:
    """``value`` as one table cell of code: on one line, in a code span fenced by more backticks than any run
    inside it (nothing in a code span is markdown or HTML, so ``<``, ``>``, ``[``, ``]`` are inert there), and
    ``|`` escaped, as GitHub's tables need even inside code. A command without backticks renders as before."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    runs = [len(r) for r in re.findall(r"`+", text)]
    if not runs:
        return f"`{text}`"
    fence = "`" * (max(runs) + 1)
    return f"{fence} {text} {fence}"


def _best_baseline(entry: dict, fmt: str) -> str:
    """The best classical baseline of an entry (same test split), "-" without baselines."""
    table = entry.get("baselines") or {}
    if not table:
        return "-"
    pick = max if entry["higher_is_better"] else min
    name = pick(table, key=lambda n: table[n][entry["metric"]])
    text = f"{fmt.format(table[name][entry['metric']])} ({_text(name)})"
    tested = entry.get("significance")
    if tested and tested["best"] == name:
        result = tested["baselines"][name]
        text += f": int8 {_text(result['verdict'])}, p = {result['p']:.2g}"
    return text


def _where(deployment: dict | None) -> str:
    """The runtimes' zoo cells of an entry's row ("-" for an entry without a report or without a runtime's)."""
    return " | ".join(
        r.zoo.cell(deployment[r.key], _text) if deployment and r.key in deployment else "-" for r in _columns()
    )


def _columns() -> list:
    """The runtimes with a zoo README column (qatzoo.deploy.RUNTIMES)."""
    from qatzoo.deploy import RUNTIMES

    return [r for r in RUNTIMES if r.zoo is not None]


def _runtimes_sentence() -> list[str]:
    """The README's lines on where the runtimes' numbers come from."""
    from qatzoo.deploy import RUNTIMES

    names = [r.zoo.name for r in _columns()]
    notes = [r.zoo_note for r in RUNTIMES if r.zoo is None and r.zoo_note]
    text = f"{' and '.join([', '.join(names[:-1]), names[-1]] if len(names) > 1 else names)} were run on the "
    text += f"published file (`deployment` in the index{'; ' + '; '.join(notes) if notes else ''})."
    return textwrap.wrap(text, width=106, break_long_words=False, break_on_hyphens=False)


def _engine(entry: dict) -> str:
    """``tfmot (Keras 2.21.0)``: the entry's engine field, or for entries published before it, its provenance's."""
    engine = entry.get("engine") or engine_of(entry["provenance"])
    return f"{_text(engine['name'])} (Keras {_text(engine['keras'])})"


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
        *_runtimes_sentence(),
        "",
        "| model | version | dataset | metric | float | PTQ int8 | int8 (this file) | best classical baseline (test; "
        "the int8 file against it) | size "
        f"| {''.join(r.zoo.header + ' | ' for r in _columns())}QAT engine | sha256 | reproduce |",
        "|---" * (12 + len(_columns())) + "|",
    ]
    for e in index["models"]:
        m, fmt = e["metrics"], ("{:.2f}" if e["metric"] == "accuracy" else "{:.4f}")

        def cell(key, m=m, fmt=fmt):
            return fmt.format(m[key]) if key in m else "-"

        lines.append(
            f"| {_text(e['name'])} | {_text(e['version'])} | {_text(e['dataset']['name'])} | {_text(e['metric'])} "
            f"({_text(e['unit'])}) | {cell('float')} | {cell('ptq_int8')} | {cell(e['int8_model'])} "
            f"| {_best_baseline(e, fmt)} | {e['size']:,} B | {_where(e.get('deployment'))} | {_engine(e)} "
            f"| `{e['sha256'][:12]}` | {_code(e['command'])} |"
        )
    write_text(zoo_dir / "README.md", "\n".join(lines) + "\n")
