"""Clients of a signed zoo: the index and every model file fetched through TUF (``tuf.ngclient``), and the
model-signing bundle of a model checked against the publisher's key.

A trusted root comes from ``--trust ROOT.json`` or ``$QATZOO_TRUST``, or - only when the user says so with
``--pin`` - from the zoo itself on first use (trust on first use), kept in the cache. Once the cache holds a
trusted root for an index (``<cache>/[@hash/].tuf/``, with the metadata TUF has verified), that index is always
read through TUF: it is never read unsigned again from this cache (``rm -r`` that folder to forget it).

Through TUF (:class:`SignedZoo`): ``tuf.ngclient.Updater`` refreshes root (walking the root chain: a key rotated
through root is accepted), timestamp, snapshot and targets, refusing metadata not signed by the trusted keys, a
version lower than one already seen (rollback), expired metadata (a frozen zoo), and metadata longer than
allowed; ``index.json`` and each file are then checked against their signed length and sha256. Every fetch goes
through this project's hardened reader (:mod:`qatzoo.zoo.download`: deadline, stall and low-speed limits,
restricted redirects, regular local files only), plugged into ngclient as its fetcher. The model itself is
downloaded as before (cache lock, resumable ``.part``, rename after the hash check) with its signed length and
sha256 as the pins; then its bundle (``model.sig``) is verified with the targets key of the trusted root over the
model, its contract and its card. Any refusal is one line, and nothing of that model is left in the cache.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
from pathlib import Path

from qatzoo.zoo.index import ZooError

TRUST_ENV = "QATZOO_TRUST"
ROOT_MAX_BYTES = 512_000


def metadata_dir(index_url: str) -> Path:
    """Where the TUF metadata of the index at ``index_url`` is kept once it is trusted."""
    from qatzoo.zoo.download import index_cache

    return index_cache(index_url) / ".tuf"


def wanted(index_url: str, trust: str | os.PathLike | None = None, pin: bool = False) -> bool:
    """Whether the index at ``index_url`` is read through TUF: a root given (``trust`` or ``$QATZOO_TRUST``), a
    pin asked for, or a trusted root already in the cache for it. Imports nothing of the [trust] extra."""
    return bool(trust or os.environ.get(TRUST_ENV) or pin or (metadata_dir(index_url) / "root.json").exists())


def _bootstrap(index_url: str, trust, pin: bool, clock) -> bytes | None:
    """The root to start from: the given file's bytes; the zoo's own ``metadata/root.json`` when pinning on first
    use; None to start from the root already in the cache."""
    from qatzoo.zoo.download import _open_regular, _read_bounded

    trust = trust or os.environ.get(TRUST_ENV)
    if trust:
        path = Path(trust).expanduser()
        try:
            with _open_regular(path) as f:
                data = f.read(ROOT_MAX_BYTES + 1)
        except FileNotFoundError:
            raise ZooError(f"trusted root {path} (--trust or ${TRUST_ENV}): no such file") from None
        except OSError as error:
            raise ZooError(f"cannot read the trusted root {path}: {error.strerror or error}") from None
        if len(data) > ROOT_MAX_BYTES:
            raise ZooError(f"trusted root {path} is larger than {ROOT_MAX_BYTES} bytes: not a TUF root")
        return data
    if (metadata_dir(index_url) / "root.json").exists():
        return None
    if pin:
        return _read_bounded(_base(index_url) + "metadata/root.json", clock, ROOT_MAX_BYTES, "the zoo's root.json")
    raise ZooError("no trusted root")  # not reached: wanted() said so


def _base(index_url: str) -> str:
    base, _, name = index_url.rpartition("/")
    if name != "index.json":
        raise ZooError(f"{index_url}: a signed zoo's index is named index.json (its TUF target), not {name!r}")
    return base + "/"


def _fetcher(clock):
    """tuf.ngclient's fetcher over this project's reader: the same deadline, limits and redirect rules."""
    from tuf.api.exceptions import DownloadHTTPError
    from tuf.ngclient.fetcher import FetcherInterface

    from qatzoo.zoo.download import NETWORK_ERRORS, _DeadlinePassed, _open, _read1, _Speed, _TooSlow, read_error

    class Fetcher(FetcherInterface):
        def _fetch(self, url: str):
            what = f"the zoo's TUF metadata {url.rpartition('/')[2]}"
            try:
                response = _open(url, clock)
            except urllib.error.HTTPError as error:
                error.close()
                raise DownloadHTTPError(f"HTTP {error.code} from {url}", error.code) from None
            except FileNotFoundError:  # a file:// zoo: a root version that is not there is the newest one
                raise DownloadHTTPError(f"{url}: no such file", 404) from None
            except (_DeadlinePassed, _TooSlow, *NETWORK_ERRORS) as error:
                raise read_error(error, what, url, clock.limits) from None

            def chunks():
                speed = _Speed(clock.limits)
                with response:
                    while True:
                        try:
                            chunk = _read1(response, clock)
                            speed.add(len(chunk))
                        except (_DeadlinePassed, _TooSlow, *NETWORK_ERRORS) as error:
                            raise read_error(error, what, url, clock.limits) from None
                        if not chunk:
                            return
                        yield chunk

            return chunks()

    return Fetcher()


def _refusal(error: BaseException, index_url: str) -> ZooError:
    """One line for a TUF refusal (or a network failure while reading the signed metadata)."""
    from tuf.api import exceptions as tuf

    where = f"the signed zoo at {index_url}"
    text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    if isinstance(error, tuf.UnsignedMetadataError):
        return ZooError(f"{where}: its metadata is not signed by the trusted keys ({text}); refused, nothing cached")
    if isinstance(error, tuf.BadVersionNumberError):
        return ZooError(
            f"{where}: rollback refused: it serves older signed metadata than this client has already seen ({text}); "
            "nothing cached"
        )
    if isinstance(error, tuf.ExpiredMetadataError):
        return ZooError(
            f"{where}: its signed metadata has expired ({text}): the server may be serving a frozen zoo, or the "
            "publisher has not re-signed it (qatzoo sign); refused, nothing cached"
        )
    if isinstance(error, (tuf.LengthOrHashMismatchError, tuf.DownloadLengthMismatchError)):
        return ZooError(
            f"{where}: a file does not match its signed length and sha256 ({text}); refused, nothing cached"
        )
    if isinstance(error, tuf.DownloadHTTPError):
        return ZooError(
            f"{where}: cannot read its TUF metadata ({text}); is it a signed zoo? (publishers: qatzoo sign)"
        )
    if isinstance(error, tuf.DownloadError):
        cause = error.__cause__ or error
        if isinstance(cause, ZooError):  # the reader's own line: a deadline, a refused redirect
            return cause
        return ZooError(f"{where}: cannot read its TUF metadata ({str(cause).splitlines()[0][:200]})")
    return ZooError(f"{where}: its signed metadata is refused ({text}); nothing cached")


class SignedZoo:
    """The TUF view of one index: its verified targets, read within ``clock``'s deadline."""

    def __init__(self, index_url: str, clock, trust=None, pin: bool = False):
        from qatzoo.extras import require

        require("trust", "reading a signed zoo (--trust, --pin or a root trusted in the cache)")
        from tuf.api import exceptions as tuf
        from tuf.ngclient import Updater, UpdaterConfig

        self.index_url, self.clock, self.base = index_url, clock, _base(index_url)
        self.dir = metadata_dir(index_url)
        bootstrap = _bootstrap(index_url, trust, pin, clock)
        from qatzoo.zoo.download import _CacheLock

        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # One refresh at a time per cache: ngclient replaces its files and root.json link in place.
            with _CacheLock(self.dir, clock, progress=False):
                self.updater = Updater(
                    metadata_dir=str(self.dir),
                    metadata_base_url=self.base + "metadata/",
                    target_base_url=self.base,
                    fetcher=_fetcher(clock),
                    # Consistent snapshots for the metadata; model files keep their plain paths in the zoo.
                    config=UpdaterConfig(prefix_targets_with_hash=False),
                    bootstrap=bootstrap,
                )
                self.updater.refresh()
        except ZooError:
            raise
        except (tuf.RepositoryError, tuf.DownloadError, ValueError) as error:
            raise _refusal(error, index_url) from None
        except OSError as error:
            raise ZooError(f"cannot write the zoo's TUF metadata to {self.dir}: {error.strerror or error}") from None

    def target(self, path: str):
        """The signed ``TargetFile`` of ``path`` (a path relative to the zoo); ZooError when it is not one."""
        from tuf.api import exceptions as tuf

        try:
            info = self.updater.get_targetinfo(path)
        except (tuf.RepositoryError, tuf.DownloadError) as error:
            raise _refusal(error, self.index_url) from None
        if info is None:
            raise ZooError(f"the signed zoo at {self.index_url} does not list {path} among its targets; refused")
        return info

    def read(self, path: str, what: str) -> bytes:
        """The bytes of target ``path``, checked against its signed length and sha256."""
        from tuf.api import exceptions as tuf

        from qatzoo.zoo.download import _read_bounded

        info = self.target(path)
        data = _read_bounded(self.base + path, self.clock, info.length, what)
        try:
            info.verify_length_and_hashes(data)
        except tuf.LengthOrHashMismatchError:
            raise ZooError(
                f"{what} at {self.base + path} does not match its signed length and sha256; refused, nothing cached"
            ) from None
        return data

    def targets_keys(self) -> list[bytes]:
        """The PEM public keys of the trusted root's targets role: the keys a model's bundle must be signed by."""
        from tuf.api.metadata import Metadata

        root = Metadata.from_file(str(self.dir / "root.json")).signed  # the root ngclient verified and keeps
        return [root.keys[keyid].keyval["public"].encode() for keyid in root.roles["targets"].keyids]


def verify_bundle(files: dict[str, bytes], bundle: bytes, public_pems: list[bytes]) -> None:
    """Check the model-signing ``bundle`` over ``files`` (name -> bytes, named as in a version folder) with any of
    ``public_pems``; one ZooError line when none verifies or the files are not exactly those it covers."""
    from model_signing import verifying

    reasons = []
    with tempfile.TemporaryDirectory(prefix="qatzoo-verify-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        (Path(tmp) / "bundle.sig").write_bytes(bundle)
        for i, pem in enumerate(public_pems):
            (Path(tmp) / f"key{i}.pem").write_bytes(pem)
            try:
                verifying.Config().use_elliptic_key_verifier(public_key=Path(tmp) / f"key{i}.pem").verify(
                    folder, Path(tmp) / "bundle.sig"
                )
                return
            except Exception as error:  # a hostile bundle: invalid signature, key mismatch, bad JSON or protobuf
                reasons.append(str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__)
    raise ZooError(f"the model-signing bundle does not verify ({'; '.join(dict.fromkeys(reasons)) or 'no key'})")


def copied_files(model: Path) -> dict[str, bytes]:
    """The files a bundle covers for a model copied elsewhere: ``model`` (a .tflite, or a version folder) and its
    contract and card beside it, by the names ``qatzoo download --to`` gives them (``NAME-VERSION.contract.json``)
    or the zoo's (``contract.json``, ``card.md``)."""
    from qatzoo.zoo.signing import SIGNED_FILES

    if model.is_dir():
        return {name: _read_copy(model / name) for name in SIGNED_FILES if (model / name).is_file()}
    if not os.path.lexists(model):
        raise ZooError(f"{model}: no such file")
    files = {"model_int8.tflite": _read_copy(model)}
    stem = model.name.removesuffix(".tflite")
    for name, suffix in (("contract.json", ".contract.json"), ("card.md", ".card.md")):
        for candidate in (model.with_name(stem + suffix), model.with_name(name)):
            if candidate.is_file():
                files[name] = _read_copy(candidate)
                break
    return files


def _read_copy(path: Path) -> bytes:
    """A copied file's bytes: a regular file (never a FIFO's endless wait) of at most the zoo's largest model."""
    from qatzoo.zoo.download import _open_regular
    from qatzoo.zoo.index import MAX_SIZE

    try:
        with _open_regular(path) as f:
            data = f.read(MAX_SIZE + 1)
    except OSError as error:
        raise ZooError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_SIZE:
        raise ZooError(f"{path} is larger than {MAX_SIZE} bytes: not a zoo model")
    return data


def verify_copy(model: str | os.PathLike, bundle: str | os.PathLike, key: str | os.PathLike) -> list[str]:
    """``qatzoo verify FILE --bundle B --key K``: the names of the files the bundle was checked over."""
    from qatzoo.extras import require

    require("trust", "qatzoo verify --bundle")
    from qatzoo.zoo.keys import load_public, public_pem

    model, bundle = Path(model), Path(bundle)
    pem = public_pem(load_public(key))
    files = copied_files(model)
    if not os.path.lexists(bundle):
        raise ZooError(f"bundle {bundle}: no such file")
    data = _read_copy(bundle)
    try:
        verify_bundle(files, data, [pem])
    except ZooError as error:
        covered = ", ".join(files)
        raise ZooError(f"{model}: {error} with {key} over {covered}; do not use this copy") from None
    return list(files)
