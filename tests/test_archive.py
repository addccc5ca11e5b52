"""docker-archive: what we write loads and runs in the real engine, and what it saves reads back."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from builder.errors import DigestMismatchError, NotFoundError, StoreError
from builder.oci import mediatypes as mt
from builder.oci.digest import sha256
from builder.oci.model import Descriptor, ImageConfig, Index, Manifest, Platform
from builder.oci.stores.archive import ArchiveStore, host_architecture
from tests.fixtures_docker import copy_image, put_image, run_cli, tiny_image


def write_archive(path: Path, name: str | None = "app", tag: str | None = "v1", **kw: str) -> tuple:
    image = tiny_image(**kw)
    with ArchiveStore(str(path), name) as store:
        desc = put_image(store, image, tag)
    return image, desc


def flip_byte_in_member(archive: Path, member: str, at: int = 100) -> None:
    """Corrupt one byte of a member's content in place (size unchanged, tar still valid)."""
    with tarfile.open(archive) as tar:
        info = tar.getmember(member)
        offset = info.offset_data + min(at, info.size - 1)
    with open(archive, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def make_tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# -- writing, without the engine ------------------------------------------------------


def test_written_archive_is_an_oci_layout_and_a_docker_save(tmp_path: Path) -> None:
    image, desc = write_archive(tmp_path / "app.tar")
    assert desc.digest == sha256(image.manifest)
    with tarfile.open(tmp_path / "app.tar") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
        read = lambda n: tar.extractfile(n).read()  # noqa: E731
        assert json.loads(read("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        index = Index.from_bytes(read("index.json"))
        (entry,) = index.manifests
        assert entry.digest == desc.digest
        assert entry.annotations == {mt.ANNOTATION_REF_NAME: "v1", "io.containerd.image.name": "app:v1"}
        assert read(f"blobs/sha256/{desc.digest[7:]}") == image.manifest
        (legacy,) = json.loads(read("manifest.json"))
        assert legacy["RepoTags"] == ["app:v1"]
        assert legacy["Config"] == f"blobs/sha256/{image.config_desc.digest[7:]}"
        assert legacy["Layers"] == [f"blobs/sha256/{layer.desc.digest[7:]}" for layer in image.layers]
        for layer in image.layers:
            assert read(f"blobs/sha256/{layer.desc.digest[7:]}") == layer.blob


def test_writing_is_deterministic(tmp_path: Path) -> None:
    write_archive(tmp_path / "a.tar")
    write_archive(tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_round_trip_preserves_the_manifest_digest(tmp_path: Path) -> None:
    image, desc = write_archive(tmp_path / "app.tar")
    store = ArchiveStore(str(tmp_path / "app.tar"), "app")
    got, data = store.get_manifest("v1")
    assert got.digest == desc.digest and data == image.manifest
    assert store.resolve(desc.digest) == got
    assert store.preserves_digests
    assert store.list_tags() == ["v1"]
    assert store.get_blob(image.config_desc) == image.config
    for layer in image.layers:
        assert store.has_blob(layer.desc.digest)
        with store.open_blob(layer.desc) as stream:
            assert stream.read() == layer.blob
    # Without a name, the one image the archive holds is the one read.
    assert ArchiveStore(str(tmp_path / "app.tar")).resolve("latest").digest == desc.digest
    # Docker Hub spellings of the same name match.
    assert ArchiveStore(str(tmp_path / "app.tar"), "docker.io/library/app").resolve("v1").digest == desc.digest


def test_unknown_tag_names_what_the_archive_holds(tmp_path: Path) -> None:
    write_archive(tmp_path / "app.tar")
    with pytest.raises(NotFoundError, match=r"has no image app:v2; it holds app:v1"):
        ArchiveStore(str(tmp_path / "app.tar"), "app").resolve("v2")
    with pytest.raises(NotFoundError, match=r"has no image other:v1"):
        ArchiveStore(str(tmp_path / "app.tar"), "other").resolve("v1")
    with pytest.raises(NotFoundError, match="does not exist"):
        ArchiveStore(str(tmp_path / "missing.tar"), "app").resolve("v1")
    (tmp_path / "app.tar.gz").write_bytes(gzip.compress((tmp_path / "app.tar").read_bytes()))
    with pytest.raises(StoreError, match="is compressed; .*decompress it first"):
        ArchiveStore(str(tmp_path / "app.tar.gz"), "app").resolve("v1")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(StoreError, match="not a readable tar archive"):
        ArchiveStore(str(tmp_path / "junk.tar"), "app").resolve("v1")


def test_untagged_manifest_is_written_on_close_and_tag_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "app.tar"
    image = tiny_image()
    store = ArchiveStore(str(path), "app")
    desc = put_image(store, image, None)
    assert not path.exists()
    store.tag("v3", desc)  # base Store.tag: get_manifest by digest, then put_manifest with the tag
    assert ArchiveStore(str(path), "app").list_tags() == ["v3"]
    store.close()
    assert not list(tmp_path.glob(".*")), "staging directory left behind"

    untagged = tmp_path / "untagged.tar"
    with ArchiveStore(str(untagged)) as store:
        put_image(store, image, None)
    reader = ArchiveStore(str(untagged))
    assert reader.resolve("latest").digest == desc.digest and reader.list_tags() == []


def test_index_and_missing_blobs_are_refused(tmp_path: Path) -> None:
    image = tiny_image()
    store = ArchiveStore(str(tmp_path / "app.tar"), "app")
    index = Index(manifests=(image.manifest_desc,)).to_bytes()
    with pytest.raises(StoreError, match="not an index"):
        store.put_manifest(index, mt.OCI_INDEX, tag="v1")
    with pytest.raises(NotFoundError, match="was not put before the manifest"):
        store.put_manifest(image.manifest, mt.OCI_MANIFEST, tag="v1")
    assert not (tmp_path / "app.tar").exists()
    store.close()


# -- bad bytes -------------------------------------------------------------------------


def test_corrupted_blob_in_archive_raises_digest_mismatch(tmp_path: Path) -> None:
    image, _ = write_archive(tmp_path / "app.tar")
    busybox = image.layers[0].desc
    flip_byte_in_member(tmp_path / "app.tar", f"blobs/sha256/{busybox.digest[7:]}", at=400_000)
    store = ArchiveStore(str(tmp_path / "app.tar"), "app")
    store.resolve("v1")  # the manifest itself is fine
    with pytest.raises(DigestMismatchError, match=busybox.digest):
        store.get_blob(busybox)
    with pytest.raises(DigestMismatchError):
        with store.open_blob(busybox) as stream:
            while stream.read(65536):
                pass


def test_bad_blob_put_is_refused_and_nothing_staged(tmp_path: Path) -> None:
    image = tiny_image()
    store = ArchiveStore(str(tmp_path / "app.tar"), "app")
    wrong = Descriptor.of(b"something else", mt.OCI_CONFIG)
    with pytest.raises(DigestMismatchError):
        store.put_blob(wrong, io.BytesIO(image.config))
    assert not store.has_blob(wrong.digest)
    store.close()


def test_failed_overwrite_leaves_the_old_archive_intact(tmp_path: Path) -> None:
    path = tmp_path / "app.tar"
    image, _ = write_archive(path, greeting="first")
    busybox = image.layers[0].desc
    flip_byte_in_member(path, f"blobs/sha256/{busybox.digest[7:]}", at=300_000)
    before = path.read_bytes()

    # A new image that reuses the (now corrupted) busybox layer from the archive being replaced.
    second = tiny_image(greeting="second")
    store = ArchiveStore(str(path), "app")
    assert store.has_blob(busybox.digest)
    store.put_blob(second.config_desc, io.BytesIO(second.config))
    store.put_blob(second.layers[1].desc, io.BytesIO(second.layers[1].blob))
    # A bad blob offered directly is refused at once...
    with pytest.raises(DigestMismatchError):
        store.put_blob(busybox, io.BytesIO(second.layers[1].blob))
    # ...and a bad blob met while writing aborts the write.
    with pytest.raises(DigestMismatchError):
        store.put_manifest(second.manifest, mt.OCI_MANIFEST, tag="v2")
    store.close()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.tar"], "temporary files left behind"


def test_staged_blob_damaged_on_disk_aborts_the_write(tmp_path: Path) -> None:
    image = tiny_image()
    store = ArchiveStore(str(tmp_path / "app.tar"), "app")
    put_image(store, image, None)
    (staged,) = tmp_path.glob(f".app.tar.*.staging/{image.layers[1].desc.digest[7:]}")
    staged.write_bytes(staged.read_bytes()[:-1] + b"x")
    with pytest.raises(DigestMismatchError):
        store.tag("v1", image.manifest_desc)
    assert not (tmp_path / "app.tar").exists()
    with pytest.raises(DigestMismatchError):  # close writes the untagged manifest: same failure
        store.close()
    assert list(tmp_path.iterdir()) == []


# -- archives other tools write ----------------------------------------------------------


def test_reads_modern_docker_save_with_nested_index(tmp_path: Path) -> None:
    """The shape Docker >= 25 writes: index.json -> image index -> manifest, plus manifest.json."""
    image = tiny_image()
    arch = host_architecture()
    attestation = Manifest(config=Descriptor.of(b"{}", mt.OCI_EMPTY), layers=()).to_bytes()
    platform_desc = Descriptor.of(image.manifest, mt.OCI_MANIFEST, platform=Platform("linux", arch))
    attestation_desc = Descriptor.of(attestation, mt.OCI_MANIFEST, platform=Platform("unknown", "unknown"),
                                     annotations={"vnd.docker.reference.type": "attestation-manifest"})
    index = Index(manifests=(attestation_desc, platform_desc)).to_bytes()
    top = Descriptor.of(index, mt.OCI_INDEX, annotations={
        "io.containerd.image.name": "docker.io/library/app:v1", mt.ANNOTATION_REF_NAME: "v1"})
    blobs = {d.digest: b for d, b in [(image.config_desc, image.config), (platform_desc, image.manifest),
                                       (top, index), (Descriptor.of(b"{}", mt.OCI_EMPTY), b"{}"),
                                       (attestation_desc, attestation)]}
    blobs.update({layer.desc.digest: layer.blob for layer in image.layers})
    files = {f"blobs/sha256/{d[7:]}": b for d, b in blobs.items()}
    files["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
    files["index.json"] = Index(manifests=(top,)).to_bytes()
    files["manifest.json"] = json.dumps([{
        "Config": f"blobs/sha256/{image.config_desc.digest[7:]}",
        "RepoTags": ["app:v1", "app:latest"],
        "Layers": [f"blobs/sha256/{layer.desc.digest[7:]}" for layer in image.layers],
    }]).encode()
    make_tar(tmp_path / "modern.tar", files)

    store = ArchiveStore(str(tmp_path / "modern.tar"), "app")
    desc, data = store.get_manifest("v1")
    assert desc.digest == image.manifest_desc.digest and data == image.manifest
    assert store.resolve("latest").digest == desc.digest  # a RepoTags name, merged in
    assert store.list_tags() == ["latest", "v1"]
    assert store.preserves_digests
    assert store.get_manifest(top.digest)[1] == index
    for layer in image.layers:
        assert store.get_blob(layer.desc) == layer.blob


def test_legacy_archive_layers_keep_their_compression(tmp_path: Path) -> None:
    """manifest.json-only archives with gzip, zstd and plain layers: digests of the stored bytes."""
    plain = tarfile_bytes({"a.txt": b"plain"})
    gz = gzip.compress(tarfile_bytes({"b.txt": b"gzip"}), mtime=0)
    zst = zstandard.ZstdCompressor().compress(tarfile_bytes({"c.txt": b"zstd"}))
    diff_ids = [sha256(plain), sha256(gzip.decompress(gz)), sha256(zstandard.decompress(zst))]
    config = ImageConfig(diff_ids=tuple(diff_ids)).to_bytes()
    files = {
        "cfg.json": config,  # not named by its digest: it gets hashed
        "l1/layer.tar": plain, "l2/layer.tar": gz, "l3/layer.tar": zst,
        "manifest.json": json.dumps([{"Config": "cfg.json", "RepoTags": ["x/y:1"],
                                      "Layers": ["l1/layer.tar", "l2/layer.tar", "l3/layer.tar"]}]).encode(),
    }
    make_tar(tmp_path / "legacy.tar", files)
    store = ArchiveStore(str(tmp_path / "legacy.tar"), "x/y")
    desc, data = store.get_manifest("1")
    manifest = Manifest.from_bytes(data)
    assert data == manifest.to_bytes() and desc.digest == sha256(data)
    assert not store.preserves_digests
    assert manifest.config == Descriptor.of(config, mt.OCI_CONFIG)
    assert [(layer.media_type, layer.digest) for layer in manifest.layers] == [
        (mt.OCI_LAYER, sha256(plain)), (mt.OCI_LAYER_GZIP, sha256(gz)), (mt.OCI_LAYER_ZSTD, sha256(zst))]
    assert [store.get_blob(layer) for layer in manifest.layers] == [plain, gz, zst]
    assert ArchiveStore(str(tmp_path / "legacy.tar"), "x/y").resolve("1") == desc  # stable


def tarfile_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# -- with the real engine --------------------------------------------------------------


@pytest.mark.docker
def test_docker_loads_and_runs_what_we_write(tmp_path: Path, docker_cli: str, image_name: str) -> None:
    image, _ = write_archive(tmp_path / "app.tar", name=image_name, tag="v1", greeting="hi from an archive")
    assert f"Loaded image: {image_name}:v1" in run_cli(docker_cli, "load", "-i", str(tmp_path / "app.tar"))
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:v1")
    assert out == image.expected_output
    # The engine keeps config bytes as they were: the image ID is our config digest.
    image_id = run_cli(docker_cli, "image", "inspect", "--format", "{{.Id}}", f"{image_name}:v1").strip()
    assert image_id == image.config_desc.digest


@pytest.mark.docker
def test_reads_what_docker_save_writes(tmp_path: Path, docker_cli: str, image_name: str) -> None:
    image, _ = write_archive(tmp_path / "app.tar", name=image_name, tag="v1")
    run_cli(docker_cli, "load", "-i", str(tmp_path / "app.tar"))
    saved = tmp_path / "saved.tar"
    run_cli(docker_cli, "save", "-o", str(saved), f"{image_name}:v1")
    with tarfile.open(saved) as tar:
        assert "index.json" not in tar.getnames(), "expected the legacy format of Docker 20.10"

    store = ArchiveStore(str(saved), image_name)
    desc, data = store.get_manifest("v1")
    manifest = Manifest.from_bytes(data)
    assert not store.preserves_digests
    config = store.get_blob(manifest.config)
    assert config == image.config
    assert ImageConfig.from_bytes(config).diff_ids == image.diff_ids
    for layer, ours in zip(manifest.layers, image.layers, strict=True):
        assert layer.media_type == mt.OCI_LAYER  # docker save writes layers uncompressed
        content = store.get_blob(layer)
        assert sha256(content) == layer.digest == ours.diff_id
        assert content == ours.tar or sha256(content) == sha256(gzip.decompress(ours.blob))
    assert store.list_tags() == ["v1"]

    # Copied on into a new archive through the Store interface, it still loads and runs.
    again = tmp_path / "again.tar"
    with ArchiveStore(str(again), image_name) as dst:
        copy_image(store, "v1", dst, "v2")
    run_cli(docker_cli, "load", "-i", str(again))
    assert run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:v2") == image.expected_output


@pytest.mark.docker
def test_corrupted_layer_in_docker_save_is_caught(tmp_path: Path, docker_cli: str, image_name: str) -> None:
    write_archive(tmp_path / "app.tar", name=image_name, tag="v1")
    run_cli(docker_cli, "load", "-i", str(tmp_path / "app.tar"))
    saved = tmp_path / "saved.tar"
    run_cli(docker_cli, "save", "-o", str(saved), f"{image_name}:v1")
    manifest = Manifest.from_bytes(ArchiveStore(str(saved), image_name).get_manifest("v1")[1])
    biggest = max(manifest.layers, key=lambda layer: layer.size)
    with tarfile.open(saved) as tar:
        (legacy,) = json.loads(tar.extractfile("manifest.json").read())
        member = next(p for p in legacy["Layers"]
                      if tar.getmember(p).size == biggest.size)
    flip_byte_in_member(saved, member, at=1_000_000)
    store = ArchiveStore(str(saved), image_name)
    assert store.resolve("v1").digest == sha256(manifest.to_bytes())  # digests come from diff_ids
    with pytest.raises(DigestMismatchError):
        store.get_blob(biggest)


@pytest.mark.docker
def test_multi_image_save_needs_a_name(tmp_path: Path, docker_cli: str, image_name: str) -> None:
    for tag, greeting in (("one", "first"), ("two", "second")):
        write_archive(tmp_path / f"{tag}.tar", name=image_name, tag=tag, greeting=greeting)
        run_cli(docker_cli, "load", "-i", str(tmp_path / f"{tag}.tar"))
    both = tmp_path / "both.tar"
    run_cli(docker_cli, "save", "-o", str(both), f"{image_name}:one", f"{image_name}:two")
    with pytest.raises(NotFoundError, match=rf"holds 2 images .*{image_name}:one.*name one as"):
        ArchiveStore(str(both)).resolve("latest")
    store = ArchiveStore(str(both), image_name)
    assert store.list_tags() == ["one", "two"]
    configs = {tag: ImageConfig.from_bytes(store.get_blob(Manifest.from_bytes(store.get_manifest(tag)[1]).config))
               for tag in ("one", "two")}
    assert configs["one"].config.env_dict()["GREETING"] == "first"
    assert configs["two"].config.env_dict()["GREETING"] == "second"
    assert os.path.getsize(both) > 0


def test_skopeo_reads_what_we_write(tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    image, _ = write_archive(tmp_path / "app.tar")
    done = subprocess.run([skopeo, "inspect", f"docker-archive:{tmp_path / 'app.tar'}:app:v1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["Labels"] == {"org.example.made-by": "pallet-tests"}
    assert tuple(info["Layers"]) == image.diff_ids  # skopeo's archive source serves layers uncompressed


def test_a_killed_writers_leftovers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    """kill -9 during a write leaves '.app.tar.*.partial' (the archive so far) and
    '.app.tar.*.staging/' (the image's blobs) next to the archive, for ever. The next write of
    that archive removes those nothing has written into for an hour; a live writer's (fresh),
    and another archive's, stay."""
    old = 2 * 3600
    stale_partial = tmp_path / ".app.tar.k1ll3d.partial"
    stale_partial.write_bytes(b"half an archive")
    stale_staging = tmp_path / ".app.tar.k1ll3d.staging"
    stale_staging.mkdir()
    (stale_staging / ("ab" * 32)).write_bytes(b"a staged layer")
    live = tmp_path / ".app.tar.l1v3.partial"
    live.write_bytes(b"being written")
    other = tmp_path / ".other.tar.k1ll3d.partial"
    other.write_bytes(b"another archive's")
    for path in (stale_partial, stale_staging / ("ab" * 32), stale_staging, other):
        os.utime(path, (os.path.getatime(path) - old, os.path.getmtime(path) - old))
    write_archive(tmp_path / "app.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".app.tar.l1v3.partial", ".other.tar.k1ll3d.partial",
                                                          "app.tar"]
