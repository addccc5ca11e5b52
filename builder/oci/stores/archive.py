"""docker-archive: the tar files ``docker save`` writes and ``docker load`` reads.

Reading takes both shapes Docker has written:

- legacy (Docker < 25, such as the 20.10 engine Debian ships): ``manifest.json`` lists, per
  image, a config file (``<id>.json``) and uncompressed ``<id>/layer.tar`` files. There is no
  manifest in it, so one is synthesised: a canonical OCI manifest whose layers are the stored
  bytes as they are (compression told by magic bytes). The same archive always gives the same
  manifest, but it is not the manifest the image had in a registry; see ``preserves_digests``.
- modern (Docker >= 25): the same ``manifest.json`` beside an OCI image layout (``oci-layout``,
  ``index.json``, ``blobs/sha256/...``). Its manifests are used byte for byte.

Writing produces both at once: an OCI image layout, and a ``manifest.json`` whose ``Config`` and
``Layers`` point at the same blob files, so ``docker load`` (20.10 too: it decompresses layers
itself), skopeo and pallet all read it, and the manifest digest survives. An archive holds one
image as we write it: writing into an existing archive replaces the whole file, through a
temporary file and a rename, so a failed write leaves the old archive exactly as it was.

The tar is read with random access: members are indexed once, and each blob is streamed from
its offset through a ``VerifyingReader``, on its own file handle.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import shutil
import tarfile
import tempfile
import threading
import time
import weakref
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from builder import jsonsafe
from builder.errors import InputFileError, NotFoundError, StoreError
from builder.inputfile import open_input
from builder.oci import mediatypes as mt
from builder.oci.digest import VerifyingReader, is_digest, sha256, split, verify_bytes
from builder.oci.layerread import CORRUPT, BoundedTarInfo
from builder.oci.model import (MAX_CONFIG, Descriptor, ImageConfig, Index, Manifest, ModelError, canonical_json,
                               media_type_of, not_an_image)
from builder.oci.stores.base import MAX_DOCUMENT, ProgressFn, Store, nearest_existing

#: Annotation containerd and Docker >= 25 put on index.json entries: the full image name.
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_BLOB_PATH_RE = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
# Docker < 25 names the config file after its digest (which is the image ID).
_LEGACY_CONFIG_RE = re.compile(r"^([a-f0-9]{64})\.json$")
_MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                    "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
                    "i686": "386", "i386": "386"}


def familiar_name(ref: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``, the form Docker compares by.

    Docker Hub names have several spellings; archives and the engine use whichever they like,
    so names are compared in this one form.
    """
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    if ref.startswith("library/") and "/" not in ref[len("library/"):]:
        ref = ref[len("library/"):]
    return ref


def host_architecture() -> str:
    """The OCI architecture name of this machine (``amd64``, ``arm64``, ...)."""
    machine = platform.machine().lower()
    return _MACHINE_TO_ARCH.get(machine, machine)


def _layer_media_type(magic: bytes) -> str:
    """The OCI layer media type for stored bytes that start with ``magic``."""
    if magic.startswith(b"\x1f\x8b"):
        return mt.OCI_LAYER_GZIP
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        return mt.OCI_LAYER_ZSTD
    return mt.OCI_LAYER


def _blob_name(digest: str) -> str:
    algo, hexpart = split(digest)
    return f"blobs/{algo}/{hexpart}"


def _clean(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


# -- reading ---------------------------------------------------------------------


class _Section:
    """The bytes of one tar member, read from their offset on a file handle of their own."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        self._file = open(path, "rb")
        self._file.seek(offset)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._file.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


#: The most members pallet indexes of a docker-archive: ``docker save`` writes a few per layer
#: (thousands for the largest images); a tar of millions of empty members would otherwise be
#: held in memory whole (half a KB each) before anything is said.
MAX_MEMBERS = 100_000


class _TarIndex:
    """Every member of an archive, indexed once; links followed to the member holding the bytes."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            # a FIFO blocked here for ever, a device never ended: only a regular file is an archive
            with open_input(path, "docker-archive") as f:
                magic = f.read(4)
            if _layer_media_type(magic) != mt.OCI_LAYER:
                raise StoreError(
                    f"{path} is compressed; a docker-archive must be a plain tar for random access "
                    f"(decompress it first, e.g. gunzip or zstd -d)"
                )
            # extended headers (PAX records, GNU long names) size-checked before tarfile reads
            # them whole: a sparse archive declaring one of gigabytes was a MemoryError
            with tarfile.open(path, "r:", tarinfo=BoundedTarInfo) as tar:
                self.members = {}
                for count, m in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise StoreError(f"{path} has more than {MAX_MEMBERS} members; a docker save archive "
                                         "has a few per layer: it is not one")
                    tar.members.clear()  # the index is ours: tarfile would keep a second one
                    self.members[_clean(m.name)] = m
        except FileNotFoundError:
            raise NotFoundError(f"docker-archive {path} does not exist") from None
        except InputFileError as exc:
            raise StoreError(f"{exc}; give the path of a .tar file") from None
        except CORRUPT as exc:  # TarError, and a chain of extended headers: RecursionError
            raise StoreError(f"{path} is not a readable tar archive ({exc}); is it a docker save archive?") from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None

    def member(self, name: str) -> tarfile.TarInfo | None:
        """The regular-file member ``name`` stands for, following symlinks and hard links."""
        info = self.members.get(_clean(name))
        for _ in range(32):
            if info is None or info.isreg():
                return info
            if info.issym():
                target = os.path.normpath(os.path.join(os.path.dirname(_clean(info.name)), info.linkname))
            elif info.islnk():
                target = os.path.normpath(info.linkname)
            else:
                return None
            info = self.members.get(_clean(target))
        return None

    def has(self, name: str) -> bool:
        return self.member(name) is not None

    def open(self, name: str) -> _Section:
        info = self.member(name)
        if info is None:
            raise NotFoundError(f"{self.path} has no file {name}")
        return _Section(self.path, info.offset_data, info.size)

    def size(self, name: str) -> int:
        info = self.member(name)
        if info is None:
            raise NotFoundError(f"{self.path} has no file {name}")
        return info.size

    def read(self, name: str) -> bytes:
        """A document of the archive (manifest.json, index.json, a config or manifest), whole:
        at most ``MAX_DOCUMENT`` (a member may declare, and a sparse archive hold, gigabytes)."""
        if self.size(name) > MAX_DOCUMENT:
            raise StoreError(f"{self.path}: {name} is {self.size(name)} bytes, more than the {MAX_DOCUMENT} "
                             "pallet reads into memory for a document; the archive is not a docker save archive")
        stream = self.open(name)
        try:
            return stream.read()
        finally:
            stream.close()

    def read_json(self, name: str) -> Any:
        try:
            return jsonsafe.loads(self.read(name))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise StoreError(f"{self.path}: {name} is not valid JSON ({exc})") from None

    def magic(self, name: str) -> bytes:
        stream = self.open(name)
        try:
            return stream.read(4)
        finally:
            stream.close()

    def sha256(self, name: str) -> str:
        h = hashlib.sha256()
        stream = self.open(name)
        try:
            while chunk := stream.read(_CHUNK):
                h.update(chunk)
        finally:
            stream.close()
        return "sha256:" + h.hexdigest()


@dataclass
class _Image:
    """One image an archive holds, as listed; its manifest is read when first asked for."""

    #: ``NAME:TAG`` in familiar form (RepoTags, io.containerd.image.name, full ref.name values).
    names: list[str] = field(default_factory=list)
    #: org.opencontainers.image.ref.name values that are only a tag (what Docker >= 25 writes).
    bare_tags: list[str] = field(default_factory=list)
    #: The index.json entry, for modern archives.
    desc: Descriptor | None = None
    #: The manifest.json entry, when index.json does not describe the image.
    legacy: dict[str, Any] | None = None
    manifest: tuple[Descriptor, bytes] | None = None

    def label(self) -> str:
        return ", ".join(self.names + self.bare_tags) or "an untagged image"


def _names_of(desc: Descriptor) -> tuple[list[str], list[str]]:
    annotations = desc.annotations or {}
    names, bare = [], []
    if annotations.get(ANNOTATION_CONTAINERD_NAME):
        names.append(familiar_name(annotations[ANNOTATION_CONTAINERD_NAME]))
    ref_name = annotations.get(mt.ANNOTATION_REF_NAME)
    if ref_name:
        # The OCI spec allows a bare tag or a full reference here; a full one has a ':' after
        # its last '/'.
        if ":" in ref_name.rsplit("/", 1)[-1]:
            if familiar_name(ref_name) not in names:
                names.append(familiar_name(ref_name))
        else:
            bare.append(ref_name)
    return names, bare


# -- writing ---------------------------------------------------------------------


@dataclass(frozen=True)
class _TarEntry:
    name: str
    size: int = 0
    #: Opens the content (a verifying stream); None for a directory.
    open: Callable[[], BinaryIO] | None = None


def _tar_header(entry: _TarEntry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.type = tarfile.REGTYPE if entry.open else tarfile.DIRTYPE
    info.mode = 0o644 if entry.open else 0o755
    info.size = entry.size if entry.open else 0
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def _tar_stream(entries: list[_TarEntry]) -> Iterator[bytes]:
    """A deterministic tar of ``entries``: sorted, mtime 0, owner 0:0, as a stream of chunks.

    Made by hand rather than with ``tarfile`` so the same bytes can go to a file or straight
    into an HTTP request body without a temporary copy.
    """
    written = 0
    for entry in sorted(entries, key=lambda e: e.name):
        header = _tar_header(entry)
        written += len(header)
        yield header
        if entry.open is None:
            continue
        count = 0
        with entry.open() as stream:
            while chunk := stream.read(_CHUNK):
                count += len(chunk)
                yield chunk
        if count != entry.size:  # VerifyingReader raises first; this guards the tar framing
            raise StoreError(f"{entry.name}: expected {entry.size} bytes, read {count}")
        written += count
        pad = -count % _BLOCK
        if pad:
            written += pad
            yield b"\0" * pad
    end = b"\0" * (2 * _BLOCK)
    written += len(end)
    yield end + b"\0" * (-written % _RECORD)


#: A writer's leftovers (``.NAME.*.partial``, ``.NAME.*.staging``) untouched this long are a
#: killed writer's: a live one keeps writing into them (the OCI layout's rule, ``STALE_TEMP_AGE``).
STALE_LEFTOVER_AGE = 3600.0


def remove_leftovers(path: str, older_than: float = STALE_LEFTOVER_AGE) -> int:
    """Delete what writers of the archive ``path`` killed mid-way left next to it: the partial
    archive and the staged blobs (a whole image's bytes), once nothing has written into them for
    ``older_than`` seconds. Only this archive's own, by name; returns how many."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    cutoff = time.time() - older_than
    count = 0
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(prefix)
                   and e.name.endswith((".partial", ".staging"))]
    except OSError:
        return 0
    for entry in entries:
        with suppress(OSError):
            if entry.is_dir(follow_symlinks=False) and entry.name.endswith(".staging"):
                with os.scandir(entry.path) as inside:
                    newest = max([entry.stat(follow_symlinks=False).st_mtime,
                                  *(e.stat(follow_symlinks=False).st_mtime for e in inside)])
                if newest <= cutoff:
                    shutil.rmtree(entry.path)
                    count += 1
            elif entry.is_file(follow_symlinks=False) and entry.name.endswith(".partial"):
                if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                    os.unlink(entry.path)
                    count += 1
    return count


def _write_atomically(path: str, chunks: Iterator[bytes]) -> None:
    """Write ``path`` from ``chunks`` via a temporary file and a rename: all of it or nothing."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        remove_leftovers(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=directory)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


# -- the store -------------------------------------------------------------------


class ArchiveStore(Store):
    """A docker-archive tar file, bound to one image name (``name``; the tag comes per call).

    ``name`` is the repository (``app`` for ``docker-archive:/x.tar:app:v1``). Without it, an
    archive that holds exactly one image is read whatever the tag asked for, and images are
    written untagged.

    Blobs put here are staged in a directory next to the archive; the archive itself is
    (re)written by ``put_manifest`` with a tag, or by ``close`` for a manifest put without one.
    """

    #: One platform's image: a copy of an index takes this machine's platform from it.
    accepts_index = False

    def __init__(self, path: str, name: str | None = None) -> None:
        self.path = path
        self.name = name
        self.description = f"docker-archive {path}" + (f":{name}" if name else "")
        self._tar: _TarIndex | None = None
        self._images: list[_Image] | None = None
        self._blob_members: dict[str, str] = {}  # digest -> member, for synthesised manifests
        self._staging: str | None = None
        self._staging_lock = threading.Lock()
        self._staged: set[str] = set()
        self._put_manifests: dict[str, tuple[Descriptor, bytes]] = {}
        self._pending: Descriptor | None = None  # put without a tag and not yet written
        self._cleanup: weakref.finalize | None = None

    def check_writable(self) -> None:
        """The archive is written next to itself and renamed: a directory must be there (or be
        makeable) and writable, and the path must not be a directory."""
        if os.path.isdir(self.path):
            raise StoreError(f"docker-archive {self.path} is a directory; name a file to write the archive to")
        directory = nearest_existing(Path(os.path.abspath(self.path)).parent)
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            raise StoreError(f"cannot write docker-archive {self.path}: {directory} is not a writable directory")

    # -- properties ------------------------------------------------------------

    @property  # type: ignore[override]
    def preserves_digests(self) -> bool:
        """True, except when reading a legacy archive (no index.json), whose manifest we synthesise.

        A synthesised manifest is stable (the same archive gives the same digest every time),
        but it is not the manifest the image was pushed or pulled with.
        """
        if not os.path.exists(self.path):
            return True
        try:
            return self._index().has("index.json")
        except StoreError:
            return True

    # -- manifests and tags ----------------------------------------------------

    def resolve(self, ref: str) -> Descriptor:
        return self.get_manifest(ref)[0]

    def get_manifest(self, ref: str) -> tuple[Descriptor, bytes]:
        if is_digest(ref):
            return self._manifest_by_digest(ref)
        return self._manifest_of(self._select(ref))

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        mtype, _ = self._image_manifest(data, media_type)
        desc = Descriptor.of(data, mtype)
        if tag is None:
            self._put_manifests[desc.digest] = (desc, data)
            self._pending = desc
            return desc
        _write_atomically(self.path, self.archive_stream(data, mtype, tag))
        self._put_manifests[desc.digest] = (desc, data)
        self._pending = None
        self._forget_archive()
        return desc

    def list_tags(self) -> list[str]:
        if not os.path.exists(self.path):
            return []
        tags: set[str] = set()
        for image in self._list_images():
            repos = [n.rpartition(":") for n in image.names]
            for repo, _, tag in repos:
                if self.name is None or repo == familiar_name(self.name):
                    tags.add(tag)
            if not image.names:
                tags.update(image.bare_tags)
        return sorted(tags)

    # -- blobs -----------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        if digest in self._staged:
            return True
        if not os.path.exists(self.path):
            return False
        return self._blob_member(digest) is not None

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        what = f"{self.description}: blob"
        if desc.digest in self._staged:
            path = self._staged_path(desc.digest)
            return VerifyingReader(open(path, "rb"), desc.digest, desc.size, what=what)  # type: ignore[return-value]
        member = self._blob_member(desc.digest) if os.path.exists(self.path) else None
        if member is None:
            raise NotFoundError(f"{self.description} has no blob {desc.digest}")
        return VerifyingReader(self._index().open(member), desc.digest, desc.size, what=what)  # type: ignore[arg-type,return-value]

    def put_blob(self, desc: Descriptor, stream: BinaryIO, progress: ProgressFn | None = None) -> None:
        if desc.digest in self._staged:
            return
        dest = self._staged_path(desc.digest)
        tmp = dest + ".partial"
        reader = VerifyingReader(stream, desc.digest, desc.size, what=f"blob put into {self.description}")
        try:
            with open(tmp, "wb") as out:
                while chunk := reader.read(_CHUNK):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
            os.replace(tmp, dest)
        except BaseException as exc:
            with suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise StoreError(f"cannot stage blob {desc.digest} for {self.path}: {exc.strerror or exc}") from None
            raise
        self._staged.add(desc.digest)

    def is_staged(self, digest: str) -> bool:
        """Whether the blob was put here (as opposed to being in the archive on disk)."""
        return digest in self._staged

    # -- the archive as a stream -----------------------------------------------

    def archive_stream(self, data: bytes, media_type: str, tag: str | None) -> Iterator[bytes]:
        """The archive ``put_manifest(data, media_type, tag)`` writes, as chunks of bytes.

        Every blob the manifest names must be staged here or be in the archive already
        (NotFoundError before anything is produced). Blobs are verified again while streamed.
        The Docker engine store loads this stream straight into ``docker load``.
        """
        media_type, manifest = self._image_manifest(data, media_type)
        self._check_config(manifest)
        desc = Descriptor.of(data, media_type)
        full_name = f"{self.name}:{tag}" if self.name and tag else None
        annotations: dict[str, str] = {}
        if tag:
            annotations[mt.ANNOTATION_REF_NAME] = tag
        if full_name:
            annotations[ANNOTATION_CONTAINERD_NAME] = full_name
        index = Index(manifests=(desc.with_annotations(annotations),))
        docker_manifest = [{
            "Config": _blob_name(manifest.config.digest),
            "RepoTags": [full_name] if full_name else [],
            "Layers": [_blob_name(layer.digest) for layer in manifest.layers],
        }]

        entries: dict[str, _TarEntry] = {}
        for blob in (manifest.config, *manifest.layers):
            if _blob_name(blob.digest) not in entries:
                entries[_blob_name(blob.digest)] = _TarEntry(_blob_name(blob.digest), blob.size, self._opener(blob))
        for name, content in (
            (_blob_name(desc.digest), data),
            ("index.json", index.to_bytes()),
            ("manifest.json", canonical_json(docker_manifest)),
            ("oci-layout", canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION})),
        ):
            entries[name] = _TarEntry(name, len(content), _bytes_opener(content))
        for directory in ("blobs", "blobs/sha256"):
            entries[directory] = _TarEntry(directory)
        return _tar_stream(list(entries.values()))

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Write a manifest that was put without a tag (untagged), then drop the staged blobs."""
        try:
            if self._pending is not None:
                desc, data = self._put_manifests[self._pending.digest]
                self._pending = None
                _write_atomically(self.path, self.archive_stream(data, desc.media_type, None))
                self._forget_archive()
        finally:
            if self._cleanup is not None:
                self._cleanup()
            self._staging, self._staged = None, set()

    # -- internals: reading ----------------------------------------------------

    def _index(self) -> _TarIndex:
        if self._tar is None:
            self._tar = _TarIndex(self.path)
        return self._tar

    def _forget_archive(self) -> None:
        self._tar, self._images, self._blob_members = None, None, {}

    def _list_images(self) -> list[_Image]:
        if self._images is not None:
            return self._images
        tar = self._index()
        has_index, has_manifest = tar.has("index.json"), tar.has("manifest.json")
        if not has_index and not has_manifest:
            raise StoreError(f"{self.path} has neither manifest.json nor index.json; is it a docker save archive?")
        images: list[_Image] = []
        if has_index:
            try:
                index = Index.from_bytes(tar.read("index.json"), mt.OCI_INDEX)
            except ModelError as exc:
                raise StoreError(f"{self.path}: index.json: {exc}") from None
            for desc in index.manifests:
                names, bare = _names_of(desc)
                images.append(_Image(names=names, bare_tags=bare, desc=desc))
        if has_manifest:
            entries = tar.read_json("manifest.json")
            if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("Config"), str) and isinstance(e.get("Layers"), list)
                and all(isinstance(p, str) for p in e["Layers"])
                and isinstance(e.get("RepoTags") or [], list)
                for e in entries
            ):
                raise StoreError(f"{self.path}: manifest.json is not a docker save manifest "
                                 "(a list of Config and Layers paths, and RepoTags lists)")
            modern = [im for im in images if im.desc is not None]
            for entry in entries:
                names = [familiar_name(t) for t in entry.get("RepoTags") or [] if isinstance(t, str)]
                twin = self._twin_in_index(entry, modern)
                if twin is not None:  # Docker >= 25 lists the same image in both files
                    twin.names.extend(n for n in names if n not in twin.names)
                else:
                    images.append(_Image(names=names, legacy=entry))
        self._images = images
        return images

    def _twin_in_index(self, entry: dict[str, Any], modern: list[_Image]) -> _Image | None:
        match = _BLOB_PATH_RE.match(_clean(entry["Config"]))
        if not match or not modern:
            return None
        for image in modern:
            desc, data = self._manifest_of(image)
            if Manifest.from_bytes(data, desc.media_type).config.digest == f"sha256:{match.group(1)}":
                return image
        return None

    def _select(self, tag: str) -> _Image:
        images = self._list_images()
        held = "; ".join(im.label() for im in images) or "nothing"
        if self.name is None:
            if len(images) == 1:
                return images[0]
            raise NotFoundError(
                f"{self.path} holds {len(images)} images ({held}); "
                f"name one as docker-archive:{self.path}:NAME:TAG"
            )
        want = familiar_name(f"{self.name}:{tag}")
        for image in images:
            if want in image.names or (not image.names and tag in image.bare_tags):
                return image
        raise NotFoundError(f"{self.path} has no image {self.name}:{tag}; it holds {held}")

    def _manifest_of(self, image: _Image) -> tuple[Descriptor, bytes]:
        if image.manifest is None:
            if image.desc is not None:
                image.manifest = self._read_manifest(image.desc)
            else:
                assert image.legacy is not None
                image.manifest = self._synthesise(image.legacy)
        return image.manifest

    def _read_manifest(self, desc: Descriptor) -> tuple[Descriptor, bytes]:
        """A manifest from blobs/, verified; an index is narrowed to the platform held here."""
        tar = self._index()
        name = _blob_name(desc.digest)
        if not tar.has(name):
            raise StoreError(f"{self.path}: index.json names {desc.digest}, which the archive does not hold")
        data = verify_bytes(tar.read(name), desc.digest, desc.size, what=f"manifest in {self.path}")
        mtype = media_type_of(data, desc.media_type)
        if not mt.is_index(mtype):
            return Descriptor(mtype, desc.digest, desc.size), data
        children = [
            d for d in Index.from_bytes(data, mtype).manifests
            if mt.is_manifest(d.media_type) and tar.has(_blob_name(d.digest))
            and not (d.annotations or {}).get("vnd.docker.reference.type")  # buildkit attestations
        ]
        if not children:
            raise StoreError(f"{self.path}: index {desc.digest} names no image manifest the archive holds")
        arch = host_architecture()
        chosen = next((d for d in children if d.platform and d.platform.os == "linux"
                       and d.platform.architecture == arch), children[0])
        return self._read_manifest(chosen)

    def _synthesise(self, entry: dict[str, Any]) -> tuple[Descriptor, bytes]:
        """A canonical OCI manifest for a manifest.json entry, its blobs as they are stored.

        Digests are taken from what names them when there is such a thing (a ``blobs/sha256/``
        path, the ``<id>.json`` config name, the config's diff_ids for uncompressed layers) so a
        corrupted file is caught when read; only compressed layers elsewhere are hashed here.
        """
        tar = self._index()
        config_path = _clean(entry["Config"])
        if not tar.has(config_path):
            raise StoreError(f"{self.path}: manifest.json names config {config_path}, which the archive does not hold")
        config_bytes = tar.read(config_path)
        named = _BLOB_PATH_RE.match(config_path) or _LEGACY_CONFIG_RE.match(os.path.basename(config_path))
        config_digest = f"sha256:{named.group(1)}" if named else sha256(config_bytes)
        verify_bytes(config_bytes, config_digest, what=f"config {config_path} in {self.path}")
        diff_ids = ImageConfig.from_bytes(config_bytes).diff_ids
        self._blob_members[config_digest] = config_path

        layers = []
        paths = [_clean(p) for p in entry["Layers"]]
        for i, path in enumerate(paths):
            if not tar.has(path):
                raise StoreError(f"{self.path}: manifest.json names layer {path}, which the archive does not hold")
            media_type = _layer_media_type(tar.magic(path))
            blob = _BLOB_PATH_RE.match(path)
            if blob:
                digest = f"sha256:{blob.group(1)}"
            elif media_type == mt.OCI_LAYER and len(diff_ids) == len(paths) and is_digest(diff_ids[i]):
                digest = diff_ids[i]  # an uncompressed layer's digest is its diff_id
            else:
                digest = tar.sha256(path)
            self._blob_members[digest] = path
            layers.append(Descriptor(media_type, digest, tar.size(path)))
        manifest = Manifest(config=Descriptor(mt.OCI_CONFIG, config_digest, len(config_bytes)), layers=tuple(layers))
        data = manifest.to_bytes()
        return Descriptor.of(data, mt.OCI_MANIFEST), data

    def _blob_member(self, digest: str) -> str | None:
        tar = self._index()
        if is_digest(digest) and tar.has(_blob_name(digest)):
            return _blob_name(digest)
        if digest not in self._blob_members:
            for image in self._list_images():
                if image.legacy is not None:
                    self._manifest_of(image)
        return self._blob_members.get(digest)

    def _manifest_by_digest(self, digest: str) -> tuple[Descriptor, bytes]:
        if digest in self._put_manifests:
            return self._put_manifests[digest]
        if not os.path.exists(self.path):
            raise NotFoundError(f"{self.description} has no manifest {digest}")
        for image in self._list_images():
            desc, data = self._manifest_of(image)
            if desc.digest == digest:
                return desc, data
        tar = self._index()
        name = _blob_name(digest)
        if tar.has(name):  # e.g. the platform manifests below an index
            data = verify_bytes(tar.read(name), digest, what=f"manifest in {self.path}")
            try:
                mtype = media_type_of(data)
            except ModelError:
                mtype = ""
            if mtype in mt.ALL_MANIFESTS:
                return Descriptor.of(data, mtype), data
        raise NotFoundError(f"{self.description} has no manifest {digest}")

    # -- internals: writing ----------------------------------------------------

    def _image_manifest(self, data: bytes, media_type: str) -> tuple[str, Manifest]:
        """The media type and parsed form of a manifest this archive can hold, else StoreError."""
        mtype = media_type_of(data, media_type)
        if mt.is_index(mtype):
            raise StoreError(
                f"{self.description}: a docker-archive holds single-platform images, not an index; "
                "pick one platform of the image first"
            )
        return mtype, Manifest.from_bytes(data, mtype)  # ModelError for what docker load could not read


    def _check_config(self, manifest: Manifest) -> None:
        """ModelError unless the image's config is one ``docker load`` reads: an image config
        with one diff_id per layer. (The archive was written, and docker load failed on it.)"""
        if manifest.config.size > MAX_CONFIG:
            raise ModelError(f"the config {manifest.config.digest} declares {manifest.config.size} bytes, more than "
                             f"the {MAX_CONFIG} of any image's config; refusing to read it")
        with self._opener(manifest.config)() as blob:
            config = ImageConfig.from_bytes(blob.read())
        if len(config.diff_ids) != len(manifest.layers):
            not_an_image("the image", manifest)
            raise ModelError(f"{len(manifest.layers)} layers in the manifest but {len(config.diff_ids)} diff_ids in "
                             f"the config {manifest.config.digest}; the image is invalid, docker load refuses it")

    def _staged_path(self, digest: str) -> str:
        with self._staging_lock:  # copies put blobs from several threads at once
            return self._staged_path_locked(digest)

    def _staged_path_locked(self, digest: str) -> str:
        if self._staging is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(directory, exist_ok=True)
                remove_leftovers(self.path)
                self._staging = tempfile.mkdtemp(prefix=f".{os.path.basename(self.path)}.", suffix=".staging",
                                                 dir=directory)
            except (FileExistsError, NotADirectoryError):   # a file where a directory of the path should be
                raise StoreError(f"cannot write {self.path}: a file is in the way of its directory "
                                 f"{directory}") from None
            except OSError as exc:
                raise StoreError(f"cannot stage blobs next to {self.path}: {exc.strerror or exc}") from None
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._staging, True)
        return os.path.join(self._staging, split(digest)[1])

    def _opener(self, blob: Descriptor) -> Callable[[], BinaryIO]:
        """Where a blob for the new archive comes from: staged here, or the archive as it is now."""
        if blob.digest not in self._staged and not self.has_blob(blob.digest):
            raise NotFoundError(
                f"{self.description}: blob {blob.digest} was not put before the manifest that names it"
            )
        return lambda: self.open_blob(blob)


def _bytes_opener(content: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(content)
