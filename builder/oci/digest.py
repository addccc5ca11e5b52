"""Digests, and the checks that every blob read from anywhere must pass."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from builder.errors import DigestMismatchError

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def split(digest: str) -> tuple[str, str]:
    """``("sha256", hex)``; raises ValueError for anything that is not a digest we support."""
    if not is_digest(digest):
        raise ValueError(f"not a sha256/sha512 digest: {digest!r}")
    algo, hexpart = digest.split(":", 1)
    return algo, hexpart


def hasher(digest: str) -> "hashlib._Hash":
    return hashlib.new(split(digest)[0])


def verify_bytes(data: bytes, digest: str, size: int | None = None, what: str = "blob") -> bytes:
    """Return ``data`` if it has this digest (and size), else raise DigestMismatchError."""
    if size is not None and size >= 0 and len(data) != size:
        raise DigestMismatchError(f"{what} {digest}: expected {size} bytes, got {len(data)}")
    h = hasher(digest)
    h.update(data)
    got = f"{split(digest)[0]}:{h.hexdigest()}"
    if got != digest:
        raise DigestMismatchError(f"{what} {digest}: content has digest {got}")
    return data


class VerifyingReader:
    """A read-only stream that checks digest and size when it reaches the end.

    Callers stream large layers through it; memory stays bounded, and nothing that
    does not match is ever reported as a clean end of file.
    """

    def __init__(self, raw: BinaryIO, digest: str, size: int | None = None, what: str = "blob") -> None:
        self._raw = raw
        self._digest = digest
        self._size = size if size is not None and size >= 0 else None
        self._what = what
        self._hash = hasher(digest)
        self._count = 0
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        if n is not None and n >= 0:
            chunk = self._raw.read(n)
        elif self._size is not None:  # "all of it": one byte past the size is enough to know it lies
            chunk = self._raw.read(self._size - self._count + 1)
        else:
            chunk = self._raw.read()
        if chunk:
            self._hash.update(chunk)
            self._count += len(chunk)
            if self._size is not None and self._count > self._size:
                raise DigestMismatchError(
                    f"{self._what} {self._digest}: more than the expected {self._size} bytes"
                )
        # Check as soon as the expected size is reached: consumers that read exactly ``size``
        # bytes (an upload body) never ask for the empty read that marks the end.
        if not chunk or (n is None or n < 0) or self._count == self._size:
            self._check()
        return chunk

    @property
    def expected_size(self) -> int | None:
        """The size the blob must have (a layer reader bounds what its tar may declare by it)."""
        return self._size

    def verify(self) -> None:
        """Raise DigestMismatchError unless exactly the expected bytes have been read."""
        self._check()

    def readinto(self, b: bytearray | memoryview) -> int:  # lets shutil/tarfile use it efficiently
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._size is not None and self._count != self._size:
            raise DigestMismatchError(
                f"{self._what} {self._digest}: expected {self._size} bytes, got {self._count}"
            )
        got = f"{split(self._digest)[0]}:{self._hash.hexdigest()}"
        if got != self._digest:
            raise DigestMismatchError(f"{self._what} {self._digest}: content has digest {got}")

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
