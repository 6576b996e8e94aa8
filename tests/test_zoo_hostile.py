"""The zoo under hostile input and a bad network: indexes that try to run code or escape the zoo,
servers that trickle, stall, hang, redirect or ignore ranges, races in the cache, an interrupt.

These tests use a synthetic zoo (random bytes pinned by sha256): downloading never looks inside a
model, so no training is needed. Each case ends in one line (``error: ...``, exit 2) or a verified file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qatzoo.zoo.download import Limits, _source_url, fetch, index_cache
from qatzoo.zoo.index import SCHEMA_VERSION, ZooError, parse_index, read_index, validate_entry
from tests.conftest import REPO
from tests.zoo_server import ZooServer
from tests.zoo_server import one_error_line as _one_error_line
from tests.zoo_server import run_cli as _cli

MODEL = "m/1/model_int8.tflite"


def _base_entry() -> dict:
    return copy.deepcopy(read_index(REPO / "zoo" / "index.json")["models"][0])


@pytest.fixture
def zoo(tmp_path) -> Path:
    """A zoo holding one 96 KiB model ``m@1``."""
    blob = os.urandom(96 * 1024)
    root = tmp_path / "zoo"
    (root / "m" / "1").mkdir(parents=True)
    (root / MODEL).write_bytes(blob)
    entry = {
        **_base_entry(),
        "name": "m",
        "version": "1",
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "location": MODEL,
        "card": "m/1/card.md",
    }
    (root / "index.json").write_text(json.dumps({"schema": SCHEMA_VERSION, "models": [entry]}))
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- hostile index entries: every one is refused with one line by every command that reads the index


def _set(entry: dict, dotted: str, value) -> dict:
    node = entry
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return entry


def _drop(entry: dict, dotted: str) -> dict:
    node = entry
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    del node[last]
    return entry


def _deployment(int8_us=12.5, runs=True, npu_share=1.0) -> dict:
    """A well-formed deployment report (see qatzoo.deploy.report) with one value replaced."""
    npu = {"npu_ops": 6, "cpu_ops": 0, "cycles": 1000, "sram_bytes": 10, "flash_bytes": 100}
    return {
        "schema": 1,
        "litert_cpu": {"cpu": "x", "threads": 1, "int8_us": int8_us},
        "tflm": {"runs": runs, "unsupported": [], "error": None, "arena_bytes": 100, "flash_bytes": 100},
        "ethos_u55": {**npu, "npu_share": npu_share, "inference_ms": 0.2},
    }


def test_a_well_formed_deployment_report_is_accepted():
    validate_entry({**_base_entry(), "deployment": _deployment()})


def test_an_entry_names_its_engine_or_is_from_before_engines():
    validate_entry({**_base_entry(), "engine": {"name": "keras3", "keras": "3.15.1"}})
    validate_entry(_base_entry())


ENTRY_CASES = {
    "target in config": lambda e: _set(e, "config.data.window", {"_target_": "os.system", "_args_": ["id"]}),
    "target at top": lambda e: _set(e, "extra", {"_target_": "builtins.print"}),
    "partial": lambda e: _set(e, "config.arch", {"_partial_": True}),
    "args key": lambda e: _set(e, "provenance.x", {"_args_": [1]}),
    "interpolation": lambda e: _set(e, "config.data.data_dir", "${oc.env:HOME}"),
    "interpolation key": lambda e: _set(e, "config.data", {"${x}": 1}),
    "pct-encoded traversal": lambda e: _set(e, "location", "%2e%2e/%2e%2e/etc/passwd"),
    "encoded slash": lambda e: _set(e, "location", "..%2fetc/passwd"),
    "leading space": lambda e: _set(e, "location", " ../etc/passwd"),
    "dotdot": lambda e: _set(e, "location", "m/../../etc/passwd"),
    "backslash": lambda e: _set(e, "location", "m\\..\\x.tflite"),
    "nul": lambda e: _set(e, "location", "m/1/model\x00.tflite"),
    "absolute": lambda e: _set(e, "location", "/etc/passwd"),
    "file url": lambda e: _set(e, "location", "file:///etc/passwd"),
    "ftp url": lambda e: _set(e, "location", "ftp://example.org/m.tflite"),
    "http url": lambda e: _set(e, "location", "http://example.org/m.tflite"),
    "https with traversal": lambda e: _set(e, "location", "https://example.org/a/../m.tflite"),
    "card traversal": lambda e: _set(e, "card", "../../etc/passwd"),
    "missing unit": lambda e: _drop(e, "unit"),
    "missing int8_model": lambda e: _drop(e, "int8_model"),
    "missing dataset name": lambda e: _drop(e, "dataset.name"),
    "int8_model not in metrics": lambda e: _set(e, "int8_model", "nope"),
    "metric value a string": lambda e: _set(e, "metrics.qat_int8", "96"),
    "size a bool": lambda e: _set(e, "size", True),
    "size zero": lambda e: _set(e, "size", 0),
    "size huge": lambda e: _set(e, "size", 2**40),
    "short sha": lambda e: _set(e, "sha256", "abc"),
    "terminal escape": lambda e: _set(e, "dataset.name", "\x1b[2Jmnist"),
    "bidi override": lambda e: _set(e, "command", "python train.py \u202e"),
    "name with slash": lambda e: _set(e, "name", "a/b"),
    "version dots": lambda e: _set(e, "version", ".."),
    "unknown task": lambda e: _set(e, "task", "shell"),
    "input scale a string": lambda e: _set(e, "input.scale", "1"),
    "metric an integer of 400 digits": lambda e: _set(e, "metrics.float", 10**400),
    "integer of 400 digits in config": lambda e: _set(e, "config.data.window", 10**400),
    "deployment not an object": lambda e: _set(e, "deployment", "fast"),
    "unknown engine": lambda e: _set(e, "engine", {"name": "pytorch", "keras": "3.15.1"}),
    "engine keras version an escape": lambda e: _set(e, "engine", {"name": "keras3", "keras": "\x1b[2J3"}),
    "engine not an object": lambda e: _set(e, "engine", "keras3"),
    "deployment latency a string": lambda e: _set(e, "deployment", _deployment(int8_us="12")),
    "deployment tflm runs a string": lambda e: _set(e, "deployment", _deployment(runs="yes")),
    "deployment npu share negative": lambda e: _set(e, "deployment", _deployment(npu_share=-1.0)),
    "sample traversal": lambda e: _set(e, "sample", _sample(location="../../etc/passwd.png")),
    "sample not an input kind": lambda e: _set(e, "sample", _sample(location="m/1/sample.py")),
    "sample over 1 MiB": lambda e: _set(e, "sample", _sample(size=2**20 + 1)),
    "sample without sha256": lambda e: _set(e, "sample", {"location": "m/1/sample.png", "size": 10}),
}


def _sample(**fields) -> dict:
    return {"location": "m/1/sample.png", "size": 100, "sha256": "0" * 64} | fields


@pytest.mark.parametrize("case", sorted(ENTRY_CASES))
def test_a_hostile_entry_is_refused_by_list_info_download_verify(case, tmp_path, cache, capsys):
    entry = ENTRY_CASES[case](_base_entry())
    (tmp_path / "index.json").write_text(json.dumps({"schema": SCHEMA_VERSION, "models": [entry]}))
    with pytest.raises(ZooError):
        validate_entry(entry)
    for argv in (["list"], ["info", "attention_int8"], ["download", "attention_int8"], ["verify", "attention_int8"]):
        code, out, err = _cli(capsys, *argv, "--index", str(tmp_path))
        assert code == 2 and not out
        _one_error_line(err)
    assert not cache.exists(), "nothing may be downloaded from a refused index"


INDEX_CASES = {
    "entry not an object": {"schema": SCHEMA_VERSION, "models": [1]},
    "entry a list": {"schema": SCHEMA_VERSION, "models": [["name", "m"]]},
    "entry null": {"schema": SCHEMA_VERSION, "models": [None]},
    "models not a list": {"schema": SCHEMA_VERSION, "models": {"m": {}}},
    "no schema": {"models": []},
    "schema 1 (may carry _target_)": {"schema": 1, "models": []},
    "top level a list": [],
}
RAW_CASES = {
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep nesting in an entry": json.dumps({"schema": SCHEMA_VERSION, "models": [None]})
    .encode()
    .replace(b"null", b'{"a":' * 40 + b"1" + b"}" * 40),
    "binary": bytes(range(256)) * 8,
    "bare NaN": json.dumps({"schema": SCHEMA_VERSION, "models": [{**_base_entry(), "size": float("nan")}]}).encode(),
    "empty": b"",
    "not json": b"{not json",
}


@pytest.mark.parametrize("case", sorted(INDEX_CASES) + sorted(RAW_CASES))
def test_a_malformed_index_is_one_line(case, tmp_path, capsys):
    raw = RAW_CASES[case] if case in RAW_CASES else json.dumps(INDEX_CASES[case]).encode()
    with pytest.raises(ZooError):
        parse_index(raw)
    (tmp_path / "index.json").write_bytes(raw)
    code, out, err = _cli(capsys, "list", "--index", str(tmp_path))
    assert code == 2 and not out
    _one_error_line(err)


def test_the_committed_index_holds_no_code():
    text = (REPO / "zoo" / "index.json").read_text()
    assert "_target_" not in text and "${" not in text
    read_index(REPO / "zoo" / "index.json")


def test_the_catalog_takes_only_plain_checked_parameters(tmp_path):
    """What verify and publish build a dataset from: a name in the project's table and typed numbers."""
    from qatzoo.data.catalog import CatalogError, build

    marker = tmp_path / "pwned"
    code = {"_target_": "pathlib.Path.touch", "_args_": [str(marker)]}
    good = {"window": 52, "horizon": 4, "val_fraction": 0.15, "test_fraction": 0.15}
    for params, message in (
        ({**good, "window": code}, "window must be an integer"),
        ({**good, "horizon": float("nan")}, "horizon must be an integer"),
        ({**good, "val_fraction": float("inf")}, "val_fraction must be a number"),
        ({**good, "window": True}, "window must be an integer"),
        ({**good, "window": 10**9}, r"window must be an integer in \[2, 1000\]"),
        ({**good, "window": 10**400}, "window must be an integer"),
        ({**good, "val_fraction": 10**400}, "val_fraction must be a number"),
        ({"window": 52}, "missing parameter"),
        ("window=52", "must be a mapping"),
    ):
        with pytest.raises(CatalogError, match=message):
            build("co2_weekly", params, str(tmp_path))
    with pytest.raises(CatalogError, match="unknown dataset 'os'"):
        build("os", {}, str(tmp_path))
    assert not marker.exists()


def test_the_catalog_agrees_with_the_data_configs():
    """Every conf/data option is in the catalog with the same loader, fixed values and parameter names."""
    import yaml

    from qatzoo.data.catalog import DATASETS

    configs = {p.stem: yaml.safe_load(p.read_text()) for p in (REPO / "conf" / "data").glob("*.yaml")}
    # data=arrays and data=series read a user's own file (qatzoo/data/files.py), data=tfds a dataset the user
    # names (builder: ???): not rebuilt from outside data.
    configs = {
        k: v
        for k, v in configs.items()
        if not v["_target_"].startswith("qatzoo.data.files.") and "???" not in v.values()
    }
    assert set(configs) == set(DATASETS)
    for name, cfg in configs.items():
        entry = DATASETS[name]
        assert cfg["_target_"] == f"qatzoo.data.load.{entry.loader}" and cfg["name"] == name
        rest = {k: v for k, v in cfg.items() if k not in ("_target_", "name", "task", "data_dir")}
        assert {k: v for k, v in rest.items() if k not in entry.params} == entry.fixed
        assert set(entry.params) == set(rest) - set(entry.fixed)
        for key in entry.params:
            entry.params[key].check(name, key, cfg[key])  # the defaults are accepted


def test_a_run_config_with_yaml_aliases_is_refused_before_it_is_copied():
    """A billion-laughs config.yaml loads small (aliases are shared nodes); copying it into an entry would not."""
    import yaml

    from qatzoo.zoo.index import plain_config

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(12)
    )
    with pytest.raises(ZooError, match="YAML alias"):
        plain_config(yaml.safe_load(bomb))
    deep = {"data": {}}
    node = deep["data"]
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ZooError, match="nested deeper"):
        plain_config(deep)
    assert plain_config({"arch": {"_target_": "x.y", "width": 8}, "tags": ["a"]}) == {
        "arch": {"width": 8},
        "tags": ["a"],
    }


def test_a_code_key_in_a_local_index_is_never_run(tmp_path, cache):
    """End to end: a `_target_` that would create a file; verify refuses the index and the file never appears."""
    marker = tmp_path / "pwned"
    entry = _set(_base_entry(), "config.data.window", {"_target_": "pathlib.Path.touch", "_args_": [str(marker)]})
    (tmp_path / "index.json").write_text(json.dumps({"schema": SCHEMA_VERSION, "models": [entry]}))
    run = subprocess.run(
        [sys.executable, "-m", "qatzoo.cli", "verify", "attention_int8", "--index", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "QATZOO_CACHE": str(cache)},
    )
    assert run.returncode == 2 and "never code" in _one_error_line(run.stderr)
    assert not marker.exists()


# ---- locations and files of a local (path or file://) index


@pytest.mark.parametrize("as_url", [False, True])
def test_a_symlink_leaving_the_zoo_is_refused_and_one_inside_is_followed(zoo, tmp_path, cache, as_url):
    secret = tmp_path / "secret.bin"
    secret.write_bytes((zoo / MODEL).read_bytes())  # even with the right bytes, outside is outside
    (zoo / MODEL).rename(zoo / "m" / "1" / "real.tflite")
    (zoo / MODEL).symlink_to(secret)
    index = (zoo / "index.json").as_uri() if as_url else zoo
    with pytest.raises(ZooError, match="outside the zoo's folder"):
        fetch("m", index=index, progress=False)
    (zoo / MODEL).unlink()
    (zoo / MODEL).symlink_to(zoo / "m" / "1" / "real.tflite")
    assert fetch("m", index=index, progress=False).read_bytes() == secret.read_bytes()


def test_a_missing_local_model_is_one_line(zoo, cache):
    (zoo / MODEL).unlink()
    with pytest.raises(ZooError, match="missing from the zoo"):
        fetch("m", index=zoo, progress=False)


# ---- a bad network


def _cached(index) -> Path:
    """Where ``m@1`` of ``index`` (a path or URL) is cached."""
    return index_cache(_source_url(index)) / "m" / "1" / "model_int8.tflite"


def _part(index) -> Path:
    return _cached(index).with_name("model_int8.tflite.part")


def test_a_trickling_server_meets_the_deadline_and_the_part_is_kept(zoo, cache):
    with ZooServer(zoo) as server:
        server.faults[MODEL] = "trickle"
        start = time.monotonic()
        with pytest.raises(ZooError, match="did not finish within 1.5 s"):
            fetch("m", index=f"{server.url}/index.json", progress=False, timeout=1, deadline=1.5)
        assert time.monotonic() - start < 4
        assert _part(f"{server.url}/index.json").stat().st_size > 0
        server.faults.clear()
        path = fetch("m", index=f"{server.url}/index.json", progress=False)
        assert path.read_bytes() == (zoo / MODEL).read_bytes()
        assert [r for p, r in server.requests if p == MODEL][-1].startswith("bytes=")


@pytest.mark.parametrize("fault", ["stall", "hang"])
def test_a_stalled_or_hanging_server_is_given_up_within_the_limits(zoo, cache, fault):
    with ZooServer(zoo) as server:
        server.faults[MODEL] = fault
        start = time.monotonic()
        with pytest.raises(ZooError, match="did not finish within 3 s|failed after 2 tries"):
            fetch("m", index=f"{server.url}/index.json", progress=False, timeout=0.5, deadline=3, retries=1)
        assert time.monotonic() - start < 3 + 0.5 + 1


@pytest.mark.parametrize("fault", ["slow_headers", "endless_trailers"])
@pytest.mark.parametrize("what", ["index", "model"])
def test_a_server_that_answers_every_read_in_time_but_never_finishes_meets_the_deadline(zoo, cache, fault, what):
    """The stall limit cannot catch these (each read gets bytes); the deadline closes the socket."""
    with ZooServer(zoo) as server:
        server.faults["index.json" if what == "index" else MODEL] = fault
        start = time.monotonic()
        with pytest.raises(ZooError, match="within 2 s|longer than 2 s"):
            fetch("m", index=f"{server.url}/index.json", progress=False, timeout=1, deadline=2)
        assert time.monotonic() - start < 2 + 1.5


@pytest.mark.parametrize(
    "where", ["ftp://127.0.0.1/m.tflite", "file:///etc/passwd", "gopher://x/", "/index.json?loop", "http-loop"]
)
def test_redirects_go_to_http_only_and_end(zoo, cache, where):
    with ZooServer(zoo) as server:
        if where == "http-loop":
            server.faults[MODEL] = f"redirect:{server.url}/{MODEL}"
        else:
            server.faults[MODEL] = f"redirect:{where}"
        with pytest.raises(ZooError) as error:
            fetch("m", index=f"{server.url}/index.json", progress=False, timeout=2, deadline=10)
        assert "\n" not in str(error.value)
        if where == "http-loop":
            assert len([p for p, _ in server.requests if p == MODEL]) <= 6
        elif where.startswith(("ftp", "file", "gopher")):
            assert "only redirects to http(s)" in str(error.value)
        assert not _cached(f"{server.url}/index.json").exists()


def test_a_redirect_to_another_http_path_is_followed(zoo, cache):
    (zoo / "mirror").mkdir()
    (zoo / "mirror" / "copy.tflite").write_bytes((zoo / MODEL).read_bytes())
    with ZooServer(zoo) as server:
        server.faults[MODEL] = f"redirect:{server.url}/mirror/copy.tflite"
        path = fetch("m", index=f"{server.url}/index.json", progress=False)
        assert path.read_bytes() == (zoo / MODEL).read_bytes()


@pytest.mark.parametrize("fault", ["range_416", "ignore_range", "wrong_range"])
def test_a_part_the_server_cannot_continue_is_started_over(zoo, cache, fault):
    blob = (zoo / MODEL).read_bytes()
    with ZooServer(zoo) as server:
        part = _part(f"{server.url}/index.json")
        part.parent.mkdir(parents=True)
        # range_416: the complete file is already in the part (the old client failed on every rerun).
        part.write_bytes(blob if fault == "range_416" else blob[:1000])
        server.faults[MODEL] = fault
        path = fetch("m", index=f"{server.url}/index.json", progress=False)
    assert path.read_bytes() == blob and not part.exists()


def test_a_part_that_is_a_symlink_is_not_followed(zoo, cache, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    with ZooServer(zoo) as server:
        _part(f"{server.url}/index.json").parent.mkdir(parents=True)
        _part(f"{server.url}/index.json").symlink_to(victim)
        path = fetch("m", index=f"{server.url}/index.json", progress=False)
    assert victim.read_text() == "precious"
    assert path.read_bytes() == (zoo / MODEL).read_bytes()


def _outside(tmp_path: Path, *inside: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``tmp_path`` but the ones under ``inside`` (the cache, the zoo): mode and bytes."""
    return {
        str(p): (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_symlink() else b"")
        for p in tmp_path.rglob("*")
        if not any(p.is_relative_to(d) for d in inside) and (p.is_file() or p.is_symlink())
    }


def test_a_part_that_is_a_hard_link_to_another_file_is_discarded_not_appended_to(zoo, cache, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    before = _outside(tmp_path, cache)
    with ZooServer(zoo) as server:
        part = _part(f"{server.url}/index.json")
        part.parent.mkdir(parents=True)
        os.link(victim, part)  # a resume would append the model to the victim
        path = fetch("m", index=f"{server.url}/index.json", progress=False)
        asked = [r for p, r in server.requests if p == MODEL]
    assert asked == [None], "the linked part was resumed"
    assert victim.read_text() == "precious" and victim.stat().st_nlink == 1
    assert path.read_bytes() == (zoo / MODEL).read_bytes()
    assert _outside(tmp_path, cache) == before


def test_a_symlink_planted_in_the_to_folder_is_never_written_through(zoo, cache, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".m-1.tflite.tmp").symlink_to(victim)  # the temporary name --to used before
    (out / "m-1.tflite").symlink_to(victim)  # the final name: replaced, its target untouched
    before = {k: v for k, v in _outside(tmp_path, cache).items() if not k.startswith(str(out / "m-1."))}
    copy = fetch("m", index=zoo, to=out, progress=False)
    assert victim.read_text() == "precious"
    assert copy == out / "m-1.tflite" and not copy.is_symlink() and copy.read_bytes() == (zoo / MODEL).read_bytes()
    after = _outside(tmp_path, cache)
    assert {k: v for k, v in after.items() if not k.startswith(str(out / "m-1."))} == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


@pytest.mark.parametrize(("fault", "message"), [("tamper", "is tampered"), ("short", "is truncated")])
def test_a_bad_file_is_removed_and_a_good_one_cached_read_only(zoo, cache, fault, message):
    with ZooServer(zoo) as server:
        server.faults[MODEL] = fault
        with pytest.raises(ZooError, match=message):
            fetch("m", index=f"{server.url}/index.json", progress=False)
        assert not [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"]
        server.faults.clear()
        path = fetch("m", index=f"{server.url}/index.json", progress=False)
    assert path.read_bytes() == (zoo / MODEL).read_bytes() and oct(path.stat().st_mode & 0o777) == "0o444"


def test_the_cache_is_keyed_by_index(zoo, cache, tmp_path):
    """Two indexes that publish the same m@1 with different bytes never share a cached file or a part."""
    other = tmp_path / "other"
    blob = os.urandom(1000)
    (other / "m" / "1").mkdir(parents=True)
    (other / MODEL).write_bytes(blob)
    entry = {
        **read_index(zoo / "index.json")["models"][0],
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    (other / "index.json").write_text(json.dumps({"schema": SCHEMA_VERSION, "models": [entry]}))
    first = fetch("m", index=zoo, progress=False)
    second = fetch("m", index=other, progress=False)
    assert first != second and first.is_relative_to(cache) and second.is_relative_to(cache)
    assert first.read_bytes() == (zoo / MODEL).read_bytes() and second.read_bytes() == blob
    inode = first.stat().st_ino
    assert fetch("m", index=zoo, progress=False).stat().st_ino == inode  # still cached, not replaced by other's
    assert fetch("m", index=(zoo / "index.json").as_uri(), progress=False) == first  # one index, one key
    assert index_cache(_source_url(REPO / "zoo")) == cache  # the repository's zoo keeps <name>/<version>/


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_fifo_given_as_index_is_refused_with_one_line(tmp_path, cache, where):
    fifo = tmp_path / ("index.json" if where == "folder" else "fifo.json")
    os.mkfifo(fifo)
    before = _outside(tmp_path, cache)
    run = subprocess.run(
        [sys.executable, "-m", "qatzoo.cli", "download", "m", "--index", str(fifo if where == "file" else tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "QATZOO_CACHE": str(cache)},
        timeout=60,  # the old client hung here past any --deadline
    )
    assert run.returncode == 2 and "is a FIFO: only regular files are read" in _one_error_line(run.stderr)
    assert _outside(tmp_path, cache) == before and not cache.exists()


def test_predict_takes_the_download_limits_too(zoo, cache, tmp_path, capsys):
    """`qatzoo predict NAME` downloads first: the same --speed-limit/--speed-time/--deadline as download."""
    series = tmp_path / "series.csv"
    series.write_text("\n".join(str(400 + i / 10) for i in range(300)) + "\n")
    with ZooServer(zoo) as server:
        server.faults[MODEL] = "trickle"
        index = f"{server.url}/index.json"
        start = time.monotonic()
        code, _, err = _cli(
            capsys, "predict", "m", str(series), "--index", index, "--speed-limit", "5000", "--speed-time", "1"
        )
        assert code == 2 and "low-speed limit of 5000 B/s" in _one_error_line(err.split("\r")[-1])
        assert time.monotonic() - start < 4


def test_a_trickle_under_the_low_speed_limit_is_cut_and_the_part_kept(zoo, cache, tmp_path, monkeypatch, capsys):
    """20 bytes/s (the trickle server) is under the default 1024 B/s: cut after --speed-time, not the deadline."""
    before = _outside(tmp_path, cache)
    with ZooServer(zoo) as server:
        server.faults[MODEL] = "trickle"
        index = f"{server.url}/index.json"
        start = time.monotonic()
        with pytest.raises(ZooError, match=r"B/s over 1 s, under the low-speed limit of 1024 B/s") as error:
            fetch("m", index=index, progress=False, speed_time=1)
        assert time.monotonic() - start < 4 and "\n" not in str(error.value)
        monkeypatch.setenv("QATZOO_SPEED_TIME", "1")
        start = time.monotonic()
        code, _, err = _cli(capsys, "download", "m", "--index", index, "--speed-limit", "5000")
        assert code == 2 and "low-speed limit of 5000 B/s" in _one_error_line(err.split("\r")[-1])
        assert time.monotonic() - start < 4
        assert _part(index).stat().st_size > 0  # kept for a resume
        code, _, err = _cli(capsys, "download", "m", "--index", index, "--speed-limit", "0", "--deadline", "1.5")
        assert code == 2 and "did not finish within 1.5 s" in _one_error_line(err.split("\r")[-1])  # 0: no limit
    assert _outside(tmp_path, cache) == before


def test_a_trickling_index_is_cut_by_the_low_speed_limit(zoo, cache, tmp_path):
    before = _outside(tmp_path, cache)
    with ZooServer(zoo) as server:
        server.faults["index.json"] = "trickle"
        start = time.monotonic()
        with pytest.raises(ZooError, match=r"reading the zoo index .* under the low-speed limit of 1024 B/s"):
            fetch("m", index=f"{server.url}/index.json", progress=False, speed_time=1)
        assert time.monotonic() - start < 4
    assert _outside(tmp_path, cache) == before and not cache.exists()


def test_a_symlink_planted_at_the_cache_lock_is_not_followed(zoo, cache, tmp_path):
    victim = tmp_path / "created_outside"
    lock = _cached(zoo).parent / ".lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    with pytest.raises(ZooError, match="cannot write to the download cache"):
        fetch("m", index=zoo, progress=False)
    assert not victim.exists()


def test_the_default_low_speed_limit_cuts_one_byte_a_second_within_a_minute(monkeypatch):
    for env in ("QATZOO_SPEED_LIMIT", "QATZOO_SPEED_TIME", "QATZOO_STALL_TIMEOUT"):
        monkeypatch.delenv(env, raising=False)
    limits = Limits.resolve()
    assert limits.speed_limit > 1 and limits.speed_time + 1 < 60 and limits.stall < 60
    for env, bad in (("QATZOO_SPEED_LIMIT", "-1"), ("QATZOO_SPEED_TIME", "0"), ("QATZOO_SPEED_LIMIT", "fast")):
        monkeypatch.setenv(env, bad)
        with pytest.raises(ZooError, match=env):
            Limits.resolve()
        monkeypatch.delenv(env)


def test_simultaneous_downloads_share_one_transfer_and_the_returned_file_is_never_rewritten(zoo, cache):
    with ZooServer(zoo) as server:
        server.faults[MODEL] = "stall"  # the first transfer waits until the second is queued behind the lock
        results, errors = [], []

        def one():
            try:
                results.append(fetch("m", index=f"{server.url}/index.json", progress=False, timeout=1, retries=3))
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        server.faults.clear()  # the stalled try times out and resumes; the other thread then reuses the file
        for thread in threads:
            thread.join(30)
        assert not errors and len(results) == 2 and results[0] == results[1]
        path = results[0]
        assert path.read_bytes() == (zoo / MODEL).read_bytes()
        assert oct(path.stat().st_mode & 0o777) == "0o444"
        inode = path.stat().st_ino
        again = fetch("m", index=f"{server.url}/index.json", progress=False)
        assert again.stat().st_ino == inode  # reused, not rewritten


def test_sigint_is_one_line_and_keeps_the_part_for_resume(zoo, cache):
    with ZooServer(zoo) as server:
        server.faults[MODEL] = "trickle"
        proc = subprocess.Popen(
            [sys.executable, "-m", "qatzoo.cli", "download", "m", "--index", f"{server.url}/index.json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "QATZOO_CACHE": str(cache)},
        )
        deadline = time.monotonic() + 30
        while not any(p == MODEL for p, _ in server.requests) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # some bytes in (they reach the .part when the interrupted download closes it)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err[-2000:]  # once 2 in a whole-suite run (2 cores); its stderr, if again
        assert "interrupted" in _one_error_line(err.split("\r")[-1])
        kept = _part(f"{server.url}/index.json").stat().st_size
        assert kept > 0
        server.faults.clear()
        fetch("m", index=f"{server.url}/index.json", progress=False)
        assert [r for p, r in server.requests if p == MODEL][-1] == f"bytes={kept}-"


def test_an_unwritable_cache_or_target_is_one_line(zoo, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QATZOO_CACHE", str(blocker / "cache"))
    code, _, err = _cli(capsys, "download", "m", "--index", str(zoo))
    assert code == 2 and "download cache" in _one_error_line(err)
    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    code, _, err = _cli(capsys, "download", "m", "--index", str(zoo), "--to", str(blocker))
    assert code == 2 and "not a directory" in _one_error_line(err)
    code, _, err = _cli(capsys, "download", "m", "--index", str(zoo), "--to", str(blocker / "sub"))
    assert code == 2 and "cannot write" in _one_error_line(err)


def test_verify_of_a_pinned_file_litert_cannot_run_is_one_line(zoo, cache, capsys, data_dir):
    """The sha256 matches (it pins junk): verify must say LiteRT cannot run it, not raise a traceback."""
    entry = json.loads((zoo / "index.json").read_text())["models"][0]
    assert entry["dataset"]["name"] == "co2_weekly"
    from qatzoo.zoo.verify import load_test_data

    load_test_data("co2_weekly", entry["config"]["data"], data_dir)  # prepared first: TFDS's bars are not the point
    capsys.readouterr()
    code, _, err = _cli(capsys, "verify", "m", "--index", str(zoo), "--data-dir", data_dir)
    assert code == 2 and "LiteRT cannot run the model" in _one_error_line(err)


def test_zero_limits_are_one_line(monkeypatch, capsys, zoo):
    monkeypatch.delenv("QATZOO_DEADLINE", raising=False)
    code, _, err = _cli(capsys, "list", "--index", str(zoo), "--deadline", "0")
    assert code == 2 and "expected a number of seconds > 0, got 0.0" in _one_error_line(err)


def test_limits_come_from_flags_then_environment(monkeypatch):
    monkeypatch.setenv("QATZOO_DEADLINE", "12")
    assert Limits.resolve() == Limits(stall=30.0, deadline=12.0)
    assert Limits.resolve(stall=2, deadline=5) == Limits(stall=2.0, deadline=5.0)
    for bad in ("0", "-1", "nan", "soon"):
        monkeypatch.setenv("QATZOO_DEADLINE", bad)
        with pytest.raises(ZooError, match="QATZOO_DEADLINE"):
            Limits.resolve()


def test_an_index_url_of_another_scheme_is_refused(cache):
    with pytest.raises(ZooError, match="unsupported index URL scheme 'ftp'"):
        fetch("m", index="ftp://127.0.0.1/index.json", progress=False)


def test_check_on_a_missing_or_non_tflite_file_is_one_line(tmp_path, capsys):
    code, _, err = _cli(capsys, "check", str(tmp_path / "nope.tflite"))
    assert code == 2 and "no such file" in _one_error_line(err)
    (tmp_path / "x.tflite").write_bytes(b"not a flatbuffer")
    code, _, err = _cli(capsys, "check", str(tmp_path / "x.tflite"))
    assert code == 2 and "not a TFLite model" in _one_error_line(err)


# ---- publish: a hostile run directory


def _run_dir(tmp_path: Path, **changes) -> Path:
    """A finished run directory rebuilt from the committed mnist_cnn_int8 entry on mnist_5k: its model and card,
    its config as config.yaml and a metrics.json of its numbers (``changes`` replace keys of the report)."""
    import yaml

    entry = next(e for e in read_index(REPO / "zoo" / "index.json")["models"] if e["dataset"]["name"] == "mnist_5k")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model_int8.tflite", "card.md"):
        (run / name).write_bytes((REPO / "zoo" / entry["location"]).with_name(name).read_bytes())
    (run / "config.yaml").write_text(yaml.safe_dump(entry["config"]))
    examples = entry["dataset"]["examples"]
    report = {
        "name": entry["recipe"],
        "arch": entry["arch"],
        "data": entry["dataset"]["name"],
        "quant": entry["scheme"],
        "scheme": {"qat": True, "int8": True},
        "task": entry["task"],
        "metric": entry["metric"],
        "unit": entry["unit"],
        "higher_is_better": entry["higher_is_better"],
        "int8_model": entry["int8_model"],
        "dataset": {"sizes": {"train": 10, "val": 2, "test": examples}},
        "provenance": entry["provenance"],
        "distribute": {"strategy": "none"},
        "agreement": {},
        "int8": {"input": entry["input"], "output": entry["output"], "parity": {"pass": True}, "full_integer": True},
        "checks": {"full_integer": True, "parity": True},
        "command": entry["command"],
        **changes,
    }
    value = entry["metrics"]["qat_int8"]  # relabelled, the number still matches what LiteRT measures
    report["results"] = report["validation"] = {"qat_int8": {report["metric"]: value}}
    (run / "metrics.json").write_text(json.dumps(report))
    return run


@pytest.mark.parametrize("what", ["card.md", "model_int8.tflite", "config.yaml", "metrics.json"])
@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_publish_reads_only_regular_files_from_the_run(tmp_path, capsys, what, kind):
    """A card.md linked to /etc/passwd was published as the card; a FIFO hung publish. Both are one line now."""
    run = _run_dir(tmp_path)
    (run / what).unlink()
    if kind == "symlink":
        secret = tmp_path / "secret"
        secret.write_bytes((REPO / "zoo" / "index.json").read_bytes() if what == "metrics.json" else b"root:x:0:0\n")
        (run / what).symlink_to(secret)
    else:
        os.mkfifo(run / what)
    before = _outside(tmp_path)
    zoo = tmp_path / "zoo"
    code, _, err = _cli(capsys, "publish", str(run), "--zoo", str(zoo))
    kind_text = "a symlink" if kind == "symlink" else "a FIFO"
    assert code == 2 and f"{what} is {kind_text}: publish reads only regular files" in _one_error_line(err)
    assert not zoo.exists() and _outside(tmp_path) == before


def test_publish_takes_the_metric_from_the_datasets_task_and_refuses_a_disagreeing_report(tmp_path, data_dir):
    """A classifier whose metrics.json says "mae ... ppm" was published so; the dataset's Task decides."""
    from qatzoo.zoo.publish import publish

    run = _run_dir(tmp_path, task="forecast", metric="mae", unit="ppm", higher_is_better=False)
    before = _outside(tmp_path, Path(data_dir))
    zoo = tmp_path / "zoo"
    with pytest.raises(ZooError) as error:
        publish(run, zoo, data_dir=data_dir)
    line = str(error.value)
    assert "\n" not in line and "metrics.json labels the metric mae (ppm) for a forecast run" in line, line
    assert "the mnist_5k dataset is classification, measured as accuracy (%)" in line
    assert not zoo.exists() and _outside(tmp_path, Path(data_dir)) == before


def _readme_row(zoo_dir: Path, entry: dict) -> str:
    from qatzoo.zoo.publish import write_readme

    (zoo_dir / "index.json").write_text(json.dumps({"schema": SCHEMA_VERSION, "models": [entry]}))
    write_readme(zoo_dir)
    return (zoo_dir / "README.md").read_text().splitlines()[-1]


def test_text_from_an_entry_cannot_inject_markdown_into_the_zoo_readme(tmp_path):
    from qatzoo.zoo.publish import _code, _text

    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    plain = _readme_row(zoo_dir, _base_entry())
    hostile = {
        **_base_entry(),
        "command": "python train.py | x | `y` ``z`` [click](https://evil) <img src=x onerror=alert(1)> # Owned",
        "unit": "<b>|[x]",
    }
    row = _readme_row(zoo_dir, hostile)
    assert "# Owned" in row
    unescaped_pipes = row.replace("\\|", "").count("|")
    assert unescaped_pipes == plain.replace("\\|", "").count("|"), row  # the row has as many cells as before
    assert (
        "``` python train.py \\| x \\| `y` ``z`` [click](https://evil) <img src=x onerror=alert(1)> # Owned ```" in row
    )
    assert "(\\<b\\>\\|\\[x\\])" in row  # plain cells: markdown and HTML characters escaped
    assert "`" + _base_entry()["command"] + "`" in plain  # a plain command renders as it always did
    # The index refuses control characters in an entry; the cells are one line even without that check.
    assert _code("a\nb|c") == "`a b\\|c`" and _text("x\r\ny") == "x y"


def test_the_committed_zoo_readme_is_what_write_readme_writes(tmp_path):
    from qatzoo.zoo.publish import write_readme

    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    (zoo_dir / "index.json").write_bytes((REPO / "zoo" / "index.json").read_bytes())
    write_readme(zoo_dir)
    assert (zoo_dir / "README.md").read_bytes() == (REPO / "zoo" / "README.md").read_bytes()


def test_an_index_readers_would_refuse_is_never_written(tmp_path, monkeypatch):
    """publish's commit point is write_index: an index over the readers' size limit is one line, the old one stays."""
    from qatzoo.zoo import index as zoo_index

    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    old = (REPO / "zoo" / "index.json").read_bytes()
    (zoo_dir / "index.json").write_bytes(old)
    monkeypatch.setattr(zoo_index, "MAX_INDEX_BYTES", len(old) + 100)
    index = zoo_index.read_index(zoo_dir / "index.json")
    index["models"].append({**_base_entry(), "name": "one_more"})
    with pytest.raises(ZooError, match=r"the zoo index would be \d+ bytes, over the \d+ bytes readers accept"):
        zoo_index.write_index(zoo_dir, index)
    assert (zoo_dir / "index.json").read_bytes() == old and {p.name for p in zoo_dir.iterdir()} == {"index.json"}


def test_cleaning_up_after_a_killed_publish_never_removes_published_models(tmp_path):
    """Only folders publish marked unpublished go: a zoo that lost its index.json keeps every model."""
    import shutil

    from qatzoo.zoo.publish import UNPUBLISHED, clean_leftovers

    zoo = tmp_path / "zoo"
    shutil.copytree(REPO / "zoo", zoo)
    (zoo / "index.json").unlink()
    killed = zoo / "x" / "1"
    killed.mkdir(parents=True)
    (killed / "model_int8.tflite").write_bytes(b"half")
    (killed / UNPUBLISHED).write_bytes(b"")
    assert clean_leftovers(zoo, {"schema": SCHEMA_VERSION, "models": []}) == [killed]
    published = [e["location"] for e in read_index(REPO / "zoo" / "index.json")["models"]]
    assert published and all((zoo / location).is_file() for location in published)


@pytest.mark.parametrize("step", ["discard-renamed", "discard-half"])
def test_a_clean_up_killed_at_any_step_is_finished_by_the_next_one(tmp_path, step):
    """Killed while removing a killed publish's folder, the clean-up leaves a staged folder, never a version
    folder without its marker (which every later publish of the name would refuse as 'already exists')."""
    from qatzoo.zoo.publish import DISCARD_STEPS, UNPUBLISHED, clean_leftovers

    assert step in DISCARD_STEPS
    zoo = tmp_path / "zoo"
    killed = zoo / "x" / "1"
    killed.mkdir(parents=True)
    for name in ("card.md", "contract.json", "model_int8.tflite", UNPUBLISHED):
        (killed / name).write_bytes(b"half")
    code = f"from pathlib import Path; from qatzoo.zoo.publish import clean_leftovers as c; c(Path({str(zoo)!r}), {{'models': []}})"
    run = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "QATZOO_PUBLISH_FAULT": step}, cwd=REPO, timeout=120
    )
    assert run.returncode == -9  # killed at that step
    (left,) = (zoo / "x").iterdir()
    assert left.name.startswith(".1.discard-")  # renamed first: no version folder 1 without its marker
    assert clean_leftovers(zoo, {"models": []}) == [left]
    assert list((zoo / "x").iterdir()) == []


def test_check_prints_where_an_int8_model_runs(capsys):
    code, out, _ = _cli(capsys, "check", str(REPO / "zoo" / "transformer_int8" / "1" / "model_int8.tflite"))
    assert code == 0 and "full integer: yes" in out
    assert "TensorFlow Lite Micro: does NOT run (missing ops GELU)" in out
    assert "100% of operators on the NPU" in out and "LiteRT CPU (" in out
    code, out, _ = _cli(
        capsys, "check", "--no-deploy", str(REPO / "zoo" / "mnist_cnn_int8" / "1" / "model_int8.tflite")
    )
    assert code == 0 and "where it runs" not in out
