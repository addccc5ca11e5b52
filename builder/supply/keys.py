"""Key pairs: generate, store, load, sign and verify. Cosign-compatible files.

Private keys are written the way ``cosign generate-key-pair`` writes them: a PEM block of type
``ENCRYPTED SIGSTORE PRIVATE KEY`` whose body is go-securesystemslib's ``encrypted`` JSON,
``{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name":
"nacl/secretbox", "nonce"}, "ciphertext"}``, around the PKCS#8 DER of an ECDSA P-256 key.
cosign reads our keys and we read cosign's (and the older ``ENCRYPTED COSIGN PRIVATE KEY``,
and PKCS#8 ``ENCRYPTED PRIVATE KEY`` / plain ``PRIVATE KEY`` PEM as other tools write them).
Public keys are PEM SubjectPublicKeyInfo (``PUBLIC KEY``), as cosign writes ``cosign.pub``.

Signatures are ASN.1 DER ECDSA over SHA-256 (SHA-384/512 for P-384/P-521 keys, as cosign
does); RSA (PKCS#1 v1.5, SHA-256) and Ed25519 public keys are accepted for verification.

Secrets: passwords and private key bytes are never put into an error message, a log line or
anything written but the encrypted key file (mode 0600).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, TypeVar, Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from builder import jsonsafe
from builder.inputfile import read_input
from builder.supply import secretbox
from builder.supply.errors import KeyFileError, PasswordError

SIGSTORE_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"  # cosign before 2.0
PASSWORD_ENV = "PALLET_PASSWORD"

#: scrypt parameters go-securesystemslib accepts (legacy, standard, OWASP); we write legacy,
#: which every cosign version reads. Anything else is refused: an N of 2^40 in a key file
#: would make opening it a denial of service.
SCRYPT_ACCEPTED = {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}
SCRYPT_WRITE = (32768, 8, 1)

PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey]
PrivateKey = ec.EllipticCurvePrivateKey
#: What a key loader gives (a public or a private key).
KeyT = TypeVar("KeyT")

_HASH_FOR_CURVE: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}


def _public(key: "PublicKey | PrivateKey") -> PublicKey:
    return key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key


# -- the encrypted envelope (pure) -------------------------------------------------------------


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=secretbox.KEY_SIZE,
                          maxmem=256 * 1024 * 1024)


def encrypt_envelope(plaintext: bytes, password: bytes, *, salt: bytes | None = None,
                     nonce: bytes | None = None) -> bytes:
    """go-securesystemslib's ``encrypted.Encrypt``: the JSON, fields in its order."""
    salt = os.urandom(32) if salt is None else salt
    nonce = os.urandom(secretbox.NONCE_SIZE) if nonce is None else nonce
    n, r, p = SCRYPT_WRITE
    box = secretbox.seal(plaintext, nonce, _scrypt(password, salt, n, r, p))
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": b64(salt)},
           "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)}, "ciphertext": b64(box)}
    return json.dumps(doc, separators=(",", ":")).encode()


def decrypt_envelope(data: bytes, password: bytes, what: str = "key") -> bytes:
    """The plaintext of go-securesystemslib ``encrypted`` JSON; PasswordError if it does not open."""
    try:
        doc = jsonsafe.loads(data)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        box = base64.b64decode(doc["ciphertext"], validate=True)
        names = (kdf["name"], cipher["name"])
    except (ValueError, KeyError, TypeError, OverflowError) as exc:  # OverflowError: "N": 1e999 is int(inf)
        raise KeyFileError(f"{what}: not a readable encrypted key ({type(exc).__name__})") from None
    if names != ("scrypt", "nacl/secretbox"):
        raise KeyFileError(f"{what}: unsupported key encryption {names[0]}/{names[1]} "
                           "(expected scrypt and nacl/secretbox)")
    if (n, r, p) not in SCRYPT_ACCEPTED:
        raise KeyFileError(f"{what}: unsupported scrypt parameters N={n} r={r} p={p}")
    if len(nonce) != secretbox.NONCE_SIZE:
        raise KeyFileError(f"{what}: the nonce is {len(nonce)} bytes, not {secretbox.NONCE_SIZE}")
    try:
        return secretbox.open_box(box, nonce, _scrypt(password, salt, n, r, p))
    except secretbox.SecretBoxError:
        raise PasswordError(f"{what}: wrong password (or the key file was altered)") from None


# -- PEM ---------------------------------------------------------------------------------------


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(type, DER/bytes) of each PEM block, in order."""
    out: list[tuple[str, bytes]] = []
    kind: str | None = None
    body: list[str] = []
    for line in data.decode("ascii", "replace").splitlines():
        line = line.strip()
        if line.startswith("-----BEGIN ") and line.endswith("-----"):
            kind, body = line[len("-----BEGIN "):-5], []
        elif line.startswith("-----END ") and kind is not None:
            try:
                out.append((kind, base64.b64decode("".join(body), validate=True)))
            except ValueError:
                raise KeyFileError(f"PEM block {kind!r} is not valid base64") from None
            kind = None
        elif kind is not None and ":" not in line:
            body.append(line)
    return out


def _pem(kind: str, data: bytes) -> bytes:
    b64 = base64.b64encode(data).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n").encode("ascii")


def encrypted_private_pem(key: PrivateKey, password: bytes) -> bytes:
    """The private key as cosign writes it (``ENCRYPTED SIGSTORE PRIVATE KEY``)."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return _pem(SIGSTORE_PEM_TYPE, encrypt_envelope(der, password))


def public_pem(key: PublicKey | PrivateKey) -> bytes:
    return _public(key).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def needs_password(data: bytes) -> bool:
    return any(kind in (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE, "ENCRYPTED PRIVATE KEY")
               for kind, _ in _pem_blocks(data))


def _without_deprecation_warnings(load: Callable[..., KeyT]) -> Callable[..., KeyT]:
    """A key loader that prints nothing of its own: cryptography warns, as it loads a DSA key
    (which pallet then refuses in one line), on stderr with a line of pallet's source."""
    @functools.wraps(load)
    def quietly(*args: object, **kwargs: object) -> KeyT:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return load(*args, **kwargs)
    return quietly


@_without_deprecation_warnings
def load_private_key(data: bytes, password: bytes | None, what: str = "key") -> PrivateKey:
    """An ECDSA private key from any PEM form named in the module docstring."""
    blocks = _pem_blocks(data)
    if not blocks:
        raise KeyFileError(f"{what}: no PEM private key in it")
    kind, body = blocks[0]
    try:
        if kind in (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE):
            if password is None:
                raise PasswordError(f"{what} is encrypted and no password was given")
            key = serialization.load_der_private_key(decrypt_envelope(body, password, what), None)
        elif kind == "ENCRYPTED PRIVATE KEY":
            if password is None:
                raise PasswordError(f"{what} is encrypted and no password was given")
            try:
                key = serialization.load_der_private_key(body, password)
            except ValueError:
                raise PasswordError(f"{what}: wrong password (or the key file was altered)") from None
        elif kind in ("PRIVATE KEY", "EC PRIVATE KEY"):
            key = serialization.load_pem_private_key(data, None)
        else:
            raise KeyFileError(f"{what}: a PEM {kind!r} block is not a private key pallet can sign with")
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{what}: the private key inside cannot be read") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _HASH_FOR_CURVE:
        raise KeyFileError(f"{what}: only ECDSA P-256/P-384/P-521 keys can sign "
                           f"(this one is {type(key).__name__})")
    return key


@_without_deprecation_warnings
def load_public_key(data: bytes, what: str = "public key") -> PublicKey:
    """A PEM SubjectPublicKeyInfo public key (ECDSA, RSA or Ed25519)."""
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{what} holds a private key; verification takes the public key (.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{what}: not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _HASH_FOR_CURVE:
        raise KeyFileError(f"{what}: unsupported curve {key.curve.name}")
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise KeyFileError(f"{what}: unsupported key type {type(key).__name__}")
    return key


def key_id(key: PublicKey | PrivateKey) -> str:
    """A stable name for a key: the SHA-256 of its SubjectPublicKeyInfo DER, in hex."""
    der = _public(key).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# -- signing and verifying (pure) --------------------------------------------------------------


def sign(key: PrivateKey, data: bytes) -> bytes:
    """ASN.1 DER ECDSA signature of ``data`` (hash chosen by the curve, as cosign does)."""
    return key.sign(data, ec.ECDSA(_HASH_FOR_CURVE[key.curve.name]()))


def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_HASH_FOR_CURVE[key.curve.name]()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def generate() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# -- files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedKey:
    """A public key and where it came from (for messages)."""

    key: PublicKey
    source: str

    @property
    def id(self) -> str:
        return key_id(self.key)


#: A PEM key file is a few hundred bytes; a bundle of many keys, some KB.
MAX_KEY_FILE = 1 << 20


def read_public_key(path: str | os.PathLike[str]) -> TrustedKey:
    p = Path(path)
    try:
        data = read_input(p, "public key", MAX_KEY_FILE)
    except OSError as exc:
        raise KeyFileError(f"{p}: cannot read the public key ({exc.strerror})") from None
    return TrustedKey(load_public_key(data, str(p)), str(p))


def read_private_key(path: str | os.PathLike[str], password: Callable[[], bytes]) -> PrivateKey:
    """The signing key in ``path``; ``password()`` is called only if the file is encrypted."""
    p = Path(path)
    try:
        data = read_input(p, "private key", MAX_KEY_FILE)
    except OSError as exc:
        raise KeyFileError(f"{p}: cannot read the private key ({exc.strerror})") from None
    return load_private_key(data, password() if needs_password(data) else None, str(p))


def write_key_pair(prefix: str | os.PathLike[str], password: bytes, *, force: bool = False,
                   key: PrivateKey | None = None) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (encrypted, mode 0600) and ``PREFIX.pub``; refuse to overwrite without ``force``."""
    key = key or generate()
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not force:
        refuse_existing(prefix)
    _write_file(key_path, encrypted_private_pem(key, password), 0o600, force)
    _write_file(pub_path, public_pem(key), 0o644, force)
    return key_path, pub_path


def refuse_existing(prefix: str | os.PathLike[str]) -> None:
    """KeyFileError if ``PREFIX.key`` or ``PREFIX.pub`` is already there."""
    for path in (Path(f"{prefix}.key"), Path(f"{prefix}.pub")):
        if path.exists() or path.is_symlink():
            raise KeyFileError(f"{path} already exists; pass --force to overwrite it")


def _write_file(path: Path, data: bytes, mode: int, force: bool) -> None:
    if force and (path.exists() or path.is_symlink()):
        path.unlink()  # never write through a symlink or keep a wider mode of an old file
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        os.fchmod(fd, mode)  # whatever the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot write ({exc.strerror})") from None


# -- passwords ---------------------------------------------------------------------------------


def read_password(*, confirm: bool = False, env: Mapping[str, str] | None = None,
                  interactive: bool | None = None, prompt: Callable[[str], str] | None = None,
                  what: str = "the private key") -> bytes:
    """``$PALLET_PASSWORD`` if set (even empty, as cosign allows), else asked on the terminal.

    The variable's bytes are the password as they are, UTF-8 or not: cosign (Go) reads them so,
    and Python keeps bytes that are not UTF-8 as surrogates, which ``os.fsencode`` turns back.
    With no terminal to ask on, PasswordError says how to give it instead of hanging.
    """
    env = os.environ if env is None else env
    if PASSWORD_ENV in env:
        return os.fsencode(env[PASSWORD_ENV])
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if not interactive:
        raise PasswordError(f"a password is needed for {what}: set {PASSWORD_ENV} "
                            "(standard input is not a terminal, so pallet cannot ask for it)")
    if prompt is None:
        import getpass

        prompt = getpass.getpass
    first = prompt(f"Enter password for {what}: ")
    if confirm and prompt("Enter password for the private key again: ") != first:
        raise PasswordError("the two passwords differ; nothing was written")
    return os.fsencode(first)
