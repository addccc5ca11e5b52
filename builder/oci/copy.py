"""Copy an image (or a whole index) from one store to another, by digest.

Order of writes, so that a crash at any point leaves the destination valid: every blob first
(skipping those already there, mounting across repositories where the registry can), then child
manifests, then the top manifest by digest, and only then the tag.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from builder.errors import DigestMismatchError
from builder.oci import mediatypes as mt
from builder.oci.image import load_image
from builder.oci.model import Descriptor, Index, Manifest, ModelError, Platform
from builder.oci.stores.base import Store
from builder.progress import Progress

DEFAULT_JOBS = 4


@dataclass
class CopyStats:
    copied: int = 0
    skipped: int = 0
    mounted: int = 0
    bytes: int = 0
    digests: list[str] = field(default_factory=list)


def copy_blobs(src: Store, dst: Store, blobs: list[Descriptor], *, jobs: int = DEFAULT_JOBS,
               progress: Progress | None = None, stats: CopyStats | None = None) -> CopyStats:
    """Make every blob in ``blobs`` present in ``dst``; several transfer at once."""
    stats = stats or CopyStats()
    unique: dict[str, Descriptor] = {}
    for blob in blobs:
        unique.setdefault(blob.digest, blob)

    def one(blob: Descriptor) -> str:
        here = dst.blob_size(blob.digest)
        if here is not None and here >= 0 and here != blob.size:
            raise DigestMismatchError(
                f"blob {blob.digest}: the manifest says {blob.size} bytes, {dst.description} holds "
                f"{here}: a wrong manifest (or a damaged blob there), not copied")
        if here is not None:
            return "skipped"
        if dst.mount_blob(blob, src):
            return "mounted"
        if progress:
            progress.add_total(blob.size)
        with src.open_blob(blob) as stream:
            dst.put_blob(blob, stream, progress.advance if progress else None)
        if progress:
            progress.item_done()
        return "copied"

    todo = list(unique.values())
    if len(todo) <= 1 or jobs <= 1:
        outcomes = [one(b) for b in todo]
    else:
        with ThreadPoolExecutor(max_workers=min(jobs, len(todo)), thread_name_prefix="blob") as pool:
            outcomes = list(pool.map(one, todo))
    for blob, outcome in zip(todo, outcomes):
        if outcome == "copied":
            stats.copied += 1
            stats.bytes += blob.size
        elif outcome == "mounted":
            stats.mounted += 1
        else:
            stats.skipped += 1
        stats.digests.append(blob.digest)
    return stats


#: How deep indexes may nest (an index of indexes of images is 2): far beyond any real image;
#: each level is a recursion, and a hostile chain of thousands ran Python out of stack.
MAX_INDEX_DEPTH = 8


def _copy_manifest_tree(src: Store, dst: Store, desc: Descriptor, data: bytes, *, jobs: int,
                        progress: Progress | None, stats: CopyStats, seen: set[str] | None = None,
                        depth: int = 0) -> None:
    """Copy what a manifest or index refers to (not the top manifest itself).

    ``seen``: the manifests already copied. An index may list one child many times, and indexes
    under it the same again: without it a small hostile index would be fetched and copied a
    number of times exponential in its depth."""
    seen = set() if seen is None else seen
    if mt.is_index(desc.media_type):
        if depth >= MAX_INDEX_DEPTH:
            raise ModelError(f"index {desc.digest} nests indexes more than {MAX_INDEX_DEPTH} deep; "
                             "no real image does, refusing it")
        index = Index.from_bytes(data, desc.media_type)
        for child in index.manifests:
            if child.digest in seen:
                continue
            seen.add(child.digest)
            child_desc, child_data = src.get_manifest(child.digest)
            _copy_manifest_tree(src, dst, child_desc, child_data, jobs=jobs, progress=progress, stats=stats,
                                seen=seen, depth=depth + 1)
            dst.put_manifest(child_data, child_desc.media_type)
        return
    manifest = Manifest.from_bytes(data, desc.media_type)
    copy_blobs(src, dst, [manifest.config, *manifest.layers], jobs=jobs, progress=progress, stats=stats)


def copy_image(src: Store, src_ref: str, dst: Store, dst_tag: str | None, *, jobs: int = DEFAULT_JOBS,
               platform: Platform | None = None, progress: Progress | None = None) -> tuple[Descriptor, CopyStats]:
    """Copy the image ``src_ref`` names into ``dst`` (tagged ``dst_tag`` when given).

    Returns the destination descriptor: the same digest as the source for stores that keep
    manifests as they are; the Docker engine makes its own.
    """
    stats = CopyStats()
    desc, data = src.get_manifest(src_ref)
    if mt.is_index(desc.media_type) and not dst.accepts_index:
        image = load_image(src, desc.digest, platform)
        desc, data = image.descriptor, image.manifest_bytes
    _copy_manifest_tree(src, dst, desc, data, jobs=jobs, progress=progress, stats=stats)
    out = dst.put_manifest(data, desc.media_type, tag=dst_tag)
    return out, stats
