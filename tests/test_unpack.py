"""Safe unpacking: layers round-trip, whiteouts apply, and nothing escapes the root."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest

from builder.errors import UnsafeArchiveError
from builder.oci import compress, layer, unpack
from builder.oci.layer import Entry, layer_from_entries, write_layer
from builder.oci.unpack import CorruptLayerError, UnpackError, iter_layer_entries, unpack_layer, unpack_layers

is_root = os.geteuid() == 0


# -- crafting layers our writer would never make ------------------------------------------


def tar_of(*items: tuple) -> bytes:
    """A tar from (kind, name, value) items: file/data, dir, symlink/target, hardlink/target, ..."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, *rest in items:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_000_000_000
            if kind == "file":
                data = rest[0] if rest else b""
                ti.size = len(data)
                ti.mode = rest[1] if len(rest) > 1 else 0o644
                tf.addfile(ti, io.BytesIO(data))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, (rest[0] if rest else 0o755)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, rest[0]
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, rest[0]
            elif kind == "char":
                ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 1, 3, 0o666
            elif kind == "fifo":
                ti.type, ti.mode = tarfile.FIFOTYPE, 0o640
            tf.addfile(ti)
    return buf.getvalue()


def apply(root: Path, *layers: bytes) -> list[str]:
    return unpack_layers([io.BytesIO(b) for b in layers], root)


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): a target directory and a sibling that must never be touched."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"precious")
    return root, outside


def untouched(outside: Path) -> bool:
    return sorted(p.name for p in outside.iterdir()) == ["keep"] and (outside / "keep").read_bytes() == b"precious"


# -- round trips ---------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("f", stat.S_IMODE(st.st_mode), Path(p).read_bytes())
    return out


def make_src(src: Path) -> Path:
    (src / "usr" / "bin").mkdir(parents=True)
    (src / "usr" / "bin" / "app").write_bytes(b"\x7fELF...")
    (src / "usr" / "bin" / "app").chmod(0o4755)
    (src / "etc").mkdir()
    (src / "etc" / "shadow").write_bytes(b"root:*:")
    (src / "etc" / "shadow").chmod(0o640)
    (src / "ro").mkdir()
    (src / "ro" / "inside").write_bytes(b"in a read-only directory")
    (src / "bin").symlink_to("usr/bin")
    (src / "abs").symlink_to("/usr/bin/app")
    os.link(src / "usr" / "bin" / "app", src / "etc" / "app-link")
    (src / "big").write_bytes(os.urandom(3 << 20))
    (src / "ro").chmod(0o555)
    return src


@pytest.mark.parametrize("compression", compress.COMPRESSIONS)
def test_a_written_layer_unpacks_to_the_same_tree(tmp_path: Path, compression: str) -> None:
    src = make_src(tmp_path / "src")
    result = write_layer(src, tmp_path / "layer", compression=compression, uid=1234, gid=5678)
    dest = tmp_path / "dest"
    assert unpack_layer(tmp_path / "layer", dest, keep_privileges=True) == []
    assert snapshot(dest) == snapshot(src)
    a, b = os.stat(dest / "usr" / "bin" / "app"), os.stat(dest / "etc" / "app-link")
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert a.st_mtime == layer.default_mtime()
    assert os.stat(dest / "ro").st_mtime == layer.default_mtime()  # set after its children
    if is_root:
        assert (a.st_uid, a.st_gid) == (1234, 5678)
        assert stat.S_IMODE(a.st_mode) == 0o4755  # setuid survives the chown
    # and the tree we unpacked makes the very same layer again
    assert write_layer(dest, tmp_path / "again", compression=compression, uid=1234, gid=5678).digest == result.digest


def test_ownership_is_ignored_when_not_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpack.os, "geteuid", lambda: 1000)
    blob = tar_of(("file", "f", b"x", 0o755), ("char", "dev/null"), ("fifo", "pipe"))
    skipped = apply(tmp_path / "root", blob)
    assert skipped == ["dev/null"]
    st = os.stat(tmp_path / "root" / "f")
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert stat.S_ISFIFO(os.lstat(tmp_path / "root" / "pipe").st_mode)
    assert not (tmp_path / "root" / "dev" / "null").exists()


@pytest.mark.skipif(not is_root, reason="needs root to become another user")
def test_unpacking_as_an_ordinary_user() -> None:
    """A real unprivileged run: read-only directories still get their children, owners and
    devices are left alone, and nothing needs root."""
    blob = tar_of(("dir", "ro", 0o555), ("file", "ro/inside", b"x", 0o4755), ("char", "dev/null"),
                  ("fifo", "pipe"))
    work = Path(tempfile.mkdtemp(prefix="pallet-user-", dir="/tmp"))  # pytest's tmp is root-only
    os.chown(work, 65534, 65534)
    pid = os.fork()
    if pid == 0:  # the child becomes nobody and unpacks
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            skipped = unpack_layer(io.BytesIO(blob), work / "root", keep_privileges=True)
            st = os.stat(work / "root" / "ro" / "inside")
            ok = (skipped == ["dev/null"] and st.st_uid == 65534 and stat.S_IMODE(st.st_mode) == 0o4755
                  and stat.S_IMODE(os.stat(work / "root" / "ro").st_mode) == 0o555
                  and stat.S_ISFIFO(os.lstat(work / "root" / "pipe").st_mode))
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(work)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not is_root, reason="device nodes need root")
def test_devices_are_made_as_root(tmp_path: Path) -> None:
    unpack_layers([io.BytesIO(tar_of(("char", "dev/null")))], tmp_path / "root", keep_privileges=True)
    st = os.lstat(tmp_path / "root" / "dev" / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def test_long_names_and_links_unpack(tmp_path: Path) -> None:
    long_file = "/".join(["a" * 120, "b" * 120, "c" * 60])
    entries = [Entry.file(long_file, b"deep"), Entry.symlink("s" * 150, "t" * 200),
               Entry.hardlink("h" * 110, long_file)]
    buf = io.BytesIO()
    layer_from_entries(entries, buf)
    root = tmp_path / "root"
    unpack_layer(io.BytesIO(buf.getvalue()), root)
    assert (root / long_file).read_bytes() == b"deep"
    assert os.readlink(root / ("s" * 150)) == "t" * 200
    assert os.stat(root / ("h" * 110)).st_ino == os.stat(root / long_file).st_ino


def test_iter_layer_entries_lists_without_touching_disk(tmp_path: Path) -> None:
    for compression in compress.COMPRESSIONS:
        buf = io.BytesIO()
        layer_from_entries([Entry.file("a/b", b"xyz", mode=0o600), Entry.symlink("l", "a/b"),
                            Entry.file("a/.wh.gone")], buf, compression=compression, uid=7, gid=8)
        entries = list(iter_layer_entries(io.BytesIO(buf.getvalue())))
        assert [(e.path, e.type) for e in entries] == [("a", "dir"), ("a/.wh.gone", "file"), ("a/b", "file"),
                                                       ("l", "symlink")]
        b = entries[2]
        assert (b.mode, b.size, b.uid, b.gid, b.mtime) == (0o600, 3, 7, 8, layer.default_mtime())
        assert entries[3].link_target == "a/b"
        assert [e.is_whiteout for e in entries] == [False, True, False, False]


def test_leading_dot_slash_names_and_root_entry(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    root.chmod(0o700)
    apply(root, tar_of(("dir", "./", 0o777), ("dir", "./etc"), ("file", "./etc/hosts", b"127.0.0.1")))
    assert (root / "etc" / "hosts").read_bytes() == b"127.0.0.1"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700  # the root stays the caller's


# -- escapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("items,entry", [
    ((("file", "/abs/evil", b"x"),), "/abs/evil"),
    ((("file", "../evil", b"x"),), "../evil"),
    ((("dir", "a"), ("file", "a/../../evil", b"x")), "a/../../evil"),
    ((("symlink", "s", "target"), ("hardlink", "h", "/etc/passwd")), "/etc/passwd"),
    ((("file", "f", b"x"), ("hardlink", "h", "../f")), "../f"),
    ((("file", ".wh...", b""),), ".wh..."),
])
def test_names_that_leave_the_root_are_refused(box: tuple[Path, Path], items: tuple, entry: str) -> None:
    root, outside = box
    with pytest.raises(UnsafeArchiveError, match=re_escape(entry)):
        apply(root, tar_of(*items))
    assert untouched(outside)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_writing_through_an_absolute_symlink_is_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(UnsafeArchiveError, match=r"'link/evil'.*outside the root"):
        apply(root, tar_of(("symlink", "link", str(outside)), ("file", "link/evil", b"x")))
    assert untouched(outside)
    assert os.readlink(root / "link") == str(outside)  # the symlink itself is just data


def test_writing_through_a_relative_symlink_that_climbs_out_is_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(UnsafeArchiveError, match="link/evil"):
        apply(root, tar_of(("symlink", "link", "../outside"), ("file", "link/evil", b"x")))
    assert untouched(outside)


def test_symlink_chains_are_followed_to_the_end(box: tuple[Path, Path]) -> None:
    root, outside = box
    chain = tar_of(("dir", "d"), ("symlink", "d/a", "../b"), ("symlink", "b", "c/.."), ("dir", "c"),
                   ("symlink", "e", "d/a/../../outside"), ("file", "e/evil", b"x"))
    with pytest.raises(UnsafeArchiveError, match="e/evil"):
        apply(root, chain)
    assert untouched(outside)


def test_symlink_from_a_lower_layer_is_checked_too(box: tuple[Path, Path]) -> None:
    root, outside = box
    apply(root, tar_of(("dir", "x"), ("symlink", "x/up", "../../outside")))
    with pytest.raises(UnsafeArchiveError, match="x/up/evil"):
        apply(root, tar_of(("file", "x/up/evil", b"x")))
    assert untouched(outside)


def test_hard_link_through_an_escaping_symlink_is_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(UnsafeArchiveError, match="'h'"):
        apply(root, tar_of(("symlink", "s", "../outside"), ("hardlink", "h", "s/keep")))
    assert untouched(outside)
    assert not (root / "h").exists()


def test_hard_link_to_a_symlink_links_the_symlink_not_its_target(box: tuple[Path, Path]) -> None:
    root, outside = box
    apply(root, tar_of(("symlink", "s", str(outside / "keep")), ("hardlink", "h", "s"), ))
    assert os.readlink(root / "h") == str(outside / "keep")
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino
    assert os.stat(outside / "keep").st_nlink == 1 and untouched(outside)


def test_symlink_loops_are_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(UnsafeArchiveError, match="too many levels"):
        apply(root, tar_of(("symlink", "a", "b"), ("symlink", "b", "a"), ("file", "a/x", b"x")))


def test_an_existing_symlink_is_replaced_not_written_through(box: tuple[Path, Path]) -> None:
    root, outside = box
    apply(root, tar_of(("symlink", "f", str(outside / "keep")), ("symlink", "d", str(outside))))
    apply(root, tar_of(("file", "f", b"new"), ("dir", "d")))
    assert (root / "f").read_bytes() == b"new" and not (root / "f").is_symlink()
    assert (root / "d").is_dir() and not (root / "d").is_symlink()
    assert untouched(outside)


def test_relative_symlinks_inside_the_root_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, tar_of(("dir", "usr"), ("dir", "usr/lib"), ("symlink", "lib", "usr/lib")))
    apply(root, tar_of(("file", "lib/libx.so", b"elf")))
    assert (root / "usr" / "lib" / "libx.so").read_bytes() == b"elf"
    assert (root / "lib").is_symlink()


def test_a_directory_reached_through_a_symlink_gets_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, tar_of(("dir", "usr"), ("dir", "usr/lib"), ("symlink", "lib", "usr/lib")))
    apply(root, tar_of(("dir", "lib/sub", 0o750), ("file", "lib/sub/f", b"f")))
    assert stat.S_IMODE(os.stat(root / "usr" / "lib" / "sub").st_mode) == 0o750
    assert (root / "usr" / "lib" / "sub" / "f").read_bytes() == b"f"


def test_what_the_file_system_refuses_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UnpackError, match="'h'"):
        apply(tmp_path / "root", tar_of(("dir", "d"), ("hardlink", "h", "d")))  # no hard links to dirs


def test_a_file_under_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchiveError, match="not a directory"):
        apply(tmp_path / "root", tar_of(("file", "f", b"x"), ("file", "f/g", b"y")))


@pytest.mark.parametrize("compression", compress.COMPRESSIONS)
def test_truncated_layers_are_reported_as_corrupt(tmp_path: Path, compression: str) -> None:
    tar = tar_of(("file", "f", os.urandom(50_000)), ("file", "g", b"y"))
    good = compress.compress_bytes(tar, compression)
    with pytest.raises(CorruptLayerError, match="fetch or build it again"):
        apply(tmp_path / "root", good[: len(good) // 2])
    with pytest.raises(CorruptLayerError):
        list(iter_layer_entries(io.BytesIO(good[: len(good) // 2])))


# -- whiteouts -----------------------------------------------------------------------------


def test_whiteouts_delete_from_lower_layers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lower = tar_of(("dir", "a"), ("file", "a/one", b"1"), ("file", "a/two", b"2"), ("dir", "b"),
                   ("file", "b/inner", b"i"), ("symlink", "c", "a"))
    upper = tar_of(("file", "a/.wh.one"), ("file", ".wh.b"), ("file", ".wh.c"), ("file", "a/.wh.never-there"))
    apply(root, lower, upper)
    assert snapshot(root) == {"a": ("d", 0o755), "a/two": ("f", 0o644, b"2")}


def test_opaque_whiteout_keeps_only_the_new_layer_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lower = tar_of(("dir", "d"), ("file", "d/old", b"o"), ("dir", "d/olddir"), ("file", "d/olddir/x", b"x"))
    # "-first" sorts before ".wh..wh..opq": an entry of the same layer written before the
    # marker must survive it
    upper = tar_of(("dir", "d"), ("file", "d/-first", b"f"), ("file", "d/.wh..wh..opq"), ("file", "d/new", b"n"))
    apply(root, lower, upper)
    assert sorted(os.listdir(root / "d")) == ["-first", "new"]


def test_a_layer_does_not_white_out_its_own_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, tar_of(("file", "keep", b"k"), ("file", ".wh.keep")))
    assert (root / "keep").read_bytes() == b"k"


def test_whiteouts_through_an_escaping_symlink_are_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    apply(root, tar_of(("symlink", "s", "../outside")))
    with pytest.raises(UnsafeArchiveError, match=r"s/\.wh\.keep"):
        apply(root, tar_of(("file", "s/.wh.keep")))
    with pytest.raises(UnsafeArchiveError, match="opq"):
        apply(root, tar_of(("file", "s/.wh..wh..opq")))
    assert untouched(outside)


def test_layers_replace_files_with_directories_and_back(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, tar_of(("file", "x", b"file"), ("dir", "y"), ("file", "y/z", b"z")))
    apply(root, tar_of(("dir", "x"), ("file", "x/in", b"in"), ("file", "y", b"now a file")))
    assert (root / "x" / "in").read_bytes() == b"in"
    assert (root / "y").read_bytes() == b"now a file"


def test_whiteout_entries_are_never_materialised(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, tar_of(("dir", "d"), ("file", "d/.wh..wh..opq"), ("file", "d/.wh.x"), ("file", "d/.wh..wh.plnk")))
    assert os.listdir(root / "d") == []
