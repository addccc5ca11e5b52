"""A cache of layer blobs, so an unchanged layer is never compressed or uploaded twice.

Two keys find a cached layer:
- a stat fingerprint of the directory: (path, type, mode, size, mtime_ns, inode) of every
  entry plus the layer options — the heuristic git and make use. A directory restored from
  the build cache by rename, and left alone by its buildpack, keeps it: no tar at all.
- the diffID (sha256 of the uncompressed tar): when the fingerprint misses but this layer path
  was built before, the tar is hashed without compressing (a fraction of gzip's cost), and a
  layer whose files were rewritten with the same bytes is still reused.
A miss costs one tar, never a wrong layer: the layer writer is deterministic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder import treewalk
from builder.oci.compress import APP_GZIP_LEVEL
from builder.oci.layer import write_layer
from builder.oci.model import Descriptor


@dataclass(frozen=True)
class CachedLayer:
    descriptor: Descriptor
    diff_id: str
    path: Path  # the blob file


class _HashOnly:
    """A write-only sink: the layer writer computes the diffID; the bytes go nowhere."""

    def write(self, data: bytes | memoryview) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def fingerprint(src: Path, options: dict[str, object]) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for root, dirs, files in treewalk.walk(src):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, src)}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n"
                     .encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _options_key(options: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()


class LayerCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("blobs", "stat", "diff", "seen"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def _load(self, entry: Path) -> CachedLayer | None:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            data = json.loads(entry.read_text())
            desc = Descriptor.from_json(data["descriptor"])
            blob = self.root / "blobs" / desc.digest.split(":", 1)[1]
            if blob.is_file() and blob.stat().st_size == desc.size:
                with contextlib.suppress(OSError):
                    os.utime(blob)  # its last use, for pallet prune (least recently used first)
                return CachedLayer(desc, data["diff_id"], blob)
        return None

    def _record(self, entry: Path, layer: CachedLayer) -> None:
        tmp = entry.with_name(f".tmp-{entry.name}-{os.getpid()}")
        tmp.write_text(json.dumps({"descriptor": layer.descriptor.to_json(), "diff_id": layer.diff_id}))
        os.replace(tmp, entry)

    def layer(self, src: Path, *, prefix: str, uid: int, gid: int,
              compression: str = "gzip", gzip_level: int = APP_GZIP_LEVEL) -> tuple[CachedLayer, bool]:
        """The layer of ``src`` (under ``prefix``); True when it came from the cache. Written at
        an app build's gzip level unless told otherwise (its users are app builds)."""
        options = {"prefix": prefix, "uid": uid, "gid": gid, "compression": compression, "level": gzip_level,
                   "epoch": os.environ.get("SOURCE_DATE_EPOCH", "")}
        okey = _options_key(options)
        stat_entry = self.root / "stat" / fingerprint(src, options)
        hit = self._load(stat_entry)
        if hit:
            return hit, True
        seen = self.root / "seen" / okey
        if seen.exists():  # built before: hash the tar (cheap) before compressing (not cheap)
            diff_id = write_layer(src, _HashOnly(), prefix=prefix, uid=uid, gid=gid,  # type: ignore[arg-type]
                                  compression="none").diff_id
            hit = self._load(self.root / "diff" / f"{okey}-{diff_id.split(':', 1)[1]}")
            if hit:
                self._record(stat_entry, hit)
                return hit, True
        tmp = self.root / "blobs" / f".tmp-{okey}-{os.getpid()}"
        result = write_layer(src, tmp, prefix=prefix, uid=uid, gid=gid, compression=compression,
                             gzip_level=gzip_level)
        desc = result.descriptor()
        blob = self.root / "blobs" / desc.digest.split(":", 1)[1]
        os.replace(tmp, blob)
        layer = CachedLayer(desc, result.diff_id, blob)
        self._record(stat_entry, layer)
        self._record(self.root / "diff" / f"{okey}-{result.diff_id.split(':', 1)[1]}", layer)
        seen.touch()
        return layer, False

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
