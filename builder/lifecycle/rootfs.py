"""An image's filesystem, unpacked once per manifest digest, for sandboxes to run in.

``unpack_image`` gives a directory holding the image's layers applied in order (whiteouts
applied, anything that would escape refused: ``builder.oci.unpack``). It is cached under
``~/.cache/pallet/rootfs/<hex>`` (``$XDG_CACHE_HOME`` is honoured), keyed by the manifest
digest, so the second run of the same image starts at once.

Safe against concurrent callers and ``kill -9``:
- one process unpacks a digest at a time, under an exclusive ``flock`` on ``.<hex>.lock``
  (the kernel drops it when the holder dies); the others wait, then find it done;
- it unpacks into ``.tmp-<hex>-<pid>`` and renames that into place only when complete, so
  ``<hex>`` is either absent or whole. A temp dir left by a killed unpacker is removed by
  the next caller that takes the lock (its owner is necessarily gone), and by ``prune``.

A cached root filesystem is never written after the rename: sandboxes mount it read-only
and make their mountpoints elsewhere (see ``builder.lifecycle.sandbox``).

Ownership: when we run as root, files keep the uid/gid their layers give them (numeric). When
we do not, files belong to the user running pallet; inside a sandbox (which maps the step's uid
to that user) they then appear owned by the step's user. Nothing is done as root that a layer did
not ask for, and some things a layer asks for are not done: no device nodes are made and no
setuid/setgid bit is kept (``builder.oci.unpack``: the cache's directories are 0755, so anything
privileged in it would be reachable by every local user).

Verification: each layer's blob is read to its end and checked against its digest and size
before ``apply`` returns (``builder.oci.layerread``); the temp directory becomes ``<hex>`` only
after every layer has, and a failed or killed unpack leaves nothing under ``<hex>``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from builder.errors import PalletError
from builder.oci.digest import split as split_digest

if TYPE_CHECKING:
    from builder.oci.image import Image

_TMP_PREFIX = ".tmp-"
_MAX_SYMLINKS = 40
_LOCK_PREFIX = "."
_LOCK_SUFFIX = ".lock"


class RootfsError(PalletError):
    """The rootfs cache cannot be written or read."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pallet/rootfs``, default ``~/.cache/pallet/rootfs``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "pallet" / "rootfs"


def rootfs_path(digest: str, cache_dir: Path | None = None) -> Path:
    """Where the rootfs of the image with this manifest digest lives (whether or not it does yet)."""
    return (cache_dir or default_cache_dir()) / split_digest(digest)[1]


def unpack_image(image: "Image", cache_dir: Path | None = None) -> Path:
    """The image's filesystem as a directory, unpacked on first use; see the module docstring."""
    from builder.oci.unpack import Unpacker  # zstandard and tarfile: only when unpacking

    root = cache_dir or default_cache_dir()
    hexd = split_digest(image.digest)[1]
    target = root / hexd
    if target.is_dir():
        _touch(target)
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RootfsError(f"cannot create the rootfs cache {root}: {exc.strerror}") from None
    with _lock(root, hexd):
        if target.is_dir():  # another process finished it while we waited
            _touch(target)
            return target
        _remove_stale(root, only=hexd)
        tmp = root / f"{_TMP_PREFIX}{hexd}-{os.getpid()}"
        try:
            os.mkdir(tmp, 0o755)
            with Unpacker(tmp) as unpacker:
                for desc, _diff_id in image.layers():
                    # apply() returns once the whole blob is read and verified; the directory
                    # is renamed into place below only after every layer has been.
                    with image.store.open_blob(desc) as stream:
                        unpacker.apply(stream, what=image.layer_name(desc))
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, target)
            except OSError as exc:  # made meanwhile, without our lock (a lock file pruned away)
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.is_dir():
                    raise
                remove_tree(tmp)
        except BaseException:
            remove_tree(tmp)
            raise
    _remove_stale(root)
    return target


def prune(cache_dir: Path | None = None, *, keep: Iterable[str] = (),
          unused_for: float | None = None) -> list[Path]:
    """Remove cached root filesystems; returns those removed.

    ``keep``: manifest digests (or their hex) to keep. ``unused_for``: seconds; only remove
    those not used for that long (each ``unpack_image`` hit marks one used). A rootfs a
    sandbox is running in (it holds a shared ``flock`` on the directory) is kept, and so is
    one being unpacked. Temp dirs of dead unpackers and their lock files go too.
    """
    root = cache_dir or default_cache_dir()
    if not root.is_dir():
        return []
    kept = {k.split(":", 1)[-1] for k in keep}
    now = time.time()
    removed: list[Path] = []
    removed += _remove_stale(root)
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name.startswith(".") or not entry.is_dir() or name in kept:
            continue
        if unused_for is not None and now - entry.stat().st_mtime < unused_for:
            continue
        with _try_lock(root, name) as got:
            if not got or not entry.is_dir():
                continue
            with in_use(entry, exclusive=True, wait=False) as free:
                if not free:
                    continue
                doomed = root / f"{_TMP_PREFIX}{name}-prune{os.getpid()}"
                os.rename(entry, doomed)  # gone from view at once; removed below
            remove_tree(doomed)
            removed.append(entry)
    for lock in root.glob(f"{_LOCK_PREFIX}*{_LOCK_SUFFIX}"):
        hexd = lock.name[len(_LOCK_PREFIX):-len(_LOCK_SUFFIX)]
        if not (root / hexd).exists():
            with _try_lock(root, hexd) as got:
                if got:
                    lock.unlink(missing_ok=True)
    return removed


@contextmanager
def in_use(rootfs: Path, *, exclusive: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold a ``flock`` on the rootfs directory: shared while a sandbox runs in it, so that
    ``prune`` (exclusive, not waiting) leaves it alone. Yields whether the lock was taken."""
    try:
        fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """``rm -rf``, also through read-only directories (an image may have some) when not root."""
    def retry(func, p, _exc):  # noqa: ANN001
        parent = os.path.dirname(p)
        try:
            os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) | stat.S_IRWXU)
            func(p)
        except FileNotFoundError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)


# -- paths inside a rootfs ---------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """A path inside a rootfs, as a process chrooted there would see it.

    ``real``: the components that exist, symlinks resolved (every one a directory, except
    the last when ``rest`` is empty). ``rest``: what follows that does not exist (``blocked``
    when its first component does exist but is not a directory). ``kind`` of the last real
    component when ``rest`` is empty: dir, file or other. ``stopped``: the walk was stopped
    at ``real`` by the caller (a mountpoint), ``rest`` left unresolved.
    """

    real: tuple[str, ...]
    rest: tuple[str, ...] = ()
    kind: str | None = None
    blocked: bool = False
    stopped: bool = False

    def host_path(self, rootfs: Path) -> Path | None:
        return rootfs.joinpath(*self.real) if not self.rest and not self.stopped else None


def resolve_in_root(rootfs: Path, path: str, *,
                    stop: Callable[[tuple[str, ...]], bool] | None = None) -> Resolved:
    """Resolve ``path`` inside ``rootfs`` without ever leaving it.

    Symlinks are followed the way the kernel would inside the image: absolute targets from
    the rootfs, ``..`` never above it. Nothing on the host outside ``rootfs`` is looked at.
    """
    todo = [p for p in path.split("/") if p and p != "."]
    real: list[str] = []
    hops = 0
    while todo:
        if stop is not None and stop(tuple(real)):
            return Resolved(tuple(real), tuple(todo), stopped=True)
        part = todo.pop(0)
        if part == "..":
            if real:
                real.pop()
            continue
        host = rootfs.joinpath(*real, part)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            return Resolved(tuple(real), (part, *todo))
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_SYMLINKS:
                return Resolved(tuple(real), (part, *todo), blocked=True)
            target = os.readlink(host)
            if target.startswith("/"):
                real = []
            todo[:0] = [p for p in target.split("/") if p and p != "."]
            continue
        if stat.S_ISDIR(st.st_mode):
            real.append(part)
            continue
        if todo:
            return Resolved(tuple(real), (part, *todo), blocked=True)
        real.append(part)
        return Resolved(tuple(real), kind="file" if stat.S_ISREG(st.st_mode) else "other")
    if stop is not None and stop(tuple(real)):
        return Resolved(tuple(real), stopped=True)
    return Resolved(tuple(real), kind="dir")


# -- locks and stale temp dirs ---------------------------------------------------------


def _lock_path(root: Path, hexd: str) -> Path:
    return root / f"{_LOCK_PREFIX}{hexd}{_LOCK_SUFFIX}"


def _open_locked(root: Path, hexd: str, wait: bool) -> int | None:
    """An fd holding the digest's lock, or None (not waiting, and someone holds it).

    ``prune`` deletes lock files; one deleted while we waited on it is no lock at all, so
    the lock is only ours once the file we locked is still the one at that path.
    """
    path = _lock_path(root, hexd)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def _lock(root: Path, hexd: str) -> Iterator[None]:
    fd = _open_locked(root, hexd, wait=True)
    assert fd is not None
    try:
        yield
    finally:
        os.close(fd)


@contextmanager
def _try_lock(root: Path, hexd: str) -> Iterator[bool]:
    try:
        fd = _open_locked(root, hexd, wait=False)
    except OSError:
        fd = None
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def _remove_stale(root: Path, only: str | None = None) -> list[Path]:
    """Remove temp dirs whose unpacker is gone: those whose digest lock nobody holds.

    With ``only``, the caller holds that digest's lock already, so its temp dirs are stale.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in sorted(names):
        if not name.startswith(_TMP_PREFIX):
            continue
        hexd = name[len(_TMP_PREFIX):].split("-", 1)[0]
        path = root / name
        if only is not None:
            if hexd == only:
                remove_tree(path)
                removed.append(path)
            continue
        with _try_lock(root, hexd) as got:
            if got:
                remove_tree(path)
                removed.append(path)
    return removed


def _touch(path: Path) -> None:
    """Mark a rootfs used now (its mtime), for ``prune(unused_for=...)``; best effort."""
    try:
        os.utime(path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES, errno.EROFS):
            raise
