"""Verified downloads of published models: pinned by full sha256, cached, resumable, never half-visible.

The index comes from ``--index`` or ``$QATZOO_INDEX``: a local path (an index.json or a folder holding
one), a ``file://`` URL or an ``http(s)://`` URL; by default the repository's ``zoo/``. Files are
cached under ``$QATZOO_CACHE`` (default ``$XDG_CACHE_HOME/qatzoo`` or ``~/.cache/qatzoo``) as
``<name>/<version>/model_int8.tflite``, downloaded to ``.part`` and renamed only after the size and
sha256 match the index. A cached file is hashed again before every use.
"""

from __future__ import annotations

import http.client
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from qatzoo.zoo.index import MAX_SIZE, ZooError, check_name, check_version, default_zoo_dir, find, parse_index
from qatzoo.zoo.publish import sha256_file

SCHEMES = ("http", "https", "file")
MAX_INDEX_BYTES = 16 * 1024 * 1024
CHUNK = 64 * 1024


def cache_dir() -> Path:
    if os.environ.get("QATZOO_CACHE"):
        return Path(os.environ["QATZOO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qatzoo"


def _source_url(source: str | os.PathLike | None) -> str:
    source = source or os.environ.get("QATZOO_INDEX") or default_zoo_dir()
    text = str(source)
    scheme = urllib.parse.urlparse(text).scheme
    if scheme in ("http", "https", "file"):
        url = text
    elif scheme and len(scheme) > 1:
        raise ZooError(f"unsupported index URL scheme {scheme!r}: use http, https, file or a local path")
    else:
        url = Path(text).expanduser().absolute().as_uri()
    if url.startswith("file:") and Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)).is_dir():
        url = url.rstrip("/") + "/index.json"
    return url


def read_index(source=None, timeout: float = 30) -> tuple[dict, str]:
    """The parsed, validated index and the URL its relative locations resolve against."""
    url = _source_url(source)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            data = response.read(MAX_INDEX_BYTES + 1)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise ZooError(f"cannot read the zoo index at {url}: {getattr(error, 'reason', error)}") from error
    if len(data) > MAX_INDEX_BYTES:
        raise ZooError(f"the zoo index at {url} is larger than {MAX_INDEX_BYTES} bytes")
    return parse_index(data), url


def _model_url(entry: dict, index_url: str) -> str:
    url = urllib.parse.urljoin(index_url, entry["location"])
    if urllib.parse.urlparse(url).scheme not in SCHEMES:
        raise ZooError(f"{entry['name']}: unsupported URL {url}")
    return url


def _cached_path(entry: dict) -> Path:
    # Name and version are validated ([a-z0-9_-], digits): the path cannot leave the cache.
    return cache_dir() / check_name(entry["name"]) / check_version(entry["version"]) / "model_int8.tflite"


def _download(url: str, part: Path, size: int, progress: bool, timeout: float) -> bool:
    """Append to ``part`` up to ``size`` bytes; True when the response ended normally."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
        status = getattr(response, "status", 200)
        if have and status != 206:  # the server ignored the range: start over
            have = 0
        promised = response.headers.get("Content-Length")
        received = 0
        with (
            open(part, "ab" if have else "wb") as out,
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
                chunk = response.read(CHUNK)
                if not chunk:
                    if promised is not None and received < int(promised):
                        # The connection dropped mid-file: keep the part, retry with a Range request.
                        raise ConnectionError(f"connection closed after {received} of {promised} bytes")
                    return True
                have += len(chunk)
                received += len(chunk)
                if have > size:
                    raise ZooError(f"{url} is larger than the {size} bytes the index promises")
                out.write(chunk)
                bar.update(len(chunk))


def fetch(
    spec: str,
    index: str | os.PathLike | None = None,
    to: str | os.PathLike | None = None,
    progress: bool = True,
    retries: int = 4,
    timeout: float = 30,
) -> Path:
    """Download (or reuse from the cache) a published model, verify its sha256, return its path."""
    index_data, index_url = read_index(index, timeout)
    entry = find(index_data, spec)
    target = _cached_path(entry)
    if target.exists():
        if target.stat().st_size == entry["size"] and sha256_file(target) == entry["sha256"]:
            return _deliver(target, entry, to)
        target.unlink()  # a cached file that no longer matches is never used
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = _model_url(entry, index_url)
    if entry["size"] > MAX_SIZE:
        raise ZooError(f"{entry['name']}: {entry['size']} bytes is over the {MAX_SIZE}-byte limit")
    for attempt in range(retries + 1):
        try:
            _download(url, part, entry["size"], progress, timeout)
            break
        except ZooError:
            part.unlink(missing_ok=True)
            raise
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == retries:
                raise ZooError(f"download of {entry['name']} failed: HTTP {error.code} from {url}") from error
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            if attempt == retries:
                raise ZooError(
                    f"download of {entry['name']} failed after {retries + 1} tries ({getattr(error, 'reason', error)}); "
                    f"run the command again to resume"
                ) from error
        time.sleep(min(0.5 * 2**attempt, 8.0))
    got = part.stat().st_size if part.exists() else 0
    if got != entry["size"] or sha256_file(part) != entry["sha256"]:
        part.unlink(missing_ok=True)
        what = "truncated" if got < entry["size"] else "tampered"
        raise ZooError(
            f"{entry['name']}@{entry['version']} from {url} is {what}: its sha256 does not match the index; removed"
        )
    os.replace(part, target)
    return _deliver(target, entry, to)


def _deliver(path: Path, entry: dict, to) -> Path:
    if to is None:
        return path
    out = Path(to) / f"{entry['name']}-{entry['version']}.tflite"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.copyfile(path, tmp)
    os.replace(tmp, out)
    return out


def load(spec: str, **kwargs):
    """A ready LiteRT interpreter for a published model (downloaded and verified first)."""
    from qatzoo.export.litert import interpreter

    return interpreter(str(fetch(spec, **kwargs)))
