"""Fuzzing the parsers that take untrusted input (issue 11): any input gives a result or a
``PalletError``, never another exception.

Covered: the image reference parser, manifest/index/config parsing (arbitrary bytes, and JSON
documents shaped like the real ones with any field replaced by any JSON), an OCI layout's
``index.json``, and the layer reader (arbitrary bytes, and real tars, compressed or not, with
bytes changed or cut off), listing and unpacking.

Bounded by example counts, never by time (``deadline=None``): the whole file takes well under a
few minutes. ``derandomize`` makes CI runs repeatable; a failure prints the input that caused it.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import PalletError
from builder.oci import compress
from builder.oci import mediatypes as mt
from builder.oci import reference as refs
from builder.oci.digest import sha256
from builder.oci.layerread import LayerTar
from builder.oci.model import Descriptor, ImageConfig, Index, Manifest, Platform, media_type_of
from builder.oci.stores.layout import LayoutStore
from builder.oci.unpack import Unpacker

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_SLOW = settings(FUZZ, max_examples=150)  # examples that touch the disk


def must_not_crash(fn, *args):  # noqa: ANN001, ANN201
    """fn(*args), or None when it raised a PalletError (a clean, reportable refusal)."""
    try:
        return fn(*args)
    except PalletError:
        return None


# -- JSON shaped like the documents --------------------------------------------------------------

json_scalar = st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=20)
any_json = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
digest = st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "0" * 64, "sha512:" + "b" * 128])


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Usually the plausible value, sometimes any JSON at all."""
    return strategy | any_json


platform = st.fixed_dictionaries({}, optional={
    "os": maybe(st.sampled_from(["linux", "windows"])), "architecture": maybe(st.sampled_from(["amd64", "arm64"])),
    "variant": maybe(st.just("v8")), "os.version": any_json})
descriptor = st.fixed_dictionaries(
    {"digest": maybe(digest), "size": maybe(st.integers(0, 2 ** 40))},
    optional={"mediaType": maybe(st.sampled_from(sorted(mt.ALL_MANIFESTS) + [mt.OCI_LAYER, mt.OCI_CONFIG])),
              "annotations": maybe(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
              "platform": maybe(platform), "artifactType": any_json, "urls": maybe(st.lists(st.text(max_size=5)))})
manifest_doc = st.fixed_dictionaries({}, optional={
    "schemaVersion": maybe(st.just(2)), "mediaType": maybe(st.sampled_from(sorted(mt.ALL_MANIFESTS))),
    "config": maybe(descriptor), "layers": maybe(st.lists(maybe(descriptor), max_size=3)),
    "annotations": any_json, "subject": maybe(descriptor), "artifactType": any_json})
index_doc = st.fixed_dictionaries({}, optional={
    "schemaVersion": maybe(st.just(2)), "mediaType": maybe(st.sampled_from(sorted(mt.INDEXES))),
    "manifests": maybe(st.lists(maybe(descriptor), max_size=3)), "annotations": any_json, "subject": any_json})
run_config = st.fixed_dictionaries({}, optional={
    key: maybe(value) for key, value in {
        "User": st.text(max_size=8), "Env": st.lists(st.text(max_size=8), max_size=3),
        "Entrypoint": st.lists(st.text(max_size=8), max_size=3) | st.text(max_size=8),
        "Cmd": st.lists(st.text(max_size=8), max_size=3), "WorkingDir": st.text(max_size=8),
        "Labels": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
        "ExposedPorts": st.dictionaries(st.sampled_from(["80/tcp", "53/udp"]), st.just({})),
        "StopSignal": st.text(max_size=8)}.items()})
config_doc = st.fixed_dictionaries({}, optional={
    "architecture": maybe(st.just("amd64")), "os": maybe(st.just("linux")), "variant": any_json,
    "created": any_json, "author": any_json, "config": maybe(run_config),
    "rootfs": maybe(st.fixed_dictionaries({}, optional={"type": maybe(st.just("layers")),
                                                        "diff_ids": maybe(st.lists(maybe(digest), max_size=3))})),
    "history": maybe(st.lists(maybe(st.fixed_dictionaries({}, optional={
        "created": any_json, "created_by": any_json, "empty_layer": any_json})), max_size=2))})


def _parse_all(data: bytes) -> None:
    manifest = must_not_crash(Manifest.from_bytes, data)
    if manifest is not None:
        assert Manifest.from_bytes(manifest.to_bytes()) == manifest  # what we parse, we can write back
    index = must_not_crash(Index.from_bytes, data)
    if index is not None:
        assert Index.from_bytes(index.to_bytes()) == index
    config = must_not_crash(ImageConfig.from_bytes, data)
    if config is not None:
        assert ImageConfig.from_bytes(config.to_bytes()).config == config.config
        config.config.env_dict()
        config.config.with_env({"PORT": "8080"})
        str(config.platform)
    must_not_crash(media_type_of, data)


@FUZZ
@given(st.binary(max_size=300))
def test_documents_from_any_bytes(data: bytes) -> None:
    _parse_all(data)


@FUZZ
@given(manifest_doc | index_doc | config_doc)
def test_documents_shaped_like_manifests_indexes_and_configs(doc: dict) -> None:
    _parse_all(json.dumps(doc).encode())


@FUZZ
@given(any_json | descriptor)
def test_descriptors_and_platforms(value: object) -> None:
    must_not_crash(Descriptor.from_json, value)
    must_not_crash(Platform.from_json, value)
    if isinstance(value, str):
        must_not_crash(Platform.parse, value)


def test_deeply_nested_json_is_refused_cleanly() -> None:
    data = b"[" * 100_000 + b"]" * 100_000
    for parse in (Manifest.from_bytes, Index.from_bytes, ImageConfig.from_bytes, media_type_of):
        assert must_not_crash(parse, data) is None


# -- references ----------------------------------------------------------------------------------

ref_piece = st.sampled_from(["docker://", "oci:", "docker-daemon:", "docker-archive:", "localhost:5000", "/", ":",
                             "@", "sha256:", "a" * 64, "app", "v1", ".", "..", "-", "_", "UPPER", " ", "\x00",
                             "scratch", "é", "[::1]", "host.example", "@sha256:" + "0" * 64])
reference_text = st.lists(ref_piece, max_size=8).map("".join) | st.text(max_size=40)


@FUZZ
@given(reference_text, st.booleans())
def test_references(text: str, allow_scratch: bool) -> None:
    ref = must_not_crash(refs.parse, text, allow_scratch)
    if ref is not None:
        str(ref)


# -- an OCI layout's index.json ------------------------------------------------------------------


@FUZZ_SLOW
@given(maybe(st.fixed_dictionaries({}, optional={"manifests": maybe(st.lists(maybe(descriptor), max_size=3))})),
       st.sampled_from(["latest", "sha256:" + "a" * 64]))
def test_layout_index_json(index: object, ref: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = LayoutStore(root)
        store.put_blob_bytes(b"{}")  # creates the layout
        with open(f"{root}/index.json", "w") as f:
            json.dump(index, f)
        must_not_crash(store.list_tags)
        must_not_crash(store.resolve, ref)
        must_not_crash(store.referrers, "sha256:" + "a" * 64)
        must_not_crash(LayoutStore(root).put_manifest, b'{"schemaVersion":2}', mt.OCI_MANIFEST, "t")


def _tar(entries: list[tuple[str, str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                       "fifo": tarfile.FIFOTYPE}[kind]
            ti.linkname = data.decode("utf-8", "replace")
            tf.addfile(ti)
    return buf.getvalue()


# -- a docker-archive's manifest.json --------------------------------------------------------------

archive_entry = st.fixed_dictionaries({}, optional={
    "Config": maybe(st.sampled_from(["config.json", "blobs/sha256/" + "a" * 64, "missing.json"])),
    "RepoTags": maybe(st.lists(maybe(st.sampled_from(["app:v1", "x", ":", "UPPER:tag"])), max_size=2)),
    "Layers": maybe(st.lists(maybe(st.sampled_from(["layer.tar", "../up", "/abs", "config.json"])), max_size=2))})


def _archive_files(manifest: object, config: object) -> dict[str, bytes]:
    return {"manifest.json": json.dumps(manifest).encode(), "config.json": json.dumps(config).encode(),
            "layer.tar": _tar([("file", "f", b"x")])}


_LAYER_DIFF_ID = sha256(_tar([("file", "f", b"x")]))
good_entry = st.fixed_dictionaries({"Config": st.just("config.json"), "RepoTags": st.just(["app:v1"]),
                                    "Layers": st.just(["layer.tar"])})
good_config = st.fixed_dictionaries({"architecture": st.just("amd64"), "os": st.just("linux"),
                                     "rootfs": st.just({"type": "layers", "diff_ids": [_LAYER_DIFF_ID]})},
                                    optional={"config": maybe(run_config), "history": any_json})


@FUZZ_SLOW
@given(st.one_of(st.lists(good_entry, min_size=1, max_size=1), st.lists(good_entry | archive_entry, min_size=1, max_size=2),
                 maybe(st.lists(maybe(archive_entry), max_size=2))),
       st.one_of(good_config, good_config, maybe(config_doc)))
def test_docker_archive_manifest_json(manifest: object, config: object) -> None:
    from builder.oci.stores.archive import ArchiveStore

    files = _archive_files(manifest, config)
    with tempfile.TemporaryDirectory() as root:
        with open(f"{root}/a.tar", "wb") as f:
            f.write(_tar([("file", name, data) for name, data in files.items()]))
        store = ArchiveStore(f"{root}/a.tar")
        must_not_crash(store.list_tags)
        resolved = must_not_crash(store.get_manifest, "v1")
        if resolved is not None:
            for desc in Manifest.from_bytes(resolved[1]).layers:
                must_not_crash(store.get_blob, desc)


# -- the layer reader ----------------------------------------------------------------------------


def _read_layer(blob: bytes) -> None:
    """List and read every member, then unpack: a result or a PalletError."""
    def listing() -> None:
        layer = LayerTar(io.BytesIO(blob), what="fuzzed layer")
        for ti in layer:
            member = layer.open_member(ti)
            if member is not None:
                while member.read(1 << 16):
                    pass

    def unpacking() -> None:
        with tempfile.TemporaryDirectory() as root, Unpacker(root + "/r") as unpacker:
            unpacker.apply(io.BytesIO(blob), what="fuzzed layer")

    must_not_crash(listing)
    must_not_crash(unpacking)


member_name = st.lists(st.sampled_from(["a", "b", "..", ".", ".wh.a", ".wh..wh..opq", "é", "x" * 120]),
                       min_size=1, max_size=4).map("/".join)
tar_entries = st.lists(st.tuples(st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]), member_name,
                                 st.binary(max_size=700)), max_size=5)


@st.composite
def damaged_layers(draw: st.DrawFn) -> bytes:
    blob = _tar(draw(tar_entries))
    comp = draw(st.sampled_from(compress.COMPRESSIONS))
    if comp == compress.GZIP:
        blob = gzip.compress(blob, mtime=0)
    elif comp == compress.ZSTD:
        blob = compress.compress_bytes(blob, compress.ZSTD)
    data = bytearray(blob)
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@FUZZ_SLOW
@given(st.binary(max_size=2048))
def test_layer_reader_on_any_bytes(blob: bytes) -> None:
    _read_layer(blob)


@FUZZ_SLOW
@given(damaged_layers())
def test_layer_reader_on_damaged_tars(blob: bytes) -> None:
    _read_layer(blob)
