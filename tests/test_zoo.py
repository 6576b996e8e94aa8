"""The zoo: publishing into a locked, validated index; downloads that are verified, resumable and
never leave a bad file; and every model committed under zoo/ downloaded over real HTTP and verified."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from qatzoo.zoo.download import fetch, load
from qatzoo.zoo.index import ZooError, find, read_index, validate_entry
from qatzoo.zoo.publish import publish, sha256_file
from tests.conftest import REPO
from tests.zoo_server import ZooServer

TINY = ["schedule.float_epochs=1", "schedule.qat_epochs=1", "trainer.verbose=0", "trainer.representative_samples=32"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    """One finished tiny run to publish."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from qatzoo.config import CONF_DIR, register_recipes
    from qatzoo.train.trainer import train

    register_recipes()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["recipe=mnist_cnn_int8", f"paths.data_dir={data_dir}", *TINY])
    GlobalHydra.instance().clear()
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
    assert (zoo / entry["card"]).read_text() == (run_dir / "card.md").read_text()
    assert "| tiny_cnn | 1 | mnist_5k |" in (zoo / "README.md").read_text()
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


def _publish_one(args):
    run, zoo_dir = args
    return publish(run, zoo_dir, name="same")["version"]


@pytest.mark.slow
def test_concurrent_publishes_keep_every_entry(run_dir, tmp_path):
    zoo_dir = tmp_path / "zoo"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        versions = pool.map(_publish_one, [(str(run_dir), str(zoo_dir))] * 6)
    assert sorted(versions, key=int) == [str(v) for v in range(1, 7)]
    index = read_index(zoo_dir / "index.json")
    assert sorted(int(e["version"]) for e in index["models"]) == list(range(1, 7))
    assert all((zoo_dir / e["location"]).is_file() for e in index["models"])
    assert not list(zoo_dir.glob("same/.*"))  # no staging directories left


@pytest.mark.slow
def test_download_over_http_verifies_caches_and_reverifies(zoo, cache, tmp_path):
    with ZooServer(zoo) as server:
        index = f"{server.url}/index.json"
        path = fetch("tiny_cnn", index=index, progress=False)
        assert path == cache / "tiny_cnn" / "1" / "model_int8.tflite"
        assert sha256_file(path) == find(read_index(zoo / "index.json"), "tiny_cnn")["sha256"]
        requests = len(server.requests)
        assert fetch("tiny_cnn", index=index, progress=False) == path
        assert len(server.requests) == requests + 1  # only the index: the cached file was re-hashed, not fetched
        path.write_bytes(b"corrupted in the cache")
        assert fetch("tiny_cnn", index=index, progress=False) == path  # the bad cached copy was replaced
        assert sha256_file(path) == find(read_index(zoo / "index.json"), "tiny_cnn")["sha256"]
        copy = fetch("tiny_cnn@1", index=index, to=tmp_path / "out", progress=False)
        assert copy == tmp_path / "out" / "tiny_cnn-1.tflite" and copy.read_bytes() == path.read_bytes()
        assert load("tiny_cnn", index=index, progress=False).get_input_details()[0]["dtype"].__name__ == "int8"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "message"), [("tamper", "is tampered"), ("short", "is truncated"), ("oversize", "is larger than")]
)
def test_bad_files_are_rejected_and_removed(zoo, cache, fault, message):
    with ZooServer(zoo) as server:
        server.faults["tiny_cnn/1/model_int8.tflite"] = fault
        with pytest.raises(ZooError, match=message):
            fetch("tiny_cnn", index=f"{server.url}/index.json", progress=False)
    assert not [p for p in cache.rglob("*") if p.is_file()], "something bad stayed in the cache"


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


def test_index_entries_cannot_escape_or_use_other_schemes(tmp_path, cache):
    entry = {
        "name": "m",
        "version": "1",
        "task": "classification",
        "dataset": {},
        "arch": "a",
        "scheme": "int8",
        "metric": "accuracy",
        "metrics": {},
        "size": 10,
        "sha256": "0" * 64,
        "location": "../../etc/passwd",
        "input": {},
        "output": {},
        "recipe": "r",
        "config": {},
        "config_sha256": "0" * 64,
        "provenance": {},
        "date": "2026-01-01",
        "command": "python train.py",
    }
    with pytest.raises(ZooError, match="bad location"):
        validate_entry(entry)
    for location in ("/abs/model.tflite", "ftp://host/m.tflite", "file:///etc/passwd"):
        with pytest.raises(ZooError, match="bad location"):
            validate_entry({**entry, "location": location})
    with pytest.raises(ZooError, match="bad model name"):
        validate_entry({**entry, "name": "a/b", "location": "m.tflite"})
    with pytest.raises(ZooError, match="bad version"):
        validate_entry({**entry, "version": "..", "location": "m.tflite"})
    (tmp_path / "index.json").write_text(json.dumps({"schema": 1, "models": [entry]}))
    with pytest.raises(ZooError, match="bad location"):
        fetch("m", index=tmp_path, progress=False)
    with pytest.raises(ZooError, match="unsupported index URL scheme 'ftp'"):
        fetch("m", index="ftp://127.0.0.1/index.json", progress=False)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ZooError, match="not valid JSON"):
        fetch("m", index=tmp_path, progress=False)


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
    assert missing.stderr.strip().splitlines() == [
        "error: no model 'no_such_model' in the zoo; published: attention_int8, mnist_cnn_fashion_int8, "
        "mnist_cnn_int8, transformer_int8"
    ]
