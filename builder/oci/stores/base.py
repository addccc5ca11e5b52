"""The one interface every store implements: OCI layout, registry, Docker engine, docker-archive.

A store is bound to one repository (a registry repository, a name in the local store, an
archive file, an image name in the Docker engine). Code that copies, builds or rebases images
talks only to this interface, so it never knows where an image lives (the shape of
go-containerregistry's ``remote``/``layout``/``daemon``/``tarball`` backends).

Contract for every backend:
- everything returned is checked against its digest and size (``VerifyingReader`` for streams);
- ``put_*`` never leaves a half-written object visible: a blob or manifest is either complete
  under its digest or absent;
- ``put_manifest`` stores by digest; ``tag`` moves a tag and is always done last.
"""

from __future__ import annotations

import abc
import os
import io
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from builder.errors import StoreError
from builder.oci.digest import verify_bytes
from builder.oci.model import Descriptor

# Called with the number of bytes moved since the last call.
ProgressFn = Callable[[int], None]

#: The most ``get_blob`` reads into memory: configs, signature payloads, attestations and SBOMs
#: are KBs to tens of MB. The size is the descriptor's, which whoever wrote the manifest (a
#: signature's, a referrer's: anyone who can push to the repository) chose: a "payload" of
#: gigabytes would otherwise be read whole by ``pallet verify``.
MAX_DOCUMENT = 256 << 20


def check_document_size(desc: Descriptor) -> None:
    """StoreError if ``desc`` declares more than ``get_blob`` reads into memory."""
    if desc.size > MAX_DOCUMENT:
        raise StoreError(f"blob {desc.digest} ({desc.media_type or 'no media type'}) declares {desc.size} bytes, "
                         f"more than the {MAX_DOCUMENT} pallet reads into memory for a config, signature "
                         "or SBOM; refusing it")


class Store(abc.ABC):
    """A place images live. See the module docstring for the contract."""

    #: Human-readable name used in messages, e.g. ``registry 127.0.0.1:5000/app``.
    description: str = "store"

    #: True when manifest bytes survive a round trip unchanged (OCI layout, registry); the
    #: Docker engine and legacy archives rebuild manifests, so digests change there.
    preserves_digests: bool = True

    #: False for stores that hold one platform's image only (Docker engine, docker-archive):
    #: a copy of an index into them picks the manifest for the wanted platform.
    accepts_index: bool = True

    # -- manifests and tags -------------------------------------------------

    @abc.abstractmethod
    def resolve(self, ref: str) -> Descriptor:
        """The descriptor of the manifest that a tag or digest names; NotFoundError if none."""

    @abc.abstractmethod
    def get_manifest(self, ref: str) -> tuple[Descriptor, bytes]:
        """Manifest (or index) bytes by tag or digest, verified against the digest."""

    @abc.abstractmethod
    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        """Store a manifest by digest; with ``tag``, move the tag to it afterwards."""

    def tag(self, tag: str, desc: Descriptor, data: bytes | None = None) -> None:
        """Point ``tag`` at a manifest already in the store (``data``: its bytes, if at hand)."""
        if data is None:
            _, data = self.get_manifest(desc.digest)
        self.put_manifest(data, desc.media_type, tag=tag)

    @abc.abstractmethod
    def list_tags(self) -> list[str]:
        """Tags of this repository, sorted."""

    # -- blobs --------------------------------------------------------------

    @abc.abstractmethod
    def has_blob(self, digest: str) -> bool:
        """Whether the blob is already here (so a copy can skip it)."""

    def blob_size(self, digest: str) -> int | None:
        """The size of a blob already here (None: not here; -1: here, size not known cheaply).

        A copy that skips a blob the destination has never reads the source's bytes, so this is
        where a manifest whose size field lies about that blob is caught."""
        return -1 if self.has_blob(digest) else None

    @abc.abstractmethod
    def open_blob(self, desc: Descriptor) -> BinaryIO:
        """A stream of the blob that raises DigestMismatchError if its bytes are wrong."""

    def get_blob(self, desc: Descriptor) -> bytes:
        """A small blob (config, signature payload) in memory, verified."""
        check_document_size(desc)
        with self.open_blob(desc) as stream:
            data = stream.read()
        return verify_bytes(data, desc.digest, desc.size)

    @abc.abstractmethod
    def put_blob(self, desc: Descriptor, stream: BinaryIO, progress: ProgressFn | None = None) -> None:
        """Store a blob read from ``stream``; DigestMismatchError (and nothing stored) if it is wrong."""

    def put_blob_file(self, desc: Descriptor, path: Path) -> None:
        """Store a blob from a file this process wrote and checked (a fresh layer); a backend
        that can adopt the file without copying its bytes does (the layout: a hard link)."""
        with open(path, "rb") as f:
            self.put_blob(desc, f)

    def put_blob_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        desc = Descriptor.of(data, media_type)
        if not self.has_blob(desc.digest):
            self.put_blob(desc, io.BytesIO(data))
        return desc

    def mount_blob(self, desc: Descriptor, source: "Store") -> bool:
        """Make a blob of ``source`` appear here without moving its bytes, if the backend can."""
        return False

    # -- referrers (OCI 1.1) ------------------------------------------------

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``. Stores without the notion return none."""
        return []

    # -- lifecycle ----------------------------------------------------------

    def check_writable(self) -> None:
        """Fail now (a one-line PalletError) if writing here is bound to fail: asked before
        minutes of work whose result would go here (``pallet build``), as ko checks push
        permission before it builds. Writes nothing that stays. Stores with nothing to check
        pass."""

    def close(self) -> None:
        """Finish pending work (archives are written here) and release resources."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


def nearest_existing(path: str | Path) -> Path:
    """The deepest path on the way to ``path`` (``path`` itself included) that exists: where a
    writer would have to make what is missing, for ``check_writable`` to ask about."""
    found = Path(os.path.abspath(path))
    while not os.path.lexists(found):
        found = found.parent
    return found


def blobs_of(manifest_json: dict) -> Iterable[Descriptor]:
    """Config then layers of a parsed image manifest."""
    if "config" in manifest_json:
        yield Descriptor.from_json(manifest_json["config"])
    for layer in manifest_json.get("layers") or []:
        yield Descriptor.from_json(layer)
