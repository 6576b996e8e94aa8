"""A signed zoo: a model-signing bundle beside each model, and TUF metadata over the whole zoo folder.

    qatzoo keys new ~/.qatzoo-key                        # private.pem (0600) and public.pem
    qatzoo publish RUN --sign ~/.qatzoo-key/private.pem  # publish, bundle the model, re-sign the zoo's metadata
    qatzoo sign --key ~/.qatzoo-key/private.pem          # (re-)sign a zoo: bundles where missing, fresh metadata
    qatzoo keys rotate NEW/private.pem --old OLD/private.pem   # a new key, through a new root version

Beside each published model, ``model.sig`` is an OpenSSF model-signing bundle (a DSSE envelope in a Sigstore
bundle, signed offline with the publisher's elliptic-curve key) over ``model_int8.tflite``, ``contract.json`` and
``card.md``: a model copied onto a build server is checked with ``qatzoo verify FILE --bundle B --key K``.

The zoo's TUF repository lies in ``metadata/`` beside ``index.json`` (python-tuf's Metadata API): ``root.json``
and ``N.root.json`` for every root version, ``N.targets.json`` and ``N.snapshot.json`` (consistent snapshots, so
a client never mixes two publishes' metadata) and ``timestamp.json``, written last: it is the commit point. The
targets are ``index.json`` and every file of every listed version folder, at their paths in the zoo (clients
fetch them there, not hash-prefixed). Each sign raises the versions of targets, snapshot and timestamp and sets
their expiry (:data:`EXPIRY`); a client refuses a lower version than it has seen and an expired timestamp, so the
publisher re-signs at least every ``timestamp`` days (``qatzoo sign``).

One key holds all four roles (threshold 1): simple for one publisher; a root key kept apart from the others is
the stronger setup TUF allows. A published file never changes: a file listed in the previous signed targets
whose bytes differ now is refused (only ``index.json`` and the bundles, re-signed after a rotation, change).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from qatzoo.files import sha256_file, write_bytes
from qatzoo.zoo.index import ZooError, locked_index
from qatzoo.zoo.keys import PrivateKey, load_private

METADATA = "metadata"
BUNDLE = "model.sig"
#: The files a bundle covers, as they are named in a version folder (those an entry has).
SIGNED_FILES = ("model_int8.tflite", "contract.json", "card.md")
#: Days each role's metadata stays valid after it is signed.
EXPIRY = {"root": 365, "targets": 365, "snapshot": 30, "timestamp": 7}
#: Versioned targets/snapshot files kept (older ones are removed: a client never needs them).
KEEP_VERSIONS = 3
#: Files of a version folder that are not targets (the marker of an unfinished publish, locks, temporaries).
_NOT_A_TARGET = re.compile(r"^\.")


def sign_bundle(files: dict[str, bytes], key: PrivateKey) -> bytes:
    """The model-signing bundle over ``files`` (name -> bytes, the names of :data:`SIGNED_FILES`), signed with
    ``key``: the files are hashed in a folder of their own, so the bundle covers exactly them."""
    from model_signing import hashing, signing

    with tempfile.TemporaryDirectory(prefix="qatzoo-sign-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        out = Path(tmp) / BUNDLE
        config = signing.Config().set_hashing_config(
            hashing.Config().use_file_serialization(hashing_algorithm="sha256")
        )
        config.use_elliptic_key_signer(private_key=key.path).sign(folder, out)
        return out.read_bytes()


def bundle_files(folder: Path) -> dict[str, bytes]:
    """The files of a version folder that its bundle covers (those present of :data:`SIGNED_FILES`)."""
    return {name: (folder / name).read_bytes() for name in SIGNED_FILES if (folder / name).is_file()}


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)


def _write(path: Path, md) -> None:
    from tuf.api.serialization.json import JSONSerializer

    write_bytes(path, md.to_bytes(JSONSerializer(compact=False)))


def _read(path: Path, what: str):
    from tuf.api.metadata import Metadata

    try:
        return Metadata.from_bytes(path.read_bytes())
    except FileNotFoundError:
        return None
    except Exception as error:  # tuf's DeserializationError and friends: the zoo's own metadata is broken
        raise ZooError(f"{path} is not TUF {what} metadata ({str(error).splitlines()[0][:120]})") from None


def _verified(meta: Path, root_md, role: str, name: str):
    """The current ``role`` metadata of the zoo (``name`` in ``meta``), verified against ``root_md``'s keys."""
    md = _read(meta / name, role)
    if md is None:
        return None
    try:
        root_md.verify_delegate(role, md)
    except Exception as error:  # UnsignedMetadataError, or a signature that does not parse
        raise ZooError(f"{meta / name} is not signed by the zoo's {role} keys ({error}); not signing over it") from None
    return md


def _root_md(meta: Path):
    """The zoo's current root, verified to be signed by itself; None for a zoo never signed."""
    md = _read(meta / "root.json", "root")
    if md is not None:
        try:
            md.verify_delegate("root", md)
        except Exception as error:
            raise ZooError(f"{meta / 'root.json'} is not signed by its own root keys ({error})") from None
    return md


def _new_root(key: PrivateKey, now: dt.datetime):
    from tuf.api.metadata import Metadata, Root

    root = Root(expires=now + dt.timedelta(days=EXPIRY["root"]), consistent_snapshot=True)
    for role in ("root", "targets", "snapshot", "timestamp"):
        root.add_key(key.tuf_key(), role)
    md = Metadata(root)
    md.sign(key.signer())
    return md


def _holds_roles(root_md, key: PrivateKey) -> bool:
    keyid = key.tuf_key().keyid
    return all(keyid in root_md.signed.roles[role].keyids for role in ("root", "targets", "snapshot", "timestamp"))


@dataclass(frozen=True)
class Signed:
    """What a sign wrote: the metadata versions, and the bundles (re)written."""

    root: int
    targets: int
    snapshot: int
    timestamp: int
    bundles: tuple[str, ...]
    expires: dt.datetime

    def line(self, zoo_dir: Path) -> str:
        written = f"; bundles written: {', '.join(self.bundles)}" if self.bundles else ""
        return (
            f"signed {zoo_dir}: root v{self.root}, targets v{self.targets}, snapshot v{self.snapshot}, timestamp "
            f"v{self.timestamp} (expires {self.expires.isoformat()}; re-sign before then: qatzoo sign){written}"
        )


def bundle_verifies(folder: Path, bundle: Path, public_pem: bytes) -> bool:
    from qatzoo.zoo.trust import verify_bundle

    try:
        verify_bundle(bundle_files(folder), bundle.read_bytes(), [public_pem])
        return True
    except (ZooError, OSError):
        return False


def sign_locked(
    zoo_dir: Path, index: dict, key: PrivateKey, now: dt.datetime | None = None, previous_root=None
) -> Signed:
    """(Re-)sign the zoo under its index lock: write the bundles that are missing (or not by ``key``), then the
    TUF metadata over index.json and every file of every listed version. Refuses a key the root does not name,
    a model whose bytes differ from the index, and a published file changed since the zoo was last signed.
    ``previous_root``: the root the current metadata was signed under (the old one, during a rotation)."""
    from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp

    now = _now(now)
    zoo_dir = Path(zoo_dir)
    meta = zoo_dir / METADATA
    root_md = _root_md(meta)
    if root_md is None:
        root_md = _new_root(key, now)
        _write(meta / f"{root_md.signed.version}.root.json", root_md)
        _write(meta / "root.json", root_md)
    elif not _holds_roles(root_md, key):
        raise ZooError(
            f"{key.path} is not the key the zoo's root (v{root_md.signed.version}) names for its roles; a new key "
            "goes in through the root: qatzoo keys rotate NEW_KEY --old OLD_KEY"
        )
    elif root_md.signed.expires - now < dt.timedelta(days=EXPIRY["root"] // 4):  # renew a root near its expiry
        root_md.signed.version += 1
        root_md.signed.expires = now + dt.timedelta(days=EXPIRY["root"])
        root_md.sign(key.signer())
        _write(meta / f"{root_md.signed.version}.root.json", root_md)
        _write(meta / "root.json", root_md)
    signer_of = previous_root or root_md
    timestamp_md = _verified(meta, signer_of, "timestamp", "timestamp.json")
    snapshot_md = targets_md = None
    if timestamp_md is not None:
        name = f"{timestamp_md.signed.snapshot_meta.version}.snapshot.json"
        snapshot_md = _verified(meta, signer_of, "snapshot", name)
    if snapshot_md is not None:
        version = snapshot_md.signed.meta["targets.json"].version
        targets_md = _verified(meta, signer_of, "targets", f"{version}.targets.json")
    before = targets_md.signed.targets if targets_md is not None else {}

    public = key.public_pem()
    bundles = []
    targets: dict[str, TargetFile] = {}
    for entry in index["models"]:
        if entry["name"] == METADATA:
            raise ZooError(f"the zoo lists a model named {METADATA!r}: that folder holds the TUF metadata; rename it")
        folder = zoo_dir / entry["name"] / entry["version"]
        model = folder / "model_int8.tflite"
        if not model.is_file() or model.stat().st_size != entry["size"] or sha256_file(model) != entry["sha256"]:
            raise ZooError(f"{model} is missing or is not the file index.json pins (size, sha256); not signing it")
        contract = folder / "contract.json"
        if entry.get("contract") is not None and contract.is_file():
            if json.loads(contract.read_text()) != entry["contract"]:
                raise ZooError(f"{contract} is not the contract index.json holds; not signing it")
        bundle = folder / BUNDLE
        if not bundle.is_file() or not bundle_verifies(folder, bundle, public):
            write_bytes(bundle, sign_bundle(bundle_files(folder), key))
            bundles.append(f"{entry['name']}@{entry['version']}")
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink() and not _NOT_A_TARGET.match(path.name):
                name = path.relative_to(zoo_dir).as_posix()
                targets[name] = TargetFile.from_file(name, str(path), ["sha256"])
    targets["index.json"] = TargetFile.from_file("index.json", str(zoo_dir / "index.json"), ["sha256"])
    for name, old in before.items():
        new = targets.get(name)
        if new is not None and name != "index.json" and not name.endswith("/" + BUNDLE) and new != old:
            raise ZooError(
                f"{zoo_dir / name} changed since the zoo was last signed (sha256 {old.hashes.get('sha256', '?')[:12]}"
                f"... then, {new.hashes['sha256'][:12]}... now): a published version never changes; restore it or "
                "publish a new version"
            )

    targets_version = (targets_md.signed.version if targets_md else 0) + 1
    new_targets = Metadata(Targets(version=targets_version, expires=now + dt.timedelta(days=EXPIRY["targets"])))
    new_targets.signed.targets = targets
    new_targets.sign(key.signer())
    _write(meta / f"{targets_version}.targets.json", new_targets)

    snapshot_version = (snapshot_md.signed.version if snapshot_md else 0) + 1
    new_snapshot = Metadata(
        Snapshot(
            version=snapshot_version,
            expires=now + dt.timedelta(days=EXPIRY["snapshot"]),
            meta={"targets.json": MetaFile(targets_version)},
        )
    )
    new_snapshot.sign(key.signer())
    _write(meta / f"{snapshot_version}.snapshot.json", new_snapshot)

    snapshot_bytes = (meta / f"{snapshot_version}.snapshot.json").read_bytes()
    timestamp_version = (timestamp_md.signed.version if timestamp_md else 0) + 1
    expires = now + dt.timedelta(days=EXPIRY["timestamp"])
    new_timestamp = Metadata(
        Timestamp(
            version=timestamp_version,
            expires=expires,
            snapshot_meta=MetaFile.from_data(snapshot_version, snapshot_bytes, ["sha256"]),
        )
    )
    new_timestamp.sign(key.signer())
    _write(meta / "timestamp.json", new_timestamp)  # the commit point
    _prune(meta, "targets", targets_version)
    _prune(meta, "snapshot", snapshot_version)
    return Signed(root_md.signed.version, targets_version, snapshot_version, timestamp_version, tuple(bundles), expires)


def _prune(meta: Path, role: str, current: int) -> None:
    for path in meta.glob(f"*.{role}.json"):
        version = path.name.split(".")[0]
        if version.isdigit() and int(version) <= current - KEEP_VERSIONS:
            path.unlink(missing_ok=True)


def sign_zoo(zoo_dir: str | Path, key: str | Path | PrivateKey, now: dt.datetime | None = None) -> Signed:
    """``qatzoo sign``: (re-)sign the zoo at ``zoo_dir`` with ``key`` (a path, checked by :func:`load_private`)."""
    zoo_dir = Path(zoo_dir)
    key = key if isinstance(key, PrivateKey) else load_private(key, zoo_dir)
    if not (zoo_dir / "index.json").is_file():
        raise ZooError(f"{zoo_dir} has no index.json: not a zoo to sign")
    try:
        with locked_index(zoo_dir) as index:
            return sign_locked(zoo_dir, index, key, now)
    except OSError as error:
        raise ZooError(f"cannot write to the zoo {zoo_dir}: {error.strerror or error}") from None


def rotate(
    zoo_dir: str | Path, new_key: str | Path, old_key: str | Path, now: dt.datetime | None = None
) -> tuple[int, Signed]:
    """Replace the zoo's key: a new root version naming ``new_key`` for every role, signed by ``old_key`` (what
    clients trust now) and by ``new_key``; then the bundles and the other metadata are re-signed with the new key.
    A client holding the old root walks to the new one (TUF's root chain) and accepts the zoo."""
    zoo_dir = Path(zoo_dir)
    new, old = load_private(new_key, zoo_dir), load_private(old_key, zoo_dir)
    meta = zoo_dir / METADATA
    try:
        with locked_index(zoo_dir) as index:
            root_md = _root_md(meta)
            if root_md is None:
                raise ZooError(f"{zoo_dir} is not signed yet (no {METADATA}/root.json): sign it with qatzoo sign")
            if not _holds_roles(root_md, old):
                raise ZooError(f"{old.path} is not the key the zoo's root (v{root_md.signed.version}) names")
            if _holds_roles(root_md, new):
                raise ZooError(f"{new.path} is already the zoo's key")
            previous = copy.deepcopy(root_md)  # what the current targets, snapshot and timestamp were signed under
            root = root_md.signed
            old_id = old.tuf_key().keyid
            for role in ("root", "targets", "snapshot", "timestamp"):
                root.revoke_key(old_id, role)
                root.add_key(new.tuf_key(), role)
            root.version += 1
            root.expires = _now(now) + dt.timedelta(days=EXPIRY["root"])
            root_md.sign(old.signer())  # the old root's threshold: what clients trust now
            root_md.sign(new.signer(), append=True)  # the new root's own threshold
            _write(meta / f"{root.version}.root.json", root_md)
            _write(meta / "root.json", root_md)
            return root.version, sign_locked(zoo_dir, index, new, now, previous_root=previous)
    except OSError as error:
        raise ZooError(f"cannot write to the zoo {zoo_dir}: {error.strerror or error}") from None


__all__ = ["BUNDLE", "EXPIRY", "METADATA", "SIGNED_FILES", "Signed", "rotate", "sign_bundle", "sign_zoo"]
