"""The one way pallet reads a layer blob: as a tar stream, verified to its last byte, within limits.

Every consumer of a layer (unpacking for ``pallet run`` and builds, ``pallet sbom``/``audit``,
``pallet stack packages``) reads it through ``LayerTar``, so the rules below hold everywhere:

- **Read to the end, then verify.** A tar stream ends at its end-of-archive marker, but the blob
  may go on: bytes after the marker (or a tar cut short by a corrupt header, which ``tarfile``
  takes for the end) would otherwise never reach the digest check of the store's stream
  (``VerifyingReader``). When the members run out, the rest of the blob is drained and its digest
  and size checked before the loop ends; only then may a consumer treat what it read as the layer
  (unpackers rename their directory into place after that, never before).
- **A member never declares more than the blob can hold.** ``tarfile`` skips a member's data by
  reading forward, and does not stop at the end of the stream: a 1 KB layer declaring 2^62 bytes
  would keep it reading for ever. A member's size (for a sparse file, its apparent size) may be
  at most the blob's size times the most its compression can expand (plain tar 1, deflate 1032,
  zstd 32768); anything more is corrupt or hostile input. Data is skipped by us, and a stream that
  ends inside a member is reported as truncated.
- **Headers are small.** An extended header (PAX records, GNU long names) is read into memory
  whole by ``tarfile`` before we see the member it describes, so its declared size is checked
  first (``MAX_HEADER``), as a highly compressible blob could otherwise fill memory with one.
- **Damage is one error.** Whatever a corrupt stream raises inside gzip, zlib, zstandard or
  ``tarfile`` (which lets ``ValueError`` out of some headers) becomes ``CorruptLayerError``,
  naming the layer.

Limits on what a consumer keeps (files read into memory, data spooled to disk) are the
consumer's, raised as ``LayerLimitError`` with the same naming (``read_member``).
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import tarfile
import zlib
from typing import BinaryIO, Iterator

import zstandard

from builder.errors import DigestMismatchError, PalletError, shown
from builder.oci import compress
from builder.oci.digest import hasher

_BUF = 1 << 20

#: How many uncompressed bytes one byte of a blob can become, at most, per compression.
#: Deflate's limit is 1032:1; a zstd RLE block turns 4 bytes into 128 KiB.
MAX_RATIO = {compress.NONE: 1, compress.GZIP: 1032, compress.ZSTD: 32768}

#: The most an extended header (PAX records, a GNU long name) may declare.
MAX_HEADER = 8 * 1024 * 1024

#: What a damaged stream raises from inside gzip, zlib, zstandard and tarfile (a long chain
#: of extended headers is parsed recursively).
CORRUPT: tuple[type[BaseException], ...] = (
    EOFError, zlib.error, gzip.BadGzipFile, zstandard.ZstdError, tarfile.TarError,
    ValueError, OverflowError, struct.error, UnicodeError, RecursionError)

_EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
             tarfile.SOLARIS_XHDTYPE)


class BoundedTarInfo(tarfile.TarInfo):
    """A header whose extended data is size-checked before ``tarfile`` reads it into memory
    (layers here, docker-archives in ``stores/archive.py``: a sparse archive holds gigabytes).

    ``_proc_member`` is tarfile's documented hook for subclasses (see its source)."""

    def _proc_member(self, tarfile_: tarfile.TarFile):  # noqa: ANN202
        if self.type in _EXTENDED and self.size > MAX_HEADER:
            raise tarfile.HeaderError(f"an extended header of {self.size} bytes (at most {MAX_HEADER})")
        return super()._proc_member(tarfile_)


class CorruptLayerError(PalletError):
    """A layer that is not a readable tar (truncated, bad compression, impossible sizes)."""


class LayerLimitError(PalletError):
    """A layer holds more than pallet will keep in memory or on disk for one purpose."""


class _Member:
    """A member's content; reading it past a damaged spot raises CorruptLayerError."""

    def __init__(self, raw: BinaryIO, layer: "LayerTar", name: str) -> None:
        self._raw = raw
        self._layer = layer
        self._name = name

    def read(self, n: int = -1) -> bytes:
        try:
            return self._raw.read(n)
        except CORRUPT as exc:
            raise self._layer.corrupt(exc, self._name) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "_Member":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remaining(stream: BinaryIO) -> int | None:
    """Bytes left in ``stream``: the size a store promised, else what a seekable file holds."""
    size = getattr(stream, "expected_size", None)
    if isinstance(size, int):
        return size
    try:
        here = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


class _Hashing:
    """The uncompressed stream, hashed as it is read (by tarfile, then by the final drain)."""

    def __init__(self, raw: BinaryIO, hash_: "hashlib._Hash") -> None:
        self._raw = raw
        self.hash = hash_
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.hash.update(data)
        self.count += len(data)
        return data


class LayerTar:
    """One layer blob (gzip, zstd or plain tar, found from its magic bytes) read as a tar stream.

    Iterate for the members; ``open_member``/``read_member`` give the content of the member at
    hand (before the next one). The iteration ends only after ``finish`` has verified the blob.
    ``what`` names the layer in every error (e.g. ``layer sha256:... of image ...``).
    """

    def __init__(self, stream: BinaryIO, *, what: str = "layer", size: int | None = None,
                 diff_id: str | None = None) -> None:
        self.what = what
        self._raw = stream
        self._size = size if size is not None else _remaining(stream)
        self._finished = False
        self._current: str | None = None
        self._diff_id = diff_id
        try:
            self.compression, data = compress.open_detected(stream)
            if diff_id is not None:
                data = self._hashed = _Hashing(data, hasher(diff_id))
            self._tf = tarfile.open(fileobj=data, mode="r|", bufsize=_BUF, tarinfo=BoundedTarInfo,
                                    encoding="utf-8", errors="surrogateescape")
        except CORRUPT as exc:
            raise self.corrupt(exc) from None
        self.max_member = None if self._size is None else self._size * MAX_RATIO[self.compression]

    def corrupt(self, exc: BaseException | str, entry: str | None = None) -> CorruptLayerError:
        at = f" at entry {shown(entry)}" if entry else ""
        return CorruptLayerError(f"{self.what} is corrupt or truncated{at} ({exc}); fetch or build it again")

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while True:
            try:
                self._skip_data()
                ti = self._tf.next()
            except CORRUPT as exc:
                raise self.corrupt(exc, self._current) from None
            self._tf.members.clear()  # type: ignore[attr-defined]  # stream mode: keep no index
            if ti is None:
                break
            self._check(ti)
            self._current = ti.name
            yield ti
        self._current = None
        self.finish()

    def _check(self, ti: tarfile.TarInfo) -> None:
        has_data = ti.isreg() or ti.type not in tarfile.SUPPORTED_TYPES
        if ti.size < 0 or (has_data and self.max_member is not None and ti.size > self.max_member):
            raise CorruptLayerError(
                f"{self.what}: entry {shown(ti.name)} declares {ti.size} bytes, more than a "
                f"{self.compression} blob of {self._size} bytes can hold: the layer is truncated, corrupt "
                "or hostile; fetch or build it again")

    def _skip_data(self) -> None:
        """Move to the next header ourselves: ``tarfile`` would read past the end for ever."""
        if self._current is None:
            return  # the first member: tarfile has not moved past its header yet
        stream = self._tf.fileobj
        target = self._tf.offset
        while (here := stream.tell()) < target:
            if not stream.read(min(_BUF, target - here)):
                raise self.corrupt("the stream ends inside its data", self._current)

    def open_member(self, ti: tarfile.TarInfo) -> _Member | None:
        """The content of ``ti`` (the member just yielded), or None for entries without one."""
        try:
            raw = self._tf.extractfile(ti)
        except CORRUPT as exc:
            raise self.corrupt(exc, ti.name) from None
        return None if raw is None else _Member(raw, self, ti.name)

    def read_member(self, ti: tarfile.TarInfo, limit: int) -> bytes:
        """The whole content of a small file; LayerLimitError if it declares more than ``limit``."""
        if ti.size > limit:
            raise LayerLimitError(
                f"{self.what}: {shown(ti.name)} is {ti.size} bytes, more than the {limit} bytes pallet "
                "reads of such a file; the image is not one pallet can read")
        member = self.open_member(ti)
        return member.read() if member is not None else b""

    def finish(self) -> None:
        """Drain what is left of the blob and check its digest and size (idempotent)."""
        if self._finished:
            return
        self._finished = True
        if self._diff_id is not None:
            self._check_diff_id()
        while self._raw.read(_BUF):
            pass
        verify = getattr(self._raw, "verify", None)
        if verify is not None:
            verify()

    def _check_diff_id(self) -> None:
        """The uncompressed stream, read to its end (past the tar's end marker: the diff_id
        covers every byte), must have the digest the image config lists for the layer. Bounded
        like any member: at most the blob's size times its compression's ratio."""
        hashed = self._hashed
        try:
            while hashed.read(_BUF):
                if self.max_member is not None and hashed.count > self.max_member:
                    raise self.corrupt(f"it inflates to more than {self.max_member} bytes")
        except CORRUPT as exc:
            raise self.corrupt(exc) from None
        got = f"{self._diff_id.split(':', 1)[0]}:{hashed.hash.hexdigest()}"
        if got != self._diff_id:
            raise DigestMismatchError(
                f"{self.what}: its uncompressed content has digest {got}, but the image config lists "
                f"diff_id {self._diff_id}: the image is inconsistent or tampered with; fetch or build it again")
