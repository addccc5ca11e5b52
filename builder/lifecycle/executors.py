"""Who runs a build's steps: chosen once per build, behind one interface.

Phases build ``Step``s (what to run, as whom, with which host directories bound where) and
hand them to ``Context.sandbox.run``; they never ask what runs them. An ``Executor`` is that
runner plus the two facts the platform needs before the first step: where on this machine the
app, layers and platform directories are (``Places``), and whether directories steps write
must be handed to the CNB user (Docker as root runs steps as the real uid).

- ``sandbox`` (default on a workstation or a VM): bubblewrap over the build image unpacked
  once; scratch directories under the build's work directory, bound at /workspace etc.
- ``docker``: the same steps in containers of the build image, through the Docker engine.
- ``in-place``: inside a builder image (``pallet builder create``) the container *is* the
  build image, so steps run directly, as the current user (the CNB user the builder image
  sets), with no namespaces, no privileges and no daemon: what a Kubernetes pod or a
  container-native CI job allows. The real ``/workspace``, ``/layers`` and ``/platform`` of the
  container are the build's directories, so every path a buildpack writes into a layer is the
  one a sandboxed build writes, and the image is the same, digest for digest.

Chosen automatically: ``in-place`` when pallet finds itself in a builder image (the file
``builder.json`` the builder image carries, ``builder.builders.info``), else ``sandbox``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from builder import treewalk
from builder.errors import PalletError
from builder.lifecycle.context import PLATFORM
from builder.lifecycle.process import LAYERS, WORKSPACE

if TYPE_CHECKING:
    from builder.lifecycle.sandbox import CaCerts, Sandbox, Step
    from builder.oci.image import Image

NAMES = ("sandbox", "docker", "in-place")
OutputFn = Callable[[str], None]


class ExecutorError(PalletError):
    """The chosen executor cannot run here (in-place outside a builder image, a directory it
    needs is not writable)."""


@dataclass(frozen=True)
class Places:
    """The build's directories on the machine that runs the steps."""

    app_dir: Path       # seen by steps as /workspace
    layers_dir: Path    # /layers
    platform_dir: Path  # /platform
    home: Path          # the CNB user's HOME


@dataclass
class Executor:
    name: str
    sandbox: "Sandbox"
    places: Places
    home: str              # HOME as steps see it
    chown_writable: bool   # directories steps write must belong to the CNB user


def choose(requested: str | None) -> str:
    """The executor to use: the one asked for, else ``in-place`` in a builder image, else ``sandbox``."""
    if requested:
        if requested not in NAMES:
            raise ExecutorError(f"unknown executor {requested!r}: choose one of {', '.join(NAMES)}")
        return requested
    from builder.builders.info import find_builder

    return "in-place" if find_builder() is not None else "sandbox"


def home_of(rootfs: Path, uid: int) -> str:
    """The build user's home in the build image's /etc/passwd. Read inside the image: the path
    on the host followed the image's symlinks as host paths (``/etc/passwd -> /etc/shadow``
    read the host's shadow; ``-> /dev/zero`` never ended)."""
    from builder.lifecycle.run import read_in_root

    try:
        for line in read_in_root(rootfs, "/etc/passwd").splitlines():
            parts = line.split(":")
            if len(parts) >= 6 and parts[2] == str(uid) and parts[5]:
                return parts[5]
    except OSError:
        pass
    return "/home/cnb"


def make_executor(name: str, build_image: "Image", work: Path, uid: int, gid: int,
                  ca_certs: Path | None = None) -> Executor:
    """The executor ``name`` for a build whose scratch space is ``work``; its directories exist."""
    if name == "in-place":
        return _in_place(uid, ca_certs)
    from builder.lifecycle.rootfs import unpack_image

    rootfs = unpack_image(build_image)  # read-only: the sandbox makes its own mount points
    home = home_of(rootfs, uid)
    places = Places(work / "workspace", work / "layers", work / "platform", work / "home")
    for d in (places.layers_dir, places.platform_dir, places.home):  # the app's is made by its copy
        d.mkdir(parents=True, exist_ok=True)
    sandbox: Sandbox
    if name == "docker":
        from builder.lifecycle.sandbox import DockerSandbox, ensure_in_docker

        sandbox = DockerSandbox(ensure_in_docker(build_image))
        chown = os.geteuid() == 0
        if chown:
            # Docker runs steps as the real uid; bubblewrap maps the step's uid to whoever runs
            # pallet, so there the files must stay ours.
            for d in (places.layers_dir, places.home):  # the app's: once it is copied
                _chown_tree(d, uid, gid)
    elif name == "sandbox":
        from builder.lifecycle.sandbox import BwrapSandbox

        sandbox = BwrapSandbox(rootfs, ca_certs=ca_certs) if ca_certs is not None else BwrapSandbox(rootfs)
        chown = False
    else:
        raise ExecutorError(f"unknown executor {name!r}: choose one of {', '.join(NAMES)}")
    return Executor(name, _HomeSandbox(sandbox, places.home, home), places, home, chown)


class _HomeSandbox:
    """Binds a writable HOME for the CNB user into every step (the rootfs is read-only)."""

    def __init__(self, inner: "Sandbox", host_home: Path, home: str) -> None:
        self.inner, self.host_home, self.home = inner, host_home, home
        #: The image's files, where the inner sandbox has them as a directory (bubblewrap's).
        self.rootfs: Path | None = getattr(inner, "rootfs", None)

    def run(self, step: "Step", on_output: OutputFn | None = None) -> int:
        from builder.lifecycle.sandbox import Bind

        return self.inner.run(replace(step, binds=(*step.binds, Bind(self.host_home, self.home, writable=True))),
                              on_output)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in treewalk.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


# -- in place ---------------------------------------------------------------------------------


def _in_place(uid: int, ca_certs: Path | None) -> Executor:
    from builder.builders.info import find_builder

    if find_builder() is None:
        # It empties /workspace, /layers and /platform: never on a machine that is not a builder.
        raise ExecutorError("the in-place executor runs only inside a pallet builder image (pallet builder "
                            "create); elsewhere use --executor sandbox or docker")
    home = home_of(Path("/"), uid)
    places = Places(Path(WORKSPACE), Path(LAYERS), Path(PLATFORM), Path(home))
    for d in (places.app_dir, places.layers_dir, places.platform_dir):
        empty_dir(d)
    places.home.mkdir(parents=True, exist_ok=True)
    return Executor("in-place", InPlaceSandbox(ca_certs=ca_certs or "host"), places, home, False)


def empty_dir(path: Path) -> None:
    """Make ``path`` an empty directory we can write (its contents go; the directory stays, as
    it is a mountpoint or owned by someone else)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    except OSError as exc:
        raise ExecutorError(f"in-place executor: cannot use {path} ({exc.strerror or exc}); the builder "
                            "image makes it writable by its CNB user: run the container as that user") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ExecutorError(f"in-place executor: {path} is not writable by uid {os.getuid()}; run the "
                            "container as the builder image's user")


def translate(step: "Step") -> "Step":
    """The step with every bind whose source is not already at its target replaced by its
    source path (in argv, cwd and environment values, also inside ``:``-separated lists).

    In place nothing can be mounted, so a bind must either be the real path (/workspace,
    /layers, /platform, HOME: the paths that end up inside layers) or be reached by its own
    host path (a buildpack's directory, a plan file's): those never reach a layer.
    """
    moves: list[tuple[str, str]] = []
    for bind in step.binds:
        source = os.path.realpath(bind.source)
        if source != os.path.normpath(bind.target):
            moves.append((os.path.normpath(bind.target), source))
    if not moves:
        return step
    moves.sort(key=lambda m: -len(m[0]))

    def one(path: str) -> str:
        for target, source in moves:
            if path == target or path.startswith(target + "/"):
                return source + path[len(target):]
        return path

    def value(text: str) -> str:
        return ":".join(one(part) for part in text.split(":"))

    return replace(step, argv=tuple(one(a) for a in step.argv), cwd=one(step.cwd),
                   env={k: value(v) for k, v in step.env.items()}, binds=())


class InPlaceSandbox:
    """Runs a step as a child process of pallet: same user, same filesystem (see ``translate``).

    What the sandbox gives and this cannot: read-only binds, an empty /tmp and ``network=False``
    (no namespaces without privileges). The container around pallet is the isolation.
    """

    def __init__(self, *, ca_certs: "CaCerts" = "host") -> None:
        from builder.lifecycle.sandbox import _resolve_ca

        self.ca = _resolve_ca(ca_certs)

    def environment(self, step: "Step") -> dict[str, str]:
        from builder.lifecycle.sandbox import CA_ENV, network_env

        env = {**step.env, **network_env(False)}
        if self.ca is not None:
            env.update({name: str(self.ca) for name in CA_ENV})
        return env

    def run(self, step: "Step", on_output: OutputFn | None = None) -> int:
        from builder.lifecycle.sandbox import SandboxError, _Supervisor, pump_lines

        if not step.argv:
            raise SandboxError("nothing to run: the step's command is empty")
        for bind in step.binds:
            if not os.path.exists(bind.source):
                raise SandboxError(f"cannot use {bind.source} as {bind.target}: it does not exist")
        step = translate(step)
        if not os.path.isdir(step.cwd):
            raise SandboxError(f"working directory {step.cwd} does not exist")
        try:
            proc = subprocess.Popen(list(step.argv), env=self.environment(step), cwd=step.cwd,
                                    start_new_session=True,
                                    stdin=subprocess.DEVNULL if on_output else None,
                                    stdout=subprocess.PIPE if on_output else None,
                                    stderr=subprocess.STDOUT if on_output else None)
        except OSError as exc:
            raise SandboxError(f"cannot run {step.argv[0]}: {exc.strerror or exc}") from None

        def deliver(signum: int) -> None:
            os.killpg(proc.pid, signum)

        try:
            with _Supervisor(deliver, lambda: os.killpg(proc.pid, 9), threaded=False) as supervisor:
                if on_output is not None:
                    assert proc.stdout is not None
                    pump_lines(proc.stdout, on_output)
                code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        supervisor.check()
        return code
