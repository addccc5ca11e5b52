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

A cached root filesystem is not changed after the rename: sandboxes mount it read-only and
make their mountpoints elsewhere (see ``builder.lifecycle.sandbox``). One thing is added before
the rename: an empty ``/etc/resolv.conf`` and ``/etc/hosts`` where the image has nothing
at that path (mmdebstrap's images have no resolv.conf), as Docker gives every container them.
They are the mountpoints for the host's files in a step with network; without them the sandbox
rebuilds ``/etc`` from one mount per entry, 25 ms of every sandbox start (8 detects a build).
A rootfs an older pallet unpacked gets them on its next use (each made with ``O_EXCL``, so
concurrent users agree, and a sandbox already running sees an empty file appear, nothing else).

Bounded: the process that asked for a rootfs holds a shared ``flock`` on it until it exits
(a lease: a build between its sandboxes, ``pallet run`` while the app runs). After an unpack
adds an entry, least recently used ones that nobody holds are removed until the cache fits
``$PALLET_ROOTFS_MAX`` (``max_size``); each use touches the directory (its last use) and its
disk usage is measured once, when it is unpacked (``.<hex>.size``). ``pallet prune`` removes
entries the same way (``builder.gc``): renamed out of view under the locks, then deleted.

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

import contextlib
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

from builder import treewalk
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
    """``rootfs`` in the cache root (``$PALLET_CACHE``, ``$XDG_CACHE_HOME/pallet``, ``~/.cache/pallet``)."""
    from builder.cachedir import cache_root

    return cache_root() / "rootfs"


def rootfs_path(digest: str, cache_dir: Path | None = None) -> Path:
    """Where the rootfs of the image with this manifest digest lives (whether or not it does yet)."""
    return (cache_dir or default_cache_dir()) / split_digest(digest)[1]


def unpack_image(image: "Image", cache_dir: Path | None = None) -> Path:
    """The image's filesystem as a directory, unpacked on first use; see the module docstring.

    The directory is leased to this process until it exits (or ``release``): ``prune`` and the
    cache's size bound never remove it meanwhile, also between the sandboxes a build runs in it.
    """
    root = cache_dir or default_cache_dir()
    limit = max_size()  # a bad $PALLET_ROOTFS_MAX is an error before any work
    for _ in range(5):  # another process's prune may remove it between unpacking and leasing
        target, added = _unpacked(image, root)
        if _lease(target):
            if added:
                enforce_bound(root, limit)
            return target
    raise RootfsError(f"the rootfs of {image.digest} in {root} keeps being removed while in use; "
                      "is a prune running in a loop?")


def _unpacked(image: "Image", root: Path) -> tuple[Path, bool]:
    """The rootfs directory, and whether this call unpacked it."""
    from builder.oci.unpack import Unpacker  # zstandard and tarfile: only when unpacking

    hexd = split_digest(image.digest)[1]
    target = root / hexd
    if target.is_dir():
        add_mountpoints(target)  # unpacked by an older pallet: empty files, made atomically
        _touch(target)
        return target, False
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RootfsError(f"cannot create the rootfs cache {root}: {exc.strerror}") from None
    with _lock(root, hexd):
        if target.is_dir():  # another process finished it while we waited
            _touch(target)
            return target, False
        _remove_stale(root, only=hexd)
        tmp = root / f"{_TMP_PREFIX}{hexd}-{os.getpid()}"
        try:
            os.mkdir(tmp, 0o755)
            with Unpacker(tmp, read_only=True, min_free=MIN_FREE) as unpacker:  # mounted read-only, always
                for desc, diff_id in image.layers():
                    # apply() returns once the whole blob is read and verified (its digest, and
                    # the diff_id the config lists for it); the directory is renamed into place
                    # below only after every layer has been.
                    with image.store.open_blob(desc) as stream:
                        unpacker.apply(stream, what=image.layer_name(desc), diff_id=diff_id)
            os.chmod(tmp, 0o755)
            add_mountpoints(tmp)
            record_size(root, hexd, disk_usage(tmp))
            try:
                os.rename(tmp, target)
            except OSError as exc:  # made meanwhile, without our lock (a lock file pruned away)
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.is_dir():
                    raise
                remove_tree(tmp)
        except BaseException:
            remove_tree(tmp)
            raise
    _touch(target)  # used now (unpacking keeps the image's own time on its top directory)
    _remove_stale(root)
    return target, True


#: Files every sandbox with network binds from the host (``builder.lifecycle.sandbox``).
MOUNTPOINT_FILES = ("resolv.conf", "hosts")


def add_mountpoints(tree: Path) -> None:
    """Empty ``/etc`` files for the host's network files to be mounted on, where the image has
    nothing at that path. Only in an ``/etc`` that is a directory of the tree itself (never through
    a symlink), and never over anything the image has (a symlink included, dangling or not)."""
    try:
        etc = os.open(tree / "etc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return  # no /etc, or not a directory of its own: the sandbox composes what it needs
    try:
        for name in MOUNTPOINT_FILES:
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=etc))
            except OSError:
                pass  # there already, or /etc not writable to us (an image's 0555 /etc): composed
    finally:
        os.close(etc)


# -- leases, sizes, last use: what prune and the size bound go by -------------------------

#: Rootfs directories this process holds a shared ``flock`` on (path -> fd), until it exits.
_LEASES: dict[Path, int] = {}


def _lease(target: Path) -> bool:
    """Hold a shared lock on ``target`` for the rest of this process; False when what we locked
    is no longer at ``target`` (a prune renamed it away before we got the lock)."""
    if target in _LEASES:
        return target.is_dir()
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)  # prune holds it exclusively only while renaming
    try:
        st = os.stat(target)
        same = (st.st_ino, st.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev)
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return False
    _LEASES[target] = fd
    return True


def release(path: Path | None = None) -> None:
    """Give up this process's lease on ``path`` (all of them with None): for long-lived callers."""
    for held in [p for p in _LEASES if path is None or p == path]:
        os.close(_LEASES.pop(held))


def _size_path(root: Path, hexd: str) -> Path:
    return root / f"{_LOCK_PREFIX}{hexd}.size"


def record_size(root: Path, hexd: str, size: int) -> None:
    """Keep a rootfs's disk usage beside it: measured once, when it is unpacked."""
    path = _size_path(root, hexd)
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    with contextlib.suppress(OSError):
        tmp.write_text(f"{size}\n")
        os.replace(tmp, path)


def disk_usage(path: Path) -> int:
    """Bytes ``path`` takes on disk (allocated blocks; hard links counted once)."""
    try:
        return _disk_usage(path)
    except RecursionError:  # a tree deeper than os.walk goes (a build made it): coreutils' du
        return treewalk.du(path)


def _disk_usage(path: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def size_of(root: Path, hexd: str) -> int:
    """The recorded disk usage of a cached rootfs; measured (and recorded) when it has none, as
    for trees unpacked before sizes were kept."""
    with contextlib.suppress(OSError, ValueError):
        return int(_size_path(root, hexd).read_text().strip())
    size = disk_usage(root / hexd)
    record_size(root, hexd, size)
    return size


@dataclass(frozen=True)
class CachedRootfs:
    digest: str        # sha256:<hex>
    path: Path
    size: int          # bytes on disk
    last_used: float   # epoch seconds (mtime of the directory, touched on every use)


def entries(cache_dir: Path | None = None) -> list[CachedRootfs]:
    """The complete root filesystems in the cache (temp dirs and lock files are not entries)."""
    root = cache_dir or default_cache_dir()
    out: list[CachedRootfs] = []
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return out
    for name in names:
        path = root / name
        if name.startswith(".") or not path.is_dir():
            continue
        with contextlib.suppress(FileNotFoundError):
            out.append(CachedRootfs(f"sha256:{name}", path, size_of(root, name), path.stat().st_mtime))
    return out


def remove(entry: Path) -> bool:
    """Remove one cached rootfs unless it is in use or being unpacked; True when removed.

    It is renamed to a temp name first (gone from view at once, so nothing half-removed is ever
    used), then deleted."""
    root, name = entry.parent, entry.name
    with _try_lock(root, name) as got:
        if not got or not entry.is_dir():
            return False
        with in_use(entry, exclusive=True, wait=False) as free:
            if not free:
                return False
            doomed = root / f"{_TMP_PREFIX}{name}-prune{os.getpid()}"
            os.rename(entry, doomed)
        _size_path(root, name).unlink(missing_ok=True)
        remove_tree(doomed)
    return True


def is_busy(entry: Path) -> bool:
    """Whether a cached rootfs is in use (leased, a sandbox in it) or being unpacked."""
    with _try_lock(entry.parent, entry.name) as got:
        if not got:
            return True
        with in_use(entry, exclusive=True, wait=False) as free:
            return not free


def remove_stale(root: Path) -> list[Path]:
    """Temp dirs of unpackers and removers that died."""
    return _remove_stale(root)


def max_size() -> int | None:
    """The rootfs cache's bound in bytes: ``$PALLET_ROOTFS_MAX`` (``20G``, ``500M``; ``off``: none),
    default 10 GiB."""
    from builder.gc.units import parse_size

    text = os.environ.get("PALLET_ROOTFS_MAX", "").strip()
    if text.lower() in ("off", "none", "unlimited"):
        return None
    if not text:
        return DEFAULT_MAX_SIZE
    try:
        return parse_size(text)
    except ValueError as exc:
        raise RootfsError(f"PALLET_ROOTFS_MAX={text}: {exc}") from None


DEFAULT_MAX_SIZE = 10 << 30
#: Free bytes an unpack leaves on the cache's file system: a hostile image (a zstd layer of a
#: megabyte may hold 32 GB of zeros) is refused before it fills the host's disk.
MIN_FREE = 512 << 20


def enforce_bound(cache_dir: Path | None, limit: int | None) -> list[CachedRootfs]:
    """Remove least recently used root filesystems until the cache fits ``limit`` bytes (None:
    no bound); those in use (leased, or a sandbox running in them) stay, even over the bound.
    Called after an unpack adds an entry. Returns what was removed."""
    from builder.gc.select import least_recently_used

    if limit is None:
        return []
    found = entries(cache_dir)
    removed: list[CachedRootfs] = []
    stays: set[Path] = set()
    while True:  # each round removes an entry or finds one in use: it ends
        gone = {e.path for e in removed}
        left = [e for e in found if e.path not in gone]
        plan = least_recently_used(left, keep_bytes=limit, stays={i for i, e in enumerate(left) if e.path in stays})
        if not plan:
            return removed
        entry = plan[0]
        if remove(entry.path):
            removed.append(entry)
        else:
            stays.add(entry.path)


def prune(cache_dir: Path | None = None, *, keep: Iterable[str] = (),
          unused_for: float | None = None) -> list[Path]:
    """Remove cached root filesystems; returns those removed.

    ``keep``: manifest digests (or their hex) to keep. ``unused_for``: seconds; only remove
    those not used for that long (each ``unpack_image`` hit marks one used). A rootfs in use (a
    process leased it, or a sandbox runs in it: a shared ``flock`` on the directory) is kept,
    and so is one being unpacked. Temp dirs of dead unpackers and their lock files go too.
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
        if remove(entry):
            removed.append(entry)
    forget_removed(root)
    return removed


def forget_removed(root: Path) -> None:
    """Lock and size files of digests no longer cached."""
    for lock in root.glob(f"{_LOCK_PREFIX}*{_LOCK_SUFFIX}"):
        hexd = lock.name[len(_LOCK_PREFIX):-len(_LOCK_SUFFIX)]
        if not (root / hexd).exists():
            with _try_lock(root, hexd) as got:
                if got:
                    lock.unlink(missing_ok=True)
    for size in root.glob(f"{_LOCK_PREFIX}*.size"):
        if not (root / size.name[len(_LOCK_PREFIX):-len(".size")]).exists():
            size.unlink(missing_ok=True)


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
        treewalk.rmtree(path, onerror=retry)


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
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            return Resolved(tuple(real), (part, *todo))  # a name no file system holds: not there
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
    """An fd holding the digest's lock, or None (not waiting, and someone holds it); ``prune``
    deletes lock files, which ``open_locked`` allows for."""
    from builder.gc.lease import open_locked

    return open_locked(_lock_path(root, hexd), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))


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
    from builder.gc.lease import try_exclusive

    with try_exclusive(_lock_path(root, hexd)) as got:
        yield got


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
