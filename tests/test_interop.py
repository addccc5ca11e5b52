"""pallet's images read by tools we did not write (skopeo, umoci, docker), and theirs by pallet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import pallet


def make_rootfs(root: Path, greeting: str = "hello from pallet") -> Path:
    """A tiny rootfs from Debian's busybox-static: busybox, a few applets, and /bin/hello."""
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "echo", "cat", "ls"):
        os.symlink("busybox", root / "bin" / applet)
    hello = root / "bin" / "hello"
    hello.write_text(f"#!/bin/sh\necho '{greeting}'\ncat /etc/motd\n")
    hello.chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("motd from the layer\n")
    return root


def run(*cmd: str, timeout: float = 300) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def layout_image(tmp_path):
    rootfs = make_rootfs(tmp_path / "rootfs")
    out = pallet("append", "scratch", str(rootfs), f"oci:{tmp_path}/lay:v1", "--entrypoint", "/bin/hello",
                 "--label", "org.example=interop", "--json")
    return tmp_path / "lay", json.loads(out.stdout)["digest"]


def test_same_content_elsewhere_gives_same_image_digest(tmp_path):
    a = make_rootfs(tmp_path / "a")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b, symlinks=True)
    for i, path in enumerate(sorted(b.rglob("*"))):
        if not path.is_symlink():
            os.utime(path, (1_000_000 + i, 2_000_000 + i))
            os.chown(path, 1234, 4321)
    digests = [json.loads(pallet("append", "scratch", str(src), f"oci:{tmp_path}/{n}:v1", "--entrypoint",
                                 "/bin/hello", "--json").stdout)
               for n, src in (("one", a), ("two", b))]
    assert digests[0]["layer"]["digest"] == digests[1]["layer"]["digest"]
    assert digests[0]["digest"] == digests[1]["digest"]
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    later = json.loads(pallet("append", "scratch", str(a), f"oci:{tmp_path}/three:v1", "--entrypoint",
                              "/bin/hello", "--json", env=env).stdout)
    assert later["digest"] != digests[0]["digest"]


def test_skopeo_reads_and_copies_pallet_layout(layout_image, tmp_path):
    lay, digest = layout_image
    info = json.loads(run("skopeo", "inspect", f"oci:{lay}:v1"))
    assert info["Digest"] == digest and info["Labels"]["org.example"] == "interop"
    run("skopeo", "copy", f"oci:{lay}:v1", f"oci:{tmp_path}/skopeo-copy:v1")
    info2 = json.loads(run("skopeo", "inspect", f"oci:{tmp_path}/skopeo-copy:v1"))
    assert info2["Digest"] == digest


def test_umoci_unpacks_pallet_layout(layout_image, tmp_path):
    lay, _ = layout_image
    run("umoci", "unpack", "--image", f"{lay}:v1", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "bin" / "hello").stat().st_mode & 0o111
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/hello"]


def test_busybox_image_runs_in_docker(layout_image, docker_cli, image_name):
    lay, _ = layout_image
    pallet("copy", f"oci:{lay}:v1", f"docker-daemon:{image_name}:v1")
    out = run(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:v1")
    assert out == "hello from pallet\nmotd from the layer\n"


def test_docker_load_reads_pallet_archive(layout_image, docker_cli, image_name, tmp_path):
    lay, _ = layout_image
    archive = tmp_path / "image.tar"
    pallet("copy", f"oci:{lay}:v1", f"docker-archive:{archive}:{image_name}:v2")
    run(docker_cli, "load", "-i", str(archive))
    out = run(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:v2")
    assert out.startswith("hello from pallet")


def test_registry_interop_both_ways(layout_image, registry, tmp_path):
    lay, digest = layout_image
    host = registry.host
    pushed = pallet("copy", f"oci:{lay}:v1", f"docker://{host}/interop/pallet:v1").stdout.strip()
    assert pushed == f"docker://{host}/interop/pallet:v1@{digest}"
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{host}/interop/pallet:v1"))
    assert info["Digest"] == digest
    # skopeo pushes; pallet reads what it pushed, by digest, and copies it back to a layout.
    run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{lay}:v1", f"docker://{host}/interop/skopeo:v1")
    theirs = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{host}/interop/skopeo:v1"))
    seen = json.loads(pallet("inspect", "--json", f"docker://{host}/interop/skopeo:v1").stdout)
    assert seen["digest"] == theirs["Digest"]
    assert seen["config"]["entrypoint"] == ["/bin/hello"]
    back = pallet("copy", f"docker://{host}/interop/skopeo:v1", f"oci:{tmp_path}/back:v1").stdout
    assert back.strip().endswith(theirs["Digest"])
    run("umoci", "stat", "--image", f"{tmp_path}/back:v1")


def test_append_on_same_registry_mounts_base_layers(layout_image, registry, tmp_path):
    lay, _ = layout_image
    host = registry.host
    pallet("copy", f"oci:{lay}:v1", f"docker://{host}/interop/base:v1")
    extra = tmp_path / "extra"
    (extra / "app").mkdir(parents=True)
    (extra / "app" / "data.txt").write_text("app data\n")
    result = json.loads(pallet("append", f"docker://{host}/interop/base:v1", str(extra),
                               f"docker://{host}/interop/app:v1", "--json").stdout)
    assert result["baseBlobs"] == {"copied": 0, "skipped": 0, "mounted": 1}
    info = json.loads(pallet("inspect", "--json", f"docker://{host}/interop/app:v1").stdout)
    assert len(info["layers"]) == 2 and info["config"]["entrypoint"] == ["/bin/hello"]
    assert info["config"]["labels"]["org.example"] == "interop"
