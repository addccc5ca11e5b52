"""Small helpers for tests: make real images from bytes, without the code under test.

They use plain ``tarfile``/``gzip`` so a bug in pallet's own layer writer cannot hide itself.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from builder.oci import mediatypes as mt
from builder.oci.digest import sha256
from builder.oci.model import Descriptor
from builder.oci.stores.base import Store


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def push_image(store: Store, files_per_layer: list[dict[str, bytes]], tag: str | None = "latest",
               config_extra: dict | None = None) -> tuple[Descriptor, bytes]:
    """Put a small image (one gzip layer per dict) into ``store``; returns (manifest desc, bytes)."""
    layers, diff_ids = [], []
    for files in files_per_layer:
        raw = tar_of(files)
        blob = gzip.compress(raw, mtime=0)
        diff_ids.append(sha256(raw))
        layers.append(store.put_blob_bytes(blob, mt.OCI_LAYER_GZIP).to_json())
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "config": {"Env": ["PATH=/bin"]}, **(config_extra or {})}
    config_desc = store.put_blob_bytes(json.dumps(config, sort_keys=True).encode(), mt.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc.to_json(), "layers": layers}
    data = json.dumps(manifest, sort_keys=True).encode()
    return store.put_manifest(data, mt.OCI_MANIFEST, tag=tag), data
