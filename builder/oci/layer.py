"""The reproducible layer writer: a directory (or a list of entries) in, a layer blob out.

The same content must give the same layer digest on any machine, on any day, whoever owns
the files. So everything a file system adds by accident is dropped or fixed: entries are
sorted, timestamps are one fixed ``mtime``, owners are the ``uid``/``gid`` asked for, and
user/group names, atime/ctime and xattrs are never recorded. What the content *means* is
kept: mode bits (exec, setuid, sticky), symlinks (target verbatim) and hard links.

The tar headers are written here rather than by ``tarfile``: its exact bytes are not a
documented, stable interface (its default format changed in Python 3.8, for one), and a
layer digest must not change because the interpreter did. The format is POSIX pax (ustar headers, plus a
``././@PaxHeader`` extended header only where ustar cannot hold a value: names or link
targets over 100 bytes or not ASCII, sizes of 8 GiB and more, large uid/gid).

Writing is one streaming pass with bounded memory: tar bytes are built in a 1 MiB buffer
(file data is read straight into it), hashed for the diffID, and fed to the compressor,
whose output is hashed for the digest and written out (uncompressed, the blob is the tar
and its digest the diffID, so it is hashed once). Nothing holds a whole layer.

Order: entries are sorted by path, compared component by component as bytes, so a
directory comes right before its contents and a parent before its children. That is the
order of ``tar --sort=name``, so listings of our layers and of GNU tar's line up.
"""

from __future__ import annotations

import errno
import hashlib
import operator
import os
import stat
from dataclasses import dataclass, replace
from typing import BinaryIO, Callable, Iterable, Iterator, Mapping

from builder.errors import LayerError
from builder.oci import compress
from builder.oci import mediatypes as mt
from builder.oci.model import Descriptor

#: 1980-01-01T00:00:01Z: the default timestamp when SOURCE_DATE_EPOCH is not set. Not 0,
#: because zip-based tools (and some tar readers) treat times before 1980 badly.
DEFAULT_MTIME = 315532801  # == mutate.EPOCH_DEFAULT

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
ENTRY_TYPES = (FILE, DIR, SYMLINK, HARDLINK)

MEDIA_TYPES = {
    compress.GZIP: mt.OCI_LAYER_GZIP,
    compress.ZSTD: mt.OCI_LAYER_ZSTD,
    compress.NONE: mt.OCI_LAYER,
}

BLOCK = 512
RECORD = 20 * BLOCK  # GNU tar's default blocking factor; the archive is padded to it
_BUFSIZE = 1 << 20
_ZEROS = bytes(BLOCK)


@dataclass(frozen=True)
class Entry:
    """One entry of a layer.

    ``path`` is the path inside the layer (``/``-separated; a leading ``/`` or ``./`` is
    dropped). A ``file`` takes its bytes from ``data`` or from the file at ``source``; a
    ``symlink``'s ``link_target`` is stored verbatim; a ``hardlink``'s ``link_target`` is the
    path of another entry of the same list (before any prefix is applied). ``size`` is the
    size seen when a directory was walked; if set, the file must still have it when read.
    ``uid``/``gid`` own this entry; ``None`` means the writer's ``uid``/``gid`` (a root file
    system keeps per-file owners, e.g. /etc/shadow of group shadow).
    """

    path: str
    type: str = FILE
    mode: int = 0o644
    source: str | os.PathLike[str] | None = None
    data: bytes | None = None
    link_target: str = ""
    size: int | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def file(cls, path: str, data: bytes | None = None, *, source: str | os.PathLike[str] | None = None,
             mode: int = 0o644) -> "Entry":
        return cls(path=path, type=FILE, mode=mode, source=source, data=data)

    @classmethod
    def directory(cls, path: str, mode: int = 0o755) -> "Entry":
        return cls(path=path, type=DIR, mode=mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> "Entry":
        return cls(path=path, type=SYMLINK, mode=0o777, link_target=target)

    @classmethod
    def hardlink(cls, path: str, target: str) -> "Entry":
        return cls(path=path, type=HARDLINK, link_target=target)


@dataclass(frozen=True)
class LayerResult:
    """What was written: the layer's identities, sizes and where it is."""

    diff_id: str  # sha256 of the uncompressed tar: what the image config lists
    digest: str  # sha256 of the blob as written: what the manifest lists
    size: int  # bytes of the blob as written
    uncompressed_size: int
    media_type: str
    path: str | None = None  # the file written, or None when the caller passed a stream

    def descriptor(self, annotations: dict[str, str] | None = None) -> Descriptor:
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size,
                          annotations=annotations or None)


# -- options -----------------------------------------------------------------------------


def default_mtime(environ: Mapping[str, str] | None = None) -> int:
    """``SOURCE_DATE_EPOCH`` if set (the reproducible-builds convention), else DEFAULT_MTIME."""
    from builder.oci.mutate import source_date_epoch

    return source_date_epoch(environ, error=LayerError)


def _check_id(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LayerError(f"layer {name} must be a non-negative integer, not {value!r}")
    return value


# -- planning: pure ----------------------------------------------------------------------


def split_path(path: str, what: str = "layer path") -> tuple[str, ...]:
    """The components of a path in a layer; ``/``, ``.`` and empty parts dropped, ``..`` refused."""
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise LayerError(f"{what} {path!r} contains '..'; paths in a layer must stay inside it")
    return parts


def _key(parts: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(os.fsencode(p) for p in parts)


def plan_entries(entries: Iterable[Entry], prefix: str = "") -> list[Entry]:
    """The entries as they go in the tar: normalised, prefixed, completed and sorted.

    Every parent directory gets an entry (mode 0755 when not given, and always for the
    ``prefix`` directories, whatever the mode of a staging directory). Of a group of hard
    links, the first in sorted order carries the data and the others link to it, whichever
    of them the caller named as the file. Raises LayerError for duplicates, a path under a
    non-directory, or a hard link to something that is not a file in the list.
    """
    pre = split_path(prefix, "prefix") if prefix else ()
    by_key: dict[tuple[bytes, ...], Entry] = {}
    links: list[tuple[bytes, ...]] = []
    for e in entries:
        if e.type not in ENTRY_TYPES:
            raise LayerError(f"layer entry {e.path!r}: type {e.type!r} is not one of {', '.join(ENTRY_TYPES)}")
        parts = pre + split_path(e.path)
        if len(parts) == len(pre):
            raise LayerError(f"layer entry {e.path!r} names the root of the layer; give a path inside it")
        key = _key(parts)
        if key in by_key:
            raise LayerError(f"layer entry {'/'.join(parts)!r} is given twice")
        if e.type == SYMLINK and not e.link_target:
            raise LayerError(f"symlink {'/'.join(parts)!r} has an empty target")
        if e.type == FILE and e.source is not None and e.data is not None:
            raise LayerError(f"layer entry {'/'.join(parts)!r} has both data and a source file; give one")
        for what, value in (("uid", e.uid), ("gid", e.gid)):
            if value is not None:
                _check_id(f"entry {'/'.join(parts)!r} {what}", value)
        if e.type == HARDLINK:
            target = pre + split_path(e.link_target, f"hard link target of {e.path!r}")
            e = replace(e, link_target="/".join(target))
            links.append(key)
        by_key[key] = replace(e, path="/".join(parts))

    for i in range(1, len(pre) + 1):
        k = _key(pre[:i])
        if k in by_key:
            raise LayerError(f"layer entry {by_key[k].path!r} clashes with the prefix {prefix!r}")
        by_key[k] = Entry.directory("/".join(pre[:i]), 0o755)
    for key in list(by_key):
        for i in range(len(key) - 1, 0, -1):
            parent = by_key.get(key[:i])
            if parent is None:
                by_key[key[:i]] = Entry.directory(os.fsdecode(b"/".join(key[:i])), 0o755)
            elif parent.type != DIR:
                raise LayerError(f"layer entry {by_key[key].path!r} is under {parent.path!r}, "
                                 f"which is a {parent.type}, not a directory")
            else:
                break  # its own parents were completed when it was seen, or will be

    _resolve_hardlinks(by_key, links)
    return [by_key[k] for k in sorted(by_key)]


def _resolve_hardlinks(by_key: dict[tuple[bytes, ...], Entry], links: list[tuple[bytes, ...]]) -> None:
    groups: dict[tuple[bytes, ...], list[tuple[bytes, ...]]] = {}
    for key in links:
        seen = {key}
        target = _key(split_path(by_key[key].link_target))
        while target in by_key and by_key[target].type == HARDLINK:
            if target in seen:
                raise LayerError(f"hard link {by_key[key].path!r} is part of a cycle of hard links")
            seen.add(target)
            target = _key(split_path(by_key[target].link_target))
        if target not in by_key or by_key[target].type != FILE:
            raise LayerError(f"hard link {by_key[key].path!r} points to {by_key[key].link_target!r}, "
                             "which is not a file in this layer")
        groups.setdefault(target, []).append(key)
    for file_key, members in groups.items():
        data_entry = by_key[file_key]
        ordered = sorted([file_key, *members])
        first = by_key[ordered[0]].path
        by_key[ordered[0]] = replace(data_entry, path=first)
        for k in ordered[1:]:
            by_key[k] = Entry(path=by_key[k].path, type=HARDLINK, mode=data_entry.mode, link_target=first,
                              uid=data_entry.uid, gid=data_entry.gid)


# -- tar headers: pure -------------------------------------------------------------------

_USTAR_TAIL = b"ustar\x0000" + b"\0" * (32 + 32 + 8 + 8 + 155 + 12)  # magic+version, no names
_TAIL_SUM = sum(_USTAR_TAIL)
_CHKSUM_BLANK = 8 * 32  # the checksum field counts as eight spaces
_PAX_NAME = b"././@PaxHeader"


def _pax_record(keyword: bytes, value: bytes) -> bytes:
    """One ``"%d %s=%s\\n"`` record; the length counts its own digits."""
    body = len(keyword) + len(value) + 3
    n = body + len(str(body))
    if len(str(n)) != len(str(body)):
        n = body + len(str(n))
    return b"%d %s=%s\n" % (n, keyword, value)


def _ustar_header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
                  typeflag: bytes, linkname: bytes) -> bytes:
    # The checksum is the byte sum of the block with its own field as spaces; the NUL
    # padding of the names adds nothing, so only the bytes that are not zero are summed.
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode, uid, gid, size, mtime)
    chksum = sum(name) + sum(numbers) + typeflag[0] + sum(linkname) + _TAIL_SUM + _CHKSUM_BLANK
    return b"%s%s%06o\0 %s%s%s" % (name.ljust(100, b"\0"), numbers, chksum, typeflag,
                                    linkname.ljust(100, b"\0"), _USTAR_TAIL)


def _ascii_field(value: bytes, length: int) -> bytes:
    """What goes in a ustar field when the real value is in a pax record: a readable stub."""
    return bytes(c if 32 <= c < 127 else 63 for c in value[:length])


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def tar_header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
               typeflag: bytes, linkname: bytes = b"") -> bytes:
    """The header block(s) of one entry: a pax extended header if needed, then ustar.

    Deterministic by construction: fixed fields, no names, no atime/ctime, fixed record
    order (hdrcharset, path, linkpath, size, uid, gid).
    """
    if (len(name) <= 100 and len(linkname) <= 100 and name.isascii() and linkname.isascii()
            and size < 8 ** 11 and uid < 8 ** 7 and gid < 8 ** 7):
        return _ustar_header(name, mode & 0o7777, uid, gid, size, mtime, typeflag, linkname)  # most entries
    records: list[bytes] = []
    if not (name.isascii() and linkname.isascii()) and not (_is_utf8(name) and _is_utf8(linkname)):
        # Names that are not UTF-8 are kept as raw bytes, as POSIX allows (and tarfile reads).
        records.append(_pax_record(b"hdrcharset", b"BINARY"))
    if len(name) > 100 or not name.isascii():
        records.append(_pax_record(b"path", name))
        name = _ascii_field(name, 100)
    if len(linkname) > 100 or not linkname.isascii():
        records.append(_pax_record(b"linkpath", linkname))
        linkname = _ascii_field(linkname, 100)
    if size >= 8 ** 11:
        records.append(_pax_record(b"size", b"%d" % size))
        size = 0
    if uid >= 8 ** 7:
        records.append(_pax_record(b"uid", b"%d" % uid))
        uid = 0
    if gid >= 8 ** 7:
        records.append(_pax_record(b"gid", b"%d" % gid))
        gid = 0
    header = _ustar_header(name, mode & 0o7777, uid, gid, size, mtime, typeflag, linkname)
    if not records:
        return header
    body = b"".join(records)
    pax = _ustar_header(_PAX_NAME, 0o644, 0, 0, len(body), 0, b"x", b"")
    return pax + body + b"\0" * (-len(body) % BLOCK) + header


# -- streaming ---------------------------------------------------------------------------


class _TarStream:
    """Builds the tar byte stream in one reused 1 MiB buffer and hands it to ``emit`` when full.

    File data is read straight into the buffer (``os.readv`` into a memoryview, the GIL
    released during the read), so the only copy is the one the compressor makes.
    Everything downstream (sha256, zlib, zstd, file writes) releases the GIL on large
    buffers, so this thread holds it only for the per-entry work.

    (A consumer thread with circulating buffers, so that making the tar overlaps compressing
    it, was tried twice and measured: no faster on two cores, where the compressor threads
    already keep both busy, and slower under load; so it is not here. With 4 to 16 buffers
    in flight CPU/wall rose from 1.79 to 1.85, but CPU time rose as much (probably the
    hand-offs, and buffers compressed after they have left the cache), so the wall time
    did not move; see bench/RESULTS.md.)
    """

    def __init__(self, emit: Callable[[memoryview], None]) -> None:
        self._buf = bytearray(_BUFSIZE)
        self._view = memoryview(self._buf)
        self._emit = emit
        self._pos = 0
        self.total = 0

    def write(self, data: bytes | memoryview) -> None:
        n = len(data)
        if self._pos + n <= _BUFSIZE:
            self._view[self._pos:self._pos + n] = data
            self._pos += n
            if self._pos == _BUFSIZE:
                self.flush()
            return
        view = memoryview(data)
        done = 0
        while done < n:
            take = min(_BUFSIZE - self._pos, n - done)
            self._view[self._pos:self._pos + take] = view[done:done + take]
            self._pos += take
            done += take
            if self._pos == _BUFSIZE:
                self.flush()

    def copy_from_fd(self, fd: int, size: int, source: str | bytes | os.PathLike[str]) -> None:
        remaining = size
        while remaining:
            want = min(_BUFSIZE - self._pos, remaining)
            got = os.readv(fd, [self._view[self._pos:self._pos + want]])
            if got == 0:
                raise LayerError(f"{os.fsdecode(source)}: file shrank while the layer was being written; "
                                 "do not change the directory while pallet reads it")
            self._pos += got
            remaining -= got
            if self._pos == _BUFSIZE:
                self.flush()

    def add_file(self, header: bytes, fd: int, size: int, source: str | bytes | os.PathLike[str]) -> None:
        """A file's header, its ``size`` bytes read from ``fd``, and the padding to a block."""
        pad = -size % BLOCK
        pos = self._pos
        start = pos + len(header)
        end = start + size
        if end + pad >= _BUFSIZE or not size:  # the general way: spans buffers, or nothing to read
            self.write(header)
            self.copy_from_fd(fd, size, source)
            self.write(_ZEROS[:pad])
            return
        # All of it fits in this buffer, as for most files: one read, no per-piece bookkeeping.
        view = self._view
        view[pos:start] = header
        got = os.readv(fd, [view[start:end]])
        self._pos = start + got
        if got < size:
            self.copy_from_fd(fd, size - got, source)
        view[end:end + pad] = _ZEROS[:pad]
        self._pos = end + pad

    def end_archive(self) -> None:
        """Two zero blocks, padded to a whole record, as GNU tar ends an archive."""
        self.write(b"\0" * (2 * BLOCK))
        self.write(b"\0" * (-(self.total + self._pos) % RECORD))
        self.flush()

    def flush(self) -> None:
        if self._pos:
            self._emit(self._view[:self._pos])
            self.total += self._pos
            self._pos = 0


def _open_source(path: str | bytes | os.PathLike[str], expected_size: int | None) -> tuple[int, int]:
    """Open a source file for reading; (fd, size). LayerError if it is not a readable file.

    An entry with ``expected_size`` came from walking a directory, where it was a regular
    file: it is opened without following symlinks, so a file swapped for a link meanwhile
    is an error rather than a silent copy of whatever the link points to. A caller's own
    ``source`` may be a symlink, followed as any program would.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_NOFOLLOW if expected_size is not None else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise LayerError(f"{os.fsdecode(path)}: cannot read it for the layer: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LayerError(f"{os.fsdecode(path)}: is not a regular file")
        if expected_size is not None and st.st_size != expected_size:
            raise LayerError(f"{os.fsdecode(path)}: file changed size while the layer was being "
                             "written; do not change the directory while pallet reads it")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


# The writer's form of an entry: (type, name, mode, uid, gid, linkname, source, size, data),
# names as bytes. A plain tuple because the loop over the ten thousand files of a root file
# system is where a layer's own Python time goes, and tuples cost a fraction of Entry objects.
_Record = tuple[str, bytes, int, "int | None", "int | None", bytes, "str | bytes | os.PathLike[str] | None",
                "int | None", "bytes | None"]


def _records(planned: Iterable[Entry]) -> Iterator[_Record]:
    for e in planned:
        yield (e.type, os.fsencode(e.path), e.mode, e.uid, e.gid, os.fsencode(e.link_target), e.source, e.size,
               e.data)


def write_tar(planned: Iterable[Entry], out: _TarStream, *, uid: int, gid: int, mtime: int) -> None:
    """Stream the tar of already planned entries (see ``plan_entries``) into ``out``.

    ``uid``/``gid`` own every entry whose own ``uid``/``gid`` is None.
    """
    _write_records(_records(planned), out, uid=uid, gid=gid, mtime=mtime)


def _write_records(records: Iterable[_Record], out: _TarStream, *, uid: int, gid: int, mtime: int) -> None:
    default_uid, default_gid = uid, gid
    for kind, name, mode, uid, gid, link, source, size, data in records:
        if uid is None:
            uid = default_uid
        if gid is None:
            gid = default_gid
        if kind == FILE:
            if source is None:
                data = data or b""
                out.write(tar_header(name, mode, uid, gid, len(data), mtime, b"0"))
                out.write(data)
                out.write(_ZEROS[:-len(data) % BLOCK])
                continue
            fd, size = _open_source(source, size)
            try:
                out.add_file(tar_header(name, mode, uid, gid, size, mtime, b"0"), fd, size, source)
            finally:
                os.close(fd)
        elif kind == DIR:
            out.write(tar_header(name + b"/", mode, uid, gid, 0, mtime, b"5"))
        elif kind == SYMLINK:
            out.write(tar_header(name, 0o777, uid, gid, 0, mtime, b"2", link))
        else:
            out.write(tar_header(name, mode, uid, gid, 0, mtime, b"1", link))
    out.end_archive()


#: As deep as an unpacked layer may go: builder.oci.unpack.MAX_DEPTH (equal; a test checks).
MAX_DEPTH = 256


# -- walking a directory: I/O ------------------------------------------------------------

_by_name = operator.attrgetter("name")


def _sorted_children(path: bytes) -> Iterator[os.DirEntry[bytes]]:
    """A directory's entries sorted by name bytes; the directory handle is closed at once."""
    try:
        with os.scandir(path) as it:
            children = sorted(it, key=_by_name)
    except OSError as exc:
        raise LayerError(f"{os.fsdecode(path)}: cannot list it: {exc.strerror}") from None
    return iter(children)


def iter_dir_entries(src_dir: str | os.PathLike[str], prefix: str = "", *,
                     keep_owners: bool = False) -> Iterator[Entry]:
    """The entries of a directory tree, already in layer order, as it is walked.

    A depth-first walk that visits each directory's children sorted by name bytes gives
    exactly the order of ``plan_entries``, so the tar can be written while the tree is still
    being walked (the walk overlaps with compression instead of delaying it). For the same
    reason hard links resolve on the fly: the first path of an inode met in the walk is the
    first in layer order, and carries the data. The directory itself is not an entry; the
    ``prefix`` directories come first, mode 0755. Sockets, FIFOs and device nodes cannot
    go in a reproducible layer and raise LayerError naming the path. With ``keep_owners``, each
    entry carries the numeric owner it has on disk (for root file systems); otherwise none.
    """
    fsdecode = os.fsdecode
    for kind, name, mode, uid, gid, link, source, size, _ in _walk(src_dir, prefix, keep_owners):
        yield Entry(path=fsdecode(name), type=kind, mode=mode, source=None if source is None else fsdecode(source),
                    link_target=fsdecode(link), size=size, uid=uid, gid=gid)


def _walk(src_dir: str | os.PathLike[str], prefix: str, keep_owners: bool) -> Iterator[_Record]:
    """``iter_dir_entries`` as records, walked with bytes paths (nothing to encode or decode)."""
    root = os.fspath(src_dir)
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise LayerError(f"{root}: is not a directory; give the directory to make a layer of")
    except FileNotFoundError:
        raise LayerError(f"{root}: no such directory") from None
    pre = [os.fsencode(p) for p in split_path(prefix, "prefix")] if prefix else []
    for i in range(1, len(pre) + 1):
        yield (DIR, b"/".join(pre[:i]), 0o755, None, None, b"", None, None, None)
    inodes: dict[tuple[int, int], bytes] = {}
    uid: int | None = None
    gid: int | None = None
    S_IFMT, S_IMODE = stat.S_IFMT, stat.S_IMODE
    stack: list[tuple[Iterator[os.DirEntry[bytes]], bytes]] = [(_sorted_children(os.fsencode(root)), b"/".join(pre))]
    while stack:
        children, rel_dir = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            continue
        rel = rel_dir + b"/" + child.name if rel_dir else child.name
        try:
            st = child.stat(follow_symlinks=False)
        except OSError as exc:
            raise LayerError(f"{os.fsdecode(child.path)}: cannot stat it: {exc.strerror}") from None
        fmt = S_IFMT(st.st_mode)
        if keep_owners:
            uid, gid = st.st_uid, st.st_gid
        if fmt == stat.S_IFREG:
            if st.st_nlink > 1:
                ident = (st.st_dev, st.st_ino)
                first = inodes.get(ident)
                if first is not None:
                    yield (HARDLINK, rel, S_IMODE(st.st_mode), uid, gid, first, None, None, None)
                    continue
                inodes[ident] = rel
            yield (FILE, rel, S_IMODE(st.st_mode), uid, gid, b"", child.path, st.st_size, None)
        elif fmt == stat.S_IFDIR:
            if rel.count(b"/") >= MAX_DEPTH:  # a layer pallet itself refuses to unpack (unpack.MAX_DEPTH)
                raise LayerError(f"{os.fsdecode(child.path)[:120]}...: over {MAX_DEPTH} directories deep")
            yield (DIR, rel, S_IMODE(st.st_mode), uid, gid, b"", None, None, None)
            stack.append((_sorted_children(child.path), rel))
        elif fmt == stat.S_IFLNK:
            try:
                target = os.readlink(child.path)
            except OSError as exc:
                raise LayerError(f"{os.fsdecode(child.path)}: cannot read the symlink: {exc.strerror}") from None
            yield (SYMLINK, rel, 0o777, uid, gid, target, None, None, None)
        else:
            raise LayerError(f"{os.fsdecode(child.path)}: is a {_kind(fmt)}; a layer can hold only files, "
                             "directories and links, so remove it or make the layer from another directory")


def entries_from_dir(src_dir: str | os.PathLike[str], *, keep_owners: bool = False) -> list[Entry]:
    """All entries of a directory tree, in layer order (see ``iter_dir_entries``).

    For callers that want to add or drop entries before ``layer_from_entries``; hard links
    are expressed as ``hardlink`` entries, which ``plan_entries`` understands.
    """
    return list(iter_dir_entries(src_dir, keep_owners=keep_owners))


def _kind(fmt: int) -> str:
    return {stat.S_IFSOCK: "socket", stat.S_IFIFO: "FIFO (named pipe)", stat.S_IFCHR: "character device",
            stat.S_IFBLK: "block device"}.get(fmt, "special file")


# -- writing a layer: I/O ----------------------------------------------------------------


class _FileDest:
    """A temporary file next to the destination, renamed over it only when complete."""

    def __init__(self, dest: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(dest))
        directory, base = os.path.split(self.path)
        for attempt in range(100):
            tmp = os.path.join(directory, f".{base}.{os.getpid()}.{attempt}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise LayerError(f"{self.path}: cannot write the layer there: {exc.strerror}") from None
        else:
            raise LayerError(f"{self.path}: too many leftover temporary files next to it; remove .{base}.*.tmp")
        self.tmp = tmp
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.file.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def layer_from_entries(entries: Iterable[Entry], dest: str | os.PathLike[str] | BinaryIO, *,
                       prefix: str = "", uid: int = 0, gid: int = 0, mtime: int | None = None,
                       compression: str = compress.GZIP, gzip_level: int = compress.GZIP_LEVEL) -> LayerResult:
    """Write a layer of ``entries`` (in any order) to ``dest`` and return its identities.

    ``dest`` is a path or an open binary stream. A path is written through a temporary file
    in the same directory and renamed into place only when complete, so a crash never
    leaves a half layer under the final name. A stream is written from its current position
    and left open; the caller owns it (useful to write straight into a store's upload), and
    on an error it holds a partial layer that the caller must discard.

    Safe to call from several threads at once (they share the deflate pool); not from a
    task running on that pool itself.

    ``prefix`` puts every entry under that directory. ``mtime`` defaults to
    ``SOURCE_DATE_EPOCH`` or DEFAULT_MTIME; ``compression`` is ``gzip`` (default), ``zstd``
    or ``none`` (``gzip_level``: deflate's level); ``uid``/``gid`` (default 0) own every entry.
    """
    options = _options(uid, gid, mtime, compression)
    return _write(_records(plan_entries(entries, prefix)), dest, *options, gzip_level=gzip_level)


def write_layer(src_dir: str | os.PathLike[str], dest: str | os.PathLike[str] | BinaryIO, *,
                prefix: str = "", uid: int = 0, gid: int = 0, mtime: int | None = None,
                compression: str = compress.GZIP, keep_owners: bool = False,
                gzip_level: int = compress.GZIP_LEVEL) -> LayerResult:
    """Write the contents of ``src_dir`` as a layer (options as for ``layer_from_entries``).

    The directory itself is not an entry; with ``prefix`` (e.g. ``workspace``) its contents
    go under that path, whose directories get mode 0755 whatever the staging directory's
    mode. The tree is walked while the layer is written, so it must not change meanwhile.
    With ``keep_owners``, every entry keeps its numeric owner on disk (``uid``/``gid`` then
    only own the ``prefix`` directories).
    """
    options = _options(uid, gid, mtime, compression)
    return _write(_walk(src_dir, prefix, keep_owners), dest, *options, gzip_level=gzip_level)


def _options(uid: int, gid: int, mtime: int | None, compression: str) -> tuple[int, int, int, str]:
    compress.check_compression(compression)
    uid = _check_id("uid", uid)
    gid = _check_id("gid", gid)
    mtime = default_mtime() if mtime is None else _check_id("mtime", mtime)
    if mtime >= 8 ** 11:
        raise LayerError(f"layer mtime {mtime} is too far in the future for a tar header")
    return uid, gid, mtime, compression


def _write(records: Iterable[_Record], dest: str | os.PathLike[str] | BinaryIO,
           uid: int, gid: int, mtime: int, compression: str, *, gzip_level: int = compress.GZIP_LEVEL) -> LayerResult:
    """The one streaming pass: tar -> diffID hash -> compressor -> digest hash -> file."""
    file_dest = _FileDest(dest) if isinstance(dest, (str, os.PathLike)) else None
    out_file: BinaryIO = file_dest.file if file_dest else dest  # type: ignore[assignment]
    blob_hash = hashlib.sha256()
    blob_size = 0

    def sink(data: bytes | memoryview) -> None:
        nonlocal blob_size
        blob_hash.update(data)
        blob_size += len(data)
        out_file.write(data)

    def sink_tar(data: bytes | memoryview) -> None:  # uncompressed: the blob is the tar, hashed already
        nonlocal blob_size
        blob_size += len(data)
        out_file.write(data)

    diff_hash = hashlib.sha256()
    compressor: compress.Compressor | None = None
    try:
        compressor = compress.new_compressor(compression, sink_tar if compression == compress.NONE else sink,
                                             gzip_level=gzip_level)
        comp_write = compressor.write

        def emit(view: memoryview) -> None:
            diff_hash.update(view)
            comp_write(view)

        stream = _TarStream(emit)
        _write_records(records, stream, uid=uid, gid=gid, mtime=mtime)
        compressor.close()
        if file_dest:
            file_dest.commit()
        else:
            out_file.flush()
    except BaseException as exc:
        abort = getattr(compressor, "abort", None)
        if abort:
            abort()
        if file_dest:
            file_dest.discard()
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            where = file_dest.path if file_dest else "the layer stream"
            raise LayerError(f"{where}: no space left on the device while writing the layer") from None
        raise
    diff_id = "sha256:" + diff_hash.hexdigest()
    return LayerResult(
        diff_id=diff_id,
        digest=diff_id if compression == compress.NONE else "sha256:" + blob_hash.hexdigest(),
        size=blob_size,
        uncompressed_size=stream.total,
        media_type=MEDIA_TYPES[compression],
        path=file_dest.path if file_dest else None,
    )
