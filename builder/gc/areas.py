"""The parts of pallet's cache, each as entries with a size and a last use, and how to remove
one without harming whoever uses it.

Every area answers the same questions (``Area``): its entries, whether one is in use, remove it.
Removal renames first (a directory becomes ``.trash-...``, gone from view at once) and deletes
after, so nothing half-removed is ever used; the next prune deletes what a killed one left.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from builder.gc import lease

TRASH = ".trash-"
#: Scratch directories of builds (``work/``) are taken for abandoned only after this long.
WORK_GRACE = 24 * 3600.0


@dataclass(frozen=True)
class Entry:
    area: str
    name: str
    path: Path
    size: int          # bytes on disk
    last_used: float   # epoch seconds
    #: why it stays whatever the bounds say (a committed stack lock names it), or None
    pinned: str | None = None

    def to_json(self) -> dict:
        return {"area": self.area, "name": self.name, "path": str(self.path), "size": self.size,
                "lastUsed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_used)),
                **({"pinned": self.pinned} if self.pinned else {})}


def disk_usage(path: Path) -> int:
    """Bytes on disk (allocated blocks) of a file or a tree."""
    from builder.lifecycle.rootfs import disk_usage as tree_usage

    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_blocks * 512
    return st.st_blocks * 512 + tree_usage(path)


def _mtime(*paths: Path) -> float:
    times = []
    for p in paths:
        with contextlib.suppress(OSError):
            times.append(p.stat().st_mtime)
    return max(times, default=0.0)


def _names(directory: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove_path(path: Path) -> None:
    from builder.lifecycle.rootfs import remove_tree

    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        path.unlink(missing_ok=True)


def _to_trash(path: Path) -> Path | None:
    """Rename ``path`` out of view; the trash name, or None when it is gone already."""
    doomed = path.with_name(f"{TRASH}{path.name}-{os.getpid()}")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return None
    return doomed


def _empty_trash(directory: Path) -> None:
    for name in _all_names(directory):
        if name.startswith(TRASH):
            _remove_path(directory / name)


def _all_names(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


class Area:
    """One part of the cache. ``whole`` is the area-wide lease builds hold (None: per entry)."""

    name = ""
    whole: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def path(self) -> Path:
        return self.root / self.name

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def busy(self, entry: Entry) -> bool:
        """Whether someone uses the entry now (a dry run's answer; ``remove`` checks again)."""
        return False

    def remove(self, entry: Entry) -> bool:
        """Remove the entry unless it is in use; True when removed."""
        raise NotImplementedError

    def tidy(self) -> None:
        """After removals: leftovers of killed removers and records that point at nothing."""
        _empty_trash(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[bool]:
        """Hold the area for removing (False: a build uses it all, nothing in it can go now)."""
        if self.whole is None:
            yield True
            return
        with lease.exclusive(self.path, self.whole) as free:
            yield free


class RootfsArea(Area):
    """``rootfs/<hex>``: images unpacked for sandboxes (``builder.lifecycle.rootfs``)."""

    name = "rootfs"

    def entries(self) -> list[Entry]:
        from builder.lifecycle.rootfs import entries

        return [Entry(self.name, e.digest, e.path, e.size, e.last_used) for e in entries(self.path)]

    def busy(self, entry: Entry) -> bool:
        from builder.lifecycle.rootfs import is_busy

        return is_busy(entry.path)

    def remove(self, entry: Entry) -> bool:
        from builder.lifecycle.rootfs import remove

        return remove(entry.path)

    def tidy(self) -> None:
        from builder.lifecycle.rootfs import forget_removed, remove_stale

        remove_stale(self.path)
        forget_removed(self.path)


class BuildsArea(Area):
    """``builds/<key>`` (an app's cached layers) with ``memo/<key>`` (its last build), one entry
    per build destination; a build leases its key while it runs."""

    name = "builds"

    def entries(self) -> list[Entry]:
        memo = self.root / "memo"
        out = []
        for key in sorted(set(_names(self.path)) | set(_names(memo))):
            build, record = self.path / key, memo / key
            last = max(lease.last_use(self.path, key) or 0.0, _mtime(build, record))
            out.append(Entry(self.name, key, build, disk_usage(build) + disk_usage(record), last))
        return out

    def busy(self, entry: Entry) -> bool:
        with lease.exclusive(self.path, entry.name) as free:
            return not free

    def remove(self, entry: Entry) -> bool:
        with lease.exclusive(self.path, entry.name) as free:
            if not free:
                return False
            doomed = [_to_trash(entry.path), _to_trash(self.root / "memo" / entry.name)]
            lease.forget(self.path, entry.name)
        for path in doomed:
            if path is not None:
                _remove_path(path)
        return True

    def tidy(self) -> None:
        _empty_trash(self.path)
        _empty_trash(self.root / "memo")


class LayersArea(Area):
    """``layers/``: compressed layer blobs (and their SBOMs) kept so an unchanged layer is not
    compressed again. Builds lease it whole (they read blobs until their export ends)."""

    name = "layers"
    whole = "all"

    def entries(self) -> list[Entry]:
        out = []
        for sub in ("blobs", "sbom"):
            for name in _names(self.path / sub):
                path = self.path / sub / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    out.append(Entry(self.name, f"{sub}/{name}", path, st.st_blocks * 512, st.st_mtime))
        return out

    def remove(self, entry: Entry) -> bool:
        entry.path.unlink(missing_ok=True)
        return True

    def tidy(self) -> None:
        """Temp files of killed builds, and records (``stat/``, ``diff/``) of blobs no longer here.

        A build killed while compressing a layer leaves its partial blob (``.<name>.<pid>.<n>.tmp``,
        hundreds of MB for a big app) in ``blobs/``; entries skip dot-names, so no prune ever
        removed it. Tidy runs holding the area exclusively: no build is writing, so every
        dot-name below it is a dead writer's."""
        for sub in ("blobs", "stat", "diff", "sbom", "seen"):
            with contextlib.suppress(OSError):
                for name in os.listdir(self.path / sub):
                    if name.startswith("."):
                        with contextlib.suppress(OSError):
                            (self.path / sub / name).unlink()
        blobs = self.path / "blobs"
        for sub in ("stat", "diff"):
            for name in _names(self.path / sub):
                record = self.path / sub / name
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    digest = json.loads(record.read_text())["descriptor"]["digest"]
                    if not (blobs / digest.split(":", 1)[1]).is_file():
                        record.unlink(missing_ok=True)


class BuildersArea(Area):
    """``builders/<hex>``: stacks pulled from published builder images (``--builder``)."""

    name = "builders"

    def entries(self) -> list[Entry]:
        return [Entry(self.name, f"sha256:{n}", self.path / n, disk_usage(self.path / n),
                      max(lease.last_use(self.path, n) or 0.0, _mtime(self.path / n)))
                for n in _names(self.path) if (self.path / n).is_dir()]

    def busy(self, entry: Entry) -> bool:
        with lease.exclusive(self.path, entry.path.name) as free:
            return not free

    def remove(self, entry: Entry) -> bool:
        with lease.exclusive(self.path, entry.path.name) as free:
            if not free:
                return False
            doomed = _to_trash(entry.path)
            lease.forget(self.path, entry.path.name)
        if doomed is not None:
            _remove_path(doomed)
        return True


class WorkArea(Area):
    """``work/``: scratch directories of builds; one untouched for a day was left by a killed build."""

    name = "work"

    def entries(self) -> list[Entry]:
        return [Entry(self.name, n, self.path / n, disk_usage(self.path / n), _mtime(self.path / n))
                for n in _names(self.path)]

    def busy(self, entry: Entry) -> bool:
        return time.time() - entry.last_used < WORK_GRACE

    def remove(self, entry: Entry) -> bool:
        if self.busy(entry):
            return False
        doomed = _to_trash(entry.path)
        if doomed is not None:
            _remove_path(doomed)
        return True


class DebsArea(Area):
    """``debs/``: downloaded packages with the mirror's SHA256 beside each. They rebuild a stale
    lock byte for byte (``builder.stacks.debcache``): those a committed lock names are pinned."""

    name = "debs"
    whole = "all"

    def __init__(self, root: Path, committed: frozenset[str] = frozenset()) -> None:
        super().__init__(root)
        self.committed = committed

    def entries(self) -> list[Entry]:
        out = []
        for name in _names(self.path):
            if not name.endswith(".deb"):
                continue
            path = self.path / name
            with contextlib.suppress(OSError):
                st = path.stat()
                size = st.st_blocks * 512 + disk_usage(path.with_name(name + ".sha256"))
                out.append(Entry(self.name, name, path, size, st.st_mtime,
                                 pinned="a committed stack lock names it" if name in self.committed else None))
        return out

    def remove(self, entry: Entry) -> bool:
        doomed = _to_trash(entry.path)
        entry.path.with_name(entry.name + ".sha256").unlink(missing_ok=True)
        if doomed is not None:
            doomed.unlink(missing_ok=True)
        return True


class StacksArea(Area):
    """``stacks/images``: stack images built from a stack file and lock, tagged by their key.
    Those of a committed stack file and lock (and its remembered refresh) are pinned."""

    name = "stacks"
    whole = "images"

    def __init__(self, root: Path, committed: frozenset[str] = frozenset()) -> None:
        super().__init__(root)
        self.committed = committed

    def _store(self):
        from builder.oci.stores.layout import LayoutStore

        return LayoutStore(self.path / "images", create=False)

    def _keys(self, store) -> dict[str, list[str]]:
        keys: dict[str, list[str]] = {}
        for tag in store.list_tags():
            key, _, kind = tag.rpartition("-")
            if key and kind in ("build", "run"):
                keys.setdefault(key, []).append(tag)
        return keys

    def _reachable(self, store, tags: list[str]) -> set[str]:
        from builder.errors import PalletError
        from builder.stacks.build import image_blobs

        out: set[str] = set()
        for tag in tags:
            with contextlib.suppress(PalletError):
                desc = store.resolve(tag)
                out.add(desc.digest)
                out.update(b.digest for b in image_blobs(store, desc))
        return out

    def entries(self) -> list[Entry]:
        if not (self.path / "images" / "index.json").is_file():
            return []
        store = self._store()
        keys = self._keys(store)
        reach = {key: self._reachable(store, tags) for key, tags in keys.items()}
        out = []
        for key, tags in sorted(keys.items()):
            others = set().union(*(r for k, r in reach.items() if k != key))
            own = reach[key] - others  # what removing this key frees
            size = sum(disk_usage(self.path / "images" / "blobs" / "sha256" / d.split(":", 1)[1]) for d in own)
            first = store.resolve(tags[0]).digest.split(":", 1)[1]
            last = lease.last_use(self.path, key) or _mtime(self.path / "images" / "blobs" / "sha256" / first)
            out.append(Entry(self.name, key, self.path / "images", size, last,
                             pinned="a committed stack lock names it" if key in self.committed else None))
        return out

    def remove(self, entry: Entry) -> bool:
        store = self._store()
        for tag in self._keys(store).get(entry.name, []):
            store.untag(tag)  # tags first: the blobs go in tidy, once nothing names them
        lease.forget(self.path, entry.name)
        return True

    def tidy(self) -> None:
        """Blobs no remaining stack image needs (renamed, then deleted)."""
        if not (self.path / "images" / "index.json").is_file():
            return
        store = self._store()
        keep = self._reachable(store, store.list_tags())
        blobs = self.path / "images" / "blobs" / "sha256"
        for name in _names(blobs):
            if f"sha256:{name}" not in keep:
                doomed = _to_trash(blobs / name)
                if doomed is not None:
                    doomed.unlink(missing_ok=True)
        _empty_trash(blobs)


#: Areas ``pallet prune`` cleans by default: all of them are made again on demand.
DEFAULT_AREAS = ("rootfs", "builds", "layers", "builders", "work")
#: Areas only an explicit flag (or --all) cleans.
EXPLICIT_AREAS = ("debs", "stacks")
