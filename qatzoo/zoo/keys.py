"""Publisher keys: ``qatzoo keys new DIR`` makes an elliptic-curve (P-256) key pair that both libraries read.

    DIR/private.pem   PKCS#8 PEM, mode 0600: model-signing's ``use_elliptic_key_signer`` and securesystemslib's
                      ``CryptoSigner`` (the TUF metadata) both load it
    DIR/public.pem    SubjectPublicKeyInfo PEM: ``qatzoo verify FILE --bundle B --key DIR/public.pem`` and
                      model-signing's ``use_elliptic_key_verifier``; its TUF form (``SSlibKey``) is in the zoo's root

The private key never enters a zoo folder or an index: ``keys new`` refuses a folder inside a zoo, and a key
that a zoo's publish or sign is given is refused when it lies inside that zoo, when it is readable by group or
others (``chmod 600``), or when it is not a regular file. Keys are not encrypted (no passphrase): keep the file on
the publisher's machine, or on a removable disk.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from qatzoo.zoo.index import ZooError

PRIVATE, PUBLIC = "private.pem", "public.pem"
#: The curves model-signing signs with (it refuses others); TUF's ecdsa schemes cover the first two.
CURVES = {"secp256r1": "ecdsa-sha2-nistp256", "secp384r1": "ecdsa-sha2-nistp384"}
MAX_KEY_BYTES = 64 * 1024


def _crypto():
    from qatzoo.extras import require

    require("trust", "signing and verifying (qatzoo keys, publish --sign, --trust, verify --bundle)")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return serialization, ec


def inside_a_zoo(path: Path) -> Path | None:
    """The zoo folder (one holding ``index.json`` or TUF ``metadata/root.json``) that ``path`` lies in, if any."""
    path = Path(path).expanduser().absolute()
    for folder in (path, *path.parents):
        if (folder / "index.json").is_file() or (folder / "metadata" / "root.json").is_file():
            return folder
    from qatzoo.zoo.index import checkout_zoo

    checkout = checkout_zoo()
    if checkout is not None and path.resolve().is_relative_to(checkout.resolve()):
        return checkout
    return None


def new(directory: str | Path) -> tuple[Path, Path]:
    """Write a new key pair into ``directory`` (created; existing key files are never overwritten)."""
    serialization, ec = _crypto()
    directory = Path(directory)
    zoo = inside_a_zoo(directory)
    if zoo is not None:
        raise ZooError(f"{directory} is inside the zoo {zoo}: a private key never goes into a zoo folder")
    private_path, public_path = directory / PRIVATE, directory / PUBLIC
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise ZooError(f"{path} already exists; not overwriting a key (choose another folder)")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(private_path, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)  # whatever the umask
            out.write(pem)
        with os.fdopen(os.open(public_path, flags, 0o644), "wb") as out:
            out.write(public)
    except OSError as error:
        raise ZooError(f"cannot write a key into {directory}: {error.strerror or error}") from None
    return private_path, public_path


@dataclass(frozen=True)
class PrivateKey:
    """A publisher's private key, checked: ``path`` (what model-signing reads), ``key`` (cryptography's)."""

    path: Path
    key: object

    def public_pem(self) -> bytes:
        serialization, _ = _crypto()
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def tuf_key(self):
        """The public key as TUF's root lists it (securesystemslib ``SSlibKey``, ecdsa)."""
        return tuf_key(self.key.public_key())

    def signer(self):
        """A securesystemslib signer for TUF metadata."""
        from securesystemslib.signer import CryptoSigner

        return CryptoSigner(self.key, self.tuf_key())


def tuf_key(public_key):
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(public_key, scheme=CURVES[public_key.curve.name])


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ZooError(f"{what} {path}: no such file") from None
    except OSError as error:
        raise ZooError(f"cannot read {what} {path}: {error.strerror or error}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ZooError(f"{what} {path} is not a regular file")
        if what == "private key" and info.st_mode & 0o077:
            raise ZooError(
                f"private key {path} is readable or writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}):"
                f" chmod 600 {path}"
            )
        data = f.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise ZooError(f"{what} {path} is larger than {MAX_KEY_BYTES} bytes: not a PEM key")
    return data


def load_private(path: str | Path, zoo_dir: str | Path | None = None) -> PrivateKey:
    """The private key at ``path`` (a key file, or a folder holding ``private.pem``), checked: a regular file of mode
    0600 or stricter, outside ``zoo_dir``, an unencrypted PEM elliptic-curve key of a curve both libraries sign with."""
    serialization, ec = _crypto()
    path = Path(path)
    if path.is_dir():
        path = path / PRIVATE
    if zoo_dir is not None and path.absolute().resolve().is_relative_to(Path(zoo_dir).absolute().resolve()):
        raise ZooError(f"private key {path} lies inside the zoo {zoo_dir}: a private key never goes into a zoo folder")
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ZooError(
            f"private key {path} is encrypted: qatzoo signs with unencrypted keys (qatzoo keys new)"
        ) from None
    except Exception as error:  # cryptography raises several kinds for a file that is not a key
        raise ZooError(f"private key {path} is not a PEM private key ({str(error).splitlines()[0][:100]})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in CURVES:
        raise ZooError(f"private key {path}: expected an elliptic-curve key on P-256 or P-384 (qatzoo keys new)")
    return PrivateKey(path, key)


def load_public(path: str | Path):
    """The public key at ``path`` (a PEM file, or a folder holding ``public.pem``): cryptography's key object."""
    serialization, ec = _crypto()
    path = Path(path)
    if path.is_dir():
        path = path / PUBLIC
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as error:  # as above
        raise ZooError(f"public key {path} is not a PEM public key ({str(error).splitlines()[0][:100]})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in CURVES:
        raise ZooError(f"public key {path}: expected an elliptic-curve key on P-256 or P-384")
    return key


def public_pem(public_key) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
