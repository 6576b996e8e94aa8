"""The ``qatzoo`` command: recipes, exported models, and the model zoo.

qatzoo train recipe=NAME [KEY=VALUE]  # train one (python train.py's arguments; qatzoo train --help)
qatzoo recipes                        # the shipped recipes and the command that runs each
qatzoo check MODEL.tflite             # full integer? ops, I/O quantization; where it runs (CPU, TFLM, Ethos-U)
qatzoo sensitivity RUN_DIR            # per-layer quantization harm: table, bar chart, keep-float advice
qatzoo sweep-summary SWEEP_DIR        # (re)write a sweep's summary.{csv,md,png}
qatzoo publish RUN_DIR [--name N]     # add a finished run's int8 model to zoo/
qatzoo list | info NAME               # what the zoo holds, with metrics
qatzoo download NAME[@VERSION]        # verified by sha256, cached, resumable; prints the path
qatzoo predict NAME INPUT             # raw input (.png/.npy image, .csv/.npy series) -> decoded prediction
qatzoo verify NAME                    # download and re-measure the metric in LiteRT
qatzoo keys new DIR                   # a publisher key pair (private.pem 0600, public.pem) for signed zoos
qatzoo publish RUN_DIR --sign KEY     # publish with a model-signing bundle; re-sign the zoo's TUF metadata
qatzoo sign --key KEY                 # (re-)sign a zoo: bundles where missing, new TUF metadata versions
qatzoo keys rotate NEW --old OLD      # replace the zoo's key through a new TUF root version
qatzoo verify FILE --bundle B --key K # check a copied model against its publisher's bundle and public key

The zoo index is read from --index or $QATZOO_INDEX (a path, file:// or http(s):// URL), by default
this repository's zoo/. Downloads are cached under $QATZOO_CACHE (default ~/.cache/qatzoo).
A signed zoo is read through TUF with --trust ROOT.json (or $QATZOO_TRUST), or --pin to trust its own root on
first use; once a root is trusted for an index, the cache keeps it and that index is always verified.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from qatzoo.errors import error_line
from qatzoo.zoo.index import ZooError


def _recipes(_args) -> int:
    from qatzoo.config import RECIPES_DIR, recipe_names

    for name in recipe_names():
        lines = (RECIPES_DIR / f"{name}.yaml").read_text().splitlines()
        about = next((line.lstrip("# ").strip() for line in lines[1:] if line.startswith("#")), "")
        print(f"{name:20s} {about}\n{'':20s} qatzoo train recipe={name}")
    return 0


def _check(args) -> int:
    from qatzoo.export.checks import full_integer
    from qatzoo.export.litert import interpreter, io_quant

    path = Path(args.model)
    if not path.is_file():
        raise ZooError(f"{path}: no such file")
    try:
        report = full_integer(str(path))
        inp, out = io_quant(interpreter(str(path)))
    except (ValueError, RuntimeError) as error:
        raise ZooError(f"{path} is not a TFLite model LiteRT can load ({str(error).splitlines()[0][:120]})") from None
    print(f"ops: {', '.join(report.ops)}")
    print(f"input: {inp.dtype} scale {inp.scale:.8g} zero point {inp.zero_point}")
    print(f"output: {out.dtype} scale {out.scale:.8g} zero point {out.zero_point}")
    if report.ok:
        print("full integer: yes")
    else:
        names = ", ".join(t["name"] for t in report.non_integer[:5])
        print(f"full integer: NO ({len(report.non_integer)} tensors): {names}")
    if args.deploy and inp.dtype == "int8":
        from qatzoo.deploy.report import installed, lines, of_file

        if args.float and not Path(args.float).is_file():
            raise ZooError(f"{args.float}: no such file")
        print("where it runs:")
        print("\n".join(lines(of_file(path, args.float))))
        for extra in installed()[1]:  # TensorFlow Lite Micro and Vela come with qatzoo[deploy]
            print(f"- TensorFlow Lite Micro and Ethos-U: not measured; pip install 'qatzoo[{extra}]' adds them")
    return 0 if report.ok else 1


def _sensitivity(args) -> int:
    from qatzoo import engine

    run_dir = Path(args.run_dir)
    for needed in ("config.yaml", "model_float.keras"):
        if not (run_dir / needed).is_file():
            print(f"error: {run_dir} has no {needed}; pass the directory of a finished run", file=sys.stderr)
            return 2
    try:
        engine.select(engine.of_run(run_dir))  # the run's Keras, before anything imports one
    except engine.EngineError as error:
        print(error_line(error), file=sys.stderr)
        return 2
    from qatzoo.errors import ConfigError
    from qatzoo.export import tensors
    from qatzoo.tools import sensitivity

    paths = []
    try:
        if not args.tensors_only:
            result = sensitivity.analyse(run_dir, scheme_name=args.scheme, data_dir=args.data_dir)
            paths += sensitivity.write(result, args.out or run_dir)
            print(paths[1].read_text())
        compared, title = sensitivity.tensors(run_dir, args.tflite, data_dir=args.data_dir)
    except ConfigError as error:
        print(error_line(error), file=sys.stderr)
        return 2
    written = tensors.write(compared, args.out or run_dir, title)
    print(written[1].read_text())
    print("wrote " + ", ".join(str(p) for p in paths + written))
    return 0


def _sweep_summary(args) -> int:
    from qatzoo.sweep.summary import write

    paths = write(args.sweep_dir) if Path(args.sweep_dir).is_dir() else []
    if not paths:
        print(f"error: {args.sweep_dir} holds no trial directories (numbered, with config.yaml)", file=sys.stderr)
        return 2
    print(paths[1].read_text())
    return 0


def _publish(args) -> int:
    from qatzoo.zoo.index import default_zoo_dir, entry_of
    from qatzoo.zoo.publish import publish

    entry = entry_of(
        publish(args.run_dir, args.zoo or default_zoo_dir(), name=args.name, data_dir=args.data_dir, sign=args.sign)
    )
    print(
        f"published {entry.name}@{entry.version} ({entry.size:,} bytes, sha256 {entry.sha256}); "
        f"{entry.metric} measured in LiteRT on the test split: {_fmt(entry, entry.int8_model)}"
        + ("; signed (model.sig, TUF metadata)" if args.sign else "")
    )
    return 0


def _keys(args) -> int:
    from qatzoo.zoo import keys

    if args.action == "new":
        private, public = keys.new(args.dir)
        print(
            f"wrote {private} (mode 0600: keep it off the zoo and any index) and {public}; key id "
            f"{keys.load_private(private).tuf_key().keyid}"
        )
        return 0
    if not args.old:
        raise ZooError("keys rotate NEW_KEY --old OLD_KEY: give the zoo's current private key (it signs the new root)")
    from qatzoo.zoo.index import default_zoo_dir
    from qatzoo.zoo.signing import rotate

    zoo = Path(args.zoo) if args.zoo else default_zoo_dir()
    version, signed = rotate(zoo, args.dir, args.old)
    print(f"root v{version} names {args.dir}; {signed.line(zoo)}")
    print(f"give clients {zoo / 'metadata' / 'root.json'} (those holding an older root accept the new one)")
    return 0


def _sign(args) -> int:
    from qatzoo.zoo.index import default_zoo_dir
    from qatzoo.zoo.signing import sign_zoo

    zoo = Path(args.zoo) if args.zoo else default_zoo_dir()
    print(sign_zoo(zoo, args.key).line(zoo))
    print(f"clients trust {zoo / 'metadata' / 'root.json'}: qatzoo download NAME --trust root.json")
    return 0


def _network_flags(command) -> None:
    """The download limits every command that fetches from a zoo takes (list, info, download, verify, predict)."""
    command.add_argument(
        "--stall-timeout",
        type=float,
        help="seconds without a byte before a try is abandoned (default: $QATZOO_STALL_TIMEOUT or 30)",
    )
    command.add_argument(
        "--deadline",
        type=float,
        help="seconds for the whole download, retries included (default: $QATZOO_DEADLINE or 600)",
    )
    command.add_argument(
        "--speed-limit",
        type=float,
        help="bytes/s a transfer must average over --speed-time, else it is cut; 0: no limit "
        "(default: $QATZOO_SPEED_LIMIT or 1024)",
    )
    command.add_argument(
        "--speed-time",
        type=float,
        help="seconds over which --speed-limit is measured (default: $QATZOO_SPEED_TIME or 30)",
    )


def _trust_flags(command) -> None:
    """How a command that reads a zoo verifies a signed one (qatzoo.zoo.trust)."""
    command.add_argument(
        "--trust",
        metavar="ROOT.json",
        help="the signed zoo's TUF root to trust: index and models are then fetched through TUF and refused unless "
        "signed by its keys (default: $QATZOO_TRUST, or a root already trusted in the cache for this index)",
    )
    command.add_argument(
        "--pin",
        action="store_true",
        help="trust the zoo's own metadata/root.json on first use and keep it in the cache (trust on first use)",
    )


def _limit_arguments(args) -> dict:
    """The download limits of :func:`_network_flags` and the trust of :func:`_trust_flags`, as ``fetch``/``load``
    take them."""
    return {
        "timeout": args.stall_timeout,
        "deadline": args.deadline,
        "speed_limit": args.speed_limit,
        "speed_time": args.speed_time,
        "trust": args.trust,
        "pin": args.pin,
    }


def _opened(args):
    from qatzoo.zoo.download import Clock, open_index

    return open_index(args.index, Clock(_limits(args)), trust=args.trust, pin=args.pin)


#: What a command that read an unsigned index says after its answer (the checkout's own zoo/ excepted: it comes
#: with the code itself).
UNSIGNED = (
    "note: the index at {url} is unsigned: its models are checked against the sha256 it lists, and whoever serves "
    "it can change both; a signed zoo is verified with --trust ROOT.json"
)


def _unsigned_note(args) -> None:
    from qatzoo.zoo.download import _source_url
    from qatzoo.zoo.index import checkout_zoo
    from qatzoo.zoo.trust import wanted

    url = _source_url(args.index)
    checkout = checkout_zoo()
    if wanted(url, args.trust, args.pin) or (checkout is not None and url == _source_url(checkout)):
        return
    print(UNSIGNED.format(url=url), file=sys.stderr)


def _limits(args):
    from qatzoo.zoo.download import Limits

    return Limits.resolve(
        stall=args.stall_timeout, deadline=args.deadline, speed_limit=args.speed_limit, speed_time=args.speed_time
    )


def _fmt(entry, key: str) -> str:
    value = entry.metrics.get(key)
    return "-" if value is None else (f"{value:.2f}%" if entry.unit == "%" else f"{value:.4f} {entry.unit}")


def _list(args) -> int:
    from qatzoo.zoo.index import entries

    models = entries(_opened(args).index)
    if not models:
        print("the zoo is empty")
    for e in models:
        print(
            f"{e.name + '@' + e.version:<26} {e.dataset.name:<14} {e.metric}: float {_fmt(e, 'float')}, "
            f"PTQ int8 {_fmt(e, 'ptq_int8')}, int8 {_fmt(e, e.int8_model)}  ({e.size:,} B)"
        )
    return 0


#: The index's metric keys, in the order and with the names ``info`` shows them.
METRIC_NAMES = {
    "float": "float (Keras)",
    "float_tflite": "float (LiteRT)",
    "ptq_int8": "PTQ int8 (LiteRT)",
    "qat": "QAT fake-quant",
    "qat_int8": "QAT int8 (LiteRT)",
}


def info_lines(entry: dict, versions: list[str]) -> list[str]:
    """A readable summary of one index entry (``qatzoo info``): what it is, its numbers, its file, where it runs."""
    from qatzoo.deploy.report import summary
    from qatzoo.zoo.index import entry_of

    e = entry_of(entry)
    numbers = [f"{METRIC_NAMES.get(k, k)} {_fmt(e, k)}" for k in (*METRIC_NAMES, *e.metrics) if k in e.metrics]
    quant = lambda q: f"{q.dtype} (scale {q.scale:.6g}, zero point {q.zero_point})"  # noqa: E731
    lines = [
        f"{e.name}@{e.version}: {e.task} on {e.dataset.name} (arch {e.arch}, scheme {e.scheme}"
        + (f", engine {e.engine.name}" if e.engine is not None else "")
        + ")",
        f"  {e.metric} on the test split ({e.dataset.examples:,} examples): " + " | ".join(dict.fromkeys(numbers)),
        f"  int8 model: {e.size:,} bytes, sha256 {e.sha256}; input {quant(e.input)}, output {quant(e.output)}",
    ]
    fitted = entry.get("baselines") or {}
    if fitted:  # the strongest on validation, as a user would have picked it
        pick = max if e.higher_is_better else min
        best = pick(fitted, key=lambda k: fitted[k][f"val_{e.metric}"])
        value = fitted[best][e.metric]
        shown = f"{value:.2f}%" if e.unit == "%" else f"{value:.4f} {e.unit}"
        lines.append(f"  strongest classical baseline (of {len(fitted)}, on validation): {best} {shown} on test")
    if entry.get("significance"):
        from qatzoo.significance import cell

        lines.append(f"  the int8 file against the strongest baseline on test: {cell(entry['significance'])}")
    table = entry.get("ptq_baselines") or {}
    if table.get("best"):
        from qatzoo.report import wider

        method = table["methods"][table["best"]][e.metric]
        shown = f"{method:.2f}%" if e.unit == "%" else f"{method:.4f} {e.unit}"
        share = table.get("recovered")
        lines.append(
            f"  best PTQ at {table['widths']}: {table['best']} {shown}{wider(table)}; "
            + ("not significantly worse than float" if share is None else f"QAT recovers {share:.0%} of its loss")
        )
    if e.deployment is not None:
        lines.append(f"  where it runs: {summary(entry['deployment'])}")
    lines += [
        f"  published {e.date[:10]}; reproduce: {e.command}",
        f"  versions: {', '.join(versions)}  (qatzoo info {e.name}@{e.version} --json: the whole entry)",
    ]
    return lines


def _info(args) -> int:
    import json

    from qatzoo.zoo.index import find

    index = _opened(args).index
    entry = find(index, args.model)
    if args.json:
        print(json.dumps(entry, indent=2))
        return 0
    versions = [m["version"] for m in index["models"] if m.get("name") == entry["name"]]
    print("\n".join(info_lines(entry, versions)))
    return 0


def _download(args) -> int:
    from qatzoo.zoo.download import fetch

    print(
        fetch(
            args.model,
            index=args.index,
            to=args.to,
            progress=True,
            **_limit_arguments(args),
        )
    )
    return 0


def _verify(args) -> int:
    if args.bundle or args.key:
        if not (args.bundle and args.key):
            raise ZooError("verify FILE --bundle B --key K: give both the bundle and the publisher's public key")
        from qatzoo.zoo.trust import verify_copy

        covered = verify_copy(args.model, args.bundle, args.key)
        print(f"{args.model}: signed by {args.key} ({', '.join(covered)} as published): ok")
        return 0
    from qatzoo.zoo.verify import verify

    r = verify(
        args.model,
        index=args.index,
        data_dir=args.data_dir,
        **_limit_arguments(args),
    )
    print(
        f"{r['name']}@{r['version']}: sha256 ok; {r['metric']} measured {r['measured']:.4f}, index {r['index']:.4f} "
        f"(tolerance {r['tolerance']}): ok"
    )
    return 0


def _predict(args) -> int:
    import json
    import warnings

    import numpy as np

    from qatzoo.contract import ContractError
    from qatzoo.inputs import forecast_dates, read_dated
    from qatzoo.model import InputRangeWarning, Model
    from qatzoo.zoo.download import load

    try:
        source = Path(args.model)
        model = (
            Model.from_run(source)
            if source.is_dir()
            else load(
                args.model,
                index=args.index,
                progress=False,
                **_limit_arguments(args),
            )
        )
        raw, dates = read_dated(Path(args.input), model.contract.input.raw)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InputRangeWarning)
            output = (
                model.predict(raw, labels=True, probabilities=True)
                if model.contract.task == "classification"
                else model.predict(raw)
            )
        for warning in caught:  # inputs outside the int8 range: one line each, the prediction still printed
            if issubclass(warning.category, InputRangeWarning):
                print(f"warning: {warning.message}", file=sys.stderr)
        if model.contract.task == "classification":
            result = output
            if isinstance(result["labels"], np.ndarray) and result["labels"].ndim:
                rows = [
                    {"label": str(name), "probability": float(p.max())}
                    for name, p in zip(result["labels"], result["probabilities"], strict=True)
                ]
            else:
                rows = [{"label": str(result["labels"]), "probability": float(np.max(result["probabilities"]))}]
        else:
            out = np.atleast_2d(output)
            rows = [{"forecast": [float(v) for v in row]} for row in out]
            weeks = forecast_dates(dates, model.contract.output.horizon) if dates else None
            if weeks and len(rows) == 1:
                rows[0]["dates"] = weeks
    except ContractError as error:
        raise ZooError(str(error)) from None
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0]))
        return 0
    unit = model.contract.output.unit or ""
    for row in rows:
        if "label" in row:
            print(f"{row['label']} ({row['probability']:.1%})")
        elif "dates" in row:  # one line a forecast week, dated from the input's date column
            for day, value in zip(row["dates"], row["forecast"], strict=True):
                print(f"{day}: {value:.4f}" + (f" {unit}" if unit else ""))
        else:
            print(" ".join(f"{v:.4f}" for v in row["forecast"]) + (f" {unit}" if unit else ""))
    return 0


def _missing_train() -> bool:
    from qatzoo.extras import missing

    return missing("train") is not None


def _read_a_zoo(args) -> bool:
    """Whether the command read a zoo index (not predict on a run directory, not verify --bundle)."""
    if getattr(args, "bundle", None):
        return False
    return not (args.func is _predict and Path(args.model).is_dir())


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["train"]:  # Hydra's own command line, as python train.py takes it
        from qatzoo.extras import MissingExtra, require

        try:
            require("train", "qatzoo train")
        except MissingExtra as error:
            print(error_line(error), file=sys.stderr)
            return 2
        from qatzoo.launch import cli

        cli(args[1:], prog="qatzoo train")
        return 0
    parser = argparse.ArgumentParser(
        prog="qatzoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "train", help="train a recipe: qatzoo train recipe=NAME [KEY=VALUE ...] (as python train.py; --help)"
    )
    sub.add_parser("recipes", help="list the shipped recipes").set_defaults(func=_recipes)
    check = sub.add_parser(
        "check",
        help="full-integer check of a .tflite model and where it runs (LiteRT CPU, TFLite Micro, Ethos-U55)",
        description="Ops, input/output quantization and the full-integer check; for an int8 model also its "
        "deployment report: LiteRT latency on this CPU (1 thread, batch 1; with --float, the float model side by "
        "side), XNNPACK partitions, whether TensorFlow Lite Micro runs it (arena, flash, agreement with LiteRT on "
        "100 random inputs) and Vela's Ethos-U55 estimates. Exit 0 when full integer, 1 when not.",
    )
    check.add_argument("model", help="path to a .tflite file")
    check.add_argument("--float", help="the float .tflite of the same model, for the int8/float latency ratio")
    check.add_argument(
        "--no-deploy", dest="deploy", action="store_false", help="skip the deployment report (a few seconds)"
    )
    check.set_defaults(func=_check)

    sens = sub.add_parser(
        "sensitivity",
        help="per-layer quantization sensitivity of a finished run (table, PNG, keep-float advice)",
        description="Quantize one layer at a time (all others float), measure the validation metric and the "
        "SQNR of the layer's output, and suggest which layers to keep float. Writes sensitivity.csv, .md and "
        ".png into the run directory (or --out); then compares an int8 file with the float model tensor by "
        "tensor (LiteRT's quantizer's validator: SNR, cosine similarity) and writes tensors.csv, .md and .png.",
    )
    sens.add_argument("run_dir", help="a finished run directory (holds config.yaml and model_float.keras)")
    sens.add_argument("--scheme", help="quant option to analyse (default: the run's own scheme; int8 for PTQ runs)")
    sens.add_argument("--out", help="directory for the outputs (default: the run directory)")
    sens.add_argument("--data-dir", help="TFDS data directory (default: $TFDS_DATA_DIR or the run's)")
    sens.add_argument(
        "--tflite",
        help="the int8 file to compare tensor by tensor with the run's float model (default: the run's "
        "model_int8.tflite, else model_ptq_int8.tflite)",
    )
    sens.add_argument(
        "--tensors-only", action="store_true", help="only the per-tensor comparison (tensors.csv, .md, .png)"
    )
    sens.set_defaults(func=_sensitivity)

    summ = sub.add_parser("sweep-summary", help="(re)write a sweep directory's summary.{csv,md,png}")
    summ.add_argument("sweep_dir", help="the sweep directory (hydra.sweep.dir)")
    summ.set_defaults(func=_sweep_summary)

    pred = sub.add_parser(
        "predict",
        help="run a zoo model (or a run directory's int8 model) on a raw input file",
        description="Applies the model's contract: raw input -> the trainer's preprocessing -> int8 -> LiteRT -> "
        "decoded. Images: a .png (grey, the model's size) or a .npy of uint8 (one image or a batch). Series: a .csv "
        "(the last column, every cell a number; a header row is skipped) or a .npy, at least the model's window of "
        "values, oldest first.",
    )
    pred.add_argument("model", help="NAME[@VERSION] from the zoo, or a finished run directory")
    pred.add_argument("input", help="the raw input file")
    pred.add_argument("--json", action="store_true", help="print JSON instead of text")
    pred.add_argument("--index", help="index path or URL (default: $QATZOO_INDEX or zoo/)")
    _network_flags(pred)
    _trust_flags(pred)
    pred.set_defaults(func=_predict)

    pub = sub.add_parser("publish", help="publish a finished run's int8 model to the zoo")
    pub.add_argument("run_dir")
    pub.add_argument("--name", help="model name (default: the recipe's name)")
    pub.add_argument("--zoo", help="zoo directory (default: this repository's zoo/ or $QATZOO_ZOO_DIR)")
    pub.add_argument(
        "--data-dir", help="TFDS data directory for re-measuring the int8 model (default: $TFDS_DATA_DIR or the run's)"
    )
    pub.add_argument(
        "--sign",
        metavar="KEY",
        help="the publisher's private key (qatzoo keys new): write model.sig beside the model and re-sign the zoo's "
        "TUF metadata",
    )
    pub.set_defaults(func=_publish)

    keys = sub.add_parser(
        "keys",
        help="publisher keys for signed zoos: keys new DIR | keys rotate NEW_KEY --old OLD_KEY",
        description="new DIR: an elliptic-curve (P-256) key pair, DIR/private.pem (mode 0600) and DIR/public.pem, "
        "never inside a zoo. rotate NEW_KEY --old OLD_KEY: a new root version naming the new key for every role, "
        "signed by both; the bundles and metadata re-signed with the new key.",
    )
    keys.add_argument("action", choices=["new", "rotate"])
    keys.add_argument("dir", metavar="DIR_OR_KEY", help="new: the folder to write; rotate: the new private key")
    keys.add_argument("--old", help="rotate: the zoo's current private key")
    keys.add_argument("--zoo", help="rotate: zoo directory (default: this repository's zoo/ or $QATZOO_ZOO_DIR)")
    keys.set_defaults(func=_keys)

    sign = sub.add_parser(
        "sign",
        help="(re-)sign a zoo: model-signing bundles where missing, new TUF metadata (run it before the timestamp "
        "expires)",
    )
    sign.add_argument("--key", required=True, help="the publisher's private key (qatzoo keys new)")
    sign.add_argument("--zoo", help="zoo directory (default: this repository's zoo/ or $QATZOO_ZOO_DIR)")
    sign.set_defaults(func=_sign)
    for name, func, about in (
        ("list", _list, "list the published models"),
        ("info", _info, "a model's summary: numbers, file, where it runs (--json: the whole index entry)"),
        ("download", _download, "download a model, verified by sha256; prints its path"),
        ("verify", _verify, "download a model and re-measure its metric in LiteRT"),
    ):
        cmd = sub.add_parser(name, help=about)
        if name != "list":
            cmd.add_argument("model", help="NAME or NAME@VERSION")
        cmd.add_argument("--index", help="index path, file:// or http(s):// URL (default: $QATZOO_INDEX or zoo/)")
        _network_flags(cmd)
        _trust_flags(cmd)
        if name == "info":
            cmd.add_argument("--json", action="store_true", help="print the whole index entry as JSON")
        if name == "download":
            cmd.add_argument("--to", help="also copy the verified file into this directory")
        if name == "verify":
            cmd.add_argument(
                "--data-dir", help="TFDS data directory (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)"
            )
            cmd.add_argument(
                "--bundle",
                help="check MODEL (a copied .tflite, its contract and card beside it) against this model-signing "
                "bundle instead (with --key)",
            )
            cmd.add_argument("--key", help="with --bundle: the publisher's public key (public.pem)")
        cmd.set_defaults(func=func)
    args = parser.parse_args(args)
    # They import TensorFlow (datasets through TFDS, Keras models): without its start-up noise. predict and
    # check run LiteRT, TFLM and Vela only, and start in well under a second without it.
    if args.func in (_publish, _sensitivity, _sweep_summary):
        from qatzoo.extras import MissingExtra, require

        try:
            require("train", f"qatzoo {args.command}")
        except MissingExtra as error:
            print(error_line(error), file=sys.stderr)
            return 2
    if args.func in (_verify, _publish, _sensitivity) and not _missing_train() and not getattr(args, "bundle", None):
        from qatzoo import quiet

        quiet.configure(verbose=0)
    from qatzoo.extras import MissingExtra

    try:
        code = args.func(args)
        if code == 0 and args.func in (_list, _info, _download, _verify, _predict) and _read_a_zoo(args):
            _unsigned_note(args)
        return code
    except (ZooError, MissingExtra) as error:
        print(error_line(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; a partial download is kept and the next run resumes it", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `qatzoo info NAME --json | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
