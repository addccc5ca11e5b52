"""The Docker engine store, against the real engine: put, run, read back, and the errors users meet."""

from __future__ import annotations

import gzip
import io
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from builder.errors import DaemonError, DigestMismatchError, NotFoundError
from builder.oci import mediatypes as mt
from builder.oci.digest import sha256
from builder.oci.model import Descriptor, ImageConfig, Manifest
from builder.oci.stores.archive import ArchiveStore
from builder.oci.stores.daemon import DaemonStore
from tests.fixtures_docker import copy_image, put_image, run_cli, tiny_image


def test_no_engine_is_a_one_line_daemon_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    store = DaemonStore("app")
    with pytest.raises(DaemonError) as err:
        store.resolve("v1")
    message = str(err.value)
    assert message == (
        "cannot reach the Docker engine at unix:///nonexistent.sock: No such file or directory. Is dockerd running?"
    )
    with pytest.raises(DaemonError, match="cannot reach the Docker engine"):
        store.list_tags()
    store.close()


@pytest.mark.docker
def test_put_then_get(docker_engine, docker_cli: str, image_name: str) -> None:
    image = tiny_image(greeting="hello from the engine")
    with DaemonStore(image_name, client=docker_engine) as store:
        put_image(store, image, "v1")
        assert store.list_tags() == ["v1"]
    assert run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:v1") == image.expected_output

    store = DaemonStore(image_name, client=docker_engine)
    assert not store.preserves_digests
    desc, data = store.get_manifest("v1")
    assert store.resolve("v1") == desc and store.resolve(desc.digest) == desc
    manifest = Manifest.from_bytes(data, desc.media_type)
    config = store.get_blob(manifest.config)
    assert config == image.config  # the engine keeps config bytes
    parsed = ImageConfig.from_bytes(config)
    assert parsed.config.entrypoint == ("/bin/sh", "-c", 'cat /etc/motd; echo "$GREETING"')
    assert parsed.config.env_dict()["GREETING"] == "hello from the engine"
    assert parsed.config.working_dir == "/tmp"
    assert parsed.config.labels == {"org.example.made-by": "pallet-tests"}
    assert parsed.diff_ids == image.diff_ids
    for layer, ours in zip(manifest.layers, image.layers, strict=True):
        content = store.get_blob(layer)
        assert sha256(content) == ours.diff_id == sha256(gzip.decompress(ours.blob))
    assert not store.has_blob(manifest.config.digest)  # only staged blobs count
    store.tag("v2", desc)  # an image the engine holds is tagged there, without a load
    assert store.list_tags() == ["v1", "v2"]
    store.close()


@pytest.mark.docker
def test_engine_to_archive_to_engine(tmp_path: Path, docker_engine, docker_cli: str, image_name: str) -> None:
    image = tiny_image(greeting="round trip")
    with DaemonStore(image_name, client=docker_engine) as store:
        put_image(store, image, "src")
    archive = tmp_path / "out.tar"
    with DaemonStore(image_name, client=docker_engine) as src, ArchiveStore(str(archive), image_name) as dst:
        copied = copy_image(src, "src", dst, "archived")
        assert copied == src.resolve("src")
    with ArchiveStore(str(archive), image_name) as src, DaemonStore(image_name, client=docker_engine) as dst:
        assert src.resolve("archived") == copied  # our archives keep the digest
        copy_image(src, "archived", dst, "back")
    assert run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:back") == image.expected_output
    assert DaemonStore(image_name, client=docker_engine).list_tags() == ["back", "src"]


@pytest.mark.docker
def test_missing_image_is_not_found(docker_engine, image_name: str) -> None:
    store = DaemonStore(image_name, client=docker_engine)
    with pytest.raises(NotFoundError, match=rf"no image {image_name}:nope in the Docker engine"):
        store.get_manifest("nope")
    with pytest.raises(NotFoundError, match="keeps images by tag"):
        store.resolve("sha256:" + "0" * 64)
    assert store.list_tags() == []
    store.close()


@pytest.mark.docker
def test_engine_refusal_is_reported(docker_engine, image_name: str) -> None:
    """A config whose diff_ids do not match the layers: docker load fails, and we say why."""
    image = tiny_image()
    config = replace(ImageConfig.from_bytes(image.config), diff_ids=("sha256:" + "0" * 64, image.diff_ids[1]))
    config_bytes = config.to_bytes()
    manifest = Manifest(config=Descriptor.of(config_bytes, mt.OCI_CONFIG),
                        layers=tuple(layer.desc for layer in image.layers)).to_bytes()
    with DaemonStore(image_name, client=docker_engine) as store:
        with pytest.raises(DaemonError, match=rf"docker load of {image_name}:v1 failed: .*diffID"):
            put_image(store, replace(image, config=config_bytes, manifest=manifest), "v1")
        assert store.list_tags() == []


@pytest.mark.docker
def test_bad_blob_never_reaches_the_engine(docker_engine, image_name: str) -> None:
    image = tiny_image()
    with DaemonStore(image_name, client=docker_engine) as store:
        with pytest.raises(DigestMismatchError):
            store.put_blob(image.layers[0].desc, io.BytesIO(image.layers[1].blob))
        assert not store.has_blob(image.layers[0].desc.digest)
        store.put_blob(image.config_desc, io.BytesIO(image.config))
        store.put_blob(image.layers[1].desc, io.BytesIO(image.layers[1].blob))
        with pytest.raises(NotFoundError, match="was not put before the manifest"):
            store.put_manifest(image.manifest, mt.OCI_MANIFEST, tag="v1")
        assert store.list_tags() == []


@pytest.mark.docker
def test_blob_damaged_while_staged_aborts_the_load(docker_engine, image_name: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the store stages its blobs
    image = tiny_image()
    with DaemonStore(image_name, client=docker_engine) as store:
        put_image(store, image, None)
        (staged,) = tmp_path.glob(f"pallet-daemon-*/.load.tar.*.staging/{image.layers[0].desc.digest[7:]}")
        data = bytearray(staged.read_bytes())
        data[len(data) // 2] ^= 0xFF
        staged.write_bytes(bytes(data))
        with pytest.raises(DigestMismatchError):
            store.tag("v1", image.manifest_desc)
        assert store.list_tags() == []
    assert list(tmp_path.iterdir()) == []
