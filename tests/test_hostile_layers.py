"""Hostile layers (issue 11, third sweep): a layer whose uncompressed content is not the diff_id
its image's config lists. The blob matches its digest, so nothing noticed: ``pallet run`` ran
content the config (what signatures, SBOMs and rebase reason about by diff_id) does not name.
Now unpacking checks it, as container runtimes do, and keeps nothing of the image.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from builder.errors import DigestMismatchError
from builder.oci.digest import sha256
from builder.oci.stores.layout import LayoutStore
from builder.oci.unpack import Unpacker
from tests.cli import pallet
from tests.imagekit import END_OF_ARCHIVE, push_layer_blobs, tar_of
from tests.test_hostile_inputs import one_line_error

GENUINE = tar_of({"bin/app": b"genuine"})


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PALLET_HOME": str(tmp_path / "home")}


def _cached(env: dict[str, str]) -> list[str]:
    root = Path(env["XDG_CACHE_HOME"]) / "pallet" / "rootfs"
    return sorted(p.name for p in root.iterdir() if not p.name.endswith((".lock", ".size"))) if root.is_dir() else []


def test_a_layer_that_is_not_its_diff_id_is_not_run(tmp_path: Path, env: dict[str, str]) -> None:
    """The config names the genuine layer; the manifest carries another (digest-correct) blob."""
    evil = tar_of({"bin/app": b"EVIL!!!"})
    push_layer_blobs(LayoutStore(tmp_path / "img"), [gzip.compress(evil, mtime=0)], tag="t",
                     diff_ids=[sha256(GENUINE)])
    proc = pallet("run", f"oci:{tmp_path}/img:t", env=env, check=False)
    one_line_error(proc, f"its uncompressed content has digest {sha256(evil)}",
                   f"lists diff_id {sha256(GENUINE)}")
    assert _cached(env) == []


def test_bytes_after_the_tars_end_are_part_of_the_diff_id(tmp_path: Path) -> None:
    """Same files, more bytes after the end marker: a different layer to its diff_id (and so to
    anything keyed by it), though a tar reader stops before them."""
    padded = GENUINE + END_OF_ARCHIVE + b"hidden payload".ljust(512, b"\0")
    with Unpacker(tmp_path / "ok") as unpacker:
        unpacker.apply(io.BytesIO(gzip.compress(padded)), diff_id=sha256(padded))
    assert (tmp_path / "ok" / "bin" / "app").read_bytes() == b"genuine"
    with Unpacker(tmp_path / "bad") as unpacker, pytest.raises(DigestMismatchError, match="diff_id"):
        unpacker.apply(io.BytesIO(gzip.compress(padded)), diff_id=sha256(GENUINE))


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_a_genuine_layer_unpacks_with_its_diff_id_checked(tmp_path: Path, compression: str) -> None:
    from builder.oci import compress

    blob = {"gzip": gzip.compress(GENUINE), "zstd": compress.compress_bytes(GENUINE, compress.ZSTD),
            "none": GENUINE}[compression]
    with Unpacker(tmp_path / "r") as unpacker:
        unpacker.apply(io.BytesIO(blob), diff_id=sha256(GENUINE))
    assert (tmp_path / "r" / "bin" / "app").read_bytes() == b"genuine"


def _modes_layer() -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, mode in (("var/tmp", tarfile.DIRTYPE, 0o1777), ("opt/open", tarfile.DIRTYPE, 0o777),
                                 ("opt/open/run.sh", tarfile.REGTYPE, 0o777), ("etc/conf", tarfile.REGTYPE, 0o666)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = kind, mode
            tf.addfile(ti, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def test_the_rootfs_cache_has_nothing_world_writable(tmp_path: Path) -> None:
    """Any local user could add files to an image's /var/tmp (1777), or rewrite a 0777 script,
    in the cache that later runs of the image mount. Mounted read-only, the image never
    writes there itself: the world-write bit goes, the rest (sticky, exec) stays."""
    import os
    import stat

    from builder.lifecycle import rootfs
    from builder.oci.image import load_image

    push_layer_blobs(LayoutStore(tmp_path / "img"), [_modes_layer()], tag="t")
    root = rootfs.unpack_image(load_image(LayoutStore(tmp_path / "img"), "t"), tmp_path / "cache")
    modes = {p.relative_to(root).as_posix(): stat.S_IMODE(os.lstat(p).st_mode) for p in root.rglob("*")}
    assert not [name for name, mode in modes.items() if mode & stat.S_IWOTH], modes
    assert modes["var/tmp"] == 0o1775 and modes["opt/open"] == 0o775 and modes["opt/open/run.sh"] == 0o775
    assert modes["etc/conf"] == 0o664
    # other unpacks (a restored build cache) keep every bit: its layers are exported again
    with Unpacker(tmp_path / "faithful") as unpacker:
        unpacker.apply(io.BytesIO(_modes_layer()))
    assert stat.S_IMODE(os.lstat(tmp_path / "faithful" / "var" / "tmp").st_mode) == 0o1777


def test_a_decompression_bomb_stops_before_the_disk_is_full(tmp_path: Path) -> None:
    """A zstd layer of a few kilobytes may hold 32 GB of zeros: unpacking wrote them until the
    host's disk was full (every other program's ENOSPC) and only then failed. Now the unpacker
    looks at the free space as it writes and stops while ``min_free`` is left (the rootfs cache
    keeps 512 MiB); the same layer, with room to spare, unpacks."""
    import os

    import zstandard

    from builder.oci.unpack import UnpackError

    size = 80 << 20
    bomb = zstandard.ZstdCompressor().compress(tar_of({"zeros": bytes(size)}))
    assert len(bomb) < size // 1000
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    with Unpacker(tmp_path / "tight", min_free=free + (1 << 30)) as unpacker:
        with pytest.raises(UnpackError, match="would leave less than .* MiB free on its file system"):
            unpacker.apply(io.BytesIO(bomb))
    assert (tmp_path / "tight" / "zeros").stat().st_size < size
    with Unpacker(tmp_path / "roomy", min_free=1 << 20) as unpacker:
        unpacker.apply(io.BytesIO(bomb))
    assert (tmp_path / "roomy" / "zeros").stat().st_size == size


def test_a_layer_of_empty_entries_is_counted_toward_the_free_space(tmp_path: Path) -> None:
    """Only file bytes counted toward the next look at the free space: a layer of millions of
    empty directories (each an inode and a block) wrote no byte and filled the disk unchecked.
    Each entry now counts too."""
    import os
    import tarfile

    from builder.oci.unpack import UnpackError

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i in range(20_000):
            dirinfo = tarfile.TarInfo(f"d{i}")
            dirinfo.type = tarfile.DIRTYPE
            tf.addfile(dirinfo)
    st = os.statvfs(tmp_path)
    with Unpacker(tmp_path / "tight", min_free=st.f_bavail * st.f_frsize + (1 << 30)) as unpacker:
        with pytest.raises(UnpackError, match="would leave less than .* MiB free on its file system"):
            unpacker.apply(io.BytesIO(buf.getvalue()))
    assert len(os.listdir(tmp_path / "tight")) < 20_000
