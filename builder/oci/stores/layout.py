"""An OCI image layout directory (image-spec ``image-layout.md``): the embedded default store.

Crash safety: every file is written to a temp name in the layout's root, fsynced and renamed
into place, so a reader (or a kill -9) never sees a half-written blob or ``index.json``. Temp
names start with ``.tmp-`` and live in the root, never in ``blobs/<alg>/``: other tools read every
name there as a digest (``umoci gc`` fails on a ``.tmp-*`` a killed copy left there), and the
layout stays valid, for them too, at every instant.

Two writers at once: ``index.json`` is read-modified-written under an exclusive ``flock`` on
``.pallet.lock`` in the layout, so concurrent tag moves never lose one another. Blob writes need no
lock: two writers of the same digest rename identical bytes onto the same name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from builder import jsonsafe
from builder.errors import DigestMismatchError, InputFileError, NotFoundError, StoreError
from builder.inputfile import open_input
from builder.oci import mediatypes as mt
from builder.oci.digest import VerifyingReader, hasher, is_digest, split, verify_bytes
from builder.oci.model import Descriptor, ModelError, canonical_json, media_type_of
from builder.oci.stores.base import MAX_DOCUMENT, ProgressFn, Store, nearest_existing


def open_regular(path: Path) -> BinaryIO:
    """``open(path, "rb")`` of a regular file only: a FIFO would block the reader forever and a
    device (``/dev/zero``) never end, so a layout holding one is damaged, not waited on."""
    try:
        return open_input(path, "layout file")
    except InputFileError:
        raise StoreError(f"{path} is not a regular file (a directory, FIFO or device); the layout is damaged") from None


#: The most of a layout's ``oci-layout`` (a one-line JSON file) read; index.json and manifests
#: are read up to ``MAX_DOCUMENT``, as a registry's documents are: a stranger's layout may hold a
#: sparse file of terabytes there, which was read whole into memory.
MAX_MARKER = 1 << 20


def read_regular(path: Path, limit: int = MAX_DOCUMENT) -> bytes:
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise StoreError(f"{path} is over {limit} bytes, more than any real one; the layout is damaged")
    return data


_CHUNK = 1 << 20
LOCK_NAME = ".pallet.lock"
#: A ``.tmp-*`` file untouched for this long belongs to a writer that is gone (one that is
#: still copying writes to it all the time); it is removed when the layout is opened to write.
STALE_TEMP_AGE = 3600.0


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.
    The temp file is made in ``tmp_dir`` (default: beside ``path``; same filesystem)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=tmp_dir or path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


class LayoutStore(Store):
    """An OCI layout at ``path``. With ``namespace``, tags are stored as ``NAMESPACE:TAG``.

    The local store ($PALLET_HOME) is one layout holding every image name, so its tags carry the
    name; an ``oci:PATH:TAG`` layout uses bare tags, as skopeo and umoci do.
    """

    def __init__(self, path: str | os.PathLike[str], namespace: str | None = None, create: bool = True) -> None:
        self.root = Path(path)
        self.namespace = namespace
        self.description = f"OCI layout {self.root}" + (f" ({namespace})" if namespace else "")
        self._create = create
        self._ready = False
        self._swept = False  # stale temp files removed (done once, on the first write)
        self._init_lock = threading.Lock()
        self._blob_dirs: set[Path] = set()  # blob directories checked to be no symlink (_blob_target)

    # -- layout files -------------------------------------------------------

    def _ensure(self, for_write: bool) -> None:
        if self._ready and (self._swept or not for_write):
            return
        with self._init_lock:
            if not self._ready:
                self._check_layout(for_write)
                self._ready = True
            if for_write and not self._swept:
                self.remove_temp_files(older_than=STALE_TEMP_AGE)
                self._swept = True

    def check_writable(self) -> None:
        """An existing directory is checked as a write would (a layout, or empty, or what an
        interrupted creation left); a path that does not exist yet needs a directory it can be
        made in. Nothing is created."""
        if os.path.lexists(self.root):
            if not self.root.is_dir():
                raise StoreError(f"{self.root} exists and is not a directory")
            if (self.root / "oci-layout").is_file():
                self._ensure(for_write=False)
            else:
                self._refuse_foreign_data()
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise StoreError(f"cannot write to OCI layout {self.root}: permission denied")
            return
        parent = nearest_existing(self.root.absolute().parent)
        if not parent.is_dir():
            raise StoreError(f"cannot create OCI layout at {self.root}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create OCI layout at {self.root}: {parent} is not writable")

    def _check_layout(self, for_write: bool) -> None:
        marker = self.root / "oci-layout"
        if not marker.is_file():
            if not for_write or not self._create:
                if self.root.exists():
                    raise NotFoundError(f"{self.root} is not an OCI image layout (no oci-layout file)")
                raise NotFoundError(f"OCI layout {self.root} does not exist")
            self._create_layout(marker)
        try:
            doc = json.loads(read_regular(marker, MAX_MARKER))
        except (ValueError, OSError, RecursionError) as exc:
            raise StoreError(f"{self.root}: unreadable oci-layout file ({exc})") from None
        if not isinstance(doc, dict):
            raise StoreError(f"{self.root}: its oci-layout file is not a JSON object ({type(doc).__name__}), "
                             'as {"imageLayoutVersion": "1.0.0"} is')
        version = doc.get("imageLayoutVersion")
        if not isinstance(version, str) or not version.startswith("1."):
            raise StoreError(f"{self.root}: unsupported OCI layout version {version!r}")

    def _create_layout(self, marker: Path) -> None:
        """Create an empty layout; under the layout lock, so two processes creating it agree."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} exists and is not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with self._locked():
                if marker.is_file():
                    return
                self._refuse_foreign_data()
                (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
                atomic_write(self.root / "index.json",
                             canonical_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}))
                # The marker last: a layout is a layout only once it is complete.
                atomic_write(marker, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
        except OSError as exc:
            raise StoreError(f"cannot create OCI layout at {self.root}: {exc.strerror}") from None

    def _refuse_foreign_data(self) -> None:
        """StoreError for a directory without ``oci-layout`` that holds more than an interrupted
        creation leaves: that is someone's data, never to be written into."""
        ours = {LOCK_NAME, "blobs", "index.json"}
        if any(p.name not in ours and not p.name.startswith(".tmp-") for p in self.root.iterdir()) \
                or not self._index_is_ours():
            raise StoreError(f"{self.root} is not empty and is not an OCI image layout (no oci-layout file); "
                             "refusing to write into it")

    def _index_is_ours(self) -> bool:
        """Whether ``index.json`` is absent or the empty one an interrupted creation leaves.

        Anything else (tags, entries, unreadable bytes) is data we could not read, since reads
        refuse a directory without ``oci-layout``; a write must not replace it.
        """
        try:
            index = json.loads(read_regular(self.root / "index.json"))
        except FileNotFoundError:
            return True
        except (ValueError, OSError, RecursionError):
            return False
        return isinstance(index, dict) and index.get("manifests") == [] \
            and set(index) <= {"schemaVersion", "mediaType", "manifests"}

    def _blob_path(self, digest: str) -> Path:
        algo, hexpart = split(digest)
        return self.root / "blobs" / algo / hexpart

    def _blob_target(self, digest: str) -> Path:
        """Where a blob is written: ``_blob_path``, its directories made, and neither ``blobs``
        nor ``blobs/<algo>`` a symlink. A layout is often someone else's directory (shared CI
        storage); ``blobs/sha256 -> /etc/cron.d`` put the copied image's blobs, whose bytes the
        image's author chose, where cron runs them, as root."""
        target = self._blob_path(digest)
        if target.parent in self._blob_dirs:
            return target
        for d in (target.parent.parent, target.parent):
            with contextlib.suppress(FileExistsError):
                d.mkdir()
            st = d.lstat()
            if not stat.S_ISDIR(st.st_mode):
                what = f"a symlink (to {os.readlink(d)!r})" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise StoreError(f"{d} is {what}; refusing to write blobs through it into the layout {self.root}")
        self._blob_dirs.add(target.parent)
        return target

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            # never through a symlink: O_CREAT would make the file it names (an empty /etc/nologin)
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(f"{self.root / LOCK_NAME} is a symlink; refusing to lock the layout through it") from None
            raise StoreError(f"cannot lock {self.root}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_index(self) -> dict:
        try:
            data = read_regular(self.root / "index.json")
            index = jsonsafe.loads(data)
        except FileNotFoundError:
            raise StoreError(f"{self.root}: index.json is missing; the layout is damaged") from None
        except (ValueError, OSError, RecursionError) as exc:
            raise StoreError(f"{self.root}: index.json is unreadable ({exc})") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise StoreError(f"{self.root}: index.json is not an image index")
        index.setdefault("manifests", [])
        for entry in index["manifests"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("annotations") or {}, dict):
                raise StoreError(f"{self.root}: index.json lists {str(entry)[:60]!r}, which is not a "
                                 "descriptor; the layout is damaged")
        return index

    def _write_index(self, index: dict) -> None:
        index["schemaVersion"] = 2
        index["mediaType"] = mt.OCI_INDEX
        atomic_write(self.root / "index.json", canonical_json(index))

    def _ref_name(self, tag: str) -> str:
        return f"{self.namespace}:{tag}" if self.namespace else tag

    # -- Store: manifests and tags -----------------------------------------

    def resolve(self, ref: str) -> Descriptor:
        self._ensure(for_write=False)
        if is_digest(ref):
            for entry in self._read_index()["manifests"]:
                if entry.get("digest") == ref:
                    return Descriptor.from_json(entry).with_annotations(None)
            path = self._blob_path(ref)
            if not path.is_file():
                raise NotFoundError(f"manifest {ref} not found in {self.description}")
            data = verify_bytes(read_regular(path), ref, what="manifest")
            return Descriptor(media_type=media_type_of(data), digest=ref, size=len(data))
        name = self._ref_name(ref)
        for entry in reversed(self._read_index()["manifests"]):
            if (entry.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) == name:
                try:
                    return Descriptor.from_json(entry)
                except ModelError as exc:
                    raise StoreError(f"{self.root}: index.json entry for {name!r} is invalid: {exc}") from None
        raise NotFoundError(f"tag {ref!r} not found in {self.description}")

    def get_manifest(self, ref: str) -> tuple[Descriptor, bytes]:
        desc = self.resolve(ref)
        path = self._blob_path(desc.digest)
        try:
            data = read_regular(path)
        except FileNotFoundError:
            raise StoreError(f"{self.description}: manifest blob {desc.digest} is missing; the layout is damaged") from None
        verify_bytes(data, desc.digest, desc.size, what="manifest")
        media_type = media_type_of(data, desc.media_type)
        return Descriptor(media_type=media_type, digest=desc.digest, size=len(data),
                          annotations=desc.annotations, platform=desc.platform), data

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        self._ensure(for_write=True)
        desc = Descriptor.of(data, media_type)
        if not self.has_blob(desc.digest):
            self._write_blob_bytes(desc.digest, data)
        subject = None
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            subject = json.loads(data).get("subject")
        if subject or tag is not None:
            with self._locked():
                index = self._read_index()
                entries = index["manifests"]
                if tag is not None:
                    name = self._ref_name(tag)
                    entries[:] = [e for e in entries
                                  if (e.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) != name]
                    entry = desc.to_json()
                    entry["annotations"] = {mt.ANNOTATION_REF_NAME: name}
                    entries.append(entry)
                elif not any(e.get("digest") == desc.digest for e in entries):
                    # Referrers (signatures, SBOMs) must be reachable from index.json or a
                    # garbage collector may drop them; they carry no ref.name.
                    entries.append(desc.to_json())
                self._write_index(index)
        return desc

    def tag(self, tag: str, desc: Descriptor, data: bytes | None = None) -> None:
        if not self.has_blob(desc.digest):
            raise NotFoundError(f"manifest {desc.digest} not found in {self.description}")
        self._ensure(for_write=True)
        with self._locked():
            index = self._read_index()
            name = self._ref_name(tag)
            entries = [e for e in index["manifests"]
                       if (e.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) != name]
            entry = Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform).to_json()
            entry["annotations"] = {mt.ANNOTATION_REF_NAME: name}
            entries.append(entry)
            index["manifests"] = entries
            self._write_index(index)

    def untag(self, tag: str) -> None:
        self._ensure(for_write=False)
        with self._locked():
            index = self._read_index()
            name = self._ref_name(tag)
            before = len(index["manifests"])
            index["manifests"] = [e for e in index["manifests"]
                                  if (e.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) != name]
            if len(index["manifests"]) == before:
                raise NotFoundError(f"tag {tag!r} not found in {self.description}")
            self._write_index(index)

    def list_tags(self) -> list[str]:
        try:
            self._ensure(for_write=False)
        except NotFoundError:
            return []
        tags = set()
        prefix = f"{self.namespace}:" if self.namespace else None
        for entry in self._read_index()["manifests"]:
            name = (entry.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME)
            if not name:
                continue
            if prefix is None:
                tags.add(name)
            elif name.startswith(prefix):
                tags.add(name[len(prefix):])
        return sorted(tags)

    def names(self) -> list[str]:
        """Every ``ref.name`` in the layout (the local store lists its images with this)."""
        self._ensure(for_write=False)
        return sorted({(e.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME)
                       for e in self._read_index()["manifests"]} - {None})

    # -- Store: blobs -------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        try:
            return self._blob_path(digest).is_file()
        except ValueError:
            return False

    def blob_size(self, digest: str) -> int | None:
        try:
            st = self._blob_path(digest).stat()
        except (ValueError, OSError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        self._ensure(for_write=False)
        try:
            raw = open_regular(self._blob_path(desc.digest))
        except FileNotFoundError:
            raise NotFoundError(f"blob {desc.digest} not found in {self.description}") from None
        return VerifyingReader(raw, desc.digest, desc.size, what=f"blob in {self.root}")  # type: ignore[return-value]

    def put_blob(self, desc: Descriptor, stream: BinaryIO, progress: ProgressFn | None = None) -> None:
        self._ensure(for_write=True)
        target = self._blob_target(desc.digest)
        if target.is_file():
            return
        h = hasher(desc.digest)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)  # not in blobs/: see the module doc
        count = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    h.update(chunk)
                    out.write(chunk)
                    count += len(chunk)
                    if progress:
                        progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            got = f"{split(desc.digest)[0]}:{h.hexdigest()}"
            if got != desc.digest or (desc.size >= 0 and count != desc.size):
                raise DigestMismatchError(
                    f"blob {desc.digest}: received {count} bytes with digest {got}; nothing was stored")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)

    def put_blob_file(self, desc: Descriptor, path: Path) -> None:
        """Adopt a file we just wrote and checked (a fresh layer) without copying its bytes."""
        self._ensure(for_write=True)
        target = self._blob_target(desc.digest)
        if target.is_file():
            return
        try:
            os.link(path, target)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EEXIST, errno.EMLINK):
                raise
            with open(path, "rb") as f:
                self.put_blob(desc, f)

    def _write_blob_bytes(self, digest: str, data: bytes) -> None:
        atomic_write(self._blob_target(digest), data, tmp_dir=self.root)

    # -- referrers ------------------------------------------------------------

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        try:
            self._ensure(for_write=False)
        except NotFoundError:
            return []
        found: list[Descriptor] = []
        for entry in self._read_index()["manifests"]:
            if (entry.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME):
                continue
            try:
                desc = Descriptor.from_json(entry)
                data = read_regular(self._blob_path(desc.digest))
                manifest = json.loads(data)
            except (ModelError, OSError, ValueError, RecursionError):
                continue
            if not isinstance(manifest, dict) or not isinstance(manifest.get("subject"), dict) \
                    or manifest["subject"].get("digest") != digest:
                continue
            config = manifest.get("config")
            kind = manifest.get("artifactType") or (config.get("mediaType") if isinstance(config, dict) else None)
            annotations = manifest.get("annotations")
            if artifact_type and kind != artifact_type:
                continue
            found.append(Descriptor(media_type=media_type_of(data, desc.media_type), digest=desc.digest,
                                    size=len(data), artifact_type=kind,
                                    annotations=annotations if isinstance(annotations, dict) and annotations
                                    else None))
        return found

    # -- maintenance --------------------------------------------------------

    def remove_temp_files(self, older_than: float = 0.0) -> int:
        """Delete ``.tmp-*`` files an interrupted writer left behind (those not modified for
        ``older_than`` seconds); returns how many. Temp files live in the layout's root (older
        pallets also wrote them in ``blobs/<algorithm>/``)."""
        count = 0
        cutoff = time.time() - older_than
        for tmp in [*self.root.glob(".tmp-*"), *self.root.glob("blobs/*/.tmp-*")]:
            with contextlib.suppress(OSError):
                if tmp.lstat().st_mtime <= cutoff:
                    tmp.unlink()
                    count += 1
        return count

