"""A cache of layer blobs keyed by a fingerprint of the directory they were made from.

The fingerprint is (path, type, mode, size, mtime_ns, inode) of every entry, plus the layer
options: the same heuristic git and make use. A directory restored from the build cache by
rename, and left alone by its buildpack, keeps its fingerprint, so its layer is reused without
being tarred, compressed or uploaded again. A miss costs one tar, never a wrong layer: equal
fingerprints mean the same files, and the layer writer is deterministic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder.oci.layer import write_layer
from builder.oci.model import Descriptor


@dataclass(frozen=True)
class CachedLayer:
    descriptor: Descriptor
    diff_id: str
    path: Path  # the blob file


def fingerprint(src: Path, **options: object) -> str:
    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, src)}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n"
                     .encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class LayerCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "index").mkdir(parents=True, exist_ok=True)

    def layer(self, src: Path, *, prefix: str, uid: int, gid: int, compression: str = "gzip") -> tuple[CachedLayer, bool]:
        """The layer of ``src`` (``prefix`` inside it); True when it came from the cache."""
        key = fingerprint(src, prefix=prefix, uid=uid, gid=gid, compression=compression,
                          epoch=os.environ.get("SOURCE_DATE_EPOCH", ""))
        entry = self.root / "index" / key
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            data = json.loads(entry.read_text())
            desc = Descriptor.from_json(data["descriptor"])
            blob = self.root / "blobs" / desc.digest.split(":", 1)[1]
            if blob.is_file() and blob.stat().st_size == desc.size:
                return CachedLayer(desc, data["diff_id"], blob), True
        tmp = self.root / "blobs" / f".tmp-{key}"
        result = write_layer(src, tmp, prefix=prefix, uid=uid, gid=gid, compression=compression)
        desc = result.descriptor()
        blob = self.root / "blobs" / desc.digest.split(":", 1)[1]
        os.replace(tmp, blob)
        tmp_entry = entry.with_name(f".tmp-{key}")
        tmp_entry.write_text(json.dumps({"descriptor": desc.to_json(), "diff_id": result.diff_id}))
        os.replace(tmp_entry, entry)
        return CachedLayer(desc, result.diff_id, blob), False

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
