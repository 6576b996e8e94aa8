"""The zoo: publishing into a locked, validated index; downloads that are verified, resumable and
never leave a bad file; and every model committed under zoo/ downloaded over real HTTP and verified."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from qatzoo.files import sha256_file
from qatzoo.zoo.download import fetch, index_cache, load
from qatzoo.zoo.index import ZooError, find, read_index
from qatzoo.zoo.publish import publish
from tests.conftest import ENGINE, REPO
from tests.zoo_server import ZooServer

TINY = ["schedule.float_epochs=1", "schedule.qat_epochs=1", "trainer.verbose=0", "trainer.representative_samples=32"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    """One finished tiny run to publish."""
    from qatzoo.config import compose
    from qatzoo.train.trainer import train

    cfg = compose(
        [
            "recipe=mnist_cnn_int8",
            "data=mnist_5k",
            f"paths.data_dir={data_dir}",
            "trainer.deployment=true",  # published entries compare their report with the run's
            *TINY,
        ]
    )
    out = tmp_path_factory.mktemp("run")
    train(cfg, out)
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def zoo(tmp_path, run_dir):
    zoo_dir = tmp_path / "zoo"
    publish(run_dir, zoo_dir, name="tiny_cnn")
    return zoo_dir


@pytest.mark.slow
def test_publish_writes_files_entry_and_readme_and_never_overwrites(zoo, run_dir):
    index = read_index(zoo / "index.json")
    (entry,) = index["models"]
    assert (entry["name"], entry["version"]) == ("tiny_cnn", "1")
    model = zoo / entry["location"]
    assert model.read_bytes() == (run_dir / "model_int8.tflite").read_bytes()
    assert entry["sha256"] == sha256_file(model) and entry["size"] == model.stat().st_size
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert entry["metrics"]["qat_int8"] == metrics["results"]["qat_int8"]["accuracy"]
    assert entry["input"] == metrics["int8"]["input"] and entry["config"]["name"] == "mnist_cnn_int8"
    assert entry["provenance"]["config_sha256"] == entry["config_sha256"]
    assert entry["config"]["data"]["data_dir"] is None  # where the publisher kept its data is not published
    card = (zoo / entry["card"]).read_text()
    run_card = (run_dir / "card.md").read_text()
    assert card.startswith(run_card[: run_card.index("## Use it")]) and entry["sha256"] in card
    # Its Use it names the version and reads the sample beside it: the test split's first image.
    assert 'load("tiny_cnn@1")' in card and "qatzoo predict tiny_cnn@1 sample.png" in card
    assert "the test split's first image (class \"" in card and run_card.count("## Use it") == 1 == card.count("## Use")
    limits = card[card.index("## Limitations") :]
    assert f"| as published (the test split) | {entry['metrics']['qat_int8']:.2f} | - |" in limits
    assert "| shifted 2 pixels right and down |" in limits and "| inverted (dark on light) |" in limits
    from PIL import Image

    assert (model.parent.stat().st_mode & 0o777) == 0o777 & ~_umask()  # not mkdtemp's 0700
    with Image.open(model.parent / "sample.png") as sample:
        assert sample.size == (28, 28) and sample.mode == "L"
    # The deployment report is measured on the published bytes (same file: same TFLM arena as the run's).
    deployment = entry["deployment"]
    assert deployment["tflm"]["runs"] and deployment["tflm"]["examples"] == entry["dataset"]["examples"]
    assert deployment["tflm"]["arena_bytes"] == metrics["deployment"]["tflm"]["arena_bytes"]
    assert deployment["tflm"]["flash_bytes"] == entry["size"] and deployment["ethos_u55"]["npu_share"] == 1.0
    assert "Where it runs, measured on this file at publish" in card
    # The contract: built from the data code and the published bytes, the same as the run's, beside the model.
    assert entry["contract"] == json.loads((run_dir / "contract.json").read_text())
    assert json.loads((model.parent / "contract.json").read_text()) == entry["contract"]
    assert "| tiny_cnn | 1 | mnist_5k |" in (zoo / "README.md").read_text()
    # The engine and its Keras, from the run's provenance, in the entry and the zoo's table.
    assert entry["engine"] == metrics["provenance"]["engine"] and entry["engine"]["name"] == ENGINE
    assert f"| {ENGINE} (Keras {entry['engine']['keras']}) |" in (zoo / "README.md").read_text()
    second = publish(run_dir, zoo, name="tiny_cnn")
    assert second["version"] == "2" and model.read_bytes() == (run_dir / "model_int8.tflite").read_bytes()


@pytest.mark.slow
def test_publish_refuses_unfinished_failed_or_float_runs(run_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(run_dir, bad)
    metrics = json.loads((bad / "metrics.json").read_text())
    metrics["checks"]["parity"] = False
    (bad / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ZooError, match="failed the parity check"):
        publish(bad, tmp_path / "zoo", name="x")
    (bad / "metrics.json").unlink()
    with pytest.raises(ZooError, match="has no metrics.json"):
        publish(bad, tmp_path / "zoo", name="x")
    with pytest.raises(ZooError, match="bad model name"):
        publish(run_dir, tmp_path / "zoo", name="../escape")
    assert not (tmp_path / "zoo" / "index.json").exists()


def _edited_copy(run_dir: Path, where: Path, keep_files_record: bool = True, **changes) -> Path:
    """A copy of ``run_dir`` with metrics.json changed (and optionally without its record of file hashes)."""
    shutil.copytree(run_dir, where)
    metrics = json.loads((where / "metrics.json").read_text())
    if not keep_files_record:
        metrics.pop("files", None)
    for dotted, value in changes.items():
        node = metrics
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    (where / "metrics.json").write_text(json.dumps(metrics))
    return where


@pytest.mark.slow
def test_publish_rederives_what_it_writes_and_refuses_a_doctored_run(run_dir, tmp_path, data_dir):
    zoo_dir = tmp_path / "zoo"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    claimed = metrics["results"]["qat_int8"]["accuracy"]
    # The float model in place of the int8 one: caught by the recorded hash, or without it by the full-integer check.
    for keep in (True, False):
        swapped = _edited_copy(run_dir, tmp_path / f"swapped{keep}", keep_files_record=keep)
        shutil.copyfile(swapped / "model_float.tflite", swapped / "model_int8.tflite")
        message = "changed after the run wrote it" if keep and "files" in metrics else "not a full-integer int8 model"
        with pytest.raises(ZooError, match=message):
            publish(swapped, zoo_dir, name="x", data_dir=data_dir)
    if "files" in metrics:  # two bytes flipped after metrics.json was written
        flipped = _edited_copy(run_dir, tmp_path / "flipped")
        blob = bytearray((flipped / "model_int8.tflite").read_bytes())
        blob[-100] ^= 1
        blob[-200] ^= 1
        (flipped / "model_int8.tflite").write_bytes(bytes(blob))
        with pytest.raises(ZooError, match="changed after the run wrote it"):
            publish(flipped, zoo_dir, name="x", data_dir=data_dir)
    # A claimed accuracy the file does not have.
    edited = _edited_copy(run_dir, tmp_path / "edited", results__qat_int8__accuracy=99.9)
    with pytest.raises(ZooError, match=r"measures accuracy .* says 99.9000"):
        publish(edited, zoo_dir, name="x", data_dir=data_dir)
    # Broken or missing files: one line each.
    broken = _edited_copy(run_dir, tmp_path / "broken")
    (broken / "metrics.json").write_text('{"name": "mnist_cnn_int8", "results": ')
    with pytest.raises(ZooError, match="not a readable run report"):
        publish(broken, zoo_dir, name="x", data_dir=data_dir)
    (broken / "metrics.json").write_text(json.dumps({**metrics, "int8": None}))
    with pytest.raises(ZooError, match="not a complete run report"):
        publish(broken, zoo_dir, name="x", data_dir=data_dir)
    no_card = _edited_copy(run_dir, tmp_path / "no_card")
    (no_card / "card.md").unlink()
    with pytest.raises(ZooError, match="has no card.md"):
        publish(no_card, zoo_dir, name="x", data_dir=data_dir)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ZooError, match="cannot write to the zoo"):
        publish(run_dir, blocker / "zoo", name="x", data_dir=data_dir)
    assert not zoo_dir.exists() or not read_index(zoo_dir / "index.json")["models"]
    # The honest run publishes, with the number measured from the bytes it copied.
    edited = _edited_copy(run_dir, tmp_path / "ptq_edited", results__ptq_int8__accuracy=12.5)
    with pytest.raises(ZooError, match=r"model_ptq_int8.tflite measures accuracy .* says 12.5000"):
        publish(edited, zoo_dir, name="x", data_dir=data_dir)
    entry = publish(run_dir, zoo_dir, name="x", data_dir=data_dir)
    assert entry["metrics"]["qat_int8"] == claimed and "_target_" not in json.dumps(entry)
    assert entry["measured_at_publish"] == ["qat_int8", "float_tflite", "ptq_int8"]
    assert entry["metrics"]["ptq_int8"] == metrics["results"]["ptq_int8"]["accuracy"]
    assert "## Measured at publish" in (zoo_dir / entry["card"]).read_text()


def _killed_publish(args) -> int:
    import subprocess
    import sys

    run, zoo_dir, step, data_dir = args
    code = f"from qatzoo.zoo.publish import publish; publish({run!r}, {zoo_dir!r}, name='k', data_dir={data_dir!r})"
    env = {**os.environ, "QATZOO_PUBLISH_FAULT": step}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True).returncode


@pytest.mark.slow
def test_a_publish_killed_at_any_step_leaves_the_old_index_or_the_new_entry(run_dir, tmp_path, data_dir):
    from concurrent.futures import ThreadPoolExecutor

    from qatzoo.zoo.publish import FAULT_STEPS

    zoos = {step: tmp_path / step for step in FAULT_STEPS}
    for zoo_dir in zoos.values():
        publish(run_dir, zoo_dir, name="k", data_dir=data_dir)  # k@1, so a kill has an old index to keep
    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(_killed_publish, [(str(run_dir), str(z), s, data_dir) for s, z in zoos.items()]))
    assert codes == [-9] * len(FAULT_STEPS)  # every step was reached and killed there
    for step, zoo_dir in zoos.items():
        versions = [e["version"] for e in read_index(zoo_dir / "index.json")["models"]]
        assert versions == (["1", "2"] if step == "indexed" else ["1"]), step
        third = publish(run_dir, zoo_dir, name="k", data_dir=data_dir)  # nothing blocks the next publish
        assert third["version"] == str(len(versions) + 1)
        leftovers = [p.name for p in zoo_dir.rglob("*") if p.name.startswith(".") and p.name != ".index.lock"]
        assert not leftovers, (step, leftovers)
        listed = {f"k/{e['version']}" for e in read_index(zoo_dir / "index.json")["models"]}
        assert {f"k/{p.name}" for p in (zoo_dir / "k").iterdir()} == listed, step


def _publish_one(args):
    run, zoo_dir = args
    return publish(run, zoo_dir, name="same")["version"]


@pytest.mark.slow
def test_concurrent_publishes_keep_every_entry(run_dir, tmp_path):
    zoo_dir = tmp_path / "zoo"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        versions = pool.map(_publish_one, [(str(run_dir), str(zoo_dir))] * 3)
    assert sorted(versions, key=int) == [str(v) for v in range(1, 4)]
    index = read_index(zoo_dir / "index.json")
    assert sorted(int(e["version"]) for e in index["models"]) == list(range(1, 4))
    assert all((zoo_dir / e["location"]).is_file() for e in index["models"])
    assert not list(zoo_dir.glob("same/.*"))  # no staging directories left


@pytest.mark.slow
def test_download_over_http_verifies_caches_and_reverifies(zoo, cache, tmp_path):
    with ZooServer(zoo) as server:
        index = f"{server.url}/index.json"
        path = fetch("tiny_cnn", index=index, progress=False)
        assert path == index_cache(index) / "tiny_cnn" / "1" / "model_int8.tflite"
        assert path.parent.parent.parent.parent == cache  # another index than the repository's: cache/@<hash>/
        assert sha256_file(path) == find(read_index(zoo / "index.json"), "tiny_cnn")["sha256"]
        requests = len(server.requests)
        assert fetch("tiny_cnn", index=index, progress=False) == path
        assert len(server.requests) == requests + 1  # only the index: the cached file was re-hashed, not fetched
        path.chmod(0o644)
        path.write_bytes(b"corrupted in the cache")
        assert fetch("tiny_cnn", index=index, progress=False) == path  # the bad cached copy was replaced
        assert sha256_file(path) == find(read_index(zoo / "index.json"), "tiny_cnn")["sha256"]
        copy = fetch("tiny_cnn@1", index=index, to=tmp_path / "out", progress=False)
        assert copy == tmp_path / "out" / "tiny_cnn-1.tflite" and copy.read_bytes() == path.read_bytes()
        assert (copy.stat().st_mode & 0o777) == 0o666 & ~_umask()  # the user's copy: the umask's mode, not 0600
        assert (tmp_path / "out" / "tiny_cnn-1.contract.json").is_file()  # the contract travels with the copy
        card = (zoo / "tiny_cnn" / "1" / "card.md").read_bytes()  # and the card: in the cache and the copy
        assert (path.parent / "card.md").read_bytes() == card == (tmp_path / "out" / "tiny_cnn-1.card.md").read_bytes()
        sample = (zoo / "tiny_cnn" / "1" / "sample.png").read_bytes()  # and the sample input the card's snippet reads
        assert (
            (path.parent / "sample.png").read_bytes()
            == sample
            == (tmp_path / "out" / "tiny_cnn-1.sample.png").read_bytes()
        )
        model = load("tiny_cnn", index=index, progress=False)
        assert model.interpreter.get_input_details()[0]["dtype"].__name__ == "int8"
        assert json.loads((path.parent / "contract.json").read_text()) == model.contract


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "message"), [("tamper", "is tampered"), ("short", "is truncated"), ("oversize", "is larger than")]
)
def test_bad_files_are_rejected_and_removed(zoo, cache, fault, message):
    with ZooServer(zoo) as server:
        server.faults["tiny_cnn/1/model_int8.tflite"] = fault
        with pytest.raises(ZooError, match=message):
            fetch("tiny_cnn", index=f"{server.url}/index.json", progress=False)
    assert not [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"], "something bad stayed in the cache"


@pytest.mark.slow
def test_a_card_that_is_too_large_or_not_text_is_refused_and_the_model_kept(zoo, cache, capsys):
    card = zoo / "tiny_cnn" / "1" / "card.md"
    for content, message in ((b"# card\n" * 40_000, "is larger than 262144 bytes"), (b"\xff\xfe\x00", "is not UTF-8")):
        card.write_bytes(content)
        with ZooServer(zoo) as server:
            path = fetch("tiny_cnn", index=f"{server.url}/index.json", progress=False)
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("warning: the card of tiny_cnn@1") and message in line
        assert sha256_file(path) == find(read_index(zoo / "index.json"), "tiny_cnn")["sha256"]
        assert not (path.parent / "card.md").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "message"), [("tamper", "is tampered"), ("oversize", "is larger than")])
def test_a_sample_that_does_not_match_the_index_is_refused_and_the_model_kept(zoo, cache, capsys, fault, message):
    entry = find(read_index(zoo / "index.json"), "tiny_cnn")
    assert entry["sample"]["location"] == "tiny_cnn/1/sample.png"
    assert entry["sample"]["sha256"] == sha256_file(zoo / "tiny_cnn" / "1" / "sample.png")
    with ZooServer(zoo) as server:
        server.faults["tiny_cnn/1/sample.png"] = fault
        path = fetch("tiny_cnn", index=f"{server.url}/index.json", progress=False)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("warning: the sample input of tiny_cnn@1") and message in line
    assert line.endswith("the model itself is verified")
    assert sha256_file(path) == entry["sha256"] and (path.parent / "card.md").is_file()
    assert not (path.parent / "sample.png").exists()


@pytest.mark.slow
def test_a_dropped_connection_resumes_and_a_server_error_is_retried(zoo, cache):
    with ZooServer(zoo) as server:
        model = "tiny_cnn/1/model_int8.tflite"
        server.faults[model] = "truncate_once"
        path = fetch("tiny_cnn", index=f"{server.url}/index.json", progress=False)
        ranges = [r for p, r in server.requests if p == model]
        assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
        assert sha256_file(path) == find(read_index(zoo / "index.json"), "tiny_cnn")["sha256"]
        path.unlink()
        server.faults[model] = "error_once"
        assert fetch("tiny_cnn", index=f"{server.url}/index.json", progress=False).is_file()
        path.unlink()
        server.faults[model] = "missing"
        with pytest.raises(ZooError, match="HTTP 404"):
            fetch("tiny_cnn", index=f"{server.url}/index.json", progress=False)


def _published():
    index = read_index(REPO / "zoo" / "index.json")
    return [f"{e['name']}@{e['version']}" for e in index["models"]]


@pytest.mark.slow
@pytest.mark.parametrize("spec", _published())
def test_every_published_model_downloads_over_http_and_verifies(spec, cache, data_dir):
    from qatzoo.zoo.verify import verify

    entry = find(read_index(REPO / "zoo" / "index.json"), spec)
    source = entry["config"]["data"].get("source_dir")
    if source and not Path(source).is_dir():
        pytest.skip(f"needs {source} (apt-get install dataset-fashion-mnist)")
    with ZooServer(REPO / "zoo") as server:
        result = verify(spec, index=f"{server.url}/index.json", data_dir=data_dir, progress=False)
        assert any(path == entry["location"] for path, _ in server.requests)
    assert result["ok"] and result["measured"] == pytest.approx(result["index"], abs=result["tolerance"])


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: json.loads(json.dumps(tree))}


@pytest.mark.parametrize("spec", _published())
def test_every_published_command_composes_the_published_config(spec):
    """An entry's command is how to rebuild it: with today's recipes and defaults it must compose the config
    that was trained, so a recipe that moves on makes the older entries' commands say what they were.

    Every recorded value must come back; an architecture option added after the entry was published must
    compose to its factory's default (by this project's rule, the first published model's behaviour)."""
    import inspect

    from hydra.utils import get_method
    from omegaconf import OmegaConf

    from qatzoo.config import compose
    from qatzoo.provenance import NOT_HASHED, engine_of

    entry = find(read_index(REPO / "zoo" / "index.json"), spec)
    words = entry["command"].split()
    assert words[:2] == ["python", "train.py"] and f"recipe={entry['name']}" in words
    cfg = compose(words[2:])  # as the command composes it: no engine given here (the fixture pins this process's)
    # The engine it was trained on, which a config from before engines existed does not record.
    trained_on = (entry.get("engine") or engine_of(entry["provenance"]))["name"]
    assert cfg.engine.name == trained_on, f"{entry['command']} runs engine={cfg.engine.name}, the entry {trained_on}"
    composed = _leaves(OmegaConf.to_container(cfg, resolve=True))
    recorded = _leaves(entry["config"])
    same = {False: "none", "none": "none"}  # arch.norm was a bool before it named a layer
    for key, value in recorded.items():
        if key == "data.data_dir" or key.startswith(("paths.", "logger.")) or key in NOT_HASHED:
            continue
        got = composed.get(key)
        assert (same.get(got, got) if key == "arch.norm" else got) == (
            same.get(value, value) if key == "arch.norm" else value
        ), f"{key}: {entry['command']} composes {got!r}, the entry was trained with {value!r}"
    factory = inspect.signature(get_method(cfg.arch._target_)).parameters
    for key, got in composed.items():
        name = key.removeprefix("arch.")
        if key.startswith("arch.") and key not in recorded and name in factory:
            default = json.loads(json.dumps(factory[name].default))
            assert same.get(got, got) == same.get(default, default), f"{key}: {entry['command']} composes {got!r}"


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_info_summarises_every_committed_entry_and_publishes_no_machine_path(capsys):
    from qatzoo.cli import main

    index = read_index(REPO / "zoo" / "index.json")
    for entry in index["models"]:
        spec = f"{entry['name']}@{entry['version']}"
        assert main(["info", spec]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"{spec}: {entry['task']} on {entry['dataset']['name']}")
        int8 = entry["metrics"][entry["int8_model"]]
        assert (f"QAT int8 (LiteRT) {int8:.2f}%" if entry["unit"] == "%" else f"{int8:.4f} {entry['unit']}") in lines[1]
        versions = sorted(int(e["version"]) for e in index["models"] if e["name"] == entry["name"])
        assert f"sha256 {entry['sha256']}" in lines[2]
        assert lines[-1].startswith(f"  versions: {', '.join(map(str, versions))}  (")
        assert len(lines) <= 10 and all(len(line) < 400 for line in lines)
        verdict = entry["significance"]["baselines"][entry["significance"]["best"]]["verdict"]
        assert any(
            line.startswith(f"  the int8 file against the strongest baseline on test: {verdict} ") for line in lines
        )
        if "ptq_baselines" in entry:
            assert any(line.startswith(f"  best PTQ at {entry['ptq_baselines']['widths']}: ") for line in lines)
        assert main(["info", spec, "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == entry
        paths = [s for s in _strings(entry) if s.startswith(("/tmp", "/home", "/root", "/work", "~", "/Users"))]
        assert not paths, (spec, paths)


def test_file_url_env_var_and_cli_against_the_committed_zoo(cache, monkeypatch, tmp_path):
    import subprocess
    import sys

    entry = find(read_index(REPO / "zoo" / "index.json"), "mnist_cnn_int8")
    by_url = fetch("mnist_cnn_int8", index=(REPO / "zoo" / "index.json").as_uri(), progress=False)
    assert sha256_file(by_url) == entry["sha256"]
    by_url.unlink()
    monkeypatch.setenv("QATZOO_INDEX", str(REPO / "zoo"))
    assert sha256_file(fetch("mnist_cnn_int8", progress=False)) == entry["sha256"]

    env = {**os.environ, "QATZOO_CACHE": str(cache)}
    listed = subprocess.run(
        [sys.executable, "-m", "qatzoo.cli", "list"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "mnist_cnn_int8@1" in listed.stdout
    got = subprocess.run(
        [sys.executable, "-m", "qatzoo.cli", "download", "mnist_cnn_int8@1", "--to", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert got.returncode == 0 and got.stdout.strip().endswith("mnist_cnn_int8-1.tflite")
    missing = subprocess.run(
        [sys.executable, "-m", "qatzoo.cli", "download", "no_such_model"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2
    names = sorted({e["name"] for e in read_index(REPO / "zoo" / "index.json")["models"]})
    assert missing.stderr.strip().splitlines() == [
        f"error: no model 'no_such_model' in the zoo; published: {', '.join(names)}"
    ]


def test_the_readme_s_zoo_tables_and_numbers_are_generated_from_the_index():
    """README.md's results and where-it-runs tables are the index's (scripts/readme_tables.py writes them), the
    contract example quotes the newest forecaster's divisor, and a changed index changes the tables."""
    import copy

    from qatzoo.zoo.readme import contract_divisor, render

    index = read_index(REPO / "zoo" / "index.json")
    text = (REPO / "README.md").read_text()
    assert render(text, index) == text, "README.md is stale: python scripts/readme_tables.py"
    for block in ("results", "where-it-runs"):
        assert f"<!-- generated: {block} -->\n| model |" in text
    newest = max((e for e in index["models"] if e["name"] == "attention_int8"), key=lambda e: e["version"])
    assert f"/ {contract_divisor(index)}` for attention_int8@{newest['version']}" in text
    metric, arena = copy.deepcopy(index), copy.deepcopy(index)
    metric["models"][-1]["metrics"][metric["models"][-1]["int8_model"]] += 0.01
    arena["models"][1]["deployment"]["tflm"]["arena_bytes"] += 16
    assert render(text, metric) != text and render(text, arena) != text
    with pytest.raises(ValueError, match="unknown generated block 'nope'"):
        render("<!-- generated: nope -->\n<!-- end: nope -->", index)


CARDS = sorted((REPO / "zoo").glob("*/*/card.md"))


@pytest.mark.parametrize("card", CARDS, ids=lambda p: f"{p.parent.parent.name}@{p.parent.name}")
def test_every_card_s_snippets_run_as_written_on_the_sample_beside_it(card, tmp_path):
    """Each published card's Python and shell blocks, run as written in the card's folder (the default index of
    a checkout, a fresh cache): they read the sample the zoo ships there and predict what the card says."""
    import re
    import subprocess
    import sys

    text = card.read_text()
    (python,), (shell,) = re.findall(r"```python\n(.*?)```", text, re.S), re.findall(r"```sh\n(.*?)```", text, re.S)
    env = {k: v for k, v in os.environ.items() if k != "QATZOO_INDEX"}
    env.update(QATZOO_CACHE=str(tmp_path / "cache"), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    result = "label" if "label = " in python else "forecast"
    show = "print(label)" if result == "label" else "print(' '.join(f'{v:.4f}' for v in forecast))"
    ran = subprocess.run([sys.executable, "-c", f"{python}\n{show}"], cwd=card.parent, env=env, capture_output=True)
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    cli = subprocess.run(["bash", "-c", shell], cwd=card.parent, env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    if result == "label":  # the sample's class, named in the card, is what both predict
        (truth,) = re.findall(r'first image \(class "(.+?)"\)', text)
        assert ran.stdout.decode().strip() == truth
        assert cli.stdout.startswith(f"{truth} (")
    else:  # four dated weeks, the card's, each within 2 ppm of the actual values it states
        (first, last), (actual,) = (
            re.findall(r"forecast is for (\S+) to (\S+),", text)[0],
            re.findall(r"actual values are ([\d., ]+) ppm", text),
        )
        lines = cli.stdout.splitlines()
        assert [line.split(":")[0] for line in lines][:: len(lines) - 1] == [first, last]
        predicted = [float(line.split()[1]) for line in lines]
        truth = [float(v) for v in actual.split(",")]
        assert (
            len(predicted) == len(truth) == 4 and max(abs(p - t) for p, t in zip(predicted, truth, strict=True)) < 2.0
        )
        assert ran.stdout.decode().split() == [line.split()[1] for line in lines]  # Python and shell agree


def test_the_readme_s_zoo_client_lines_and_python_snippet_run_as_written(tmp_path):
    """Every client line in README.md's code blocks (list, info, download, predict, recipes, check on a real
    file) and its zoo Python snippet, run as written from the checkout's root with a fresh cache."""
    import re
    import subprocess
    import sys

    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    client = re.compile(r"^qatzoo (list|info|download|predict|recipes|check)\b[^#<]*?(?=\s*(#|$))", re.M)
    lines = [m.group(0) for _, body in blocks for m in client.finditer(body) if "..." not in m.group(0)]
    assert any(line.startswith("qatzoo predict attention_int8 zoo/") for line in lines) and len(lines) >= 8
    env = {k: v for k, v in os.environ.items() if k != "QATZOO_INDEX"}
    env.update(QATZOO_CACHE=str(tmp_path / "cache"), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    for line in lines:
        ran = subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True, text=True)
        assert ran.returncode == 0 and ran.stdout.strip(), f"{line}: {ran.stderr[-500:]}"
    (snippet,) = [body for kind, body in blocks if kind == "python" and "forecaster.predict(co2_ppm)" in body]
    probe = "\nprint(model.predict(pixels, labels=True), list(forecaster.predict(co2_ppm)))"
    ran = subprocess.run([sys.executable, "-c", snippet + probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-2000:]
    (truth,) = re.findall(r'first image \(class "(.+?)"\)', (REPO / "zoo/mnist_cnn_int8/3/card.md").read_text())
    label, forecast = ran.stdout.split(" ", 1)
    (actual,) = re.findall(r"actual values are ([\d., ]+) ppm", (REPO / "zoo/attention_int8/4/card.md").read_text())
    weeks = [float(v) for v in re.findall(r"\d+\.\d+", forecast)]
    assert label == truth and len(weeks) == 4
    assert max(abs(w - float(a)) for w, a in zip(weeks, actual.split(","), strict=True)) < 2.0  # ppm


@pytest.mark.parametrize("card", CARDS, ids=lambda p: f"{p.parent.parent.name}@{p.parent.name}")
def test_every_card_states_its_limitations_measured_on_its_file(card):
    """Each card's Limitations: the data, the input's conventions, and changed inputs whose first row is the
    index's int8 number for that file (the same LiteRT run on the same test split)."""
    import re

    entry = find(read_index(REPO / "zoo" / "index.json"), f"{card.parent.parent.name}@{card.parent.name}")
    text = card.read_text()
    limits = text[text.index("## Limitations\n") : text.index("\n## ", text.index("## Limitations\n"))]
    assert "- **Data**: " in limits and "- **Input**: " in limits
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| (.+?) \|$", limits, re.M)
    fmt = "{:.2f}" if entry["unit"] == "%" else "{:.4f}"
    assert rows[0][:2] == ("as published (the test split)", fmt.format(entry["metrics"][entry["int8_model"]]))
    assert len(rows) == 4
    if entry["task"] == "forecast":  # the model sees differences from the last value: the level does not matter
        assert rows[1][0].startswith("raised 50") and rows[1][1] == rows[0][1]
        assert "tested on forecasts for 1995-06-10 to 2001-12-29" in limits
    else:  # a 2-pixel shift costs more than a 1-pixel one; inverted digits are near chance
        assert float(rows[2][1]) < float(rows[1][1]) < float(rows[0][1]) and float(rows[3][1]) < 35


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
