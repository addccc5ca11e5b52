"""A hostile build cache (issue 11, third sweep). ``--cache-image`` restores a build cache from a
registry: whoever can push there (a shared CI cache repository) wrote it. Restoring used paths
it names on the host: a layer's symlink ``x -> /etc`` then a small file ``x/cron.d/job`` was
written through the link, as root; a record's file names (``../../../x``) were written, and its
workspace names removed, relative to directories they climb out of.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from builder.lifecycle import cacheimage
from builder.lifecycle.cache import BuildCache, Record
from builder.oci import mediatypes as mt
from builder.oci.model import Descriptor, Manifest
from builder.oci.stores.layout import LayoutStore


def _symlink_layer(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname = tarfile.SYMTYPE, target
        tf.addfile(ti)
    return buf.getvalue()


def _cache_image(store: LayoutStore, layer: bytes, files: dict[str, str]) -> None:
    blob = store.put_blob_bytes(layer, mt.OCI_LAYER)
    layer_desc = Descriptor(blob.media_type, blob.digest, blob.size, annotations={cacheimage.PATH_ANNOTATION: "x"})
    config = json.dumps({"format": cacheimage.FORMAT, "files": files, "memo": None}).encode()
    config_desc = store.put_blob_bytes(config, cacheimage.CONFIG_TYPE)
    manifest = Manifest(config=config_desc, layers=(layer_desc,), artifact_type=cacheimage.ARTIFACT_TYPE)
    store.put_manifest(manifest.to_bytes(), mt.OCI_MANIFEST, tag="cache")


def test_a_cache_images_file_is_not_written_through_its_own_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "host-etc"
    outside.mkdir()
    store = LayoutStore(tmp_path / "cache-image")
    _cache_image(store, _symlink_layer("x", str(outside)), {"x/cron.d/job": "* * * * * root evil\n"})
    ref = cacheimage.CacheImageRef(store, "cache")
    build_dir = tmp_path / "builds" / "app"
    with pytest.raises(cacheimage.CacheImageError, match="through a symlink"):
        cacheimage.restore(ref, build_dir, tmp_path / "memo.json")
    assert list(outside.iterdir()) == []
    assert not build_dir.exists()


@pytest.mark.parametrize("record", [
    {"key": "k", "files": {"../../../../outside/pwned": "x"}, "layers": []},
    {"key": "k", "files": {}, "layers": ["../../outside"]},
    {"key": "k", "files": {}, "layers": [], "workspace": {"../../outside": None}},
    {"key": "k", "files": {"launch.toml": 5}, "layers": []},
])
def test_a_record_naming_paths_outside_is_dropped(tmp_path: Path, record: dict) -> None:
    from builder.lifecycle.buildpack import Buildpack

    bp = Buildpack(api="0.10", id="evil/bp", version="1", path=tmp_path / "bp")
    src = tmp_path / "cache" / bp.layers_name
    src.mkdir(parents=True)
    (src / "pallet-record.json").write_text(json.dumps(record))
    records = BuildCache(tmp_path / "cache").restore([bp], tmp_path / "layers")
    assert records == {}


def test_a_record_not_read_from_a_cache_still_writes_nothing_outside(tmp_path: Path) -> None:
    (tmp_path / "layers").mkdir()
    record = Record(key="k", files={"../outside": "x"}, layers=[])
    assert record.reinstate(tmp_path / "layers" / "bp") is False
    assert not (tmp_path / "layers" / "outside").exists()


# -- a hostile builder image (pallet build --builder REF) ---------------------------------------------


def test_a_builder_image_whose_files_are_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """Its top layer's ``cnb -> HOST`` made pallet read HOST/pallet/builder.json and open (and
    write blobs into) HOST/pallet/stack as the builder's stack layout."""
    from builder.builders.pull import NotABuilderError, images_from_builder
    from builder.oci.stores import StoreOptions
    from tests.imagekit import push_layer_blobs

    host = tmp_path / "host"
    (host / "pallet" / "stack").mkdir(parents=True)
    (host / "pallet" / "builder.json").write_text(json.dumps({
        "stack": "x", "buildImage": "sha256:" + "a" * 64, "runImage": "sha256:" + "b" * 64, "runName": "r"}))
    before = sorted(p.name for p in (host / "pallet" / "stack").iterdir())
    labels = {"io.pallet.builder.build-image.digest": "sha256:" + "a" * 64}
    manifest, _ = push_layer_blobs(LayoutStore(tmp_path / "builder"), [_symlink_layer("cnb", str(host))], tag="t",
                                   config_extra={"config": {"Labels": labels}})
    with pytest.raises(NotABuilderError, match="through a symlink"):
        images_from_builder(f"oci:{tmp_path}/builder@{manifest.digest}", StoreOptions(), tmp_path / "cache")
    assert sorted(p.name for p in (host / "pallet" / "stack").iterdir()) == before


def test_a_cached_buildpack_directory_that_is_a_symlink_is_not_restored_from(tmp_path: Path) -> None:
    """Restoring moves each cached layer into /layers: through a link, a host directory (here
    one with x.toml and x/, as a cache has) was moved out of its place into the build."""
    from builder.lifecycle.buildpack import Buildpack

    host = tmp_path / "host"
    (host / "x").mkdir(parents=True)
    (host / "x.toml").write_text("[types]\ncache = true\n")
    (host / "x" / "id_rsa").write_text("private")
    bp = Buildpack(api="0.10", id="evil/bp", version="1", path=tmp_path / "bp")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / bp.layers_name).symlink_to(host)
    BuildCache(tmp_path / "cache").restore([bp], tmp_path / "layers")
    assert (host / "x" / "id_rsa").read_text() == "private"
    assert not (tmp_path / "layers" / bp.layers_name / "x").exists()
