"""Trees to layers: the difference of two root file systems, and how a tree is finished."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from builder.oci.layer import layer_from_entries
from builder.oci.unpack import unpack_layers
from builder.stacks import assemble, spec
from builder.stacks.errors import AssemblyError
from builder.stacks.tree import diff_entries, scan, tree_entries

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files other owners")


def make_lower(root: Path) -> Path:
    for d in ("etc", "usr/bin", "usr/lib", "var/lib/dpkg", "gone/deep", "replaced", "var/mail"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/shadow").chmod(0o640)
    (root / "usr/bin/tool").write_bytes(b"v1")
    (root / "usr/bin/tool").chmod(0o755)
    (root / "usr/bin/same").write_bytes(b"same")
    (root / "usr/lib/libx.so.1").write_bytes(b"lib")
    (root / "usr/lib/libx.so").symlink_to("libx.so.1")
    (root / "gone/deep/file").write_bytes(b"x")
    (root / "replaced/child").write_bytes(b"x")
    (root / "old-file").write_bytes(b"old")
    (root / "perl").write_bytes(b"perl binary")
    os.link(root / "perl", root / "usr/bin/perl5")
    (root / "var/lib/dpkg/status").write_text("Package: a\n")
    return root


def copy_tree(src: Path, dst: Path) -> Path:
    """A copy that keeps hard links, modes and owners (``cp -a``), as a second assembly would have."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def make_upper(lower: Path, upper: Path) -> Path:
    copy_tree(lower, upper)
    (upper / "usr/bin/tool").write_bytes(b"v2")  # changed content
    (upper / "usr/bin/new").write_bytes(b"new")  # added
    (upper / "usr/bin/new").chmod(0o755)
    (upper / "usr/lib/libx.so").unlink()
    (upper / "usr/lib/libx.so").symlink_to("libx.so.2")  # changed link target
    shutil.rmtree(upper / "gone")  # removed directory: one whiteout
    shutil.rmtree(upper / "replaced")
    (upper / "replaced").write_bytes(b"now a file")  # dir -> file: replaces it whole, no whiteout
    (upper / "old-file").unlink()
    (upper / "var/lib/dpkg/status").write_text("Package: a\n\nPackage: b\n")
    (upper / "usr/share/doc/b").mkdir(parents=True)
    (upper / "usr/share/doc/b/copyright").write_text("c")
    (upper / "usr/bin/same").chmod(0o700)  # mode change only
    return upper


def names(entries) -> dict[str, object]:
    return {e.path: e for e in entries}


def test_diff_has_changes_whiteouts_and_parents_only(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    upper = make_upper(lower, tmp_path / "upper")
    got = names(diff_entries(lower, upper))
    assert set(got) == {
        "usr", "usr/bin", "usr/bin/tool", "usr/bin/new", "usr/bin/same", "usr/lib", "usr/lib/libx.so",
        ".wh.gone", "replaced", ".wh.old-file", "var", "var/lib", "var/lib/dpkg", "var/lib/dpkg/status",
        "usr/share", "usr/share/doc", "usr/share/doc/b", "usr/share/doc/b/copyright"}
    assert got["usr/lib/libx.so"].link_target == "libx.so.2"
    assert got["usr/bin/same"].mode == 0o700
    assert got["usr/bin/new"].mode == 0o755


def test_diff_layer_on_lower_gives_the_upper_tree(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    upper = make_upper(lower, tmp_path / "upper")
    layer_from_entries(list(tree_entries(lower)), tmp_path / "l1.tar", compression="none")
    layer_from_entries(diff_entries(lower, upper), tmp_path / "l2.tar", compression="none")
    out = tmp_path / "out"
    unpack_layers([tmp_path / "l1.tar", tmp_path / "l2.tar"], out)
    want, have = scan(upper), scan(out)
    strip = lambda nodes: {p: (n.type, n.mode, n.size, n.target) for p, n in nodes.items()}  # noqa: E731
    assert strip(have) == strip(want)
    for path, n in want.items():
        if n.type == "file":
            assert (out / path).read_bytes() == (upper / path).read_bytes()
    # the same trees elsewhere give the same layer, byte for byte
    a = layer_from_entries(diff_entries(lower, upper), tmp_path / "a.tar", compression="none")
    (tmp_path / "x").mkdir()
    copy_tree(lower, tmp_path / "x/lower")
    copy_tree(upper, tmp_path / "x/upper")
    b = layer_from_entries(diff_entries(tmp_path / "x/lower", tmp_path / "x/upper"), tmp_path / "b.tar",
                           compression="none")
    assert a.digest == b.digest


def test_identical_trees_give_an_empty_diff(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    assert diff_entries(lower, copy_tree(lower, tmp_path / "copy")) == []


def test_hard_link_groups_travel_together(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    upper = tmp_path / "upper"
    shutil.copytree(lower, upper, symlinks=True)
    # shutil.copytree does not keep hard links: the pair is now two files, which is a change
    got = names(diff_entries(lower, upper))
    assert {"perl", "usr/bin/perl5"} <= set(got)
    # relink them: unchanged again
    (upper / "usr/bin/perl5").unlink()
    os.link(upper / "perl", upper / "usr/bin/perl5")
    assert diff_entries(lower, upper) == []
    # one member changes: both go in, the first in layer order carries the data
    (upper / "perl").unlink()
    (upper / "perl").write_bytes(b"perl v2")
    (upper / "usr/bin/perl5").unlink()
    os.link(upper / "perl", upper / "usr/bin/perl5")
    got = names(diff_entries(lower, upper))
    assert got["perl"].type == "file" and got["usr/bin/perl5"].type == "hardlink"
    assert got["usr/bin/perl5"].link_target == "perl"


@root_only
def test_owners_are_part_of_the_difference(tmp_path: Path) -> None:
    lower = make_lower(tmp_path / "lower")
    os.chown(lower / "etc/shadow", 0, 42)
    os.chown(lower / "var/mail", 0, 8)
    upper = copy_tree(lower, tmp_path / "upper")
    assert diff_entries(lower, upper) == []
    os.chown(upper / "usr/bin/tool", 1000, 1000)
    got = names(diff_entries(lower, upper))
    assert set(got) == {"usr", "usr/bin", "usr/bin/tool"}
    assert (got["usr/bin/tool"].uid, got["usr/bin/tool"].gid) == (1000, 1000)
    layer = layer_from_entries(list(tree_entries(lower)), tmp_path / "base.tar", compression="none")
    with tarfile.open(layer.path) as tf:
        assert (tf.getmember("etc/shadow").gid, tf.getmember("var/mail").gid) == (42, 8)


# -- finishing a tree -----------------------------------------------------------------------------


def fake_tree(root: Path) -> Path:
    for d in ("etc/apt/apt.conf.d", "etc/dpkg/dpkg.cfg.d", "dev", "proc", "run/lock", "tmp", "var/log/apt",
              "var/cache/apt/archives/partial", "var/lib/apt/lists", "var/cache/ldconfig", "usr/sbin",
              "usr/share/doc/bash", "usr/share/doc/coreutils", "usr/share/man/man1", "usr/share/locale/de/LC_MESSAGES",
              "var/lib/dpkg", "home"):
        (root / d).mkdir(parents=True, exist_ok=True)
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n", "etc/group": "root:x:0:\nshadow:x:42:\n",
        "etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n", "etc/passwd-": "old\n",
        "etc/hostname": "buildhost\n", "etc/resolv.conf": "nameserver 10.0.0.1\n", "etc/machine-id": "abc\n",
        "etc/apt/apt.conf.d/99mmdebstrap": 'Acquire::http::Proxy "http://secret-proxy:3128";\n',
        "etc/dpkg/dpkg.cfg.d/99mmdebstrap": "force-unsafe-io\n", "etc/apt/sources.list": "deb http://host-mirror\n",
        "var/log/dpkg.log": "today\n", "var/log/apt/history.log": "x", "var/cache/apt/pkgcache.bin": "x",
        "var/cache/apt/archives/bash.deb": "x", "var/lib/apt/lists/x_Packages": "x",
        "var/cache/ldconfig/aux-cache": "x", "tmp/junk": "x", "run/lock/x": "x", "var/lib/dpkg/status-old": "x",
        "usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n", "usr/sbin/start-stop-daemon": "fake",
        "usr/sbin/start-stop-daemon.REAL": "real", "usr/share/doc/bash/copyright": "c",
        "usr/share/doc/bash/changelog.gz": "x", "usr/share/man/man1/bash.1.gz": "x",
        "usr/share/locale/de/LC_MESSAGES/bash.mo": "x",
    }
    for rel, text in files.items():
        (root / rel).write_text(text)
    (root / "usr/share/doc/libfoo").symlink_to("bash")
    (root / "proc").chmod(0o555)
    (root / "dev/null").write_text("")  # a stand-in: device nodes need root and go the same way
    return root


@root_only
def test_finish_tree_removes_host_and_run_state_prunes_docs_and_adds_the_user(tmp_path: Path) -> None:
    root = fake_tree(tmp_path / "t")
    stack = spec.load(Path(__file__).resolve().parent.parent / "stacks" / "tiny.toml")
    assemble.finish_tree(root, stack, epoch=1700000000)
    left = {str(p.relative_to(root)) for p in root.rglob("*")}
    for gone in ("etc/hostname", "etc/resolv.conf", "etc/apt/apt.conf.d/99mmdebstrap", "etc/dpkg/dpkg.cfg.d/99mmdebstrap",
                 "etc/apt/sources.list", "etc/passwd-", "var/log/dpkg.log", "var/log/apt/history.log",
                 "var/cache/apt/pkgcache.bin", "var/cache/apt/archives", "var/lib/apt/lists/x_Packages",
                 "var/cache/ldconfig/aux-cache", "tmp/junk", "run/lock", "dev/null", "var/lib/dpkg/status-old",
                 "usr/sbin/policy-rc.d", "usr/sbin/start-stop-daemon.REAL", "usr/share/doc/bash/changelog.gz",
                 "usr/share/man/man1/bash.1.gz", "usr/share/locale/de", "usr/share/doc/libfoo",
                 "usr/share/doc/coreutils", "usr/share/man/man1"):
        assert gone not in left, gone
    assert (root / "usr/sbin/start-stop-daemon").read_text() == "real"
    assert (root / "usr/share/doc/bash/copyright").read_text() == "c"
    assert (root / "etc/machine-id").read_text() == ""
    assert oct((root / "proc").stat().st_mode & 0o7777) == "0o755"
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (root / "etc/passwd").read_text().endswith("cnb:x:1000:1000::/home/cnb:/bin/bash\n")
    assert (root / "etc/group").read_text().endswith("cnb:x:1000:\n")
    assert (root / "etc/shadow").read_text().endswith(f"cnb:!:{1700000000 // 86400}:0:99999:7:::\n")
    assert (root / "etc/gshadow").read_text().endswith("cnb:!::\n")
    home = (root / "home/cnb").stat()
    assert (home.st_uid, home.st_gid, home.st_mode & 0o7777) == (1000, 1000, 0o755)
    # finishing twice changes nothing (the base tree and an image tree go through it alike)
    before = {p: n for p, n in scan(root).items()}
    assemble.finish_tree(root, stack, epoch=1700000000)
    assert scan(root) == before


@root_only
def test_user_ids_taken_by_the_image_are_an_error(tmp_path: Path) -> None:
    root = fake_tree(tmp_path / "t")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nsomeone:x:1000:1000::/:/bin/sh\n")
    with pytest.raises(AssemblyError, match="uid 1000 is already user 'someone'"):
        assemble.add_user(root, spec.User(), 1)


def test_cleaning_never_follows_links_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    (outside / "log" / "apt").mkdir(parents=True)
    (outside / "log" / "apt" / "precious").write_text("keep me")
    root = tmp_path / "t"
    (root / "var").mkdir(parents=True)
    (root / "var" / "log").symlink_to(outside / "log")  # an absolute link means the image's /..., not ours
    (root / "etc").mkdir()
    (root / "etc" / "resolv.conf").symlink_to(outside / "log")
    assemble.clean_tree(root)
    assert (outside / "log" / "apt" / "precious").read_text() == "keep me"
    assert not os.path.lexists(root / "etc" / "resolv.conf")  # the link itself goes
