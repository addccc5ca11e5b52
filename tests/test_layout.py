import io
import json
import multiprocessing
import os
import signal

import pytest

from builder.errors import DigestMismatchError, NotFoundError, StoreError
from builder.oci import mediatypes as mt
from builder.oci.digest import sha256
from builder.oci.image import load_image
from builder.oci.model import Descriptor
from builder.oci.stores.layout import LayoutStore
from tests.imagekit import push_image


def test_round_trip_is_spec_shaped(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    desc, data = push_image(store, [{"a.txt": b"hello"}], tag="v1")
    assert json.loads((tmp_path / "lay" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "lay" / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == mt.OCI_INDEX
    assert index["manifests"] == [{**desc.to_json(), "annotations": {mt.ANNOTATION_REF_NAME: "v1"}}]
    assert (tmp_path / "lay" / "blobs" / "sha256" / desc.digest.split(":")[1]).read_bytes() == data
    again = LayoutStore(tmp_path / "lay")
    assert again.resolve("v1").digest == desc.digest == again.resolve(desc.digest).digest
    image = load_image(again, "v1")
    assert image.layers()[0][1] == image.config.diff_ids[0]
    assert again.list_tags() == ["v1"]


def test_tags_move_and_namespaces(tmp_path):
    one = LayoutStore(tmp_path / "s", namespace="one")
    two = LayoutStore(tmp_path / "s", namespace="two")
    d1, _ = push_image(one, [{"f": b"1"}], tag="latest")
    d2, _ = push_image(two, [{"f": b"2"}], tag="latest")
    d3, _ = push_image(one, [{"f": b"3"}], tag="latest")
    assert one.resolve("latest").digest == d3.digest and two.resolve("latest").digest == d2.digest
    assert one.list_tags() == ["latest"] and one.names() == ["one:latest", "two:latest"]
    assert one.resolve(d1.digest).digest == d1.digest  # old digest still readable
    with pytest.raises(NotFoundError, match="'v9' not found"):
        one.resolve("v9")


def test_corrupted_blob_is_detected(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    desc, data = push_image(store, [{"a": b"x" * 1000}])
    layer = json.loads(data)["layers"][0]
    path = tmp_path / "lay" / "blobs" / "sha256" / layer["digest"].split(":")[1]
    blob = bytearray(path.read_bytes())
    blob[20] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DigestMismatchError, match=layer["digest"]):
        store.get_blob(Descriptor.from_json(layer))
    with pytest.raises(DigestMismatchError):
        with store.open_blob(Descriptor.from_json(layer)) as stream:
            while stream.read(100):
                pass


def test_corrupted_manifest_is_detected(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    desc, data = push_image(store, [{"a": b"x"}])
    (tmp_path / "lay" / "blobs" / "sha256" / desc.digest.split(":")[1]).write_bytes(data.replace(b"amd64", b"arm64") + b" ")
    with pytest.raises(DigestMismatchError):
        store.get_manifest("latest")


def test_put_blob_with_wrong_bytes_stores_nothing(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    good = b"good bytes"
    desc = Descriptor("application/octet-stream", sha256(good), len(good))
    with pytest.raises(DigestMismatchError):
        store.put_blob(desc, io.BytesIO(b"evil bytes"))
    assert not store.has_blob(desc.digest)
    assert not list((tmp_path / "lay" / "blobs" / "sha256").iterdir())


def test_refuses_to_write_into_a_foreign_directory(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not empty"):
        push_image(LayoutStore(tmp_path), [{"a": b"x"}])
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_missing_layout_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        LayoutStore(tmp_path / "nope").resolve("latest")


@pytest.mark.parametrize("marker", ['["imageLayoutVersion", "1.0.0"]', '"1.0.0"', "null", "7"])
def test_an_oci_layout_file_that_is_no_json_object_is_said_so(tmp_path, marker):
    """Not Python's "'list' object has no attribute 'get'": what the file is, and should be."""
    (tmp_path / "oci-layout").write_text(marker)
    with pytest.raises(StoreError) as caught:
        LayoutStore(tmp_path).resolve("latest")
    assert str(caught.value).startswith(f"{tmp_path}: its oci-layout file is not a JSON object (")
    assert str(caught.value).endswith('), as {"imageLayoutVersion": "1.0.0"} is')


def test_leftover_temp_files_leave_layout_valid(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    push_image(store, [{"a": b"x"}], tag="v1")
    (tmp_path / "lay" / ".tmp-index").write_bytes(b'{"half')
    (tmp_path / "lay" / "blobs" / "sha256" / ".tmp-blob").write_bytes(b"\x1f\x8b")
    assert LayoutStore(tmp_path / "lay").list_tags() == ["v1"]
    assert store.remove_temp_files() == 2


class _StallingStream(io.RawIOBase):
    """A blob source that, after its first chunk, says so (``marker``) and never ends: the
    writer is mid-blob when the test kills it."""

    def __init__(self, marker: str) -> None:
        self.marker, self.calls = marker, 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            open(self.marker, "w").close()
            signal.pause()
        return b"x" * 4096


def _stalled_writer(path: str, marker: str) -> None:
    LayoutStore(path).put_blob(Descriptor("application/octet-stream", sha256(b"y"), 1), _StallingStream(marker))


def test_writer_killed_mid_blob_leaves_only_digests_in_blobs(tmp_path):
    """A kill -9 mid-blob leaves its temp file behind; it must not be in ``blobs/sha256``, where
    other tools read every name as a digest (``umoci gc`` failed there: "invalid digest")."""
    path, marker = tmp_path / "lay", tmp_path / "writing"
    push_image(LayoutStore(path), [{"a": b"x"}], tag="v1")
    proc = multiprocessing.get_context("fork").Process(target=_stalled_writer, args=(str(path), str(marker)))
    proc.start()
    while not marker.exists() and proc.is_alive():
        proc.join(0.05)
    assert marker.exists(), f"the writer ended first (exit code {proc.exitcode})"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    blobs = [p.name for p in (path / "blobs" / "sha256").iterdir()]
    assert blobs and all(len(n) == 64 and set(n) <= set("0123456789abcdef") for n in blobs), blobs
    assert [p.name for p in path.glob(".tmp-*")], "the killed writer's temp file is in the root"
    store = LayoutStore(path)
    assert store.list_tags() == ["v1"] and load_image(store, "v1")
    store.put_blob(Descriptor("application/octet-stream", sha256(b"y"), 1), io.BytesIO(b"y"))
    assert store.has_blob(sha256(b"y"))


def _tagger(path: str, start: int) -> None:
    store = LayoutStore(path)
    desc, _ = push_image(store, [{"f": str(start).encode()}], tag=None)
    for i in range(start, start + 40):
        store.tag(f"t{i}", desc)


def test_two_writers_never_lose_a_tag(tmp_path):
    path = str(tmp_path / "lay")
    push_image(LayoutStore(path), [{"seed": b"1"}], tag="seed")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_tagger, args=(path, n)) for n in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    tags = LayoutStore(path).list_tags()
    assert len(tags) == 81 and "t0" in tags and "t139" in tags


def test_referrers_found_through_index(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    desc, _ = push_image(store, [{"a": b"x"}])
    empty = store.put_blob_bytes(b"{}", mt.OCI_EMPTY)
    art = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/vnd.example+json",
           "config": empty.to_json(), "layers": [], "subject": desc.to_json()}
    art_desc = store.put_manifest(json.dumps(art).encode(), mt.OCI_MANIFEST)
    found = store.referrers(desc.digest)
    assert [d.digest for d in found] == [art_desc.digest]
    assert found[0].artifact_type == "application/vnd.example+json"
    assert store.referrers(desc.digest, "application/other") == []
    assert store.list_tags() == ["latest"]
