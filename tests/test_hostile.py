"""Hostile images (issue 11, findings 4-10): each made here by hand, as an attacker would.

Every case gives a one-line error (or a safe result) and leaves nothing damaged behind: no
unverified rootfs in the cache, no hang on an impossible size, bounded memory and disk, no
privileged file on the host.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from builder.errors import DigestMismatchError, PalletError
from builder.lifecycle import rootfs
from builder.oci import mediatypes as mt
from builder.oci.image import load_image
from builder.oci.stores.layout import LayoutStore
from tests.cli import ROOT, pallet
from tests.imagekit import huge_member_tar, push_image, push_layer_blobs, sparse_tar, tar_of

PADDING = b"\0" * (2 << 20)
STATUS = b"Package: hello\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n"


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("pallet: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PALLET_HOME": str(tmp_path / "home")}


def cached(env: dict[str, str]) -> list[str]:
    """What the rootfs cache holds besides lock files."""
    root = Path(env["XDG_CACHE_HOME"]) / "pallet" / "rootfs"
    return sorted(p.name for p in root.iterdir() if not p.name.endswith((".lock", ".size"))) if root.is_dir() else []


# -- 4: every reader reads to the end and checks size and digest before use -----------------------


def test_run_refuses_a_layer_tampered_behind_its_end_marker(tmp_path: Path, env: dict[str, str]) -> None:
    """The attack: a layer with 2 MiB of zeros after its tar end marker (legal padding) has
    bytes before the marker changed, size kept: a reader that stops at the marker never
    reaches the end where the digest is checked."""
    store = LayoutStore(tmp_path / "img")
    genuine = tar_of({"bin/app": b"genuine"}) + PADDING
    _, (layer,) = push_layer_blobs(store, [genuine], tag="t")
    blob = tmp_path / "img" / "blobs" / "sha256" / layer.digest.split(":")[1]
    blob.write_bytes(tar_of({"bin/app": b"EVIL!!!"}) + PADDING)
    assert blob.stat().st_size == layer.size

    err = one_line_error(pallet("run", f"oci:{tmp_path}/img:t", env=env, check=False), layer.digest)
    assert "digest" in err or "bytes" in err
    assert cached(env) == []  # nothing unverified was kept, under any name

    image = load_image(LayoutStore(tmp_path / "img"), "t")
    cache = Path(env["XDG_CACHE_HOME"]) / "direct"
    with pytest.raises(DigestMismatchError):
        rootfs.unpack_image(image, cache)
    assert [p.name for p in cache.iterdir() if not p.name.endswith((".lock", ".size"))] == []
    # the genuine blob back: the rootfs is the genuine one, nothing poisoned was served
    blob.write_bytes(genuine)
    assert (rootfs.unpack_image(image, cache) / "bin" / "app").read_bytes() == b"genuine"


def test_every_reader_fails_on_a_manifest_that_lists_a_layer_one_byte_too_long(
        tmp_path: Path, env: dict[str, str]) -> None:
    store = LayoutStore(tmp_path / "img")
    # padded, so that a reader stopping at the tar's end marker is far from the blob's end
    _, (layer,) = push_layer_blobs(store, [tar_of({"var/lib/dpkg/status": STATUS}) + PADDING],
                                   tag="t", size_delta=1)
    ref = f"oci:{tmp_path}/img:t"
    expected = f"expected {layer.size + 1} bytes"
    one_line_error(pallet("sbom", ref, env=env, check=False), layer.digest, expected)
    one_line_error(pallet("audit", "--package", "hello", ref, env=env, check=False), layer.digest, expected)
    one_line_error(pallet("stack", "packages", ref, env=env, check=False), layer.digest, expected)
    one_line_error(pallet("run", ref, env=env, check=False), layer.digest, expected)
    assert cached(env) == []


# -- 5: a member declaring more than its blob can hold ---------------------------------------------


def test_a_member_declaring_2_to_the_62_bytes_is_corrupt_not_a_hang(tmp_path: Path, env: dict[str, str]) -> None:
    store = LayoutStore(tmp_path / "img")
    blob = gzip.compress(huge_member_tar(2 ** 62), mtime=0)
    assert len(blob) < 1024
    _, (layer,) = push_layer_blobs(store, [blob], tag="t")
    ref = f"oci:{tmp_path}/img:t"
    # A hang guard, not a speed check: on the old reader each of these never ended.
    for args in (("sbom", ref), ("audit", "--package", "x", ref), ("stack", "packages", ref), ("run", ref)):
        one_line_error(pallet(*args, env=env, check=False, timeout=300), layer.digest, "declares 4611686018427387904")


def test_a_plain_tar_member_may_not_declare_more_than_the_blob(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "img")
    raw = huge_member_tar(10_000)  # 10 KB declared, 2 KB of blob
    _, (layer,) = push_layer_blobs(store, [raw], tag="t")
    proc = pallet("stack", "packages", f"oci:{tmp_path}/img:t", check=False)
    one_line_error(proc, layer.digest, f"none blob of {len(raw)} bytes")


# -- 6: limits on memory and disk --------------------------------------------------------------------


def _limited_pallet(*args: str, limit: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """pallet with its address space capped, so a blow-up fails fast instead of eating the machine."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True,
                          env=full, preexec_fn=cap, timeout=600)


def test_a_sparse_300mb_dpkg_status_is_refused_in_bounded_memory(tmp_path: Path, env: dict[str, str]) -> None:
    store = LayoutStore(tmp_path / "img")
    blob = gzip.compress(sparse_tar("var/lib/dpkg/status", STATUS, 300_000_000), mtime=0)
    assert len(blob) < 2048
    _, (layer,) = push_layer_blobs(store, [blob], tag="t")
    proc = _limited_pallet("stack", "packages", f"oci:{tmp_path}/img:t", limit=1 << 30, env=env)
    one_line_error(proc, layer.digest, "var/lib/dpkg/status", "300000000")


def test_files_read_into_memory_have_a_cap_naming_image_and_layer(tmp_path: Path, monkeypatch) -> None:
    from builder.stacks import inventory
    from builder.stacks.build import list_packages

    store = LayoutStore(tmp_path / "img")
    status = STATUS * (300_000 // len(STATUS))
    manifest, (layer,) = push_layer_blobs(store, [gzip.compress(tar_of({"var/lib/dpkg/status": status}))], tag="t")
    assert list_packages(f"oci:{tmp_path}/img:t")[2][0].name == "hello"
    monkeypatch.setattr(inventory, "MAX_FILE", 100_000)
    with pytest.raises(PalletError, match=f"{layer.digest} of image {manifest.digest}.*var/lib/dpkg/status"):
        list_packages(f"oci:{tmp_path}/img:t")


def test_sbom_spools_candidate_binaries_within_a_cap(tmp_path: Path, monkeypatch) -> None:
    from builder.supply import layerfiles, sbom

    store = LayoutStore(tmp_path / "img")
    info = tarfile.TarInfo("usr/local/bin/tool")
    body = b"\x7fELF" + b"\0" * (3 << 20)
    info.size, info.mode = len(body), 0o755
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(info, io.BytesIO(body))
    manifest, (layer,) = push_layer_blobs(store, [gzip.compress(buf.getvalue())], tag="t")
    image = load_image(store, "t")
    sbom.collect(image, "img")  # within the default cap: read, found not to be Go
    monkeypatch.setattr(layerfiles, "MAX_ANALYSE", 1 << 20)
    with pytest.raises(PalletError, match=f"{layer.digest} of image {manifest.digest}.*usr/local/bin/tool"):
        sbom.collect(image, "img")


# -- 9: a truncated layer is one line ------------------------------------------------------------------


def test_a_truncated_layer_is_a_one_line_error(tmp_path: Path) -> None:
    """The blob matches its digest (it was truncated before it was pushed): the tar ends inside a file."""
    store = LayoutStore(tmp_path / "img")
    raw = tar_of({"var/lib/dpkg/status": STATUS * 100})
    _, (layer,) = push_layer_blobs(store, [gzip.compress(raw[:1500], mtime=0)], tag="t")
    one_line_error(pallet("stack", "packages", f"oci:{tmp_path}/img:t", check=False), layer.digest, "truncated")
    one_line_error(pallet("sbom", f"oci:{tmp_path}/img:t", check=False), layer.digest, "truncated")


# -- 10: nothing privileged lands in the rootfs cache -------------------------------------------------


def _privileged_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, major, minor in (("dev/disk", tarfile.BLKTYPE, 254, 0), ("dev/mem", tarfile.CHRTYPE, 1, 1)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.devmajor, ti.devminor, ti.mode = kind, major, minor, 0o666
            tf.addfile(ti)
        for name, mode in (("bin/rootshell", 0o4755), ("bin/groupshell", 0o2755), ("bin/plain", 0o755)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.uid, ti.gid = 4, mode, 0, 0
            tf.addfile(ti, io.BytesIO(b"#!/x"))
    return buf.getvalue()


def test_the_rootfs_cache_gets_no_devices_and_no_setuid_files(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "img")
    push_layer_blobs(store, [_privileged_layer()], tag="t")
    root = rootfs.unpack_image(load_image(store, "t"), tmp_path / "cache")
    modes = {p.relative_to(root).as_posix(): os.lstat(p).st_mode for p in root.rglob("*")}
    assert not any(stat.S_ISCHR(m) or stat.S_ISBLK(m) for m in modes.values()), modes
    assert not any(m & (stat.S_ISUID | stat.S_ISGID) for m in modes.values()), modes
    assert stat.S_IMODE(modes["bin/rootshell"]) == 0o755 and stat.S_IMODE(modes["bin/plain"]) == 0o755


# -- 7: writes never destroy what they cannot read -------------------------------------------------------


def test_copy_into_a_directory_with_an_index_but_no_oci_layout_is_refused(tmp_path: Path) -> None:
    push_image(LayoutStore(tmp_path / "src"), [{"a": b"1"}], tag="v1")
    dst = tmp_path / "dst"
    dst.mkdir()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "digest": "sha256:" + "a" * 64, "size": 10,
                                                "annotations": {"org.opencontainers.image.ref.name": "keep"}}]}
    (dst / "index.json").write_text(json.dumps(index))
    before = (dst / "index.json").read_bytes()
    one_line_error(pallet("copy", f"oci:{tmp_path}/src:v1", f"oci:{dst}:new", check=False), str(dst), "oci-layout")
    assert (dst / "index.json").read_bytes() == before
    assert not (dst / "oci-layout").exists() and not (dst / "blobs").exists()
    # what an interrupted creation leaves (an empty index, no marker) is still finished
    (dst / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    pallet("copy", f"oci:{tmp_path}/src:v1", f"oci:{dst}:new")
    assert LayoutStore(dst).list_tags() == ["new"]


# -- 8: stale temp files of interrupted copies ----------------------------------------------------------


def test_stale_temp_blobs_are_removed_by_age_when_a_store_is_opened_to_write(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "lay")
    push_image(store, [{"a": b"1"}], tag="v1")
    blobs = tmp_path / "lay" / "blobs" / "sha256"
    stale, fresh, stale_index = blobs / ".tmp-killed", blobs / ".tmp-running", tmp_path / "lay" / ".tmp-idx"
    for path in (stale, fresh, stale_index):
        path.write_bytes(b"\0" * 4096)
    old = os.stat(stale).st_mtime - 2 * 24 * 3600
    os.utime(stale, (old, old))
    os.utime(stale_index, (old, old))
    push_image(LayoutStore(tmp_path / "src"), [{"b": b"2"}], tag="v2")
    pallet("inspect", f"oci:{tmp_path}/lay:v1")  # reading does not sweep
    assert stale.exists()
    pallet("copy", f"oci:{tmp_path}/src:v2", f"oci:{tmp_path}/lay:v2")
    assert not stale.exists() and not stale_index.exists()
    assert fresh.exists()  # may be a copy still running


# -- 9: malformed documents are one line, never a traceback -----------------------------------------------


def _image_with_config(tmp_path: Path, **config: object) -> str:
    push_layer_blobs(LayoutStore(tmp_path / "img"), [tar_of({"f": b"x"})], tag="t", config_extra=config)
    return f"oci:{tmp_path}/img:t"


@pytest.mark.parametrize("config, field", [
    ({"config": "a string"}, "'config'"),
    ({"config": {"Env": [1, None]}}, "'Env'"),
    ({"config": {"Cmd": [["nested"]]}}, "'Cmd'"),
    ({"config": {"Labels": {"a": 1}}}, "'Labels'"),
    ({"rootfs": {"type": "layers", "diff_ids": [None]}}, "diff_ids"),
    ({"history": ["not an object"]}, "history"),
    ({"rootfs": {"type": "layers", "diff_ids": []}}, "1 layers in the manifest but 0 diff_ids"),
])
def test_malformed_image_configs_are_one_line_errors(tmp_path: Path, env: dict[str, str], config, field) -> None:
    """Also a copy into a docker-archive, which was written (docker load refused it later)."""
    ref = _image_with_config(tmp_path, **config)
    one_line_error(pallet("inspect", ref, env=env, check=False), field)
    one_line_error(pallet("run", ref, env=env, check=False), field)
    one_line_error(pallet("copy", ref, f"docker-archive:{tmp_path}/a.tar", env=env, check=False), field)
    assert not (tmp_path / "a.tar").exists()


def test_an_artifact_is_said_to_be_no_container_image(tmp_path: Path, env: dict[str, str]) -> None:
    """A Helm chart pushed as OCI (its config application/vnd.cncf.helm.config.v1+json, its layer
    the chart's tgz) was refused as "1 layers in the manifest but 0 diff_ids in the config"."""
    store = LayoutStore(tmp_path / "chart")
    config = store.put_blob_bytes(b'{"name": "c", "version": "0.1.0"}', "application/vnd.cncf.helm.config.v1+json")
    chart = store.put_blob_bytes(gzip.compress(tar_of({"c/Chart.yaml": b"name: c\n"}), mtime=0),
                                 "application/vnd.cncf.helm.chart.content.v1.tar+gzip")
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config.to_json(), "layers": [chart.to_json()]}
    store.put_manifest(json.dumps(manifest).encode(), mt.OCI_MANIFEST, tag="t")
    ref = f"oci:{tmp_path}/chart:t"
    needle = "is not a container image but an artifact: its config is 'application/vnd.cncf.helm.config.v1+json'"
    for command in (["inspect", ref], ["run", ref], ["copy", ref, f"docker-archive:{tmp_path}/a.tar"]):
        one_line_error(pallet(*command, env=env, check=False), needle)
    assert not (tmp_path / "a.tar").exists()


def test_an_images_labels_env_and_user_reach_the_terminal_escaped(tmp_path: Path) -> None:
    """``pallet inspect`` printed the config's labels, env, user and created time raw: a label
    could retitle or clear the terminal, or forge a line of the listing. Now each line shows
    its control characters and newlines escaped (``--json`` was always escaped by JSON)."""
    evil = "x\x1b]0;owned\x07\x1b[2J\nDigest:     sha256:forged\r\x9b1m"
    ref = _image_with_config(tmp_path, created=evil, config={"Labels": {"a": evil}, "Env": ["A=" + evil],
                                                            "User": evil, "Entrypoint": [evil]})
    out = pallet("inspect", ref).stdout
    assert not any(c in out for c in "\x1b\x07\r\x9b"), out
    assert [line for line in out.splitlines() if line.startswith("Digest:")] == [out.splitlines()[1]], out
    assert out.count("\\x1b]0;owned\\x07\\x1b[2J\\x0aDigest:") == 4, out  # created, user, env, label


def test_rebase_reasons_and_stack_packages_show_an_images_words_escaped(tmp_path: Path) -> None:
    """A rebase's refusal quotes the image's lifecycle label, and ``pallet stack packages`` lists
    its dpkg status (a Version may go on over a continuation line): both were printed raw."""
    meta = json.dumps({"runImage": {"topLayer": "sha256:\x1b]0;owned\x07"}})
    push_layer_blobs(LayoutStore(tmp_path / "app"), [tar_of({"a": b"1"})], tag="t",
                     config_extra={"config": {"Labels": {"io.buildpacks.lifecycle.metadata": meta}}})
    status = (b"Package: foo\nStatus: install ok installed\nArchitecture: amd64\n"
              b"Version: 1.0\x1b[2J\n forged 2.0\nDescription: x\n\n")
    push_image(LayoutStore(tmp_path / "run"), [{"var/lib/dpkg/status": status}], tag="t")
    app, run = f"oci:{tmp_path}/app:t", f"oci:{tmp_path}/run:t"
    rebased = pallet("rebase", "--run-image", run, app, app, check=False)  # two: each reported on its line
    listed = pallet("stack", "packages", run)
    assert rebased.returncode == 1 and rebased.stderr.count("sha256:\\x1b]0;owned\\x07 is not one") == 2, rebased
    assert "1.0\\x1b[2J\\x0aforged 2.0" in listed.stdout and len(listed.stdout.splitlines()) == 2, listed.stdout
    assert "\x1b" not in rebased.stdout + rebased.stderr + listed.stdout + listed.stderr


def test_a_string_entrypoint_is_one_argument_not_split_into_characters(tmp_path: Path) -> None:
    """Docker reads a lone string as a one-element list (its ``strslice``); so do we."""
    ref = _image_with_config(tmp_path, config={"Entrypoint": "/bin/server --port 80", "Cmd": "x"})
    info = json.loads(pallet("inspect", "--json", ref).stdout)
    assert info["config"]["entrypoint"] == ["/bin/server --port 80"]
    assert info["config"]["cmd"] == ["x"]


def test_an_index_json_listing_a_string_is_a_one_line_error(tmp_path: Path) -> None:
    push_image(LayoutStore(tmp_path / "lay"), [{"a": b"1"}], tag="v1")
    (tmp_path / "lay" / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": ["x"]}))
    one_line_error(pallet("inspect", f"oci:{tmp_path}/lay:v1", check=False), "index.json", "'x'")
    one_line_error(pallet("copy", f"oci:{tmp_path}/lay:v1", f"oci:{tmp_path}/other:v1", check=False), "index.json")


def test_a_docker_archive_listing_layers_that_are_not_paths_is_a_one_line_error(tmp_path: Path) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["app:v1"], "Layers": [1, None]}]).encode()
    (tmp_path / "app.tar").write_bytes(tar_of({"manifest.json": manifest, "config.json": config}))
    one_line_error(pallet("inspect", f"docker-archive:{tmp_path}/app.tar", check=False), "manifest.json")


def test_a_password_that_is_not_utf8_is_used_as_bytes(tmp_path: Path) -> None:
    """As cosign (Go) reads it: the variable's bytes. Surrogates are how Python holds them."""
    password = "caf\udce9-\udcff"  # b"caf\xe9-\xff": Latin-1 bytes, not UTF-8
    pallet("keygen", "--output-key-prefix", str(tmp_path / "k"), env={"PALLET_PASSWORD": password})
    push_image(LayoutStore(tmp_path / "img"), [{"a": b"1"}], tag="v1")
    ref = f"oci:{tmp_path}/img:v1"
    pallet("sign", ref, "--key", str(tmp_path / "k.key"), env={"PALLET_PASSWORD": password})
    one_line_error(pallet("sign", ref, "--key", str(tmp_path / "k.key"), env={"PALLET_PASSWORD": "caf\udce9"},
                          check=False), "wrong password")


def test_an_extended_header_is_size_checked_before_it_is_read_into_memory() -> None:
    """tarfile reads PAX records whole; 64 MB of them fit in a 3 KB zstd blob."""
    import tracemalloc

    from builder.oci import compress
    from builder.oci.layerread import CorruptLayerError, LayerTar

    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 64 << 20
    raw = info.tobuf(tarfile.USTAR_FORMAT) + b"\0" * (64 << 20) + b"\0" * 1024
    blob = compress.compress_bytes(raw, compress.ZSTD)
    del raw
    assert len(blob) < 64 << 10
    tracemalloc.start()
    try:
        with pytest.raises(CorruptLayerError, match="extended header"):
            list(LayerTar(io.BytesIO(blob), what="layer x"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def _pax_tar(*members: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti in members:
            tf.addfile(ti, io.BytesIO(b"x" * ti.size) if ti.isreg() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, link
    return ti


HUGE = "\x1b]0;t\x07" + "n" * (1 << 20)  # a name or link target of a megabyte, in a PAX record


@pytest.mark.parametrize("members", [
    [_member(HUGE + "/../../etc/x")],
    [_member("a"), _member("b", tarfile.LNKTYPE, HUGE + "/../../../etc/shadow")],
    [_member("d", tarfile.SYMTYPE, "/" + HUGE[:4000]), _member("d/x")],  # a link within what Linux allows
], ids=["dotdot-name", "hardlink-target", "through-a-symlink"])
def test_an_entry_name_of_a_megabyte_is_quoted_short_in_the_error(tmp_path: Path,
                                                                  members: list[tarfile.TarInfo]) -> None:
    """A PAX record may hold a name (or link target) of megabytes; the refusal quoted it whole:
    a 'one-line' error of a megabyte, which the terminal also got its escapes from. Now each
    name is quoted with its middle left out."""
    from builder.errors import UnsafeArchiveError
    from builder.oci.unpack import unpack_layer

    with pytest.raises(UnsafeArchiveError) as info:
        unpack_layer(io.BytesIO(_pax_tar(*members)), tmp_path / "root")
    said = str(info.value)
    assert len(said) < 1200 and "characters left out" in said and "\x1b" not in said, said[:2000]


@pytest.mark.parametrize("uid", [2 ** 40, 2 ** 32 - 1])
def test_an_entry_owned_by_an_id_no_system_has_says_so(tmp_path: Path, uid: int) -> None:
    """A PAX record may give any number as uid: unpacking as root failed in chown with 'layer is
    corrupt or truncated (uid is less than minimum); fetch or build it again', none of it true;
    as another user it was unpacked. Now refused alike, saying what is wrong."""
    from builder.errors import PalletError
    from builder.oci.unpack import unpack_layer

    entry = _member("f")
    entry.uid = uid
    with pytest.raises(PalletError, match=f"owned by uid {uid}, gid 0: no system has such ids"):
        unpack_layer(io.BytesIO(_pax_tar(entry)), tmp_path / "root")


def test_a_long_chain_of_extended_headers_is_corrupt_not_a_crash() -> None:
    """tarfile parses each PAX header's member recursively: 3000 of them exceed Python's stack."""
    from builder.oci.layerread import CorruptLayerError, LayerTar

    header = tarfile.TarInfo("././@PaxHeader")
    record = b"11 path=ab\n"
    header.type, header.size = tarfile.XHDTYPE, len(record)
    one = header.tobuf(tarfile.USTAR_FORMAT) + record.ljust(tarfile.BLOCKSIZE, b"\0")
    blob = gzip.compress(one * 3000 + tar_of({"f": b"x"}), mtime=0)
    with pytest.raises(CorruptLayerError):
        list(LayerTar(io.BytesIO(blob), what="layer x"))
