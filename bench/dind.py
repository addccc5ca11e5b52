"""A fresh Docker engine per CI runner, as Docker-in-Docker: Debian trixie's docker.io (26.x) and
docker-buildx in a container of the host's engine, with the containerd image store on.

Why: BuildKit's registry cache (``--cache-to/--cache-from type=registry``) needs either buildx's
docker-container driver (the moby/buildkit image: Docker Hub is not reachable here) or the
default docker driver on an engine using the containerd image store (Docker 24+). The host has
bookworm's docker.io 20.10, and trixie's packages do not install on bookworm, so the newer
engine runs the way CI runners run Docker-in-Docker. A new container (new engine state) per
runner is also what makes a runner cold: the engine knows only the images loaded into it.

The image is a trixie root file system made by mmdebstrap from Debian's mirror and imported
into the host's engine once (reused from then on; ``ensure_image`` says how long it took). The
host's trust store is bind-mounted at run time, never part of the image.

The host kernel's bounding set lacks CAP_SYS_RESOURCE, so ``--privileged`` cannot start a
container here (runc fails to apply it); the container gets every other capability, no
seccomp/AppArmor profile, unmasked /proc and /sys, and the host's cgroup tree (cgroup v1) so
that the inner runc can make cgroups (under ``pallet-bench-dind``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

DOCKER = "/usr/bin/docker"
IMAGE = "pallet-bench/dind-trixie:1"
CACHE = Path.home() / ".cache" / "pallet-bench" / "dind"
CA = "/etc/ssl/certs/ca-certificates.crt"
PACKAGES = "docker.io,docker-cli,containerd,runc,docker-buildx,iptables,ca-certificates,tini"
MIRROR = "http://deb.debian.org/debian"
#: The inner engine: containerd image store (the docker driver can then export caches), no
#: bridge or iptables (builds use the host's network), its socket in a bind-mounted directory.
DAEMON_JSON = {"features": {"containerd-snapshotter": True}, "hosts": ["unix:///run/dind/docker.sock"],
               "iptables": False, "ip6tables": False, "bridge": "none", "cgroup-parent": "pallet-bench-dind"}
SOCKET = "unix:///run/dind/docker.sock"


class DindUnavailable(Exception):
    """The DinD image cannot be made or its engine does not start here (the reason)."""


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def ensure_image() -> float | None:
    """The DinD image in the host's engine; made (mmdebstrap + import) when missing. Seconds it
    took to make, or None when it was there. Raises DindUnavailable with the reason."""
    if _run([DOCKER, "image", "inspect", IMAGE]).returncode == 0:
        return None
    if not shutil.which("mmdebstrap"):
        raise DindUnavailable("mmdebstrap not installed (apt-get install mmdebstrap)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / "trixie.tar"
    start = time.perf_counter()
    part = tar.with_suffix(".tar.part")
    proc = _run(["mmdebstrap", "--variant=apt", f"--include={PACKAGES}", "--format=tar", "trixie", str(part), MIRROR])
    if proc.returncode != 0:
        part.unlink(missing_ok=True)
        raise DindUnavailable(f"mmdebstrap trixie failed: {proc.stderr.strip().splitlines()[-1:]}")
    part.rename(tar)
    proc = _run([DOCKER, "import", str(tar), IMAGE])
    if proc.returncode != 0:
        raise DindUnavailable(f"docker import failed: {proc.stderr.strip()}")
    took = time.perf_counter() - start
    (CACHE / "made.json").write_text(json.dumps({"image": IMAGE, "seconds": round(took, 1), "packages": PACKAGES}))
    return took


class Engine:
    """One runner's Docker engine: a DinD container with its own state under ``work``, the
    runner's build context at /ctx (read-only), the host trust store at CA."""

    def __init__(self, work: Path, ctx: Path) -> None:
        self.dir = work / f"dind-{uuid.uuid4().hex[:8]}"
        self.name = f"pallet-bench-{self.dir.name}"
        for sub in ("docker", "containerd", "run"):
            (self.dir / sub).mkdir(parents=True)
        (self.dir / "daemon.json").write_text(json.dumps(DAEMON_JSON))
        proc = _run([DOCKER, "run", "-d", "--name", self.name, "--network", "host",
                     "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                     "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
                     "-v", "/sys/fs/cgroup:/sys/fs/cgroup",
                     "-v", f"{self.dir / 'docker'}:/var/lib/docker", "-v", f"{self.dir / 'containerd'}:/var/lib/containerd",
                     "-v", f"{self.dir / 'run'}:/run/dind", "-v", f"{self.dir / 'daemon.json'}:/etc/docker/daemon.json:ro",
                     "-v", f"{CA}:{CA}:ro", "-v", f"{ctx}:/ctx:ro", IMAGE, "tini", "--", "dockerd"])
        if proc.returncode != 0:
            self.stop()
            raise DindUnavailable(f"the DinD container did not start: {proc.stderr.strip().splitlines()[-1:]}")
        for _ in range(60):
            if self.docker("info", check=False).returncode == 0:
                return
            time.sleep(0.5)
        logs = _run([DOCKER, "logs", "--tail", "5", self.name]).stderr.strip()
        self.stop()
        raise DindUnavailable(f"the inner dockerd did not answer in 30 s: {logs}")

    def docker(self, *args: str, check: bool = True, stdin: Path | None = None) -> subprocess.CompletedProcess:
        """The inner engine's docker CLI (with its buildx plugin)."""
        cmd = [DOCKER, "exec", *(["-i"] if stdin else []), "-e", f"DOCKER_HOST={SOCKET}", self.name, "docker", *args]
        if stdin:
            with open(stdin, "rb") as f:
                proc = subprocess.run(cmd, stdin=f, capture_output=True)
            proc = subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout.decode(errors="replace"),
                                               proc.stderr.decode(errors="replace"))
        else:
            proc = _run(cmd)
        if check and proc.returncode != 0:
            raise SystemExit(f"inner docker {' '.join(args[:3])} failed:\n{proc.stderr[-2000:]}")
        return proc

    def load(self, tar: Path) -> None:
        self.docker("load", "-q", stdin=tar)

    def stop(self) -> None:
        """Remove the container and its engine's state."""
        _run([DOCKER, "rm", "-f", "-v", self.name])
        shutil.rmtree(self.dir, ignore_errors=True)
