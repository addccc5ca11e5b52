"""Hostile image indexes (issue 11, third sweep): indexes nested thousands deep, and an index that
lists one image thousands of times at every level. Content addressing rules out a cycle, but not
depth or repetition: copy recursed once per level (a RecursionError, reported as "index.json is
unreadable") and fetched each listed child again every time it was listed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from builder.oci import mediatypes as mt
from builder.oci.copy import MAX_INDEX_DEPTH, copy_image
from builder.oci.stores.layout import LayoutStore
from tests.cli import pallet
from tests.imagekit import push_image
from tests.test_hostile_inputs import one_line_error


def _index_of(store: LayoutStore, children: list[dict], tag: str | None = None):
    data = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children}).encode()
    return store.put_manifest(data, mt.OCI_INDEX, tag=tag)


def test_indexes_nested_thousands_deep_are_refused_by_copy(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "src")
    desc, _ = push_image(store, [{"a": b"1"}], tag=None)
    for _ in range(1500):
        desc = _index_of(store, [desc.to_json()])
    _index_of(store, [desc.to_json()], tag="t")
    proc = pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{tmp_path}/dst:t", check=False)
    one_line_error(proc, f"nests indexes more than {MAX_INDEX_DEPTH} deep")
    assert not (tmp_path / "dst" / "index.json").exists() or LayoutStore(tmp_path / "dst").list_tags() == []


def test_an_index_of_indexes_within_the_limit_is_copied(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "src")
    desc, _ = push_image(store, [{"a": b"1"}], tag=None)
    for _ in range(MAX_INDEX_DEPTH - 1):
        desc = _index_of(store, [desc.to_json()])
    top = _index_of(store, [desc.to_json()], tag="t")
    pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{tmp_path}/dst:t")
    assert LayoutStore(tmp_path / "dst").resolve("t").digest == top.digest


class _Counting(LayoutStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fetched: list[str] = []

    def get_manifest(self, ref: str):  # noqa: ANN201
        self.fetched.append(ref)
        return super().get_manifest(ref)


def test_an_index_listing_one_child_many_times_fetches_it_once(tmp_path: Path) -> None:
    """Ten levels of 'the level below, 50 times' would be 50^10 fetches."""
    store = LayoutStore(tmp_path / "src")
    desc, _ = push_image(store, [{"a": b"1"}], tag=None)
    for _ in range(MAX_INDEX_DEPTH - 1):
        desc = _index_of(store, [desc.to_json()] * 50)
    _index_of(store, [desc.to_json()] * 50, tag="t")
    src = _Counting(tmp_path / "src")
    copy_image(src, "t", LayoutStore(tmp_path / "dst"), "t")
    assert len(src.fetched) == MAX_INDEX_DEPTH + 1, len(src.fetched)  # the top, then each level once


# -- fourth sweep: a layout that is someone else's directory ----------------------------------


def _layout_with_image(tmp_path: Path) -> tuple[Path, LayoutStore]:
    src = LayoutStore(tmp_path / "src")
    push_image(src, [{"bin/app": b"#!/bin/sh\n"}], tag="t")
    return tmp_path / "src", src


def test_blobs_are_not_written_through_a_symlinked_blob_directory(tmp_path: Path) -> None:
    """``blobs/sha256 -> /etc/cron.d`` in a shared layout: pallet copy wrote the image's blobs
    (bytes its author chose, named by hex digests cron accepts) there."""
    _layout_with_image(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    for link in ("blobs/sha256", "blobs"):
        dst = tmp_path / f"dst-{link.replace('/', '-')}"
        LayoutStore(dst)._ensure(for_write=True)  # an empty layout, as pallet makes one
        victim = dst / link
        shutil.rmtree(victim)
        victim.symlink_to(outside)
        proc = pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{dst}:t", check=False)
        one_line_error(proc, "is a symlink", "refusing to write blobs through it")
        assert list(outside.iterdir()) == []
        assert json.loads((dst / "index.json").read_text())["manifests"] == []


def test_the_layout_lock_is_not_created_through_a_symlink(tmp_path: Path) -> None:
    """O_CREAT followed ``.pallet.lock -> /etc/nologin`` and made that file (no more logins)."""
    _layout_with_image(tmp_path)
    dst = tmp_path / "dst"
    LayoutStore(dst)._ensure(for_write=True)
    (dst / ".pallet.lock").unlink(missing_ok=True)
    (dst / ".pallet.lock").symlink_to(tmp_path / "nologin")
    proc = pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{dst}:t", check=False)
    one_line_error(proc, ".pallet.lock is a symlink")
    assert not (tmp_path / "nologin").exists()


def test_a_layout_with_real_blob_directories_is_written_as_before(tmp_path: Path) -> None:
    _layout_with_image(tmp_path)
    proc = pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{tmp_path}/dst:t", check=False)
    assert proc.returncode == 0, proc.stderr
    assert LayoutStore(tmp_path / "dst").resolve("t").digest == LayoutStore(tmp_path / "src").resolve("t").digest


def _inspect_capped(ref: str):
    """``pallet inspect REF`` with 1 GiB of address space: reading a sparse file whole is MemoryError."""
    import os
    import resource
    import subprocess
    import sys

    from tests.cli import ROOT

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "builder", "inspect", ref], capture_output=True, text=True,
                          preexec_fn=cap, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _sparse(path: Path, size: int = 8 << 30, head: bytes = b"") -> None:
    path.unlink()
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def test_sparse_layout_files_are_not_read_whole(tmp_path: Path) -> None:
    """A stranger's layout with an 8 GB sparse index.json, oci-layout, manifest or config:
    each was read whole into memory before its size or digest was checked."""
    from builder.oci.model import Manifest

    for victim in ("index.json", "oci-layout", "manifest", "config"):
        root = tmp_path / victim
        store = LayoutStore(root)
        desc, _ = push_image(store, [{"bin/app": b"x"}], tag="t")
        blobs = root / "blobs" / "sha256"
        if victim in ("index.json", "oci-layout"):
            _sparse(root / victim, head=b"{")
        elif victim == "manifest":
            _sparse(blobs / desc.digest.split(":")[1])
        else:
            config = Manifest.from_bytes(store.get_manifest("t")[1]).config
            _sparse(blobs / config.digest.split(":")[1])
        proc = _inspect_capped(f"oci:{root}:t")
        one_line_error(proc)
        assert "MemoryError" not in proc.stderr, (victim, proc.stderr)


def test_a_docker_archive_whose_manifest_json_is_gigabytes_is_refused_unread(tmp_path: Path) -> None:
    """A sparse docker-archive whose manifest.json member is 8 GB of zeros: read whole into memory."""
    import tarfile

    path = tmp_path / "big.tar"
    info = tarfile.TarInfo("manifest.json")
    info.size = 8 << 30
    with open(path, "wb") as f:
        f.write(info.tobuf(format=tarfile.GNU_FORMAT))
        f.truncate(512 + info.size + 1024)  # the member's bytes and the end blocks: holes
    proc = _inspect_capped(f"docker-archive:{path}")
    one_line_error(proc, "manifest.json is 8589934592 bytes")


def test_a_docker_archive_of_more_members_than_any_save_is_refused(tmp_path: Path) -> None:
    """Every member of a docker-archive was indexed before anything was read: a tar of millions
    of empty members (half a KB each on disk) was as many objects in memory. Past MAX_MEMBERS,
    the archive is refused."""
    import tarfile

    from builder.oci.stores.archive import MAX_MEMBERS

    header = tarfile.TarInfo("x").tobuf(format=tarfile.USTAR_FORMAT)
    (tmp_path / "many.tar").write_bytes(header * (MAX_MEMBERS + 1) + b"\0" * 1024)
    one_line_error(pallet("inspect", f"docker-archive:{tmp_path}/many.tar", check=False),
                   f"has more than {MAX_MEMBERS} members")


def _extended_header(kind: bytes, size: int, data: bytes = b"") -> bytes:
    """One tar header of ``kind`` (PAX records, a GNU long name) declaring ``size`` bytes, with ``data``."""
    import tarfile

    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, size
    return info.tobuf(tarfile.USTAR_FORMAT) + data + b"\0" * (-len(data) % 512)


def test_a_docker_archive_of_hostile_extended_headers_is_refused_in_one_line(tmp_path: Path) -> None:
    """tarfile reads an extended header whole before its member: a sparse archive's PAX header or
    GNU long name declaring gigabytes was read into memory (MemoryError traceback), and a chain of
    thousands was parsed recursively (RecursionError traceback). The layer reader's bound holds
    for docker-archives too."""
    import tarfile

    from builder.oci.layerread import MAX_HEADER

    with open(tmp_path / "long.tar", "wb") as f:  # sparse: the declared bytes are holes
        f.write(_extended_header(tarfile.GNUTYPE_LONGNAME, MAX_HEADER + 1))
        f.truncate(512 + MAX_HEADER + 512 + 1024)
    one_line_error(pallet("inspect", f"docker-archive:{tmp_path}/long.tar", check=False),
                   f"an extended header of {MAX_HEADER + 1} bytes")
    record = b"13 path=abcd\n"
    (tmp_path / "chain.tar").write_bytes(_extended_header(tarfile.XHDTYPE, len(record), record) * 5000
                                         + b"\0" * 1024)
    one_line_error(pallet("inspect", f"docker-archive:{tmp_path}/chain.tar", check=False),
                   "chain.tar is not a readable tar archive (maximum recursion depth")


def test_an_index_copied_into_a_docker_archive_gives_this_machines_image(tmp_path: Path) -> None:
    """A docker-archive (and the Docker engine) holds one platform's image: the copy of a
    multi-platform image failed, "pick one platform of the image first", and pallet copy has no
    way to pick one. Now the copy takes this machine's platform from the index, as docker pull
    does; an index without it is one line naming the platforms it has."""
    from builder.oci.image import host_platform

    here = host_platform()
    other = "s390x" if here.architecture != "s390x" else "riscv64"
    store = LayoutStore(tmp_path / "src")
    mine, _ = push_image(store, [{"a": b"here"}], tag=None, config_extra={"architecture": here.architecture})
    theirs, _ = push_image(store, [{"a": b"there"}], tag=None, config_extra={"architecture": other})
    platform = {"os": "linux", "architecture": other}
    _index_of(store, [{**theirs.to_json(), "platform": platform},
                      {**mine.to_json(), "platform": {"os": "linux", "architecture": here.architecture}}], tag="both")
    _index_of(store, [{**theirs.to_json(), "platform": platform}], tag="theirs")
    out = pallet("copy", f"oci:{tmp_path}/src:both", f"docker-archive:{tmp_path}/a.tar").stdout
    assert mine.digest in out, out
    info = json.loads(pallet("inspect", "--json", f"docker-archive:{tmp_path}/a.tar").stdout)
    assert info["digest"] == mine.digest, info
    one_line_error(pallet("copy", f"oci:{tmp_path}/src:theirs", f"docker-archive:{tmp_path}/b.tar", check=False),
                   f"has no image for {here}", f"linux/{other}")
    assert not (tmp_path / "b.tar").exists()
