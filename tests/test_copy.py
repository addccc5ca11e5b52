import hashlib
import io
import json
import os
import signal
import time

import pytest

from builder.oci import mediatypes as mt
from builder.oci.copy import copy_image
from builder.oci.digest import sha256
from builder.oci.image import load_image
from builder.oci.model import Descriptor, Index, Platform
from builder.oci.stores.layout import LayoutStore
from tests.cli import pallet, popen
from tests.imagekit import push_image


def verify_layout(path) -> None:
    """Every tagged image's manifest, config and layers are present and match their digests."""
    store = LayoutStore(path)
    for tag in store.list_tags():
        image = load_image(store, tag)
        for desc, _ in image.layers():
            with store.open_blob(desc) as stream:
                while stream.read(1 << 20):
                    pass
        store.get_blob(image.manifest.config)


def test_copy_layout_to_layout_keeps_digest_and_skips(tmp_path):
    src = LayoutStore(tmp_path / "src")
    desc, _ = push_image(src, [{"a": b"1"}, {"b": b"2"}], tag="v1")
    dst = LayoutStore(tmp_path / "dst")
    out, stats = copy_image(src, "v1", dst, "copied")
    assert out.digest == desc.digest and stats.copied == 3
    out2, stats2 = copy_image(src, "v1", dst, "again")
    assert out2.digest == desc.digest and stats2.copied == 0 and stats2.skipped == 3
    verify_layout(tmp_path / "dst")


def test_copy_index_with_two_platforms(tmp_path):
    src = LayoutStore(tmp_path / "src")
    amd, _ = push_image(src, [{"arch": b"amd64"}], tag=None)
    arm, _ = push_image(src, [{"arch": b"arm64"}], tag=None, config_extra={"architecture": "arm64"})
    index = Index(manifests=(
        Descriptor(mt.OCI_MANIFEST, amd.digest, amd.size, platform=Platform("linux", "amd64")),
        Descriptor(mt.OCI_MANIFEST, arm.digest, arm.size, platform=Platform("linux", "arm64"))))
    idx_desc = src.put_manifest(index.to_bytes(), mt.OCI_INDEX, tag="multi")
    dst = LayoutStore(tmp_path / "dst")
    out, _ = copy_image(src, "multi", dst, "multi")
    assert out.digest == idx_desc.digest
    assert load_image(dst, "multi", Platform("linux", "arm64")).config.architecture == "arm64"
    assert load_image(dst, "multi").digest == amd.digest


def test_copy_from_corrupted_source_writes_no_tag(tmp_path):
    src = LayoutStore(tmp_path / "src")
    desc, data = push_image(src, [{"a": b"x" * 5000}], tag="v1")
    layer = json.loads(data)["layers"][0]["digest"].split(":")[1]
    blob = tmp_path / "src" / "blobs" / "sha256" / layer
    blob.write_bytes(blob.read_bytes()[:-3] + b"zzz")
    proc = pallet("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v1", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("pallet: error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert LayoutStore(tmp_path / "dst").list_tags() == []


def test_cli_copy_prints_digest_reference(tmp_path):
    src = LayoutStore(tmp_path / "src")
    desc, _ = push_image(src, [{"a": b"1"}], tag="v1")
    proc = pallet("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v2")
    assert proc.stdout.strip() == f"oci:{tmp_path}/dst:v2@{desc.digest}"
    proc = pallet("copy", "--json", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:v3")
    result = json.loads(proc.stdout)
    assert result["digest"] == desc.digest and result["blobs"]["skipped"] == 2


def test_cli_missing_tag_and_bad_reference(tmp_path):
    src = LayoutStore(tmp_path / "src")
    push_image(src, [{"a": b"1"}], tag="v1")
    proc = pallet("inspect", f"oci:{tmp_path}/src:nope", check=False)
    assert proc.returncode == 1 and "'nope' not found" in proc.stderr and proc.stderr.count("\n") == 1
    proc = pallet("copy", "Not A Ref", f"oci:{tmp_path}/x", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("pallet: error:")
    proc = pallet("--debug", "inspect", f"oci:{tmp_path}/src:nope", check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def _big_layout(path, size: int) -> str:
    """A layout with one large incompressible (uncompressed tar) layer; returns its manifest digest."""
    store = LayoutStore(path)
    blob = os.urandom(size)
    desc = Descriptor(mt.OCI_LAYER, sha256(blob), len(blob))
    store.put_blob(desc, io.BytesIO(blob))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [desc.digest]}}).encode()
    cdesc = store.put_blob_bytes(config, mt.OCI_CONFIG)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cdesc.to_json(),
                           "layers": [desc.to_json()]}).encode()
    return store.put_manifest(manifest, mt.OCI_MANIFEST, tag="big").digest


def test_copy_killed_half_way_then_rerun_completes(tmp_path):
    digest = _big_layout(tmp_path / "src", 400 << 20)
    dst = tmp_path / "dst"
    proc = popen("copy", f"oci:{tmp_path}/src:big", f"oci:{dst}:big")
    killed = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        temps = list(dst.glob("blobs/sha256/.tmp-*")) if dst.exists() else []
        if any(t.stat().st_size > (8 << 20) for t in temps if t.exists()):
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.002)
    proc.wait()
    if not killed:
        pytest.skip("the copy finished before it could be interrupted")
    # Interrupted: the layout is valid and holds no tag for a half-copied image.
    assert LayoutStore(dst).list_tags() == []
    out = pallet("copy", f"oci:{tmp_path}/src:big", f"oci:{dst}:big")
    assert out.stdout.strip().endswith(digest)
    verify_layout(dst)


def _lying_size_manifest(src: LayoutStore, desc: Descriptor, data: bytes) -> bytes:
    """The manifest ``data`` with its first layer's size off by one (the digest is right)."""
    doc = json.loads(data)
    doc["layers"][0]["size"] += 1
    return json.dumps(doc).encode()


@pytest.mark.parametrize("kind", ["layout", "registry"])
def test_copy_refuses_a_manifest_whose_size_lies_about_a_blob_the_destination_has(tmp_path, kind, request):
    """A copy skips blobs the destination has without reading the source's bytes, so the
    manifest's size for them was never checked: such a copy stored a manifest no reader accepts."""
    from builder.errors import DigestMismatchError
    from builder.oci.stores.registry import RegistryStore
    from tests.fixtures_registry import unique_repo

    src = LayoutStore(tmp_path / "src")
    desc, data = push_image(src, [{"a": b"x" * 3000}], tag="v1")
    if kind == "layout":
        dst = LayoutStore(tmp_path / "dst")
    else:
        dst = RegistryStore(request.getfixturevalue("registry").host, unique_repo())
    copy_image(src, "v1", dst, "good")
    lying = _lying_size_manifest(src, desc, data)
    src.put_manifest(lying, desc.media_type, tag="lies")
    before = dst.list_tags()
    with pytest.raises(DigestMismatchError, match=r"the manifest says \d+ bytes, .* holds \d+"):
        copy_image(src, "lies", dst, "lies")
    assert dst.list_tags() == before
    assert load_image(dst, "good").digest == desc.digest
