"""The few files an SBOM needs, read out of an image's layers as streams: nothing is unpacked.

Each layer is streamed once through ``builder.oci.layerread.LayerTar``, the one layer reader (read
to its end and verified before its files count; ``TarEntry`` is the entry type). A ``Picker`` says, for
each entry, whether to keep it: read whole (small files: the dpkg database, METADATA,
package.json), analysed as a stream (binaries: ``analyse`` returns a small result, so a 50 MB
executable is never held in memory), or recorded as a symlink. The result is what the image's
file system shows at the top: a later layer's file replaces a lower one, and whiteouts
(``.wh.NAME``, ``.wh..wh..opq``) and files put where a directory was remove what was below.

``read_dir`` gives the same map for a directory a layer is about to be made of (or was just
made of), read from disk: the entries come from ``builder.oci.layer.iter_dir_entries``, the walk
that writes the layer, and go through the same code as the tar's, so the result is the one
``read_files`` would give for the layer, without decompressing it.

What is kept is bounded (``MAX_READ``, ``MAX_READ_TOTAL``, ``MAX_ANALYSE``): a small hostile
layer can declare files of any size, and each limit is a ``LayerLimitError`` naming the image and
layer rather than a machine out of memory or disk.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, ContextManager, Iterable, Iterator

from builder.errors import shown
from builder.oci import layer as layerfmt
from builder.oci.layerread import LayerLimitError, LayerTar
from builder.oci.unpack import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, TarEntry

READ = "read"
ANALYSE = "analyse"
LINK = "link"
#: Limits on what one reading keeps, so a small hostile layer cannot exhaust memory or disk
#: (a sparse or highly compressible file declares any size it likes): one file read whole,
#: all files read whole together, and one file spooled to $TMPDIR for ``analyse``.
MAX_READ = 32 * 1024 * 1024
MAX_READ_TOTAL = 256 * 1024 * 1024
MAX_ANALYSE = 2 * 1024 * 1024 * 1024
_SPOOL = 8 * 1024 * 1024

@dataclass(frozen=True)
class Found:
    path: str              # without a leading "/"
    kind: str              # READ, ANALYSE or LINK
    data: bytes | None = None
    result: Any = None     # what ``analyse`` returned
    target: str | None = None


Picker = Callable[[TarEntry], str | None]
Analyser = Callable[[BinaryIO, TarEntry], Any]


def _strip(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _entry(ti: tarfile.TarInfo) -> TarEntry:
    kind = ("file" if ti.isreg() else "dir" if ti.isdir() else "symlink" if ti.issym() else
            "hardlink" if ti.islnk() else "other")
    return TarEntry(path=_strip(ti.name), type=kind, mode=ti.mode, size=ti.size, uid=ti.uid, gid=ti.gid,
                    mtime=int(ti.mtime), link_target=ti.linkname)


def _ancestors(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        d = posixpath.dirname(p)
        while d and d not in out:
            out.add(d)
            d = posixpath.dirname(d)
    return out


def _drop(state: dict[str, Found], path: str, *, self_too: bool) -> None:
    prefix = path + "/" if path else ""
    for key in [k for k in state if k.startswith(prefix) or (self_too and k == path)]:
        del state[key]


#: An entry of a layer and how to open its content (a file's; None for the other kinds).
Opener = Callable[[], ContextManager[BinaryIO | None]]


def _tar_entries(layer: LayerTar) -> Iterator[tuple[TarEntry, Opener]]:
    """The entries of a (compressed) layer tar, streamed: open a file's content before the next.
    The last entry is followed by the blob's verification (``LayerTar``)."""
    for ti in layer:
        yield _entry(ti), lambda ti=ti: contextlib.nullcontext(layer.open_member(ti))


def _dir_entries(root: str | os.PathLike[str], prefix: str) -> Iterator[tuple[TarEntry, Opener]]:
    """The entries the layer of ``root`` under ``prefix`` holds, as its tar would list them."""
    for e in layerfmt.iter_dir_entries(root, prefix):
        kind = e.type if e.type in ("file", "dir", "symlink", "hardlink") else "other"
        size = e.size if kind == "file" and e.size is not None else 0
        entry = TarEntry(path=_strip(e.path), type=kind, mode=e.mode & 0o7777, size=size, uid=0, gid=0,
                         mtime=0, link_target=e.link_target or "")
        source = e.source
        yield entry, (lambda source=source: open(source, "rb")) if kind == "file" and source is not None \
            else contextlib.nullcontext


class _Budget:
    """What one reading may still keep in memory (``MAX_READ_TOTAL``), across its layers."""

    def __init__(self) -> None:
        self.left = MAX_READ_TOTAL

    def take(self, n: int, what: str, path: str) -> None:
        if n > self.left:
            raise LayerLimitError(
                f"{what}: {shown(path)} brings the files read out of the image to more than "
                f"{MAX_READ_TOTAL} bytes; the image is not one pallet can read")
        self.left -= n


def _too_big(what: str, path: str, size: int, limit: int, purpose: str) -> LayerLimitError:
    return LayerLimitError(f"{what}: {shown(path)} is {size} bytes, more than the {limit} bytes pallet "
                           f"{purpose}; the image is not one pallet can read")


def _spool(f: BinaryIO, entry: TarEntry, what: str) -> tempfile.SpooledTemporaryFile:
    """The content of a file to analyse, in memory up to ``_SPOOL`` and in $TMPDIR beyond,
    never more than ``MAX_ANALYSE``."""
    purpose = "spools to $TMPDIR to analyse one file"
    if entry.size > MAX_ANALYSE:
        raise _too_big(what, entry.path, entry.size, MAX_ANALYSE, purpose)
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
    try:
        count = 0
        while chunk := f.read(1 << 20):
            count += len(chunk)
            if count > MAX_ANALYSE:
                raise _too_big(what, entry.path, count, MAX_ANALYSE, purpose)
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _read_layer(entries: Iterable[tuple[TarEntry, Opener]], pick: Picker, analyse: Analyser | None,
                below: dict[str, Found], what: str, budget: _Budget) -> dict[str, Found]:
    """Entries this layer keeps; removes from ``below`` what the layer hides."""
    mine: dict[str, Found] = {}
    below_dirs = _ancestors(below)
    for entry, opener in entries:
        path = entry.path
        if not path:
            continue
        base = posixpath.basename(path)
        if base.startswith(WHITEOUT_PREFIX):
            parent = posixpath.dirname(path)
            if base == OPAQUE_WHITEOUT:
                _drop(below, parent, self_too=False)
            elif not base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                _drop(below, posixpath.join(parent, base[len(WHITEOUT_PREFIX):]), self_too=True)
            continue
        below.pop(path, None)  # whatever this layer puts here replaces what was below
        if entry.type != "dir" and path in below_dirs:
            _drop(below, path, self_too=False)  # a file where a directory was: its content is gone
        action = pick(entry)
        if action is None:
            mine.pop(path, None)
            continue
        if entry.type == "symlink":
            mine[path] = Found(path, LINK, target=entry.link_target)
        elif entry.type == "hardlink":
            target = mine.get(_strip(entry.link_target))
            if target is not None and target.kind != LINK:
                mine[path] = Found(path, target.kind, data=target.data, result=target.result)
        elif entry.type == "file":
            if action == READ and entry.size > MAX_READ:
                raise _too_big(what, path, entry.size, MAX_READ, "reads into memory of such a file")
            with opener() as f:
                if f is None:
                    continue
                if action == READ:
                    budget.take(entry.size, what, path)
                    mine[path] = Found(path, READ, data=f.read(MAX_READ + 1))
                elif action == ANALYSE and analyse is not None:
                    with _spool(f, entry, what) as spool:
                        result = analyse(spool, entry)  # type: ignore[arg-type]
                    if result is not None:
                        mine[path] = Found(path, ANALYSE, result=result)
    return mine


def read_files(layers: Iterable[BinaryIO | LayerTar], pick: Picker,
               analyse: Analyser | None = None, *, below: dict[str, Found] | None = None) -> dict[str, Found]:
    """What ``pick`` wants of the file system that ``layers`` (bottom first) make, by path.

    Each layer is a blob stream or a ``LayerTar`` (which names it in errors); each is read to
    its end and verified before the next, so nothing of a blob that fails its digest is used.
    ``below``: what lower layers gave (left unchanged), to read more layers on top of it.
    """
    state: dict[str, Found] = dict(below or {})
    budget = _Budget()
    for layer in layers:
        tar = layer if isinstance(layer, LayerTar) else LayerTar(layer)
        mine = _read_layer(_tar_entries(tar), pick, analyse, state, tar.what, budget)
        tar.finish()
        state.update(mine)
    return state


def read_dir(root: str | os.PathLike[str], prefix: str, pick: Picker,
             analyse: Analyser | None = None) -> dict[str, Found]:
    """What ``read_files`` gives for the layer of directory ``root`` (its entries under
    ``prefix``, as ``builder.oci.layer.write_layer`` writes them), read from the directory."""
    return _read_layer(_dir_entries(root, prefix), pick, analyse, {}, f"directory {os.fspath(root)}", _Budget())


def resolve_link(files: dict[str, Found], path: str, max_hops: int = 8) -> Found | None:
    """The file ``path`` names, following symlinks (of the path or its directories) kept in ``files``."""
    for _ in range(max_hops):
        found = files.get(path)
        if found is not None and found.kind != LINK:
            return found
        if found is not None:
            path = _join(path, found.target or "")
            continue
        parts = path.split("/")
        for i in range(len(parts) - 1, 0, -1):
            d = files.get("/".join(parts[:i]))
            if d is not None and d.kind == LINK:
                path = _join("/".join(parts[:i]), d.target or "") + "/" + "/".join(parts[i:])
                break
        else:
            return None
    return None


def _join(link: str, target: str) -> str:
    base = "" if target.startswith("/") else posixpath.dirname(link)
    return posixpath.normpath(posixpath.join(base, target.lstrip("/"))).lstrip("/")
