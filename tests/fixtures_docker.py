"""A real Docker engine for the tests, and a tiny real image to put into stores.

``docker_engine`` uses the engine DOCKER_HOST (or the default socket) names, and starts
``dockerd`` itself when none answers; it stops only a dockerd it started. ``docker_cli`` is a
docker client binary that talks to it (Debian's /usr/bin/docker first: the newer one earlier
on PATH lacks buildx and speaks a newer API).

``tiny_image`` makes the pieces of a runnable image without any of pallet's own writers (which
are tested elsewhere): a busybox-static root filesystem as a gzip layer made with plain
``tarfile`` and ``gzip``, a second small layer, an OCI config and a manifest.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from builder.oci import mediatypes as mt
from builder.oci.model import Descriptor, ImageConfig, Manifest, RunConfig
from builder.oci.stores.archive import host_architecture
from builder.oci.stores.base import Store

BUSYBOX = "/bin/busybox"
BUSYBOX_APPLETS = ("sh", "echo", "cat", "ls", "env", "true")
DOCKERD = "/usr/sbin/dockerd"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


# -- the engine ------------------------------------------------------------------


def _client_if_answering(base_url: str):
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, version="auto", timeout=60)
        client.ping()
        return client
    except Exception:
        return None


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator["docker.DockerClient"]:  # noqa: F821
    """A docker SDK client for a running engine; dockerd is started if none answers."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
    client = _client_if_answering(host)
    proc = None
    if client is None:
        dockerd = shutil.which("dockerd") or DOCKERD
        if not os.path.exists(dockerd):
            pytest.skip(f"no Docker engine at {host} and no dockerd to start (apt-get install docker.io)")
        root = tmp_path_factory.mktemp("dockerd")
        log_path = root / "dockerd.log"
        args = [dockerd]
        if host != DEFAULT_SOCKET:
            # A private engine beside a possibly running default one: its own state, no bridge.
            args += ["--host", host, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
                     "--pidfile", str(root / "docker.pid"), "--bridge", "none", "--iptables=false"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        deadline = time.monotonic() + 30
        while client is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            client = _client_if_answering(host)
        if client is None:
            _stop(proc)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            pytest.skip(f"dockerd could not start ({log_path}): " + " | ".join(tail))
    try:
        yield client
    finally:
        client.close()
        if proc is not None:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def docker_cli(docker_engine) -> str:
    """Path of a docker CLI that talks to ``docker_engine``."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.path.exists(candidate):
            done = subprocess.run([candidate, "version", "--format", "{{.Server.Version}}"],
                                  capture_output=True, text=True, timeout=60)
            if done.returncode == 0:
                return candidate
    pytest.skip("no docker CLI that reaches the engine")


@pytest.fixture
def image_name(docker_engine, request: pytest.FixtureRequest) -> Iterator[str]:
    """A repository name no other test uses; its images are removed from the engine afterwards."""
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")[:40]
    name = f"pallet-test/{slug}-{uuid.uuid4().hex[:8]}"
    yield name
    import docker

    for image in docker_engine.images.list(name=name):
        for tag in image.tags:
            # A `docker run --rm` container may still be going away; removing the tag while it
            # is would leave the image behind untagged, so wait for it rather than force.
            for attempt in range(20):
                try:
                    docker_engine.images.remove(tag, force=attempt == 19)
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    time.sleep(0.25)


def run_cli(cli: str, *args: str, timeout: float = 120) -> str:
    """Run the docker CLI; its stdout, or an assertion error showing stderr."""
    done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
    return done.stdout


# -- a tiny image ------------------------------------------------------------------


def _tar(files: dict[str, bytes | str | None], modes: dict[str, int] | None = None) -> bytes:
    """A deterministic tar: bytes are files, str are symlink targets, None are directories."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), (modes or {}).get(name, 0o644)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


@dataclass(frozen=True)
class Layer:
    tar: bytes  # uncompressed
    blob: bytes  # as stored (gzip)

    @property
    def diff_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.tar).hexdigest()

    @property
    def desc(self) -> Descriptor:
        return Descriptor.of(self.blob, mt.OCI_LAYER_GZIP)


def gzip_layer(files: dict[str, bytes | str | None], modes: dict[str, int] | None = None) -> Layer:
    tar = _tar(files, modes)
    return Layer(tar=tar, blob=gzip.compress(tar, compresslevel=6, mtime=0))


@functools.lru_cache(maxsize=1)
def busybox_layer() -> Layer:
    """/bin/busybox (busybox-static) with a few applets linked to it, and the usual directories."""
    files: dict[str, bytes | str | None] = {"bin": None, "etc": None, "tmp": None}
    files["bin/busybox"] = Path(BUSYBOX).read_bytes()
    for applet in BUSYBOX_APPLETS:
        files[f"bin/{applet}"] = "busybox"
    return gzip_layer(files, {"bin/busybox": 0o755})


@dataclass(frozen=True)
class TinyImage:
    layers: tuple[Layer, ...]
    config: bytes
    manifest: bytes
    greeting: str
    motd: str

    @property
    def config_desc(self) -> Descriptor:
        return Descriptor.of(self.config, mt.OCI_CONFIG)

    @property
    def manifest_desc(self) -> Descriptor:
        return Descriptor.of(self.manifest, mt.OCI_MANIFEST)

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def expected_output(self) -> str:
        """What ``docker run`` of the image prints."""
        return f"{self.motd}\n{self.greeting}\n"


def tiny_image(greeting: str = "hello from pallet", motd: str = "built by the tests") -> TinyImage:
    """A runnable two-layer image whose entrypoint prints a file of layer 2 and an env variable."""
    layers = (busybox_layer(), gzip_layer({"etc": None, "etc/motd": (motd + "\n").encode()}))
    config = ImageConfig(
        architecture=host_architecture(),
        os="linux",
        created="1970-01-01T00:00:00Z",
        config=RunConfig(
            env=("PATH=/bin", f"GREETING={greeting}"),
            entrypoint=("/bin/sh", "-c", 'cat /etc/motd; echo "$GREETING"'),
            working_dir="/tmp",
            labels={"org.example.made-by": "pallet-tests"},
        ),
        diff_ids=tuple(layer.diff_id for layer in layers),
    ).to_bytes()
    manifest = Manifest(
        config=Descriptor.of(config, mt.OCI_CONFIG),
        layers=tuple(layer.desc for layer in layers),
    ).to_bytes()
    return TinyImage(layers=layers, config=config, manifest=manifest, greeting=greeting, motd=motd)


def put_image(store: Store, image: TinyImage, tag: str | None) -> Descriptor:
    """Put the image through the Store interface: blobs first, then the manifest with its tag."""
    store.put_blob(image.config_desc, io.BytesIO(image.config))
    for layer in image.layers:
        store.put_blob(layer.desc, io.BytesIO(layer.blob))
    return store.put_manifest(image.manifest, mt.OCI_MANIFEST, tag=tag)


def copy_image(src: Store, ref: str, dst: Store, tag: str | None) -> Descriptor:
    """A plain copy through the Store interface (what any backend-neutral copier does)."""
    desc, data = src.get_manifest(ref)
    manifest = Manifest.from_bytes(data, desc.media_type)
    for blob in (manifest.config, *manifest.layers):
        if not dst.has_blob(blob.digest):
            with src.open_blob(blob) as stream:
                dst.put_blob(blob, stream)
    return dst.put_manifest(data, desc.media_type, tag=tag)
