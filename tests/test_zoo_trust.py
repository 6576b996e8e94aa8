"""Signed zoos against an attacker who controls the server (a real HTTP server on 127.0.0.1, tests/zoo_server.py):
model-signing bundles beside each model, TUF metadata over the zoo, clients that fetch through tuf.ngclient.

The zoo here is the committed mnist_cnn_int8@1 (model, contract, card, sample), copied into a temporary folder
and signed there; the attacker's model is the committed Fashion-MNIST CNN (same size and input shape, another
task). Each attack is run against an unsigned zoo (what happens today) and a signed one (what --trust changes),
through the CLI and through ``zoo.load()``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qatzoo.zoo import keys, signing
from qatzoo.zoo.download import fetch, load
from qatzoo.zoo.index import ZooError, read_index
from tests.conftest import REPO
from tests.installs import env
from tests.zoo_server import ZooServer
from tests.zoo_server import one_error_line as _one_error_line
from tests.zoo_server import run_cli as _cli

NAME = "mnist_cnn_int8"
MODEL = f"{NAME}/1/model_int8.tflite"
ATTACKER = REPO / "zoo" / "mnist_cnn_fashion_int8" / "1" / "model_int8.tflite"


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    keys.new(folder / "a")
    keys.new(folder / "b")
    return folder


@pytest.fixture
def zoo(tmp_path) -> Path:
    """An unsigned zoo holding the committed mnist_cnn_int8@1 and its files."""
    root = tmp_path / "zoo"
    shutil.copytree(REPO / "zoo" / NAME / "1", root / NAME / "1")
    entry = next(e for e in read_index(REPO / "zoo" / "index.json")["models"] if e["name"] == NAME)
    (root / "index.json").write_text(json.dumps({"schema": 2, "models": [entry]}, indent=2) + "\n")
    return root


@pytest.fixture
def signed(zoo, key_dir, tmp_path) -> Path:
    """``zoo`` signed with key a; its root.json handed to the client out of band as tmp_path/root.json."""
    signing.sign_zoo(zoo, key_dir / "a" / "private.pem")
    shutil.copyfile(zoo / "metadata" / "root.json", tmp_path / "root.json")
    return zoo


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QATZOO_TRUST", raising=False)
    return tmp_path / "cache"


def _cached_models(cache: Path) -> list[Path]:
    return sorted(cache.rglob("model_int8.tflite")) if cache.exists() else []


def _swap_model_and_sha256(zoo: Path) -> None:
    """The attacker's edit on the server: another model in place of the published one, and the index entry's
    size and sha256 changed to match it (index.json is all an unsigned client checks against)."""
    blob = ATTACKER.read_bytes()
    (zoo / MODEL).write_bytes(blob)
    index = json.loads((zoo / "index.json").read_text())
    index["models"][0].update(size=len(blob), sha256=hashlib.sha256(blob).hexdigest())
    (zoo / "index.json").write_text(json.dumps(index, indent=2) + "\n")


# ---- keys


def test_keys_new_writes_a_private_key_only_its_owner_reads_and_never_into_a_zoo(tmp_path, zoo, capsys):
    code, out, _ = _cli(capsys, "keys", "new", tmp_path / "k")
    assert code == 0 and "key id" in out
    private, public = tmp_path / "k" / "private.pem", tmp_path / "k" / "public.pem"
    assert private.stat().st_mode & 0o777 == 0o600 and b"BEGIN PRIVATE KEY" in private.read_bytes()
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    assert keys.load_private(private).tuf_key().scheme == "ecdsa-sha2-nistp256"
    code, _, err = _cli(capsys, "keys", "new", tmp_path / "k")  # never overwritten
    assert code == 2 and "already exists" in _one_error_line(err)
    for inside in (zoo, zoo / NAME):  # a zoo folder, or any folder in one
        code, _, err = _cli(capsys, "keys", "new", inside / "keys")
        assert code == 2 and "inside the zoo" in _one_error_line(err)
        assert not (inside / "keys").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_private_key_readable_by_others_is_refused_before_anything_is_signed(zoo, key_dir, tmp_path, capsys, mode):
    key = tmp_path / "private.pem"
    shutil.copyfile(key_dir / "a" / "private.pem", key)
    key.chmod(mode)
    code, _, err = _cli(capsys, "sign", "--key", key, "--zoo", zoo)
    assert code == 2 and f"chmod 600 {key}" in _one_error_line(err)
    assert not (zoo / "metadata").exists() and not (zoo / NAME / "1" / "model.sig").exists()


def test_a_private_key_inside_the_zoo_or_not_a_key_is_refused(zoo, key_dir, tmp_path, capsys):
    planted = zoo / "private.pem"
    shutil.copyfile(key_dir / "a" / "private.pem", planted)
    planted.chmod(0o600)
    code, _, err = _cli(capsys, "sign", "--key", planted, "--zoo", zoo)
    assert code == 2 and "inside the zoo" in _one_error_line(err)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    junk.chmod(0o600)
    code, _, err = _cli(capsys, "sign", "--key", junk, "--zoo", zoo)
    assert code == 2 and "not a PEM private key" in _one_error_line(err)
    assert not (zoo / "metadata").exists()


# ---- signing a zoo


def test_signing_writes_bundles_and_tuf_metadata_whose_versions_rise_and_expire(zoo, key_dir):
    from tuf.api.metadata import Metadata

    first = signing.sign_zoo(zoo, key_dir / "a" / "private.pem")
    assert first.bundles == (f"{NAME}@1",) and (first.root, first.targets, first.snapshot, first.timestamp) == (1,) * 4
    meta = zoo / "metadata"
    targets = Metadata.from_file(str(meta / "1.targets.json")).signed
    listed = {f"{NAME}/1/{n}" for n in ("model_int8.tflite", "card.md", "contract.json", "sample.png", "model.sig")}
    assert set(targets.targets) == {"index.json", *listed}
    assert targets.targets[MODEL].hashes["sha256"] == hashlib.sha256((zoo / MODEL).read_bytes()).hexdigest()
    timestamp = Metadata.from_file(str(meta / "timestamp.json")).signed
    assert dt.timedelta(days=6) < timestamp.expires - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=7)
    again = signing.sign_zoo(zoo, key_dir / "a" / "private.pem")  # re-signing: same files, higher versions
    assert again.bundles == () and (again.root, again.targets, again.snapshot, again.timestamp) == (1, 2, 2, 2)
    assert Metadata.from_file(str(meta / "timestamp.json")).signed.version == 2


def test_a_root_near_its_expiry_is_renewed_by_the_next_sign_and_clients_follow(zoo, key_dir, cache, tmp_path, capsys):
    signing.sign_zoo(zoo, key_dir / "a" / "private.pem")
    shutil.copyfile(zoo / "metadata" / "root.json", tmp_path / "root.json")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=300)  # 65 days left of the root's 365
    assert signing.sign_zoo(zoo, key_dir / "a" / "private.pem", now=later).root == 2
    with ZooServer(zoo) as server:
        code, _, err = _cli(capsys, "list", "--index", f"{server.url}/index.json", "--trust", tmp_path / "root.json")
    assert code == 0, err
    assert (cache / f"@{_index_hash(server.url)}" / ".tuf" / "root_history" / "2.root.json").is_file()


def _index_hash(url: str) -> str:
    return hashlib.sha256(f"{url}/index.json".encode()).hexdigest()[:12]


def test_re_signing_refuses_a_published_file_changed_since_and_a_key_the_root_does_not_name(zoo, key_dir, capsys):
    signing.sign_zoo(zoo, key_dir / "a" / "private.pem")
    code, _, err = _cli(capsys, "sign", "--key", key_dir / "b" / "private.pem", "--zoo", zoo)
    assert code == 2 and "keys rotate" in _one_error_line(err)
    card = zoo / NAME / "1" / "card.md"
    card.write_text(card.read_text() + "\nan edit\n")
    code, _, err = _cli(capsys, "sign", "--key", key_dir / "a" / "private.pem", "--zoo", zoo)
    assert code == 2 and "changed since the zoo was last signed" in _one_error_line(err)
    _swap_model_and_sha256(zoo)  # the model edited in the zoo folder with its index entry: not signed over either
    code, _, err = _cli(capsys, "sign", "--key", key_dir / "a" / "private.pem", "--zoo", zoo)
    assert code == 2 and "changed since the zoo was last signed" in _one_error_line(err)


# ---- the attacks: before (unsigned) and after (signed, --trust)


def test_unsigned_a_model_and_its_sha256_replaced_together_are_accepted_today(zoo, cache, capsys):
    """What the issue is about: an unsigned index is trusted as served, so the swap downloads and loads."""
    with ZooServer(zoo) as server:
        url = f"{server.url}/index.json"
        _swap_model_and_sha256(zoo)
        code, out, err = _cli(capsys, "download", NAME, "--index", url)
        assert code == 0 and Path(out.strip()).read_bytes() == ATTACKER.read_bytes()  # the attacker's model
        assert err.strip().splitlines() == [f"note: the index at {url} is unsigned: " + err.split(": ", 2)[2].strip()]
        assert "--trust ROOT.json" in err
        shutil.rmtree(cache)
        model = load(NAME, index=url, progress=False)  # load() runs it too
        assert model.interpreter is not None
        assert [p.read_bytes() for p in _cached_models(cache)] == [ATTACKER.read_bytes()]


def test_signed_a_model_and_its_sha256_replaced_together_are_refused_by_cli_and_load(signed, cache, tmp_path, capsys):
    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        _swap_model_and_sha256(signed)
        code, _, err = _cli(capsys, "download", NAME, "--index", url, "--trust", tmp_path / "root.json")
        assert code == 2 and "does not match its signed length and sha256" in _one_error_line(err)
        with pytest.raises(ZooError, match="does not match its signed length and sha256"):
            load(NAME, index=url, trust=tmp_path / "root.json", progress=False)
        for command in (
            ["list"],
            ["info", NAME],
            ["verify", NAME],
            ["predict", NAME, signed / NAME / "1" / "sample.png"],
        ):
            # the index itself is refused by every command that reads it
            code, _, err = _cli(capsys, *command, "--index", url, "--trust", tmp_path / "root.json")
            assert code == 2 and "signed length and sha256" in _one_error_line(err)
    assert _cached_models(cache) == []


def test_signed_only_the_model_replaced_is_refused_and_nothing_cached(signed, cache, tmp_path, capsys):
    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        server.faults[MODEL] = "tamper"
        code, _, err = _cli(capsys, "download", NAME, "--index", url, "--trust", tmp_path / "root.json")
        assert code == 2 and "is tampered" in _one_error_line(err)
    assert _cached_models(cache) == []


def test_signed_the_genuine_zoo_downloads_loads_and_predicts_through_tuf(signed, cache, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        code, out, err = _cli(capsys, "download", NAME, "--index", url, "--trust", tmp_path / "root.json")
        assert code == 0 and err == "", err  # verified: no note
        path = Path(out.strip())
        assert path.read_bytes() == (signed / MODEL).read_bytes()
        assert (path.parent / "model.sig").is_file() and (path.parent / "contract.json").is_file()
        model = load(NAME, index=url, trust=tmp_path / "root.json", progress=False)
        digit = np.asarray(Image.open(signed / NAME / "1" / "sample.png"))
        assert str(model.predict(digit, labels=True)) in "0123456789"
        requested = {path for path, _ in server.requests}
        assert {"metadata/timestamp.json", "metadata/1.snapshot.json", "metadata/1.targets.json"} <= requested
        # Once a root is trusted for an index the cache keeps it: the same index is never read unsigned again.
        code, out, err = _cli(capsys, "list", "--index", url)
        assert code == 0 and NAME in out and err == ""


def test_signed_an_older_signed_index_replayed_is_refused(signed, key_dir, cache, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(signed, old)  # what the attacker saved: a complete, validly signed zoo of an earlier day
    signing.sign_zoo(signed, key_dir / "a" / "private.pem")  # the publisher signs again: versions 2
    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        code, _, _ = _cli(capsys, "list", "--index", url, "--trust", tmp_path / "root.json")
        assert code == 0  # the client has seen version 2
        server.root = old
        code, _, err = _cli(capsys, "download", NAME, "--index", url, "--trust", tmp_path / "root.json")
        assert code == 2 and "rollback refused" in _one_error_line(err)
        with pytest.raises(ZooError, match="rollback refused"):
            load(NAME, index=url, trust=tmp_path / "root.json", progress=False)
    assert _cached_models(cache) == []


def test_signed_an_expired_timestamp_is_refused(zoo, key_dir, cache, tmp_path, capsys):
    """A frozen zoo: metadata signed 30 days ago, served unchanged since (the timestamp lives 7 days)."""
    signing.sign_zoo(zoo, key_dir / "a" / "private.pem", now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30))
    with ZooServer(zoo) as server:
        url = f"{server.url}/index.json"
        code, _, err = _cli(capsys, "download", NAME, "--index", url, "--trust", zoo / "metadata" / "root.json")
        assert code == 2 and "has expired" in _one_error_line(err) and "frozen" in err
        with pytest.raises(ZooError, match="has expired"):
            load(NAME, index=url, trust=zoo / "metadata" / "root.json", progress=False)
    assert _cached_models(cache) == []


def test_signed_metadata_signed_by_another_key_is_refused(zoo, key_dir, cache, tmp_path, capsys):
    """The attacker signs a zoo of their own (model swapped) with their key; the client trusts the publisher's root."""
    publisher = tmp_path / "publisher"
    shutil.copytree(zoo, publisher)
    signing.sign_zoo(publisher, key_dir / "a" / "private.pem")
    _swap_model_and_sha256(zoo)
    signing.sign_zoo(zoo, key_dir / "b" / "private.pem")
    with ZooServer(zoo) as server:
        url = f"{server.url}/index.json"
        code, _, err = _cli(capsys, "download", NAME, "--index", url, "--trust", publisher / "metadata" / "root.json")
        assert code == 2 and "not signed by the trusted keys" in _one_error_line(err)
    assert _cached_models(cache) == []


def _resign_targets_with(zoo: Path, key: keys.PrivateKey, changes: dict[str, bytes]) -> None:
    """New targets, snapshot and timestamp by the zoo's own key over ``changes`` (path -> bytes written first):
    a zoo whose TUF metadata is in order but whose bundle is not by that key."""
    from tuf.api.metadata import Metadata, MetaFile, TargetFile

    meta = zoo / "metadata"
    for path, data in changes.items():
        (zoo / path).write_bytes(data)
    timestamp = Metadata.from_file(str(meta / "timestamp.json"))
    snapshot = Metadata.from_file(str(meta / f"{timestamp.signed.snapshot_meta.version}.snapshot.json"))
    targets = Metadata.from_file(str(meta / f"{snapshot.signed.meta['targets.json'].version}.targets.json"))
    for path, data in changes.items():
        targets.signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
    for md in (targets, snapshot, timestamp):
        md.signed.version += 1
    snapshot.signed.meta["targets.json"] = MetaFile(targets.signed.version)
    targets.sign(key.signer())
    targets.to_file(str(meta / f"{targets.signed.version}.targets.json"))
    snapshot.sign(key.signer())
    snapshot.to_file(str(meta / f"{snapshot.signed.version}.snapshot.json"))
    snapshot_bytes = (meta / f"{snapshot.signed.version}.snapshot.json").read_bytes()
    timestamp.signed.snapshot_meta = MetaFile.from_data(snapshot.signed.version, snapshot_bytes, ["sha256"])
    timestamp.sign(key.signer())
    timestamp.to_file(str(meta / "timestamp.json"))


def test_a_bundle_signed_by_another_key_is_refused_on_download_and_on_a_copied_model(
    signed, key_dir, cache, tmp_path, capsys
):
    folder = signed / NAME / "1"
    other = signing.sign_bundle(signing.bundle_files(folder), keys.load_private(key_dir / "b" / "private.pem"))
    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        (tmp_path / "genuine.sig").write_bytes((folder / "model.sig").read_bytes())
        (folder / "model.sig").write_bytes(other)  # only the bundle swapped on the server: TUF's hash refuses it
        code, _, err = _cli(capsys, "download", NAME, "--index", url, "--trust", tmp_path / "root.json")
        assert code == 2 and "does not match its signed length and sha256" in _one_error_line(err)
        # The zoo's own metadata re-signed over that bundle: TUF accepts the file, the bundle check refuses it.
        _resign_targets_with(signed, keys.load_private(key_dir / "a" / "private.pem"), {f"{NAME}/1/model.sig": other})
        code, _, err = _cli(capsys, "download", NAME, "--index", url, "--trust", tmp_path / "root.json")
        line = _one_error_line(err)
        assert code == 2 and "model-signing bundle does not verify" in line and "Key mismatch" in line
        assert _cached_models(cache) == []
        # A model copied onto a build server: checked against the bundle and the publisher's public key.
        (folder / "model.sig").write_bytes((tmp_path / "genuine.sig").read_bytes())
        copy_dir = tmp_path / "copy"
        copy_dir.mkdir()
        for name in ("model_int8.tflite", "contract.json", "card.md"):
            shutil.copyfile(folder / name, copy_dir / name)
        public = key_dir / "a" / "public.pem"
        code, out, _ = _cli(
            capsys, "verify", copy_dir / "model_int8.tflite", "--bundle", tmp_path / "genuine.sig", "--key", public
        )
        assert code == 0 and out.strip().endswith(": ok")
        (tmp_path / "other.sig").write_bytes(other)
        code, _, err = _cli(
            capsys, "verify", copy_dir / "model_int8.tflite", "--bundle", tmp_path / "other.sig", "--key", public
        )
        assert code == 2 and "Key mismatch" in _one_error_line(err) and "do not use this copy" in err
        code, _, err = _cli(
            capsys,
            "verify",
            copy_dir / "model_int8.tflite",
            "--bundle",
            tmp_path / "genuine.sig",
            "--key",
            key_dir / "b" / "public.pem",
        )
        assert code == 2 and "does not verify" in _one_error_line(err)
        shutil.copyfile(ATTACKER, copy_dir / "model_int8.tflite")  # the copy's model replaced
        code, _, err = _cli(
            capsys, "verify", copy_dir / "model_int8.tflite", "--bundle", tmp_path / "genuine.sig", "--key", public
        )
        assert code == 2 and "Hash mismatch for 'model_int8.tflite'" in _one_error_line(err)


def test_download_to_copies_a_bundle_that_verify_checks_there(signed, key_dir, cache, tmp_path, capsys):
    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        code, out, _ = _cli(
            capsys, "download", NAME, "--index", url, "--trust", tmp_path / "root.json", "--to", tmp_path / "device"
        )
    assert code == 0
    copied = Path(out.strip())
    assert sorted(p.name for p in copied.parent.iterdir()) == sorted(
        f"{NAME}-1{suffix}" for suffix in (".tflite", ".contract.json", ".card.md", ".sig", ".sample.png")
    )
    code, out, _ = _cli(
        capsys, "verify", copied, "--bundle", copied.with_suffix(".sig"), "--key", key_dir / "a" / "public.pem"
    )
    assert code == 0 and "ok" in out


def test_a_key_rotated_through_root_is_accepted_by_clients_holding_the_old_root(
    signed, key_dir, cache, tmp_path, capsys
):
    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        old_root = tmp_path / "root.json"
        assert _cli(capsys, "list", "--index", url, "--trust", old_root)[0] == 0  # a client that read it before
        code, out, _ = _cli(
            capsys,
            "keys",
            "rotate",
            key_dir / "b" / "private.pem",
            "--old",
            key_dir / "a" / "private.pem",
            "--zoo",
            signed,
        )
        assert code == 0 and "root v2" in out
        assert (signed / "metadata" / "2.root.json").is_file()
        code, out, err = _cli(capsys, "download", NAME, "--index", url, "--trust", old_root)
        assert code == 0, err
        bundle = Path(out.strip()).with_name("model.sig")
        public_b = key_dir / "b" / "public.pem"
        assert _cli(capsys, "verify", Path(out.strip()), "--bundle", bundle, "--key", public_b)[0] == 0
        assert (
            _cli(capsys, "verify", Path(out.strip()), "--bundle", bundle, "--key", key_dir / "a" / "public.pem")[0] == 2
        )
        capsys.readouterr()
        # A fresh client holding only root v1 walks the chain too, through load().
        fresh = tmp_path / "fresh-cache"
        os.environ["QATZOO_CACHE"] = str(fresh)
        assert load(NAME, index=url, trust=old_root, progress=False).contract.task == "classification"
        # The old key can no longer sign the zoo.
        code, _, err = _cli(capsys, "sign", "--key", key_dir / "a" / "private.pem", "--zoo", signed)
        assert code == 2 and "keys rotate" in _one_error_line(err)


def test_simultaneous_signed_downloads_share_the_metadata_and_one_transfer(signed, cache, tmp_path):
    import threading

    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        server.faults[MODEL] = "stall"  # the first transfer waits until the others queue behind the locks
        results, errors = [], []

        def one():
            try:
                results.append(fetch(NAME, index=url, trust=tmp_path / "root.json", progress=False, timeout=1))
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=one) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        server.faults.clear()
        for thread in threads:
            thread.join(30)
        assert not errors and len(results) == 3 and len(set(results)) == 1, errors
        assert results[0].read_bytes() == (signed / MODEL).read_bytes()
        full = [r for path, r in server.requests if path == MODEL and r is None]
        assert len(full) == 1  # one transfer from the start (the stalled one resumes with a Range request)


def test_trust_on_first_use_only_when_asked_and_then_always(signed, cache, capsys):
    with ZooServer(signed) as server:
        url = f"{server.url}/index.json"
        code, _, err = _cli(capsys, "list", "--index", url)
        assert code == 0 and "is unsigned" in err  # not asked: today's behaviour, and the note
        code, _, err = _cli(capsys, "list", "--index", url, "--pin")
        assert code == 0 and err == ""
        _swap_model_and_sha256(signed)
        code, _, err = _cli(capsys, "download", NAME, "--index", url)  # no flag: the pinned root is used
        assert code == 2 and "signed length and sha256" in _one_error_line(err)
    assert _cached_models(cache) == []


def test_trust_given_for_an_unsigned_zoo_or_a_missing_root_is_one_line(
    zoo, signed, cache, tmp_path, capsys, monkeypatch
):
    unsigned = tmp_path / "unsigned"
    shutil.copytree(zoo, unsigned, ignore=shutil.ignore_patterns("metadata", "model.sig"))
    with ZooServer(unsigned) as server:
        url = f"{server.url}/index.json"
        code, _, err = _cli(capsys, "list", "--index", url, "--trust", tmp_path / "root.json")
        assert code == 2 and "cannot read its TUF metadata" in _one_error_line(err)
        code, _, err = _cli(capsys, "list", "--index", url, "--trust", tmp_path / "nope.json")
        assert code == 2 and "no such file" in _one_error_line(err)
        (tmp_path / "junk.json").write_text('{"signed": {"_type": "root"}}')
        code, _, err = _cli(capsys, "list", "--index", url, "--trust", tmp_path / "junk.json")
        assert code == 2 and "refused" in _one_error_line(err)
        monkeypatch.setenv("QATZOO_TRUST", str(tmp_path / "root.json"))  # the environment's root, same refusal
        code, _, err = _cli(capsys, "info", NAME, "--index", url)
        assert code == 2 and "cannot read its TUF metadata" in _one_error_line(err)


@pytest.mark.parametrize("fault", ["hang", "trickle"])
def test_a_server_that_stalls_the_signed_metadata_meets_the_deadline(signed, cache, tmp_path, capsys, fault):
    with ZooServer(signed) as server:
        server.faults["metadata/timestamp.json"] = fault
        url = f"{server.url}/index.json"
        code, _, err = _cli(
            capsys,
            "list",
            "--index",
            url,
            "--trust",
            tmp_path / "root.json",
            "--deadline",
            "1",
            "--stall-timeout",
            "0.5",
        )
        assert code == 2 and "timestamp.json" in _one_error_line(err)


def test_a_redirect_of_the_signed_metadata_to_a_file_url_is_refused(signed, cache, tmp_path, capsys):
    with ZooServer(signed) as server:
        server.faults["metadata/timestamp.json"] = "redirect:file:///etc/passwd"
        code, _, err = _cli(capsys, "list", "--index", f"{server.url}/index.json", "--trust", tmp_path / "root.json")
        assert code == 2 and "only redirects to http(s)" in _one_error_line(err)


def test_a_local_signed_zoo_is_verified_too(signed, cache, tmp_path, capsys):
    code, out, err = _cli(capsys, "download", NAME, "--index", signed, "--trust", tmp_path / "root.json")
    assert code == 0 and err == ""
    _swap_model_and_sha256(signed)
    shutil.rmtree(cache)
    code, _, err = _cli(capsys, "download", NAME, "--index", signed, "--trust", tmp_path / "root.json")
    assert code == 2 and "signed length and sha256" in _one_error_line(err)


def test_without_the_trust_extra_the_client_is_unsigned_and_trust_names_the_extra(signed, tmp_path):
    client = env(tmp_path / "client")  # pip install qatzoo: no tuf, no model-signing
    client["QATZOO_CACHE"] = str(tmp_path / "cache")
    client.pop("QATZOO_TRUST", None)
    index = str(signed / "index.json")

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "qatzoo.cli", *argv], env=client, capture_output=True, text=True)

    plain = run("list", "--index", index)
    assert plain.returncode == 0 and NAME in plain.stdout
    assert plain.stderr.strip().splitlines() == [plain.stderr.strip()] and "is unsigned" in plain.stderr
    for argv in (
        ("download", NAME, "--index", index, "--trust", str(tmp_path / "root.json")),
        ("keys", "new", str(tmp_path / "k")),
        ("verify", index, "--bundle", index, "--key", index),
    ):
        got = run(*argv)
        lines = got.stderr.strip().splitlines()
        assert got.returncode == 2 and len(lines) == 1 and "pip install 'qatzoo[trust]'" in lines[0], (argv, got.stderr)
    assert not (tmp_path / "cache").exists() or _cached_models(tmp_path / "cache") == []


def test_the_committed_zoo_is_read_as_before_without_a_note(cache, capsys):
    code, out, err = _cli(capsys, "list")
    assert code == 0 and NAME in out and err == ""
