"""Verified downloads of published models: pinned by full sha256, cached, resumable, never half-visible.

The index comes from ``--index`` or ``$QATZOO_INDEX``: a local path (an index.json or a folder holding
one), a ``file://`` URL or an ``http(s)://`` URL; by default the repository's ``zoo/``. Files are
cached under ``$QATZOO_CACHE`` (default ``$XDG_CACHE_HOME/qatzoo`` or ``~/.cache/qatzoo``) as
``<name>/<version>/model_int8.tflite`` for the repository's own zoo and ``@<hash>/<name>/<version>/...`` for
any other index (``<hash>``: 12 hex digits of the sha256 of the index URL), downloaded to ``.part`` and renamed only after the size and
sha256 match the index. A cached file is hashed again before every use and never written again.

What a hostile index or server can and cannot do (README, "Security and reliability"):

- a location is plain segments (``[A-Za-z0-9_.-]``, no ``..``, no %-encoding) relative to the index,
  or an https URL; for a local or ``file://`` index the resolved path (symlinks followed) must stay
  inside the index's folder and be a regular file;
- redirects go to http(s) only, at most :data:`MAX_REDIRECTS`, never from https down to http;
- a stall (no byte for ``stall`` seconds), a low-speed limit (under ``speed_limit`` bytes/s for ``speed_time``
  seconds, like curl's ``--speed-limit/--speed-time``) and an overall deadline bound every download;
- one download per cached model at a time (a lock beside it): a second process waits and reuses the file;
- the ``.part`` file is opened without following symlinks and is appended to only while it is a regular file
  with one link (else it is discarded), a new one is created exclusively; a 416 on resume starts it over;
- a local index or model file is opened without blocking and read only when it is a regular file (no FIFO).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import math
import os
import re
import shutil
import socket
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from qatzoo.files import sha256_file, temporary_beside, write_bytes, write_json
from qatzoo.zoo.index import (
    MAX_INDEX_BYTES,
    IndexEntry,
    ZooError,
    check_name,
    check_version,
    checkout_zoo,
    entry_of,
    find,
    parse_index,
)

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Limits:
    """How long a download may take: ``stall`` s without a byte, ``deadline`` s in all (retries included), and
    the low-speed limit: a transfer averaging under ``speed_limit`` bytes/s over ``speed_time`` s is cut
    (curl's ``--speed-limit/--speed-time``; ``speed_limit`` 0 turns it off)."""

    stall: float = 30.0
    deadline: float = 600.0
    speed_limit: float = 1024.0
    speed_time: float = 30.0

    @classmethod
    def resolve(
        cls,
        stall: float | None = None,
        deadline: float | None = None,
        speed_limit: float | None = None,
        speed_time: float | None = None,
    ) -> Limits:
        """Arguments first, then ``$QATZOO_STALL_TIMEOUT`` / ``$QATZOO_DEADLINE`` / ``$QATZOO_SPEED_LIMIT`` /
        ``$QATZOO_SPEED_TIME``, then the defaults."""
        values = {}
        for key, given, env in (
            ("stall", stall, "QATZOO_STALL_TIMEOUT"),
            ("deadline", deadline, "QATZOO_DEADLINE"),
            ("speed_limit", speed_limit, "QATZOO_SPEED_LIMIT"),
            ("speed_time", speed_time, "QATZOO_SPEED_TIME"),
        ):
            value = given if given is not None else os.environ.get(env)
            if value is None:
                continue
            try:
                value = float(value)
            except ValueError:
                value = math.nan
            if key == "speed_limit":
                if not math.isfinite(value) or value < 0:
                    shown = given if given is not None else os.environ[env]
                    raise ZooError(f"{key} ({env}): expected a number of bytes per second >= 0, got {shown!r}")
            elif not math.isfinite(value) or value <= 0:
                shown = given if given is not None else os.environ[env]
                raise ZooError(f"{key} ({env}): expected a number of seconds > 0, got {shown!r}")
            values[key] = value
        return cls(**values)


class Clock:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.end = time.monotonic() + limits.deadline

    def left(self) -> float:
        return self.end - time.monotonic()

    def timeout(self) -> float:
        """The socket timeout of the next operation: the stall limit, cut to what the deadline leaves."""
        return max(0.05, min(self.limits.stall, self.left()))


class _DeadlinePassed(Exception):
    pass


class _TooSlow(Exception):
    """The transfer averaged under the low-speed limit for ``speed_time`` seconds; args: the rate seen."""


class _Speed:
    """curl's low-speed check: the average rate over each ``speed_time`` window must reach ``speed_limit``."""

    def __init__(self, limits: Limits):
        self.limits, self.start, self.bytes = limits, time.monotonic(), 0

    def add(self, n: int) -> None:
        self.bytes += n
        elapsed = time.monotonic() - self.start
        if self.limits.speed_limit and elapsed >= self.limits.speed_time:
            rate = self.bytes / elapsed
            if rate < self.limits.speed_limit:
                raise _TooSlow(rate)
            self.start, self.bytes = time.monotonic(), 0


class _RestrictedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow at most MAX_REDIRECTS redirects, to http(s) only, never from https down to http."""

    max_redirections = MAX_REDIRECTS

    def http_error_302(self, req, fp, code, msg, headers):
        newurl = headers.get("location") or headers.get("uri") or ""
        new = urllib.parse.urlparse(urllib.parse.urljoin(req.full_url, newurl)).scheme
        old = urllib.parse.urlparse(req.full_url).scheme
        if new not in ("http", "https") or (old == "https" and new == "http"):
            fp.close()
            raise ZooError(f"{req.full_url} redirects to {newurl[:200]!r}: only redirects to http(s) are followed")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _deadline_connection(base: type, clock: Clock):
    """An ``http.client`` connection class whose socket is shut down when ``clock``'s deadline passes.

    The stall timeout bounds each socket read, but a server can answer every read in time and never
    finish (headers a byte at a time, endless chunked trailers): only closing the socket from outside
    bounds that. The reader then sees a closed connection and the deadline check reports it.
    """

    class Connection(base):
        def connect(self):
            super().connect()
            sock = self.sock
            self._deadline_timer = threading.Timer(max(0.0, clock.left()), _shut, args=(sock,))
            self._deadline_timer.daemon = True
            self._deadline_timer.start()

        def getresponse(self):
            response = super().getresponse()
            timer, close = getattr(self, "_deadline_timer", None), response.close

            def close_and_cancel():  # urllib drops the connection and keeps the response: cancel with it
                if timer is not None:
                    timer.cancel()
                close()

            response.close = close_and_cancel
            return response

        def close(self):
            timer = getattr(self, "_deadline_timer", None)
            if timer is not None and self.sock is not None:
                timer.cancel()
            super().close()

    return Connection


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _opener(clock: Clock) -> urllib.request.OpenerDirector:
    """Restricted redirects, and http(s) connections that the deadline closes."""
    http_class = _deadline_connection(http.client.HTTPConnection, clock)
    https_class = _deadline_connection(http.client.HTTPSConnection, clock)

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(http_class, req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(https_class, req, context=self._context)

    return urllib.request.build_opener(_RestrictedRedirects, Http, Https)


def cache_dir() -> Path:
    if os.environ.get("QATZOO_CACHE"):
        return Path(os.environ["QATZOO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qatzoo"


def _source_url(source: str | os.PathLike | None) -> str:
    source = source or os.environ.get("QATZOO_INDEX") or checkout_zoo()
    if source is None:
        raise ZooError(
            "no zoo index given: pass --index or set QATZOO_INDEX (a path, file:// or http(s):// URL of an index.json)"
        )
    text = str(source)
    scheme = urllib.parse.urlparse(text).scheme
    if scheme in ("http", "https", "file"):
        url = text
    elif scheme and len(scheme) > 1:
        raise ZooError(f"unsupported index URL scheme {scheme!r}: use http, https, file or a local path")
    else:
        url = Path(text).expanduser().absolute().as_uri()
    if url.startswith("file:") and _local_path(url).is_dir():
        url = url.rstrip("/") + "/index.json"
    return url


def _local_path(file_url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(file_url).path))


def _open_regular(path: Path):
    """``path`` opened for reading when it is a regular file; one ZooError line otherwise (a FIFO would hang
    ``open``, a device never end): opened without blocking, then checked on the open file itself."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ZooError(f"{path} is {kind}: only regular files are read")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _open(url: str, clock: Clock, headers: dict | None = None):
    """A response for an http(s) URL (restricted redirects, stall-limited socket) or a local regular file."""
    if url.startswith("file:"):
        return _open_regular(_local_path(url))
    if clock.left() <= 0:
        raise _DeadlinePassed
    try:
        return _opener(clock).open(urllib.request.Request(url, headers=headers or {}), timeout=clock.timeout())
    except NETWORK_ERRORS:
        if clock.left() <= 0:  # the deadline closed the connection
            raise _DeadlinePassed from None
        raise


def _read1(response, clock: Clock) -> bytes:
    """The next bytes as soon as any arrive (``read`` would wait for a whole chunk from a trickle)."""
    if clock.left() <= 0:
        raise _DeadlinePassed
    try:
        chunk = response.read1(CHUNK)
    except NETWORK_ERRORS:
        if clock.left() <= 0:
            raise _DeadlinePassed from None
        raise
    if clock.left() <= 0:  # what arrived as (or after) the deadline closed the socket is not trusted
        raise _DeadlinePassed
    return chunk


@dataclass(frozen=True)
class OpenedIndex:
    """An index read for one command: its parsed entries, the URL its locations resolve against, and - for a
    signed zoo read through TUF - the :class:`~qatzoo.zoo.trust.SignedZoo` its files are verified with."""

    index: dict
    url: str
    signed: object | None = None


def open_index(
    source=None,
    clock: Clock | None = None,
    limits: Limits | None = None,
    trust: str | os.PathLike | None = None,
    pin: bool = False,
) -> OpenedIndex:
    """Read and validate the index; through TUF when a root is trusted for it (:func:`qatzoo.zoo.trust.wanted`:
    ``trust``, ``$QATZOO_TRUST``, ``pin`` or a root already trusted in the cache), else as served."""
    clock = clock or Clock(limits or Limits.resolve())
    url = _source_url(source)
    from qatzoo.zoo.trust import wanted

    if wanted(url, trust, pin):
        from qatzoo.zoo.trust import SignedZoo

        signed = SignedZoo(url, clock, trust, pin)
        if signed.target("index.json").length > MAX_INDEX_BYTES:
            raise ZooError(f"the zoo index at {url} is larger than {MAX_INDEX_BYTES} bytes")
        return OpenedIndex(parse_index(signed.read("index.json", "the zoo index")), url, signed)
    data = _read_bounded(url, clock, MAX_INDEX_BYTES, "the zoo index")
    return OpenedIndex(parse_index(bytes(data)), url)


def read_index(
    source=None,
    timeout: float | None = None,
    limits: Limits | None = None,
    clock: Clock | None = None,
    trust: str | os.PathLike | None = None,
    pin: bool = False,
) -> tuple[dict, str]:
    """The parsed, validated index and the URL its relative locations resolve against (see :func:`open_index`).

    ``clock``: a running deadline shared with the download that follows (one per command).
    """
    limits = limits or Limits.resolve(stall=timeout)
    opened = open_index(source, clock or Clock(limits), trust=trust, pin=pin)
    return opened.index, opened.url


def _read_bounded(url: str, clock: Clock, limit: int, what: str) -> bytes:
    """The bytes at ``url`` (at most ``limit``), within ``clock``'s deadline and low-speed limit; ZooError if not."""
    data, speed = bytearray(), _Speed(clock.limits)
    try:
        with _open(url, clock) as response:
            while len(data) <= limit:
                chunk = _read1(response, clock)
                if not chunk:
                    break
                data += chunk
                speed.add(len(chunk))
    except (_DeadlinePassed, _TooSlow, *NETWORK_ERRORS) as error:
        raise read_error(error, what, url, clock.limits) from None
    if len(data) > limit:
        raise ZooError(f"{what} at {url} is larger than {limit} bytes")
    return bytes(data)


def read_error(error: BaseException, what: str, url: str, limits: Limits) -> ZooError:
    """The one line for a read of ``what`` at ``url`` that met the deadline, the low-speed limit or the network."""
    if isinstance(error, ZooError):
        return error
    if isinstance(error, _DeadlinePassed):
        return ZooError(f"reading {what} at {url} took longer than {limits.deadline:g} s")
    if isinstance(error, _TooSlow):
        return ZooError(
            f"reading {what} at {url} averaged {error.args[0]:.0f} B/s over {limits.speed_time:g} s, under the "
            f"low-speed limit of {limits.speed_limit:g} B/s (QATZOO_SPEED_LIMIT/QATZOO_SPEED_TIME or "
            "--speed-limit/--speed-time)"
        )
    return ZooError(f"cannot read {what} at {url}: {_reason(error)}")


#: A model card larger than this is not downloaded (the published ones are 3-6 kB).
MAX_CARD_BYTES = 256 * 1024


def fetch_card(entry: dict | IndexEntry, index_url: str, clock: Clock, to=None) -> Path | None:
    """The card of an index entry as ``card.md`` beside the cached model (and ``NAME-VERSION.card.md`` in ``to``):
    text of at most :data:`MAX_CARD_BYTES`, UTF-8, written as data. None for an entry published without one.
    The index holds no hash of the card: it is documentation, not the model (the model's sha256 is checked)."""
    entry = entry_of(entry)
    if entry.card is None:
        return None
    label = f"the card of {entry.name}@{entry.version}"
    target = _cached_path(entry, index_url).with_name("card.md")
    cached = target.is_file() and not target.is_symlink() and target.stat().st_size <= MAX_CARD_BYTES
    if cached:  # a published version never changes: the card fetched once is reused
        text = target.read_bytes()
    else:
        text = _read_bounded(model_url(entry, index_url, entry.card), clock, MAX_CARD_BYTES, label)
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        raise ZooError(f"{label} is not UTF-8 text") from None
    return _keep(target, text, not cached, to, f"{entry.name}-{entry.version}.card.md", label)


def _keep(target: Path, data: bytes, fresh: bool, to, name: str, label: str) -> Path:
    """A fetched card or sample written beside the cached model (when ``fresh``) and as ``name`` in ``to``."""
    try:
        if fresh:
            write_bytes(target, data)
        if to is not None:
            write_bytes(Path(to) / name, data)
    except OSError as error:
        raise ZooError(f"cannot write {label}: {error.strerror or error}") from None
    return target


def fetch_sample(entry: dict | IndexEntry, index_url: str, clock: Clock, to=None) -> Path | None:
    """The sample input of an index entry as ``sample<suffix>`` beside the cached model (and
    ``NAME-VERSION.sample<suffix>`` in ``to``), its size and sha256 checked against the index like the model's:
    it is an input the card's snippet runs the model on. None for an entry published without one."""
    entry = entry_of(entry)
    sample = entry.sample
    if sample is None:
        return None
    label = f"the sample input of {entry.name}@{entry.version}"
    suffix = Path(sample.location).suffix
    target = _cached_path(entry, index_url).with_name(f"sample{suffix}")

    def matches(data: bytes) -> bool:
        return len(data) == sample.size and hashlib.sha256(data).hexdigest() == sample.sha256

    data = None
    if target.is_file() and not target.is_symlink() and target.stat().st_size == sample.size:
        data = target.read_bytes()  # a published version never changes: reused when it still matches
        if not matches(data):
            data = None
    fresh = data is None
    if fresh:
        data = _read_bounded(model_url(entry, index_url, sample.location), clock, sample.size, label)
        if not matches(data):
            raise ZooError(f"{label} is tampered or truncated: its size or sha256 does not match the index; not saved")
    return _keep(target, data, fresh, to, f"{entry.name}-{entry.version}.sample{suffix}", label)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error or type(error).__name__
    return str(reason).splitlines()[0][:200] if str(reason) else type(error).__name__


def model_url(entry: IndexEntry, index_url: str, location: str | None = None) -> str:
    """Where the model of ``entry`` (or another of its files, ``location``: its card) lives: an http(s) URL, or
    a file:// URL checked to stay in the zoo."""
    location = entry.location if location is None else location
    if location.startswith("https://"):
        return location
    url = urllib.parse.urljoin(index_url, location)
    base = index_url.rsplit("/", 1)[0] + "/"
    if not url.startswith(base):
        raise ZooError(f"{entry.name}: location {location!r} leaves the index's folder")
    if url.startswith("file:"):
        root = _local_path(base).resolve()
        try:
            path = _local_path(url).resolve(strict=True)
        except (OSError, RuntimeError):
            raise ZooError(f"{entry.name}: {location} is missing from the zoo at {root}") from None
        if not path.is_relative_to(root):
            raise ZooError(f"{entry.name}: {location} resolves to {path}, outside the zoo's folder {root}")
        if not stat.S_ISREG(path.stat().st_mode):
            raise ZooError(f"{entry.name}: {location} is not a regular file")
        return path.as_uri()
    return url


def index_cache(index_url: str) -> Path:
    """Where the models of the index at ``index_url`` are cached: the cache itself for the repository's own
    zoo, ``@<12 hex digits of sha256(index_url)>`` in it for any other (``@`` is never in a model name), so
    two indexes that publish the same name and version never share a cached file or a ``.part``."""
    default = checkout_zoo()
    if default is not None and index_url == _source_url(default):
        return cache_dir()
    return cache_dir() / f"@{hashlib.sha256(index_url.encode()).hexdigest()[:12]}"


def _cached_path(entry: IndexEntry, index_url: str) -> Path:
    # Name and version are validated ([a-z0-9_-], digits): the path cannot leave the cache.
    return index_cache(index_url) / check_name(entry.name) / check_version(entry.version) / "model_int8.tflite"


def _part_size(part: Path) -> int:
    """Bytes already in ``part``; anything there that is not a regular file with one link (a symlink, a FIFO,
    a hard link to another file) is removed, never appended to."""
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        part.unlink()
        return 0
    return info.st_size


def _open_part(part: Path, append: bool):
    """``part`` for appending (only while it is a regular file with one link, checked on the open file), or
    created afresh: whatever was there unlinked first, then created exclusively, never through a symlink."""
    if append:
        fd = os.open(part, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            os.set_blocking(fd, True)
            return os.fdopen(fd, "ab")
        os.close(fd)
        raise _StartOver
    part.unlink(missing_ok=True)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "wb")


class _StartOver(Exception):
    """The server cannot continue the partial file: discard it and download from the start."""


CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def _download(url: str, part: Path, size: int, progress: bool, clock: Clock) -> None:
    """Append to ``part`` up to ``size`` bytes, resuming with a Range request when part of it is there."""
    have = _part_size(part)
    headers = {"Range": f"bytes={have}-"} if have and not url.startswith("file:") else {}
    try:
        response = _open(url, clock, headers)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            raise _StartOver from None
        raise
    with response:
        status = getattr(response, "status", 200)
        if have and status == 206:
            match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise _StartOver
        elif have:  # the server ignored the range (or a file): start over in this response
            have = 0
        promised = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        if promised is not None and promised.isdigit() and have + int(promised) > size:
            raise ZooError(f"{url} is larger than the {size} bytes the index promises")
        received, speed = 0, _Speed(clock.limits)
        with (
            _open_part(part, append=bool(have)) as out,
            tqdm(
                total=size,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not progress or None,
                leave=False,
            ) as bar,
        ):
            while True:
                chunk = _read1(response, clock)
                if not chunk:
                    if promised is not None and promised.isdigit() and received < int(promised):
                        # The connection dropped mid-file: keep the part, retry with a Range request.
                        raise ConnectionError(f"connection closed after {received} of {promised} bytes")
                    return
                have += len(chunk)
                received += len(chunk)
                if have > size:
                    raise ZooError(f"{url} is larger than the {size} bytes the index promises")
                out.write(chunk)
                bar.update(len(chunk))
                speed.add(len(chunk))


class _CacheLock:
    """An exclusive lock on one cached model, so one process downloads it while the others wait."""

    def __init__(self, directory: Path, clock: Clock, progress: bool):
        self.path, self.clock, self.progress = directory / ".lock", clock, progress

    def __enter__(self):
        # Never through a symlink planted at the lock's name (``open(.., "a")`` would create its target).
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        self.file = os.fdopen(fd, "a")
        told = False
        while True:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if self.clock.left() <= 0:
                    self.file.close()
                    raise ZooError(f"another download of this model still holds {self.path}") from None
                if self.progress and not told:
                    print(f"waiting for another download of the same model ({self.path})", flush=True)
                    told = True
                time.sleep(0.1)

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _valid(path: Path, entry: IndexEntry) -> bool:
    try:
        return path.is_file() and path.stat().st_size == entry.size and sha256_file(path) == entry.sha256
    except OSError:
        return False


def fetch(
    spec: str,
    index: str | os.PathLike | None = None,
    to: str | os.PathLike | None = None,
    progress: bool = True,
    retries: int = 4,
    timeout: float | None = None,
    deadline: float | None = None,
    speed_limit: float | None = None,
    speed_time: float | None = None,
    card: bool = True,
    trust: str | os.PathLike | None = None,
    pin: bool = False,
) -> Path:
    """Download (or reuse from the cache) a published model, verify its sha256, return its path; its contract
    and (``card``) its card and sample input are written beside it (``contract.json``, ``card.md``,
    ``sample.png``/``.npy``/``.csv``, the sample verified against the index's sha256).

    ``timeout``: seconds without a byte before a try is abandoned (``$QATZOO_STALL_TIMEOUT``, 30);
    ``deadline``: seconds for the whole download, retries included (``$QATZOO_DEADLINE``, 600);
    ``speed_limit``/``speed_time``: a transfer under ``speed_limit`` bytes/s for ``speed_time`` s is cut
    (``$QATZOO_SPEED_LIMIT``, 1024; ``$QATZOO_SPEED_TIME``, 30).
    ``trust``: a TUF root.json to verify the zoo with (``$QATZOO_TRUST``); ``pin``: trust the zoo's own root on
    first use and keep it in the cache (:mod:`qatzoo.zoo.trust`).
    """
    limits = Limits.resolve(stall=timeout, deadline=deadline, speed_limit=speed_limit, speed_time=speed_time)
    clock = Clock(limits)  # one deadline: index and model
    opened = open_index(index, clock, trust=trust, pin=pin)
    index_url = opened.url
    entry = find(opened.index, spec)
    path = fetch_entry(entry, index_url, clock, to=to, progress=progress, retries=retries, signed=opened.signed)
    if card:
        for extra in (fetch_card, fetch_sample):
            try:
                extra(entry, index_url, clock, to=to)
            except ZooError as error:  # the model is verified and kept; card and sample are beside it
                import sys

                from qatzoo.errors import error_line

                print(
                    error_line(error).replace("error:", "warning:", 1) + "; the model itself is verified",
                    file=sys.stderr,
                )
    return path


def fetch_entry(
    entry: dict | IndexEntry,
    index_url: str,
    clock: Clock,
    to=None,
    progress: bool = True,
    retries: int = 4,
    signed=None,
) -> Path:
    """Download (or reuse) the model of an index entry already read, within ``clock``'s deadline.

    ``signed``: the :class:`~qatzoo.zoo.trust.SignedZoo` of a signed index: the model is pinned by its signed
    length and sha256, its contract, card and model-signing bundle are fetched as signed targets, and the bundle
    is verified with the trusted targets key before the model is returned (else it all leaves the cache)."""
    entry = entry_of(entry)
    target = _cached_path(entry, index_url)
    url = model_url(entry, index_url)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _CacheLock(target.parent, clock, progress):
            companions, checked = _signed_companions(entry, signed, target) if signed is not None else (None, False)
            if not _valid(target, entry):
                target.unlink(missing_ok=True)  # a cached file that no longer matches is never used
                _fetch_to_cache(entry, url, target, progress, retries, clock)
                checked = False
            if companions is not None and not checked:
                _check_bundle(entry, target, companions, signed)
        if companions is None and entry.contract is not None:  # the index entry's contract, beside the model
            write_json(target.with_name("contract.json"), entry.contract.plain)
    except OSError as error:
        raise ZooError(
            f"cannot write to the download cache {cache_dir()}: {error.strerror or error} "
            "(set QATZOO_CACHE to a writable folder)"
        ) from None
    return _deliver(target, entry, to, signed=companions is not None)


def _signed_companions(entry: IndexEntry, signed, target: Path) -> tuple[dict[str, bytes], bool]:
    """The signed files a model's bundle covers besides the model (contract, card: those the zoo lists), and the
    bundle itself, each checked against its signed length and sha256 (from the cache when the cached copy
    matches, else fetched); the model's own pins checked against the signed targets. Also whether all of them came
    from the cache: their bundle was then verified when they were cached, and is not verified again."""
    from tuf.api.exceptions import LengthOrHashMismatchError

    from qatzoo.zoo.signing import BUNDLE

    label = f"{entry.name}@{entry.version}"
    if entry.location.startswith("https://"):
        raise ZooError(f"{label}: a signed zoo's models lie in the zoo, not at {entry.location}")
    info = signed.target(entry.location)
    if info.length != entry.size or info.hashes.get("sha256") != entry.sha256:
        raise ZooError(f"{label}: index.json and the zoo's signed targets disagree on {entry.location}; refused")
    folder = entry.location.rpartition("/")[0]
    files, cached = {}, True
    for name in ("contract.json", "card.md", BUNDLE):
        path = f"{folder}/{name}"
        info = signed.updater.get_targetinfo(path)
        if info is None and name != BUNDLE:
            continue
        mine = target.with_name(name)
        if info is not None and mine.is_file() and not mine.is_symlink() and mine.stat().st_size == info.length:
            data = mine.read_bytes()
            try:
                info.verify_length_and_hashes(data)
                files[name] = data
                continue
            except LengthOrHashMismatchError:
                pass
        files[name], cached = signed.read(path, f"{name} of {label}"), False
    return files, cached


def _check_bundle(entry: IndexEntry, target: Path, companions: dict[str, bytes], signed) -> None:
    """Write the signed companions beside the cached model and verify the model-signing bundle over the three
    with the trusted targets key; on a refusal nothing of the model stays in the cache."""
    from qatzoo.zoo.signing import BUNDLE
    from qatzoo.zoo.trust import verify_bundle

    files = {"model_int8.tflite": target.read_bytes(), **{k: v for k, v in companions.items() if k != BUNDLE}}
    try:
        verify_bundle(files, companions[BUNDLE], signed.targets_keys())
    except ZooError as error:
        for name in ("model_int8.tflite", *companions):
            target.with_name(name).unlink(missing_ok=True)
        raise ZooError(
            f"{entry.name}@{entry.version}: {error} with the zoo's trusted targets key; refused, nothing cached"
        ) from None
    for name, data in companions.items():
        write_bytes(target.with_name(name), data)


def _fetch_to_cache(entry: IndexEntry, url: str, target: Path, progress: bool, retries: int, clock: Clock) -> None:
    part = target.with_name(target.name + ".part")
    label = f"{entry.name}@{entry.version}"
    attempt = 0
    while True:
        try:
            _download(url, part, entry.size, progress, clock)
            break
        except ZooError:
            part.unlink(missing_ok=True)
            raise
        except _StartOver:
            part.unlink(missing_ok=True)
            error = None
        except _DeadlinePassed:
            raise ZooError(
                f"download of {label} did not finish within {clock.limits.deadline:g} s (QATZOO_DEADLINE or "
                "--deadline); the partial file is kept: run the command again to resume"
            ) from None
        except _TooSlow as slow:
            limits = clock.limits
            raise ZooError(
                f"download of {label} averaged {slow.args[0]:.0f} B/s over {limits.speed_time:g} s, under the "
                f"low-speed limit of {limits.speed_limit:g} B/s (QATZOO_SPEED_LIMIT/QATZOO_SPEED_TIME or "
                "--speed-limit/--speed-time); the partial file is kept: run the command again to resume"
            ) from None
        except urllib.error.HTTPError as http_error:
            if http_error.code < 500 or attempt >= retries:
                raise ZooError(f"download of {label} failed: HTTP {http_error.code} from {url}") from None
            error = http_error
        except NETWORK_ERRORS as network_error:
            if isinstance(network_error, OSError) and network_error.errno in (errno.EACCES, errno.EROFS, errno.ENOSPC):
                raise
            if attempt >= retries:
                raise ZooError(
                    f"download of {label} failed after {retries + 1} tries ({_reason(network_error)}); the partial "
                    "file is kept: run the command again to resume"
                ) from None
            error = network_error
        attempt += 1
        if error is not None:
            time.sleep(max(0.0, min(0.5 * 2**attempt, 8.0, clock.left())))
    # Hashed and made read-only through one descriptor opened without following a link, so what is checked is
    # what is renamed into the cache, and no chmod reaches a file a link planted at the name points to.
    try:
        fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = None
    try:
        info = os.fstat(fd) if fd is not None else None
        plain = info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink == 1
        got = info.st_size if plain else 0
        digest = _sha256_fd(fd) if plain and got == entry.size else None
        if digest != entry.sha256:
            part.unlink(missing_ok=True)
            what = "truncated" if got < entry.size else "tampered"
            raise ZooError(f"{label} from {url} is {what}: its sha256 does not match the index; removed")
        os.fchmod(fd, 0o444)  # the cached file is only ever replaced, never written
    finally:
        if fd is not None:
            os.close(fd)
    os.replace(part, target)


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    for block in iter(lambda: os.read(fd, 1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _deliver(path: Path, entry: IndexEntry, to, signed: bool = False) -> Path:
    if to is None:
        return path
    folder = Path(to)
    if folder.exists() and not folder.is_dir():
        raise ZooError(f"--to {folder}: not a directory")
    out = folder / f"{entry.name}-{entry.version}.tflite"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A fresh temporary name, created exclusively without following symlinks (O_EXCL, O_NOFOLLOW), with the
        # mode the user's umask gives (the user's copy, not the cache's read-only file): nothing planted in the
        # folder is written through; the rename replaces a link at ``out``, not its target.
        fd, tmp = temporary_beside(out)
        try:
            with os.fdopen(fd, "wb") as dst, open(path, "rb") as src:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, out)
        finally:
            Path(tmp).unlink(missing_ok=True)
        if signed:  # the signed bytes the bundle covers, and the bundle: verify --bundle checks the copy later
            from qatzoo.zoo.signing import BUNDLE

            for name, suffix in (("contract.json", ".contract.json"), (BUNDLE, ".sig")):
                if path.with_name(name).is_file():
                    write_bytes(folder / f"{entry.name}-{entry.version}{suffix}", path.with_name(name).read_bytes())
        elif entry.contract is not None:
            write_json(folder / f"{entry.name}-{entry.version}.contract.json", entry.contract.plain)
    except OSError as error:
        raise ZooError(f"cannot write {out}: {error.strerror or error}") from None
    return out


def load(
    spec: str,
    index: str | os.PathLike | None = None,
    trust: str | os.PathLike | None = None,
    pin: bool = False,
    **kwargs,
):
    """A published model, downloaded and verified first, behind its contract (:class:`qatzoo.model.Model`):
    ``load(name).predict(raw)``; ``.interpreter`` is the LiteRT interpreter, ``.contract`` the contract.
    ``trust``/``pin``: verify a signed zoo through TUF (see :func:`fetch`)."""
    from qatzoo.model import Model

    clock = Clock(
        Limits.resolve(
            stall=kwargs.pop("timeout", None),
            deadline=kwargs.pop("deadline", None),
            speed_limit=kwargs.pop("speed_limit", None),
            speed_time=kwargs.pop("speed_time", None),
        )
    )
    opened = open_index(index, clock, trust=trust, pin=pin)
    entry = entry_of(find(opened.index, spec))
    if entry.contract is None:
        raise ZooError(f"{entry.name}@{entry.version} was published without a contract; use zoo.fetch for the file")
    return Model(fetch_entry(entry, opened.url, clock, signed=opened.signed, **kwargs), entry.contract)
