"""The reproducible layer writer and its compressors: determinism first, then fidelity."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zstandard

from builder.errors import LayerError, PalletError
from builder.oci import compress, layer
from builder.oci import mediatypes as mt
from builder.oci.layer import Entry, layer_from_entries, plan_entries, write_layer

needs_gnu_tar = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
is_root = os.geteuid() == 0


# -- helpers -------------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    """A small tree with everything a layer keeps: modes, symlinks, a hard link, deep dirs."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "suid").write_bytes(b"suid")
    (root / "bin" / "suid").chmod(0o4755)
    (root / "etc").mkdir()
    (root / "etc" / "secret").write_bytes(b"s3cret")
    (root / "etc" / "secret").chmod(0o600)
    (root / "etc" / "config").write_text("a = 1\n")
    (root / "etc" / "config").chmod(0o644)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    (root / "empty").mkdir()
    (root / "empty").chmod(0o755)
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep")
    (root / "lib").symlink_to("a/b")
    (root / "abs-link").symlink_to("/etc/passwd")
    (root / "dangling").symlink_to("nowhere/at/all")
    os.link(root / "etc" / "config", root / "a" / "config-hardlink")  # sorts before etc/config
    (root / "big.bin").write_bytes(random.Random(7).randbytes(3 * (1 << 20) + 12345))
    for d in (root, root / "bin", root / "etc", root / "a", root / "a" / "b", root / "a" / "b" / "c"):
        d.chmod(0o755)
    return root


def scramble(root: Path, seed: int, owner: int | None) -> None:
    """Give every entry other times (and owner): none of that may reach the layer."""
    rng = random.Random(seed)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + ["."]:
            p = os.path.join(dirpath, name)
            t = rng.randint(10**8, 2 * 10**9)
            os.utime(p, (t + 17, t), follow_symlinks=False)
            if owner is not None:
                mode = os.lstat(p).st_mode
                os.chown(p, owner, owner, follow_symlinks=False)
                if not stat.S_ISLNK(mode):
                    os.chmod(p, stat.S_IMODE(mode))  # chown clears setuid; the content keeps it


def copy_tree(src: Path, dst: Path) -> Path:
    """shutil.copytree, then restore the hard link it turns into two files."""
    shutil.copytree(src, dst, symlinks=True)
    os.unlink(dst / "a" / "config-hardlink")
    os.link(dst / "etc" / "config", dst / "a" / "config-hardlink")
    return dst


def decompress(blob: bytes) -> bytes:
    kind = compress.sniff(blob[:4])
    return compress.open_decompressed(io.BytesIO(blob), kind).read()


def members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        return tf.getmembers()


def write(src: Path, tmp: Path, name: str, **opts: object):
    dest = tmp / name
    result = write_layer(src, dest, **opts)  # type: ignore[arg-type]
    return result, dest.read_bytes()


# -- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_same_content_elsewhere_with_other_times_and_owners_gives_same_digest(tmp_path: Path, compression: str) -> None:
    first = make_tree(tmp_path / "one")
    second = copy_tree(first, tmp_path / "elsewhere" / "two")
    scramble(first, 1, None)
    scramble(second, 2, 4321 if is_root else None)
    old_umask = os.umask(0o077)  # umask must not matter either
    try:
        r1, b1 = write(first, tmp_path, "1.layer", compression=compression)
        r2, b2 = write(second, tmp_path, "2.layer", compression=compression)
    finally:
        os.umask(old_umask)
    assert (r1.digest, r1.diff_id, r1.size) == (r2.digest, r2.diff_id, r2.size)
    assert b1 == b2


def test_same_input_gives_same_bytes_run_after_run(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    digests = {write(src, tmp_path, f"{i}.tgz")[0].digest for i in range(3)}
    assert len(digests) == 1


def test_layers_written_by_two_threads_at_once_match_the_sequential_ones(tmp_path: Path) -> None:
    src_a = make_tree(tmp_path / "a")
    src_b = make_tree(tmp_path / "b")
    (src_b / "extra").write_bytes(os.urandom(5 << 20))
    sequential = [write_layer(src_a, tmp_path / "sa").digest, write_layer(src_b, tmp_path / "sb").digest]
    results: dict[str, str] = {}

    def run(name: str, src: Path) -> None:
        results[name] = write_layer(src, tmp_path / f"p{name}").digest

    threads = [threading.Thread(target=run, args=("a", src_a)), threading.Thread(target=run, args=("b", src_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results["a"], results["b"]] == sequential


def test_default_mtime_is_1980(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    src = make_tree(tmp_path / "src")
    _, blob = write(src, tmp_path, "l.tar", compression="none")
    assert {m.mtime for m in members(blob)} == {layer.DEFAULT_MTIME}
    assert layer.DEFAULT_MTIME == 315532801


def test_source_date_epoch_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tree(tmp_path / "src")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    default, _ = write(src, tmp_path, "default.tgz")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    with_env, blob = write(src, tmp_path, "env.tgz")
    assert {m.mtime for m in members(decompress(blob))} == {1700000000}
    assert with_env.digest != default.digest
    # an explicit mtime wins over the environment
    explicit, blob = write(src, tmp_path, "explicit.tgz", mtime=1234567890)
    assert {m.mtime for m in members(decompress(blob))} == {1234567890}


@pytest.mark.parametrize("value", ["yesterday", "-5", "1.5"])
def test_bad_source_date_epoch_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(LayerError, match="SOURCE_DATE_EPOCH"):
        write_layer(make_tree(tmp_path / "src"), tmp_path / "l")


# -- what the tar holds ------------------------------------------------------------------


def test_modes_links_owners_and_order(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    result, blob = write(src, tmp_path, "l.tar", compression="none", uid=1000, gid=2000)
    ms = {m.name: m for m in members(blob)}
    assert list(ms) == sorted(ms, key=lambda n: tuple(os.fsencode(n).split(b"/")))
    assert ms["bin/tool"].mode == 0o755
    assert ms["bin/suid"].mode == 0o4755
    assert ms["etc/secret"].mode == 0o600
    assert ms["tmp"].mode == 0o1777 and ms["tmp"].isdir()
    assert ms["empty"].isdir()
    assert ms["lib"].issym() and ms["lib"].linkname == "a/b"
    assert ms["abs-link"].linkname == "/etc/passwd"
    assert ms["dangling"].linkname == "nowhere/at/all"
    # the hard link pair: the first in layer order carries the data, the other links to it
    assert ms["a/config-hardlink"].isreg() and ms["a/config-hardlink"].size == len("a = 1\n")
    assert ms["etc/config"].islnk() and ms["etc/config"].linkname == "a/config-hardlink"
    for m in ms.values():
        assert (m.uid, m.gid, m.uname, m.gname) == (1000, 2000, "", "")
        assert m.mtime == layer.default_mtime()
        assert not m.pax_headers  # no atime/ctime/names: nothing here needs pax at all
    big = (src / "big.bin").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        assert tf.extractfile("big.bin").read() == big  # type: ignore[union-attr]
    assert result.uncompressed_size == len(blob)


@pytest.mark.skipif(not is_root, reason="needs root to chown")
def test_keep_owners_records_each_entrys_owner(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    os.chown(src / "etc" / "secret", 42, 43)
    os.chmod(src / "etc" / "secret", 0o600)
    os.chown(src / "lib", 7, 8, follow_symlinks=False)
    os.chown(src / "a" / "config-hardlink", 9, 10)  # and so etc/config, the same inode
    entries = layer.entries_from_dir(src, keep_owners=True)
    buf = io.BytesIO()
    layer_from_entries(entries, buf, compression="none", uid=1000, gid=1000)
    ms = {m.name: m for m in members(buf.getvalue())}
    assert (ms["etc/secret"].uid, ms["etc/secret"].gid) == (42, 43)
    assert (ms["lib"].uid, ms["lib"].gid) == (7, 8)
    assert (ms["etc/config"].uid, ms["etc/config"].gid) == (9, 10)
    assert (ms["bin/tool"].uid, ms["bin/tool"].gid) == (0, 0)  # as found, not the layer default
    kept = write_layer(src, tmp_path / "k.tar", compression="none", uid=1000, gid=1000, keep_owners=True)
    assert kept.digest == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    # without keep_owners the layer's owner is used for all
    plain = {m.name: m for m in members(write(src, tmp_path, "p.tar", compression="none", uid=5, gid=6)[1])}
    assert {(m.uid, m.gid) for m in plain.values()} == {(5, 6)}


def test_entry_owner_overrides_the_layer_owner() -> None:
    buf = io.BytesIO()
    layer_from_entries([Entry(path="d/f", data=b"x", uid=33, gid=34), Entry.file("g")], buf,
                       compression="none", uid=1000, gid=1001)
    owners = {m.name: (m.uid, m.gid) for m in members(buf.getvalue())}
    assert owners == {"d": (1000, 1001), "d/f": (33, 34), "g": (1000, 1001)}
    with pytest.raises(LayerError, match="uid"):
        layer_from_entries([Entry(path="f", uid=-1)], io.BytesIO())


def test_archive_ends_like_gnu_tar(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    _, blob = write(src, tmp_path, "l.tar", compression="none")
    assert len(blob) % layer.RECORD == 0
    assert blob[-1024:] == b"\0" * 1024


def test_empty_directory_gives_a_valid_empty_layer(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for compression in compress.COMPRESSIONS:
        result, blob = write(tmp_path / "empty", tmp_path, f"e.{compression}", compression=compression)
        tar = decompress(blob)
        assert tar == b"\0" * layer.RECORD and members(tar) == []
        assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()


@needs_gnu_tar
def test_gnu_tar_lists_what_we_expect_with_numeric_owners(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    _, blob = write(src, tmp_path, "l.tgz", uid=1000, gid=1000)
    out = subprocess.run(["tar", "--numeric-owner", "-tvzf", str(tmp_path / "l.tgz")],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    by_name = {line.split()[5]: line for line in out}
    assert by_name["bin/tool"].startswith("-rwxr-xr-x 1000/1000")
    assert by_name["bin/suid"].startswith("-rwsr-xr-x 1000/1000")
    assert by_name["tmp/"].startswith("drwxrwxrwt 1000/1000")
    assert by_name["lib"].startswith("lrwxrwxrwx") and by_name["lib"].endswith("lib -> a/b")
    assert by_name["etc/config"].startswith("hrw-r--r--") and by_name["etc/config"].endswith("link to a/config-hardlink")
    assert all(" 1980-01-01 00:00 " in line for line in out)
    # same names in the same order as GNU tar --sort=name gives for the directory
    theirs = subprocess.run(
        f"tar --sort=name --numeric-owner -cf - -C {src} . | tar -tf -", shell=True,
        check=True, capture_output=True, text=True).stdout.splitlines()
    assert [n.removeprefix("./") for n in theirs if n != "./"] == [line.split()[5] for line in out]


def test_long_and_odd_names_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    long_dir = src / ("d" * 120)
    long_dir.mkdir()
    name_300 = "/".join(["x" * 90, "y" * 90, "z" * 90, "file-" + "w" * 40])  # > 255 in all
    (src / name_300).parent.mkdir(parents=True)
    (src / name_300).write_bytes(b"long")
    (long_dir / ("f" * 200)).write_bytes(b"f")
    (src / "café-ünïcode").write_bytes(b"u")
    (src / "link-long").symlink_to("t" * 150)
    raw = os.path.join(os.fsencode(src), b"bad-\xff-utf8")
    with open(raw, "wb") as f:
        f.write(b"raw")
    _, blob = write(src, tmp_path, "l.tar", compression="none")
    with tarfile.open(fileobj=io.BytesIO(blob), encoding="utf-8", errors="surrogateescape") as tf:
        names = tf.getnames()
        assert name_300 in names and len(name_300) > 255
        assert ("d" * 120 + "/" + "f" * 200) in names
        assert "café-ünïcode" in names
        assert os.fsdecode(b"bad-\xff-utf8") in names
        assert tf.getmember("link-long").linkname == "t" * 150
        assert tf.extractfile(name_300).read() == b"long"  # type: ignore[union-attr]
    # and twice the same bytes
    assert write(src, tmp_path, "again.tar", compression="none")[1] == blob


@needs_gnu_tar
def test_gnu_tar_reads_long_names(tmp_path: Path) -> None:
    src = tmp_path / "src"
    name = "/".join(["p" * 100, "q" * 100, "r" * 100])
    (src / name).parent.mkdir(parents=True)
    (src / name).write_bytes(b"x")
    write(src, tmp_path, "l.tar", compression="none")
    out = subprocess.run(["tar", "-tf", str(tmp_path / "l.tar")], check=True, capture_output=True, text=True)
    assert name in out.stdout.splitlines()


def test_sockets_are_refused_naming_the_path(tmp_path: Path) -> None:
    # AF_UNIX paths are limited to 108 bytes, so the tree lives in a short directory
    short = Path(tempfile.mkdtemp(prefix="pl", dir="/tmp"))
    try:
        (short / "sub").mkdir()
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(short / "sub" / "s.sock"))
        try:
            with pytest.raises(LayerError, match=r"sub/s\.sock.*socket"):
                write_layer(short, tmp_path / "l.tgz")
        finally:
            sock.close()
        assert not list(tmp_path.iterdir())  # no layer and no temporary file left behind
    finally:
        shutil.rmtree(short)


def test_fifos_and_devices_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with pytest.raises(LayerError, match="pipe.*FIFO"):
        write_layer(src, tmp_path / "l")
    if is_root:
        os.unlink(src / "pipe")
        os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        with pytest.raises(LayerError, match="null.*character device"):
            write_layer(src, tmp_path / "l")


def test_prefix_puts_content_under_a_0755_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    src.chmod(0o700)  # a staging directory's mode must not leak into the image
    (src / "app.py").write_text("print()\n")
    _, blob = write(src, tmp_path, "l.tar", compression="none", prefix="/workspace/app/")
    ms = members(blob)
    assert [m.name for m in ms] == ["workspace", "workspace/app", "workspace/app/app.py"]
    assert [m.mode for m in ms[:2]] == [0o755, 0o755]


def test_write_to_an_open_stream(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    buf = io.BytesIO()
    result = write_layer(src, buf)
    assert result.path is None
    assert result.digest == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    assert result.digest == write_layer(src, tmp_path / "l.tgz").digest


# -- identities --------------------------------------------------------------------------


@pytest.mark.parametrize("compression,media_type", [("gzip", mt.OCI_LAYER_GZIP), ("zstd", mt.OCI_LAYER_ZSTD),
                                                    ("none", mt.OCI_LAYER)])
def test_digest_diff_id_sizes_and_descriptor(tmp_path: Path, compression: str, media_type: str) -> None:
    src = make_tree(tmp_path / "src")
    result, blob = write(src, tmp_path, "l", compression=compression)
    tar = decompress(blob)
    assert result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert (result.size, result.uncompressed_size) == (len(blob), len(tar))
    assert result.media_type == media_type and mt.compression_of(media_type) == compression
    desc = result.descriptor({"k": "v"})
    assert (desc.media_type, desc.digest, desc.size, desc.annotations) == (media_type, result.digest, len(blob), {"k": "v"})
    assert result.path == str(tmp_path / "l")


def test_unknown_compression_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(PalletError, match="gzip, zstd, none"):
        write_layer(make_tree(tmp_path / "src"), tmp_path / "l", compression="brotli")


# -- gzip and zstd -----------------------------------------------------------------------


def _sample(n: int) -> bytes:
    rng = random.Random(n)
    text = b"".join(b"line %d of some fairly repetitive text\n" % rng.randint(0, 5000) for _ in range(n // 40 + 1))
    return (text[: n // 2] + rng.randbytes(n - n // 2))[:n]


def _gzip(data: bytes, executor: ThreadPoolExecutor | None, step: int, level: int = compress.GZIP_LEVEL) -> bytes:
    out: list[bytes] = []
    comp = compress.GzipCompressor(lambda b: out.append(bytes(b)), executor=executor, level=level)
    for i in range(0, len(data), step):
        comp.write(data[i:i + step])
    comp.close()
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, compress.GZIP_CHUNK_SIZE, compress.GZIP_CHUNK_SIZE + 1, 5 * compress.GZIP_CHUNK_SIZE + 777])
def test_gzip_is_identical_across_worker_counts_and_write_sizes(size: int) -> None:
    data = _sample(size)
    blobs = set()
    for workers, step in ((1, 1 << 20), (2, 4096), (4, 333_333)):
        with ThreadPoolExecutor(workers) as ex:
            blobs.add(_gzip(data, ex, step))
    blobs.add(_gzip(data, None, 1 << 16))  # the shared pool
    assert len(blobs) == 1
    blob = blobs.pop()
    assert gzip.decompress(blob) == data
    assert zlib_single_member(blob)


def zlib_single_member(blob: bytes) -> bool:
    """One gzip member, fixed header (no name, mtime 0), nothing after the trailer."""
    import zlib

    d = zlib.decompressobj(16 + 15)
    d.decompress(blob)
    return d.eof and d.unused_data == b"" and blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


@pytest.mark.skipif(shutil.which("gzip") is None, reason="gzip not installed")
def test_gnu_gzip_accepts_our_gzip(tmp_path: Path) -> None:
    data = _sample(3 * compress.GZIP_CHUNK_SIZE + 5)
    blob = _gzip(data, None, 1 << 20)
    (tmp_path / "x.gz").write_bytes(blob)
    subprocess.run(["gzip", "-t", str(tmp_path / "x.gz")], check=True)
    out = subprocess.run(["gzip", "-dc", str(tmp_path / "x.gz")], check=True, capture_output=True).stdout
    assert out == data


def test_gzip_level_is_the_callers_and_deterministic_at_each_level() -> None:
    """App builds write layers at deflate's fastest level (compress.APP_GZIP_LEVEL), stacks at
    GZIP_LEVEL: each level is its own deterministic stream, whatever the workers."""
    data = _sample(3 * compress.GZIP_CHUNK_SIZE + 11)
    by_level = {}
    for level in (compress.APP_GZIP_LEVEL, compress.GZIP_LEVEL):
        blobs = set()
        for workers, step in ((1, 1 << 20), (3, 70_001)):
            with ThreadPoolExecutor(workers) as ex:
                blobs.add(_gzip(data, ex, step, level))
        assert len(blobs) == 1
        by_level[level] = blobs.pop()
        assert gzip.decompress(by_level[level]) == data and zlib_single_member(by_level[level])
    assert by_level[compress.APP_GZIP_LEVEL] != by_level[compress.GZIP_LEVEL]
    assert len(by_level[compress.APP_GZIP_LEVEL]) <= len(gzip.compress(data, compress.APP_GZIP_LEVEL, mtime=0)) * 1.01
    with pytest.raises(ValueError):
        compress.GzipCompressor(lambda b: None, level=0)


def test_an_app_layer_is_written_at_the_app_level(tmp_path: Path) -> None:
    from builder.lifecycle.layercache import LayerCache

    src = make_tree(tmp_path / "src")
    cached, hit = LayerCache(tmp_path / "cache").layer(src, prefix="workspace", uid=1000, gid=1000)
    assert not hit
    fast = layer.write_layer(src, tmp_path / "fast.tgz", prefix="workspace", uid=1000, gid=1000,
                       gzip_level=compress.APP_GZIP_LEVEL)
    default = layer.write_layer(src, tmp_path / "default.tgz", prefix="workspace", uid=1000, gid=1000)
    assert cached.descriptor.digest == fast.digest
    assert fast.diff_id == default.diff_id


def test_gzip_ratio_is_close_to_single_threaded_gzip() -> None:
    data = _sample(4 * compress.GZIP_CHUNK_SIZE)
    ours = len(_gzip(data, None, 1 << 20))
    reference = len(gzip.compress(data, 6, mtime=0))
    assert ours <= reference * 1.01


def _zstd(data: bytes, threads: int, step: int) -> bytes:
    out: list[bytes] = []
    comp = compress.ZstdCompressor(lambda b: out.append(bytes(b)), threads=threads)
    for i in range(0, len(data), step):
        comp.write(data[i:i + step])
    comp.close()
    return b"".join(out)


def test_zstd_is_identical_across_thread_counts_and_write_sizes() -> None:
    data = _sample(12 << 20)  # several zstd jobs
    blobs = {_zstd(data, threads, step) for threads, step in ((1, 1 << 20), (2, 65536), (4, 3_000_001))}
    assert len(blobs) == 1
    blob = blobs.pop()
    params = zstandard.get_frame_parameters(blob)
    assert params.content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert params.dict_id == 0 and params.has_checksum
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == data


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd not installed")
def test_zstd_cli_accepts_our_zstd(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    result, blob = write(src, tmp_path, "l.zst", compression="zstd")
    subprocess.run(["zstd", "-q", "-t", str(tmp_path / "l.zst")], check=True)
    out = subprocess.run(["zstd", "-q", "-dc", str(tmp_path / "l.zst")], check=True, capture_output=True).stdout
    assert "sha256:" + hashlib.sha256(out).hexdigest() == result.diff_id


@pytest.mark.skipif(shutil.which("gzip") is None, reason="gzip not installed")
def test_gnu_gzip_accepts_a_layer(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    result, _ = write(src, tmp_path, "l.tgz")
    subprocess.run(["gzip", "-t", str(tmp_path / "l.tgz")], check=True)
    out = subprocess.run(["gzip", "-dc", str(tmp_path / "l.tgz")], check=True, capture_output=True).stdout
    assert "sha256:" + hashlib.sha256(out).hexdigest() == result.diff_id


def test_open_decompressed_detects_by_magic() -> None:
    data = _sample(100_000)
    for kind in compress.COMPRESSIONS:
        blob = compress.compress_bytes(data, kind)
        assert compress.sniff(blob) == kind
        assert compress.open_decompressed(io.BytesIO(blob)).read() == data


# -- entries without a staging directory ---------------------------------------------------


def test_entries_make_the_same_layer_as_the_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "app").mkdir(parents=True)
    for d in (src, src / "app"):
        d.chmod(0o755)
    (src / "app" / "main.py").write_bytes(b"print(1)\n")
    (src / "app" / "main.py").chmod(0o644)
    (src / "app" / "run").write_bytes(b"#!/bin/sh\n")
    (src / "app" / "run").chmod(0o755)
    (src / "app" / "current").symlink_to("main.py")
    from_dir = write_layer(src, tmp_path / "d.tgz")
    entries = [
        Entry.symlink("app/current", "main.py"),
        Entry.file("/app/run", b"#!/bin/sh\n", mode=0o755),
        Entry.file("./app/main.py", source=src / "app" / "main.py"),
    ]  # any order, parents implied
    from_entries = layer_from_entries(entries, tmp_path / "e.tgz")
    assert from_entries.digest == from_dir.digest
    shuffled = layer_from_entries(list(reversed(entries)), tmp_path / "f.tgz")
    assert shuffled.digest == from_dir.digest


def test_plan_entries_orders_parents_first_by_bytes_per_component() -> None:
    planned = plan_entries([Entry.file("a-c"), Entry.file("a/b"), Entry.file("B"), Entry.file("a/a/x")])
    assert [(e.path, e.type) for e in planned] == [
        ("B", "file"), ("a", "dir"), ("a/a", "dir"), ("a/a/x", "file"), ("a/b", "file"), ("a-c", "file")]


def test_plan_entries_hard_link_groups_start_with_the_first_path() -> None:
    planned = plan_entries([Entry.file("z/data", b"x", mode=0o640), Entry.hardlink("a/link", "z/data"),
                            Entry.hardlink("m/link2", "a/link")], prefix="p")
    by_path = {e.path: e for e in planned}
    assert by_path["p/a/link"].type == "file" and by_path["p/a/link"].data == b"x"
    assert by_path["p/a/link"].mode == 0o640
    assert (by_path["p/z/data"].type, by_path["p/z/data"].link_target) == ("hardlink", "p/a/link")
    assert (by_path["p/m/link2"].type, by_path["p/m/link2"].link_target) == ("hardlink", "p/a/link")


@pytest.mark.parametrize("entries,message", [
    ([Entry.file("a"), Entry.file("./a")], "given twice"),
    ([Entry.file("a/../../etc/passwd")], r"'\.\.'"),
    ([Entry.file("f"), Entry.file("f/g")], "not a directory"),
    ([Entry.hardlink("l", "missing")], "not a file in this layer"),
    ([Entry.directory("d"), Entry.hardlink("l", "d")], "not a file in this layer"),
    ([Entry.symlink("s", "")], "empty target"),
    ([Entry.file("/")], "root"),
    ([Entry(path="x", type="socket")], "type"),
])
def test_bad_entries_are_user_errors(entries: list[Entry], message: str) -> None:
    with pytest.raises(LayerError, match=message):
        plan_entries(entries)


def test_a_file_that_changes_size_while_read_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    entry = Entry(path="f", source=tmp_path / "f", size=3)
    with pytest.raises(LayerError, match="changed size"):
        layer_from_entries([entry], tmp_path / "l")
    assert not (tmp_path / "l").exists()


def test_short_reads_give_the_same_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tree(tmp_path / "src")
    (src / "medium").write_bytes(random.Random(3).randbytes(5000))  # read in one go unless the read falls short
    expected = write_layer(src, tmp_path / "l1", compression="none").digest
    real_readv = os.readv
    monkeypatch.setattr(os, "readv", lambda fd, bufs: real_readv(fd, [bufs[0][:100]]))  # 100 bytes a read
    assert write_layer(src, tmp_path / "l2", compression="none").digest == expected


def test_a_file_that_shrinks_while_read_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tree(tmp_path / "src")
    monkeypatch.setattr(os, "readv", lambda fd, bufs: 0)  # every file ends before its walked size
    with pytest.raises(LayerError, match="file shrank while the layer was being written"):
        write_layer(src, tmp_path / "l")
    assert not (tmp_path / "l").exists()


def test_a_walked_file_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"12345")
    (tmp_path / "f").symlink_to(tmp_path / "secret")
    entry = Entry(path="f", source=tmp_path / "f", size=5)  # as the walk saw it: a 5-byte file
    with pytest.raises(LayerError, match="cannot read"):
        layer_from_entries([entry], tmp_path / "l")
    # a caller's own source may be a symlink, and is followed
    assert layer_from_entries([Entry.file("f", source=tmp_path / "f")], tmp_path / "l").size > 0


def test_tar_header_uses_pax_only_when_ustar_cannot_hold_the_value() -> None:
    plain = layer.tar_header(b"a" * 100, 0o644, 0, 0, 5, 1, b"0")
    assert len(plain) == 512
    longer = layer.tar_header(b"a" * 101, 0o644, 0, 0, 5, 1, b"0")
    assert len(longer) == 3 * 512 and longer[156:157] == b"x"
    huge = layer.tar_header(b"big", 0o644, 2**22, 0, 8**11, 1, b"0")
    ti = tarfile.TarInfo.frombuf(huge[1024:], "utf-8", "surrogateescape")
    assert b"size=%d" % 8**11 in huge[512:1024] and b"uid=%d" % 2**22 in huge[512:1024]
    assert ti.name == "big"


@pytest.mark.docker
@pytest.mark.parametrize("compression", ["gzip", "none"])  # this engine (20.10) predates zstd layers
def test_docker_engine_reads_the_layer_and_agrees_on_its_diff_id(tmp_path: Path, docker_engine, compression: str) -> None:
    """Docker decompresses and hashes the layer itself (Go's tar reader, and gzip or unpigz)."""
    src = make_tree(tmp_path / "src")
    result, blob = write(src, tmp_path, "l", compression=compression)
    tag = f"pallet-test-layer-{os.getpid()}-{compression}"
    docker_engine.api.import_image_from_data(blob, repository=tag, tag="t")
    try:
        assert docker_engine.images.get(f"{tag}:t").attrs["RootFS"]["Layers"] == [result.diff_id]
    finally:
        docker_engine.images.remove(f"{tag}:t", force=True)


# -- per-entry owners (root file systems: /etc/shadow is root:shadow) ----------------------------


def test_entries_with_their_own_owner_override_the_default(tmp_path: Path) -> None:
    entries = [Entry(path="etc/shadow", data=b"root:*:1::::::\n", mode=0o640, gid=42),
               Entry(path="home/cnb", type="dir", mode=0o755, uid=1000, gid=1000),
               Entry(path="home/cnb/.profile", data=b"x\n", uid=1000, gid=1000),
               Entry(path="home/cnb/link", type="hardlink", link_target="home/cnb/.profile"),
               Entry.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]
    layer_from_entries(entries, tmp_path / "l.tar", uid=7, gid=8, compression="none")
    ms = {m.name: m for m in members((tmp_path / "l.tar").read_bytes())}
    assert (ms["etc/shadow"].uid, ms["etc/shadow"].gid) == (7, 42)
    assert (ms["home/cnb"].uid, ms["home/cnb"].gid) == (1000, 1000)
    assert (ms["home/cnb/.profile"].uid, ms["home/cnb/.profile"].gid) == (1000, 1000)
    assert ms["home/cnb/link"].islnk() and (ms["home/cnb/link"].uid, ms["home/cnb/link"].gid) == (1000, 1000)
    assert (ms["etc/passwd"].uid, ms["etc/passwd"].gid) == (7, 8)
    assert (ms["home"].uid, ms["home"].gid) == (7, 8)  # a parent completed by the writer


@pytest.mark.skipif(not is_root, reason="needs root to give files other owners")
def test_keep_owners_keeps_each_files_numeric_owner(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    os.chown(src / "etc" / "secret", 0, 42)
    os.chown(src / "bin", 1000, 1001)
    os.lchown(src / "lib", 5, 6)
    kept, kept_blob = write(src, tmp_path, "kept.tar", compression="none", keep_owners=True)
    ms = {m.name: m for m in members(kept_blob)}
    assert (ms["etc/secret"].uid, ms["etc/secret"].gid) == (0, 42)
    assert (ms["bin"].uid, ms["bin"].gid) == (1000, 1001)
    assert (ms["lib"].uid, ms["lib"].gid) == (5, 6)
    assert (ms["etc/config"].uid, ms["a/config-hardlink"].uid) == (0, 0)
    # without keep_owners nothing changes: one owner for all, whoever owns the files
    plain, plain_blob = write(src, tmp_path, "plain.tar", compression="none", uid=3, gid=4)
    assert {(m.uid, m.gid) for m in members(plain_blob)} == {(3, 4)}
    # and the owners are part of the content: same tree, same owners, same digest
    again, _ = write(src, tmp_path, "again.tar", compression="none", keep_owners=True)
    assert again.digest == kept.digest != plain.digest
