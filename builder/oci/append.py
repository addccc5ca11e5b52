"""``pallet append``: a base image (or scratch) plus one reproducible layer made from a directory.

The steps are separate on purpose: read the base, write the layer, compute the new manifest and
config (pure, in ``mutate``), then move bytes — base blobs (skipped or mounted when the
destination already has them), the new layer, the config, the manifest, and the tag last.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from builder.errors import PalletError
from builder.oci import mediatypes as mt
from builder.oci import mutate
from builder.oci import reference as refs
from builder.oci.copy import CopyStats, copy_blobs
from builder.oci.image import host_platform, load_image
from builder.oci.layer import write_layer
from builder.oci.model import Descriptor, History, ImageConfig
from builder.oci.reference import Reference
from builder.oci.stores import StoreOptions, open_store
from builder.progress import Progress


@dataclass
class AppendResult:
    descriptor: Descriptor
    layer: Descriptor
    diff_id: str
    stats: CopyStats


def append(base: Reference, src_dir: Path, dst: Reference, changes: mutate.ConfigChanges, *,
           owner: tuple[int, int] = (0, 0), compression: str = "gzip",
           options: StoreOptions | None = None, progress: Progress | None = None) -> AppendResult:
    if dst.digest:
        raise PalletError(f"{dst}: the destination of append is a tag, not a digest")
    if not src_dir.is_dir():
        raise PalletError(f"{src_dir} is not a directory")
    created = mutate.rfc3339(mutate.source_date_epoch())

    dst_store = open_store(dst, options)
    base_store = None
    annotations: dict[str, str] = {}
    if base.transport == refs.SCRATCH:
        manifest, config = mutate.empty_image(host_platform(), created)
    else:
        base_store = open_store(base, options)
        image = load_image(base_store, base.ref)
        manifest, config = image.manifest, image.config
        # Where the image came from, so tools (and pallet rebase) can find and swap its base.
        annotations = {mt.ANNOTATION_BASE_DIGEST: image.digest, mt.ANNOTATION_BASE_NAME: str(base)}
    try:
        with tempfile.TemporaryDirectory(prefix="pallet-append-") as tmp:
            layer_path = Path(tmp) / "layer"
            layer = write_layer(src_dir, layer_path, uid=owner[0], gid=owner[1], compression=compression)
            layer_desc = layer.descriptor()
            history = History(created=created, created_by="pallet append")  # no path: same content, same digest
            new_manifest, new_config = mutate.append_layer(
                manifest, mutate_config(config, changes, created), layer_desc, layer.diff_id, history)
            if annotations:
                new_manifest = replace(new_manifest, annotations={**(new_manifest.annotations or {}), **annotations})
            new_manifest, config_bytes = mutate.finalize(new_manifest, new_config)

            stats = CopyStats()
            if base_store is not None:
                copy_blobs(base_store, dst_store, list(manifest.layers), progress=progress, stats=stats)
            if not dst_store.has_blob(layer_desc.digest):
                with open(layer_path, "rb") as f:
                    dst_store.put_blob(layer_desc, f, progress.advance if progress else None)
            dst_store.put_blob_bytes(config_bytes, new_manifest.config.media_type)
            desc = dst_store.put_manifest(new_manifest.to_bytes(), new_manifest.media_type, tag=dst.tag or refs.DEFAULT_TAG)
    finally:
        dst_store.close()
        if base_store is not None:
            base_store.close()
    return AppendResult(descriptor=desc, layer=layer_desc, diff_id=layer.diff_id, stats=stats)


def mutate_config(config: ImageConfig, changes: mutate.ConfigChanges, created: str) -> ImageConfig:
    return replace(config, created=created, config=mutate.apply_changes(config.config, changes))

