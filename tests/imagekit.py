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


# -- hostile images: blobs and tars that pallet's own writer would never make ----------------------


def push_layer_blobs(store: Store, blobs: list[bytes], tag: str | None = "latest", *,
                     config_extra: dict | None = None, diff_ids: list[str] | None = None,
                     size_delta: int = 0) -> tuple[Descriptor, list[Descriptor]]:
    """An image whose layers are exactly ``blobs`` (any bytes); ``size_delta`` is added to each
    layer's size in the manifest (a lying manifest). Returns (manifest desc, layer descs)."""
    layer_descs = [store.put_blob_bytes(blob, mt.OCI_LAYER) for blob in blobs]
    ids = diff_ids if diff_ids is not None else [sha256(gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b)
                                                  for b in blobs]
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ids},
              "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/true"]}, **(config_extra or {})}
    config_desc = store.put_blob_bytes(json.dumps(config, sort_keys=True).encode(), mt.OCI_CONFIG)
    listed = [{**d.to_json(), "size": d.size + size_delta} for d in layer_descs]
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc.to_json(), "layers": listed}
    data = json.dumps(manifest, sort_keys=True).encode()
    return store.put_manifest(data, mt.OCI_MANIFEST, tag=tag), layer_descs


def tar_header(info: tarfile.TarInfo) -> bytes:
    """The header blocks of one member, whatever it declares (no data follows)."""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


END_OF_ARCHIVE = b"\0" * (2 * tarfile.BLOCKSIZE)


def huge_member_tar(size: int = 2 ** 62, name: str = "opt/junk") -> bytes:
    """A tiny tar whose one member declares ``size`` bytes (it has a few)."""
    info = tarfile.TarInfo(name)
    info.size = size
    return tar_header(info) + b"Package: x\n".ljust(tarfile.BLOCKSIZE, b"\0") + END_OF_ARCHIVE


def sparse_tar(name: str, data: bytes, apparent_size: int) -> bytes:
    """A tar holding ``name`` as a GNU sparse file (PAX 0.0 format, as GNU tar writes it): ``data``
    at offset 0, then a hole up to ``apparent_size``. tarfile reads it; it cannot write it."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.pax_headers = {"GNU.sparse.size": str(apparent_size), "GNU.sparse.numblocks": "1",
                        "GNU.sparse.offset": "0", "GNU.sparse.numbytes": str(len(data))}
    pad = -len(data) % tarfile.BLOCKSIZE
    return tar_header(info) + data + b"\0" * pad + END_OF_ARCHIVE
