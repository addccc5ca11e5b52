"""``--cache-image REF``: the build cache and the build memo kept as an OCI image in a registry,
for machines that start empty (ephemeral CI runners, Kubernetes pods).

The image (an OCI manifest with a config of our own media type) has one layer per cached
layer directory (``<buildpack>/<layer>/`` of the build cache, written by the reproducible layer
writer, so an unchanged directory is the same blob on every machine: it is neither uploaded
again nor, thanks to ``layercache``, even tarred again), and a config holding the small files:
each buildpack's layer metadata (``<layer>.toml``, ``store.toml``), its output record (what lets
an unchanged buildpack be skipped), and the build memo (what lets unchanged inputs reuse the
last image without running a phase).

``restore`` runs before a build when this machine has neither a build cache nor a memo for the
image; ``save`` after it (not with ``--cache-image-readonly``, for untrusted branches): blobs the
registry has are skipped, and the manifest is written, and the tag moved, only when it changed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from builder import jsonsafe
from builder.errors import NotFoundError, PalletError
from builder.oci import mediatypes as mt

if TYPE_CHECKING:
    from builder.oci.model import Descriptor
    from builder.oci.stores.base import Store

CONFIG_TYPE = "application/vnd.pallet.build-cache.config.v1+json"
ARTIFACT_TYPE = "application/vnd.pallet.build-cache.v1"
PATH_ANNOTATION = "io.pallet.cache.path"
FORMAT = 1


class CacheImageError(PalletError):
    """The cache image is not one pallet wrote (or names paths outside the cache)."""


@dataclass(frozen=True)
class CacheImageRef:
    store: "Store"
    tag: str
    readonly: bool = False


def _safe_rel(rel: str) -> str:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CacheImageError(f"cache image names an unsafe path {rel!r}")
    return rel


def _write_inside(root: Path, rel: str, text: str) -> None:
    """Write ``root/rel`` following no symlink: the image's layers, just unpacked into ``root``,
    may have put one on the way (``x -> /etc``, then a file ``x/cron.d/job``: a host write)."""
    parts = rel.split("/")
    here = root
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise CacheImageError(f"cache image writes {rel!r} through a symlink ({here.name} -> "
                                  f"{os.readlink(here)!r}); refusing it")
        here.mkdir(exist_ok=True)
    fd = os.open(here / parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)


def _small_files(build_dir: Path) -> dict[str, str]:
    """Every file of the build cache that is not inside a layer directory (metadata, records)."""
    out: dict[str, str] = {}
    if not build_dir.is_dir():
        return out
    for bp in sorted(build_dir.iterdir()):
        if not bp.is_dir():
            continue
        for entry in sorted(bp.iterdir()):
            if entry.is_file() and not entry.name.startswith("."):
                out[f"{bp.name}/{entry.name}"] = entry.read_text()
    return out


def _layer_dirs(build_dir: Path) -> list[tuple[str, Path]]:
    if not build_dir.is_dir():
        return []
    return [(f"{bp.name}/{layer.name}", layer) for bp in sorted(build_dir.iterdir()) if bp.is_dir()
            for layer in sorted(bp.iterdir()) if layer.is_dir() and not layer.is_symlink()]


def save(ref: CacheImageRef, build_dir: Path, memo_path: Path, layer_cache_root: Path,
         say: Callable[[str], None] = lambda line: None) -> "Descriptor | None":
    """Write the cache image for ``build_dir`` and ``memo_path``; None when it was unchanged."""
    from builder.lifecycle.layercache import LayerCache
    from builder.oci.model import Descriptor, Manifest

    if ref.readonly:
        return None
    cache = LayerCache(layer_cache_root)
    layers: list[tuple[Descriptor, Path]] = []
    for rel, path in _layer_dirs(build_dir):
        cached, _ = cache.layer(path, prefix=rel, uid=0, gid=0)
        desc = cached.descriptor
        layers.append((Descriptor(desc.media_type, desc.digest, desc.size, annotations={PATH_ANNOTATION: rel}),
                       cached.path))
    memo_text = memo_path.read_text() if memo_path.is_file() else None
    config = json.dumps({"format": FORMAT, "files": _small_files(build_dir), "memo": memo_text},
                        sort_keys=True, separators=(",", ":")).encode()
    manifest = Manifest(config=Descriptor.of(config, CONFIG_TYPE), layers=tuple(d for d, _ in layers),
                        artifact_type=ARTIFACT_TYPE)
    data = manifest.to_bytes()
    new_digest = Descriptor.of(data, mt.OCI_MANIFEST).digest
    try:
        if ref.store.resolve(ref.tag).digest == new_digest:
            return None
    except NotFoundError:
        pass
    uploaded = 0
    for desc, blob in layers:
        if not ref.store.has_blob(desc.digest):
            ref.store.put_blob_file(Descriptor(desc.media_type, desc.digest, desc.size), blob)
            uploaded += 1
    ref.store.put_blob_bytes(config, CONFIG_TYPE)
    out = ref.store.put_manifest(data, mt.OCI_MANIFEST, tag=ref.tag)
    say(f"cache image: {uploaded} of {len(layers)} cache layers uploaded")
    return out


def restore(ref: CacheImageRef, build_dir: Path, memo_path: Path,
            say: Callable[[str], None] = lambda line: None) -> bool:
    """Fill an empty ``build_dir`` and ``memo_path`` from the cache image; False if it has none."""
    from builder.oci.model import Manifest
    from builder.oci.unpack import unpack_layer

    try:
        desc, data = ref.store.get_manifest(ref.tag)
    except NotFoundError:
        say("cache image: none yet (this build will write it)" if not ref.readonly else "cache image: none yet")
        return False
    manifest = Manifest.from_bytes(data, desc.media_type)
    if manifest.config.media_type != CONFIG_TYPE:
        raise CacheImageError(f"{ref.tag}: not a pallet cache image (config {manifest.config.media_type})")
    try:
        config = jsonsafe.loads(ref.store.get_blob(manifest.config))
        files = dict(config.get("files") or {})
        memo_text = config.get("memo")
    except (ValueError, AttributeError, TypeError) as exc:
        raise CacheImageError(f"{ref.tag}: unreadable cache config ({exc})") from None
    tmp = build_dir.with_name(f".{build_dir.name}.restore-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for layer in manifest.layers:
            _safe_rel((layer.annotations or {}).get(PATH_ANNOTATION, ""))
            with ref.store.open_blob(layer) as stream:
                unpack_layer(stream, tmp)  # entries carry their <buildpack>/<layer>/ prefix
        for rel, text in files.items():
            _write_inside(tmp, _safe_rel(rel), str(text))
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, build_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if isinstance(memo_text, str):
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        part = memo_path.with_name(f".{memo_path.name}.{os.getpid()}.tmp")
        part.write_text(memo_text)
        os.replace(part, memo_path)
    say(f"cache image: restored {len(manifest.layers)} cache layers" + (" and the build memo" if memo_text else ""))
    return True
