"""Root file system trees -> layer entries: a whole tree, or what one tree changes over another.

The base layer is a whole tree (``tree_entries``). An image's second layer is the difference
between its tree and the base tree (``diff_entries``), as OCI layers express it:

- a path that is new, or differs in type, mode, owner, content or link target, is in the layer
  with its real metadata; so are all its parent directories (or unpacking would create them
  with made-up modes and owners);
- a path the upper tree no longer has is a whiteout ``.wh.NAME`` in its parent (one for a
  removed directory, none for what is under it; none when the path became a non-directory,
  which replaces it whole);
- hard links: if any member of a group of linked files changed, or the group is not the same
  group as below, every member is in the layer, the first carrying the data.

The result depends only on the two trees' contents, never on walk order or timestamps.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from builder.errors import LayerError
from builder.oci.layer import DIR, FILE, HARDLINK, SYMLINK, Entry, iter_dir_entries

WHITEOUT = ".wh."
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Node:
    type: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    target: str = ""
    inode: tuple[int, int] = (0, 0)
    nlink: int = 1


def scan(root: Path) -> dict[str, Node]:
    """Every path under ``root`` (relative, ``/``-separated) with its metadata; no content read."""
    out: dict[str, Node] = {}
    base = os.fspath(root)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        full_dir = os.path.join(base, rel_dir) if rel_dir else base
        with os.scandir(full_dir) as it:
            children = list(it)
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            st = child.stat(follow_symlinks=False)
            fmt = stat.S_IFMT(st.st_mode)
            common = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)
            if fmt == stat.S_IFREG:
                out[rel] = Node(FILE, size=st.st_size, inode=(st.st_dev, st.st_ino), nlink=st.st_nlink, **common)
            elif fmt == stat.S_IFDIR:
                out[rel] = Node(DIR, **common)
                stack.append(rel)
            elif fmt == stat.S_IFLNK:
                out[rel] = Node(SYMLINK, target=os.readlink(child.path), **common)
            else:
                raise LayerError(f"{child.path}: is a device, socket or FIFO; it cannot go in a layer")
    return out


def same_content(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(_CHUNK), fb.read(_CHUNK)
            if x != y:
                return False
            if not x:
                return True


def _same(lower: Node, upper: Node, lower_path: Path, upper_path: Path) -> bool:
    if (lower.type, lower.mode, lower.uid, lower.gid) != (upper.type, upper.mode, upper.uid, upper.gid):
        return False
    if upper.type == SYMLINK:
        return lower.target == upper.target
    if upper.type == FILE:
        return lower.size == upper.size and same_content(lower_path, upper_path)
    return True


def _groups(nodes: dict[str, Node]) -> dict[str, frozenset[str]]:
    """path -> the set of paths hard-linked with it (only for files with more than one link)."""
    by_inode: dict[tuple[int, int], set[str]] = {}
    for path, n in nodes.items():
        if n.type == FILE and n.nlink > 1:
            by_inode.setdefault(n.inode, set()).add(path)
    out: dict[str, frozenset[str]] = {}
    for members in by_inode.values():
        if len(members) > 1:
            group = frozenset(members)
            for m in members:
                out[m] = group
    return out


def _entry(root: Path, path: str, n: Node) -> Entry:
    owner = {"uid": n.uid, "gid": n.gid}
    if n.type == DIR:
        return Entry(path=path, type=DIR, mode=n.mode, **owner)
    if n.type == SYMLINK:
        return Entry(path=path, type=SYMLINK, mode=0o777, link_target=n.target, **owner)
    return Entry(path=path, type=FILE, mode=n.mode, source=os.path.join(root, path), size=n.size, **owner)


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def diff_entries(lower_root: Path, upper_root: Path) -> list[Entry]:
    """The entries of a layer that turns ``lower_root`` into ``upper_root`` (see the module docstring)."""
    lower, upper = scan(lower_root), scan(upper_root)
    changed: set[str] = set()
    for path, n in upper.items():
        o = lower.get(path)
        if o is None or not _same(o, n, lower_root / path, upper_root / path):
            changed.add(path)

    upper_groups, lower_groups = _groups(upper), _groups(lower)
    for path, group in upper_groups.items():
        below = lower_groups.get(path, frozenset({path})) & upper.keys()
        if below != group or group & changed:
            changed |= group
    for path in lower_groups:  # linked below, a lone file above: it must stop sharing data
        if path in upper and path not in upper_groups and lower_groups[path] & upper.keys() != {path}:
            changed.add(path)

    whiteouts: list[str] = []
    for path, o in lower.items():
        if path in upper:
            continue
        parent = path.rpartition("/")[0]
        if parent and (lower.get(parent, Node(DIR, 0, 0, 0)).type != DIR or parent not in upper
                       or upper[parent].type != DIR):
            continue  # the parent is gone or replaced: that removes this path too
        head, _, name = path.rpartition("/")
        whiteouts.append(f"{head}/{WHITEOUT}{name}" if head else f"{WHITEOUT}{name}")

    needed_dirs: set[str] = set()
    for path in (*changed, *whiteouts):
        needed_dirs.update(_parents(path))

    entries: list[Entry] = []
    linked_first: dict[frozenset[str], str] = {}
    for path in sorted(changed | needed_dirs, key=lambda p: tuple(os.fsencode(x) for x in p.split("/"))):
        n = upper[path]
        group = upper_groups.get(path)
        if group is not None and path in changed:
            first = linked_first.setdefault(group, path)
            if first != path:
                entries.append(Entry(path=path, type=HARDLINK, mode=n.mode, link_target=first,
                                     uid=n.uid, gid=n.gid))
                continue
        entries.append(_entry(upper_root, path, n))
    for w in whiteouts:
        entries.append(Entry(path=w, type=FILE, mode=0o644, data=b"", uid=0, gid=0))
    return entries


def tree_entries(root: Path) -> Iterator[Entry]:
    """A whole tree as layer entries, each with its owner."""
    return iter_dir_entries(root, keep_owners=True)
