"""Safe extraction of layers into a directory, with OCI whiteouts.

A layer is untrusted input: it may come from any registry. The promise here is that
unpacking never touches anything outside the target directory, whatever the archive says.

How that is kept:
- entry names that are absolute or contain ``..`` are refused (UnsafeArchiveError);
- every path is walked from a file descriptor of the root, one component at a time, with
  ``O_NOFOLLOW`` and ``*at()`` system calls, so no string path is ever handed to the kernel
  to resolve. A symlink met on the way (from this layer or a lower one) is followed by us,
  only if it is relative and stays inside the root; an absolute symlink, or a relative one
  that climbs above the root, is refused when an entry would be written through it. (An
  absolute target means something else on the host than in the image, so we do not guess.)
  Symlink *entries* themselves are created verbatim, wherever they point: a symlink is data.
- the last component is never written through: an existing symlink, file or directory in
  the way is removed first (not followed), and files are created with ``O_EXCL|O_NOFOLLOW``;
- hard links are made with ``linkat`` without following, to a target resolved the same way.

Layers are read through ``builder.oci.layerread.LayerTar``, so ``apply`` returns only after the
blob is verified to its last byte, and no member may declare more than its blob could hold; what
was written before a failure is unverified and the caller throws it away (``rootfs`` does).

Whiteouts (OCI image-spec "layer.md"): ``.wh.NAME`` deletes NAME as left by lower layers;
``.wh..wh..opq`` empties its directory of what lower layers put there. Entries of the layer
being applied are never deleted by its own whiteouts, whatever their order in the tar.

Ownership and devices: as root, uid/gid are kept (numeric; user names are ignored, as
container runtimes do); otherwise ownership is left to the user running us. FIFOs are made.

Privileges: a layer is untrusted, and what we unpack stays on the host (the rootfs cache, whose
directories other users may traverse). So by default no device node is made (a ``b 254,0``
node with mode 0666 would hand any local user the host's disk) and setuid/setgid bits are
dropped from files (a setuid-root shell from an image would be a host root shell). Nothing
pallet runs needs them: sandboxes get their own ``/dev``, and run with ``no_new_privs``, under
which setuid bits do nothing. ``keep_privileges=True`` (as root) unpacks a trusted layer
faithfully, devices and all. ``read_only=True`` (the rootfs cache, only ever mounted read-only)
also drops the world-write bit: an image's ``/var/tmp`` (1777), or any directory or file a
layer makes 0777, would otherwise let any local user put files into what later runs of the
image see. It is not the default: a restored build cache must keep its modes bit for bit.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

from builder.errors import PalletError, UnsafeArchiveError, shown
from builder.oci.layerread import CORRUPT, CorruptLayerError, LayerTar

__all__ = ["CorruptLayerError", "TarEntry", "Unpacker", "UnpackError", "iter_layer_entries",
           "unpack_layer", "unpack_layers", "entry_parts"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
_MAX_SYMLINKS = 40  # as the kernel's ELOOP limit
_COPY_SIZE = 1 << 20
#: Bytes written between two looks at the free space ``min_free`` keeps.
_FREE_CHECK_EVERY = 64 << 20
#: What one entry costs the file system besides its bytes, as counted toward the next look: an
#: inode, and a block for a directory. A layer of millions of empty directories writes no byte
#: of data but fills a disk (and its inodes) all the same.
_ENTRY_COST = 4096
#: (uid_t)-1: chown's "leave it as it is"; every id an entry may have is below it.
_NO_ID = 2 ** 32 - 1
#: The free inodes ``min_free`` keeps too (on file systems that count them).
_MIN_FREE_INODES = 32768

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

@dataclass(frozen=True)
class TarEntry:
    """One entry of a layer, as listed (nothing is read from or written to disk)."""

    path: str  # as in the archive, without a leading "./" or a trailing "/"
    type: str  # file, dir, symlink, hardlink, char, block, fifo, other
    mode: int
    size: int
    uid: int
    gid: int
    mtime: int
    link_target: str = ""

    @property
    def is_whiteout(self) -> bool:
        return os.path.basename(self.path).startswith(WHITEOUT_PREFIX)


def _type_of(ti: tarfile.TarInfo) -> str:
    if ti.isreg():
        return "file"
    if ti.isdir():
        return "dir"
    if ti.issym():
        return "symlink"
    if ti.islnk():
        return "hardlink"
    if ti.ischr():
        return "char"
    if ti.isblk():
        return "block"
    if ti.isfifo():
        return "fifo"
    return "other"


def _strip_dot(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    if name in ("", "."):
        return ""
    return name.rstrip("/") or "/"


def iter_layer_entries(stream: BinaryIO, what: str = "layer") -> Iterator[TarEntry]:
    """List a layer (gzip, zstd or plain tar, detected from the magic bytes) from a stream;
    the listing ends only once the blob is read to its end and verified (``LayerTar``)."""
    for ti in LayerTar(stream, what=what):
        yield TarEntry(path=_strip_dot(ti.name), type=_type_of(ti), mode=ti.mode, size=ti.size,
                       uid=ti.uid, gid=ti.gid, mtime=int(ti.mtime), link_target=ti.linkname)


#: Bounds on an entry's path, far beyond any real image: a deeper tree is unpacked fine but then
#: breaks every recursive walk of the cache (os.walk, shutil.rmtree: RecursionError), so a later
#: run or prune of any image would crash; a longer one cannot be opened by path (PATH_MAX).
MAX_DEPTH, MAX_PATH = 256, 4095


def entry_parts(name: str, what: str = "layer entry") -> tuple[str, ...]:
    """The components of an archive path; UnsafeArchiveError if absolute, with ``..``, a NUL
    byte, or deeper or longer than any real image's (``MAX_DEPTH``, ``MAX_PATH``)."""
    if name.startswith("/"):
        raise UnsafeArchiveError(f"{what} {shown(name)} has an absolute path; refusing to unpack this layer")
    if "\0" in name:
        raise UnsafeArchiveError(f"{what} {shown(name)} contains a NUL byte; refusing to unpack this layer")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"{what} {shown(name)} contains '..'; refusing to unpack this layer")
    if len(parts) > MAX_DEPTH or len(name.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise UnsafeArchiveError(f"{what} {name[:60]!r}... is {len(parts)} directories deep and {len(name)} "
                                 f"characters long (the most are {MAX_DEPTH} and {MAX_PATH}); refusing to "
                                 "unpack this layer")
    return parts


class UnpackError(PalletError):
    """The target directory could not be written (permissions, space, a busy file)."""


@dataclass
class _DirMeta:
    mode: int
    uid: int
    gid: int
    mtime: float


Real = tuple[str, ...]  # a path as it really is under the root: no symlink in it


class Unpacker:
    """Applies layers, in order, onto one root directory. See the module docstring.

    Paths are tracked as they really are under the root (symlinks resolved), so that a
    directory reached through a symlink gets its mode at the end, and a whiteout knows what
    this layer made, however the tar spelled the path.
    """

    def __init__(self, dest: str | os.PathLike[str], *, keep_privileges: bool = False,
                 read_only: bool = False, min_free: int = 0) -> None:
        self.root = os.path.abspath(os.fspath(dest))
        try:
            os.makedirs(self.root, exist_ok=True)
            self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise UnpackError(f"{self.root}: cannot unpack there: {exc.strerror}") from None
        self._privileged = os.geteuid() == 0
        self._keep_privileges = keep_privileges
        self._mode_mask = 0o7777 & ~stat.S_IWOTH if read_only else 0o7777
        # The last directory resolved (tar lists a directory's entries together), and fds to
        # close once the current entry is done: an fd is never closed while the entry may
        # still use it, since its number could be reused for another directory.
        self._cached: tuple[tuple[str, ...], int, Real] | None = None
        self._retired: list[int] = []
        self.skipped: list[str] = []  # device nodes not made (not root, or not kept)
        # Free bytes to leave on the file system: a layer of a megabyte may hold 32 GB of zeros
        # (zstd), which would fill the host's disk for every other program before ENOSPC stops us.
        self._min_free = min_free
        self._unchecked = 0

    def close(self) -> None:
        self._drop_cache()
        self._close_retired()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def __enter__(self) -> "Unpacker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one layer ---------------------------------------------------------------------

    def apply(self, stream: BinaryIO, what: str = "layer", diff_id: str | None = None) -> None:
        """Apply one layer (any compression) on top of what is already in the root.

        Returns only once the whole blob is read and verified (``LayerTar``; its uncompressed
        content against ``diff_id`` too, when given); when it raises,
        the root holds a partial, unverified layer and must be thrown away.
        """
        layer = LayerTar(stream, what=what, diff_id=diff_id)
        created: set[Real] = set()
        dirs: dict[Real, _DirMeta] = {}
        try:
            for ti in layer:
                try:
                    self._apply_entry(layer, ti, created, dirs)
                finally:
                    self._close_retired()
        finally:
            self._drop_cache()
            self._close_retired()
        # Directory modes and times last: adding entries changes a directory's mtime, and a
        # read-only directory must still accept its children while we write them.
        for real in sorted(dirs, key=len, reverse=True):
            self._finish_dir(real, dirs[real])

    def _apply_entry(self, layer: LayerTar, ti: tarfile.TarInfo, created: set[Real],
                     dirs: dict[Real, _DirMeta]) -> None:
        name = ti.name
        parts = entry_parts(name)
        if not parts:
            return  # the root itself: its owner and mode are the caller's, not the layer's
        base = parts[-1]
        self._wrote(_ENTRY_COST, name)
        if not (0 <= ti.uid < _NO_ID and 0 <= ti.gid < _NO_ID):
            raise CorruptLayerError(f"layer entry {shown(name)} is owned by uid {ti.uid}, gid {ti.gid}: no system has "
                                    f"such ids (at most {_NO_ID - 1}); the layer is not one any runtime unpacks")
        try:
            if base.startswith(WHITEOUT_PREFIX):
                self._whiteout(name, parts, created)
                return
            found = self._resolve_dir(parts[:-1], name, create=True)
            assert found is not None
            parent_fd, parent = found
            if ti.isdir():
                self._make_dir(parent_fd, base)
                dirs[parent + (base,)] = _DirMeta(ti.mode & 0o7777, ti.uid, ti.gid, ti.mtime)
            elif ti.isreg():
                self._make_file(layer, ti, parent_fd, base)
            elif ti.issym():
                self._clear(parent_fd, base)
                os.symlink(ti.linkname, base, dir_fd=parent_fd)
                self._own(base, parent_fd, ti)
                os.utime(base, ns=(_ns(ti.mtime),) * 2, dir_fd=parent_fd, follow_symlinks=False)
            elif ti.islnk():
                self._make_hardlink(ti, parent_fd, base)
            elif ti.ischr() or ti.isblk() or ti.isfifo():
                if not self._make_special(ti, parent_fd, base):
                    return
            else:
                return  # GNU volume labels and the like carry nothing to unpack
            created.add(parent + (base,))
        except (UnsafeArchiveError, CorruptLayerError):
            raise
        except CORRUPT as exc:
            raise layer.corrupt(exc, name) from None
        except OSError as exc:
            raise UnpackError(f"layer entry {shown(name)} cannot be unpacked into {self.root}: {exc.strerror}") from None

    # -- entry kinds -------------------------------------------------------------------

    def _make_dir(self, parent_fd: int, base: str) -> None:
        st = _lstat(base, parent_fd)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return  # merged with the lower layer's directory, as OCI says
        if st is not None:
            self._remove(parent_fd, base, st)
        os.mkdir(base, 0o700, dir_fd=parent_fd)

    def _make_file(self, layer: LayerTar, ti: tarfile.TarInfo, parent_fd: int, base: str) -> None:
        self._clear(parent_fd, base)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent_fd)
        try:
            src = layer.open_member(ti)
            if src is not None:
                while True:
                    chunk = src.read(_COPY_SIZE)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    self._wrote(len(chunk), ti.name)
            if self._privileged:
                os.fchown(fd, ti.uid, ti.gid)  # before chmod: chown clears setuid/setgid
            os.fchmod(fd, self._file_mode(ti.mode))
            os.utime(fd, ns=(_ns(ti.mtime),) * 2)
        finally:
            os.close(fd)

    def _wrote(self, count: int, name: str) -> None:
        """Every _FREE_CHECK_EVERY bytes, whether the file system still has ``min_free`` free."""
        self._unchecked += count
        if not self._min_free or self._unchecked < _FREE_CHECK_EVERY:
            return
        self._unchecked = 0
        st = os.statvfs(self._root_fd)
        if st.f_bavail * st.f_frsize < self._min_free:
            raise UnpackError(f"layer entry {shown(name)}: unpacking into {self.root} would leave less than "
                              f"{self._min_free >> 20} MiB free on its file system; the image is bigger than "
                              "the disk can hold (or the layer is a decompression bomb)")
        if st.f_files and st.f_favail < _MIN_FREE_INODES:
            raise UnpackError(f"layer entry {shown(name)}: unpacking into {self.root} would leave fewer than "
                              f"{_MIN_FREE_INODES} free inodes on its file system; the image has more files than "
                              "it can hold (or the layer is a bomb of empty entries)")

    def _make_hardlink(self, ti: tarfile.TarInfo, parent_fd: int, base: str) -> None:
        target = entry_parts(ti.linkname, f"hard link target of {shown(ti.name)}:")
        if not target:
            raise UnsafeArchiveError(f"layer entry {shown(ti.name)} is a hard link to the root directory")
        found = self._resolve_dir(target[:-1], ti.name, create=False)
        tst = _lstat(target[-1], found[0]) if found else None
        if found is None or tst is None:
            raise UnsafeArchiveError(f"layer entry {shown(ti.name)} is a hard link to {shown(ti.linkname)}, "
                                     "which is not in this layer or the ones below it")
        same = _lstat(base, parent_fd)
        if same is not None and (same.st_dev, same.st_ino) == (tst.st_dev, tst.st_ino):
            return
        self._clear(parent_fd, base)
        os.link(target[-1], base, src_dir_fd=found[0], dst_dir_fd=parent_fd, follow_symlinks=False)

    def _make_special(self, ti: tarfile.TarInfo, parent_fd: int, base: str) -> bool:
        if ti.isfifo():
            kind, device = stat.S_IFIFO, 0
        elif not (self._privileged and self._keep_privileges):
            self.skipped.append(ti.name)
            return False
        else:
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
            device = os.makedev(ti.devmajor, ti.devminor)
        self._clear(parent_fd, base)
        os.mknod(base, kind | 0o600, device, dir_fd=parent_fd)
        self._own(base, parent_fd, ti)
        os.chmod(base, self._file_mode(ti.mode), dir_fd=parent_fd)  # a node we just made: not a symlink
        os.utime(base, ns=(_ns(ti.mtime),) * 2, dir_fd=parent_fd, follow_symlinks=False)
        return True

    def _whiteout(self, name: str, parts: tuple[str, ...], created: set[Real]) -> None:
        base = parts[-1]
        if base == OPAQUE_WHITEOUT:
            found = self._resolve_dir(parts[:-1], name, create=True)
            assert found is not None
            dir_fd, real = found
            for child in sorted(os.listdir(dir_fd)):
                if real + (child,) not in created:
                    self._remove(dir_fd, child, _lstat(child, dir_fd))
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other AUFS metadata (.wh..wh.plnk, ...): nothing for us
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise UnsafeArchiveError(f"layer entry {shown(name)} is a whiteout of {shown(victim)}; refusing to unpack")
        found = self._resolve_dir(parts[:-1], name, create=False)
        if found is None:
            return
        dir_fd, real = found
        if real + (victim,) in created:
            return  # a layer's whiteouts hide only what is below it
        self._remove(dir_fd, victim, _lstat(victim, dir_fd))

    # -- helpers -----------------------------------------------------------------------

    def _file_mode(self, mode: int) -> int:
        """A file's permission bits as unpacked: setuid/setgid only when privileges are kept."""
        mode &= self._mode_mask
        return mode if self._keep_privileges else mode & ~(stat.S_ISUID | stat.S_ISGID)

    def _own(self, base: str, parent_fd: int, ti: tarfile.TarInfo) -> None:
        if self._privileged:
            os.chown(base, ti.uid, ti.gid, dir_fd=parent_fd, follow_symlinks=False)

    def _clear(self, parent_fd: int, base: str) -> None:
        """Remove whatever is at ``base`` (never following it), so it can be made anew."""
        self._remove(parent_fd, base, _lstat(base, parent_fd))

    def _remove(self, parent_fd: int, base: str, st: os.stat_result | None) -> None:
        if st is None:
            return
        # Any removal may change what a cached path resolves to.
        self._drop_cache()
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=parent_fd)  # fd-based on Linux: never follows symlinks
        else:
            os.unlink(base, dir_fd=parent_fd)

    def _finish_dir(self, real: Real, meta: _DirMeta) -> None:
        fd = self._open_strict(real)
        if fd is None:
            return  # replaced by a later entry of the layer
        try:
            if self._privileged:
                os.fchown(fd, meta.uid, meta.gid)
            os.fchmod(fd, meta.mode & self._mode_mask)
            os.utime(fd, ns=(_ns(meta.mtime),) * 2)
        finally:
            os.close(fd)

    def _open_strict(self, real: Real) -> int | None:
        """fd of the directory at ``real``, following no symlink at all; None if not one."""
        fd = os.dup(self._root_fd)
        for part in real:
            try:
                nfd = os.open(part, _O_DIR, dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = nfd
        return fd

    def _drop_cache(self) -> None:
        if self._cached is not None:
            self._retired.append(self._cached[1])
            self._cached = None

    def _close_retired(self) -> None:
        while self._retired:
            os.close(self._retired.pop())

    def _resolve_dir(self, parts: tuple[str, ...], entry: str, *, create: bool) -> tuple[int, Real] | None:
        """(fd, real path) of the directory ``parts`` names inside the root.

        Symlinks on the way are followed as the module docstring says. Missing directories
        are made (mode 0755, like tar) when ``create``; otherwise None is returned. Callers
        never close the fd: it stays valid until the current entry is done.
        """
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1], self._cached[2]
        found = self._walk(parts, entry, create=create)
        if found is None:
            return None
        self._drop_cache()
        self._cached = (parts, *found)
        return found

    def _walk(self, parts: tuple[str, ...], entry: str, *, create: bool) -> tuple[int, Real] | None:
        stack = [os.dup(self._root_fd)]  # fds of the directories walked, root first
        real: list[str] = []  # their names: stack[i + 1] is the directory real[i]
        todo = list(parts)
        hops = 0
        try:
            while todo:
                part = todo.pop(0)
                if part in ("", "."):
                    continue
                if part == "..":  # only from a symlink target: entry names with '..' are refused
                    if len(stack) == 1:
                        raise UnsafeArchiveError(
                            f"layer entry {shown(entry)} would be written through a symlink that leads "
                            "outside the root; refusing to unpack this layer")
                    os.close(stack.pop())
                    real.pop()
                    continue
                try:
                    stack.append(os.open(part, _O_DIR, dir_fd=stack[-1]))
                    real.append(part)
                    continue
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(part, 0o755, dir_fd=stack[-1])
                    stack.append(os.open(part, _O_DIR, dir_fd=stack[-1]))
                    real.append(part)
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise UnsafeArchiveError(f"layer entry {shown(entry)} is under {shown(part)}, which is not a "
                                             "directory in the layers below; refusing to unpack")
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise UnsafeArchiveError(f"layer entry {shown(entry)}: too many levels of symlinks on its path")
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    raise UnsafeArchiveError(
                        f"layer entry {shown(entry)} would be written through the symlink {shown(part)} -> {shown(target)}, "
                        "which points outside the root; refusing to unpack this layer")
                todo[:0] = target.split("/")
            return stack.pop(), tuple(real)
        finally:
            for fd in stack:
                os.close(fd)


def _lstat(base: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000)


def _open_layer(layer: "str | os.PathLike[str] | BinaryIO") -> tuple[BinaryIO, bool]:
    if isinstance(layer, (str, os.PathLike)):
        return open(layer, "rb"), True
    return layer, False


def unpack_layer(layer: "str | os.PathLike[str] | BinaryIO", dest: str | os.PathLike[str], *,
                 keep_privileges: bool = False) -> list[str]:
    """Unpack one layer (path or stream; gzip, zstd or tar) onto ``dest``, whiteouts applied.

    Compression is detected from the magic bytes, which are more reliable than media types
    (Docker labels uncompressed layers as gzip). Returns the device nodes skipped (not root,
    or privileges not kept). Raises UnsafeArchiveError, naming the entry, for anything that would
    write outside ``dest``; entries before it may already have been unpacked.
    """
    return unpack_layers([layer], dest, keep_privileges=keep_privileges)


def unpack_layers(layers: Iterable["str | os.PathLike[str] | BinaryIO"], dest: str | os.PathLike[str], *,
                  keep_privileges: bool = False) -> list[str]:
    """Unpack layers in order (lowest first) onto ``dest``, as a container runtime stacks them
    (``keep_privileges``: see the module docstring)."""
    with Unpacker(dest, keep_privileges=keep_privileges) as unpacker:
        for layer in layers:
            stream, owned = _open_layer(layer)
            try:
                unpacker.apply(stream)
            finally:
                if owned:
                    stream.close()
        return list(unpacker.skipped)
