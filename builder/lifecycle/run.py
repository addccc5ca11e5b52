"""``pallet run``: start an image's process, daemonless by default, or in the Docker engine.

Daemonless: the image is unpacked once (``rootfs``) and its entrypoint, or
``/cnb/process/PROCESS``, runs in a ``BwrapSandbox`` as the image's user, in its working
directory, with its environment. The image's files are read-only but for its working directory
and its user's home, which the app gets writable copies of for the run (as a container's
writable layer; ``writable_copies``), and ``/tmp`` is an empty tmpfs. Networks, as Docker's: by default (``private``) the
app has a network namespace of its own, reaching out through pasta, and ``-p PORT`` publishes
PORT on the host's loopback (127.0.0.1) and sets ``PORT``, the port the app is asked to
listen on (CNB apps and most PaaS conventions read it); ``--network host`` shares the host's
network (the app listens on the host directly), ``--network none`` gives it loopback only.

``--docker``: the image is loaded into the engine (``pallet-run:<digest>``) and run there with
``--rm`` and the same network choice (``private``: the engine's bridge, PORT published on
127.0.0.1); the engine applies the image's user, working directory and env.

Either way the output is the app's own, Ctrl-C stops the app (SIGINT is forwarded to it, a
second one kills it) and pallet exits 130; otherwise it exits with the app's exit code.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from builder import jsonsafe
from builder.errors import PalletError, shown
from builder.lifecycle.process import PROCESS_DIR
from builder.lifecycle.programs import file_in_root, missing_interpreter
from builder.lifecycle.rootfs import resolve_in_root, unpack_image
from builder.lifecycle.sandbox import Bind, BwrapSandbox, Publish, Step, check_step, ensure_in_docker, run_container
from builder.oci.model import RunConfig

DEFAULT_PORT = 8080
#: ``--network`` choices: the app's own namespace (default), the host's, or loopback only.
NETWORKS = ("private", "host", "none")
#: What Docker gives a container whose image sets no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RunError(PalletError):
    """The image cannot be run as asked (no such process type, no command, unknown user)."""


class CommandNotFound(RunError):
    """The command is not in the image: 127, as a shell and ``docker run`` exit."""

    exit_code = 127


class CommandNotExecutable(RunError):
    """The command is there but cannot be executed: 126, as a shell and ``docker run`` exit."""

    exit_code = 126


@dataclass(frozen=True)
class RunRequest:
    """What ``pallet run`` was asked: a process type (else the entrypoint), ``PORT``, extra
    environment, arguments that replace the image's (None: keep them), and the network."""

    process: str | None = None
    port: int = DEFAULT_PORT
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] | None = None
    network: str = "private"


# -- the step (computed from the config and the rootfs) -------------------------------------


def check_command(rootfs: Path, step: Step) -> None:
    """The step's program found in the image as ``execvp`` would find it (the step's PATH for a
    bare name, the working directory for a relative one), and the interpreter its ``#!`` line
    names. Else one line, and the exit code a shell gives: without it, bubblewrap's own
    'bwrap: execvp ...: No such file or directory' was all, and a script whose interpreter the
    image lacks said the same about the script, which is there."""
    name = step.argv[0]
    if "/" in name:
        places = [posixpath.join(step.cwd, name)]
    else:
        places = [posixpath.join(step.cwd, d, name) for d in step.env.get("PATH", DEFAULT_PATH).split(":")]
    found = next((host for host in (file_in_root(rootfs, p) for p in places) if host is not None), None)
    if found is None:
        where = "" if "/" in name else f" (looked for on the image's PATH, {shown(step.env.get('PATH', DEFAULT_PATH), 200)})"
        raise CommandNotFound(f"the image's command {shown(name, 200)} is not in the image{where}")
    if not os.stat(found).st_mode & 0o111:
        raise CommandNotExecutable(f"the image's command {shown(name, 200)} is not executable (no x bit)")
    missing = missing_interpreter(rootfs, found)
    if missing is not None:
        raise CommandNotFound(f"the image's command {shown(name, 200)} {missing}")


def command_for(config: RunConfig, request: RunRequest) -> tuple[str, ...]:
    """entrypoint + cmd as Docker composes them; arguments given replace cmd (or the process's)."""
    if request.process:
        return (f"{PROCESS_DIR}/{request.process}", *(request.args or ()))
    argv = (*(config.entrypoint or ()), *(request.args if request.args is not None else (config.cmd or ())))
    if not argv:
        raise RunError("the image has no entrypoint and no cmd; give a command after '--'")
    return argv


def environment_for(config: RunConfig, request: RunRequest, home: str | None = None) -> dict[str, str]:
    """The image's env, PATH and HOME defaulted as Docker does, then PORT, then ``--env``."""
    env = config.env_dict()
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home or "/")
    env["PORT"] = str(request.port)
    env.update(request.env)
    return env


#: The most of an image's /etc/passwd or /etc/group read (real ones are KBs; zeros compress
#: well, so a layer of a few MB can hold gigabytes of them).
MAX_ACCOUNTS_FILE = 16 << 20


def read_in_root(rootfs: Path, path: str) -> str:
    """The text of the image's file ``path`` ("" if it has none), its symlinks resolved inside
    the image (``/etc/passwd -> /etc/shadow`` is the image's shadow, not the host's), bounded."""
    host = resolve_in_root(rootfs, path).host_path(rootfs)
    if host is None or not host.is_file():
        return ""
    with open(host, "rb") as f:
        data = f.read(MAX_ACCOUNTS_FILE + 1)
    if len(data) > MAX_ACCOUNTS_FILE:
        raise RunError(f"the image's {path} is over {MAX_ACCOUNTS_FILE} bytes; not a file pallet reads whole")
    return data.decode("utf-8", "replace")


def _table(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _id(text: str) -> int | None:
    """A uid/gid written in ASCII digits ('²' and '١' are digits to ``str.isdigit``, not to ``int``)."""
    return int(text) if text.isascii() and text.isdigit() else None


def resolve_user(spec: str | None, rootfs: Path) -> tuple[int, int, str | None]:
    """(uid, gid, home) for the image's ``User`` (``user[:group]``, names or numbers), looked up
    in the image's own ``/etc/passwd`` and ``/etc/group`` as Docker does. Both files are the
    image's, so any field of theirs may be garbage: a row whose ids are not numbers is not used."""
    if not spec:
        spec = "0"
    user, _, group = spec.partition(":")
    passwd = _table(read_in_root(rootfs, "/etc/passwd"))
    entry = None
    for row in passwd:
        if len(row) >= 6 and _id(row[2]) is not None and (row[0] == user or row[2] == user):
            entry = row
            break
    uid = _id(user)
    if uid is None and entry is not None:
        uid = _id(entry[2])
    if uid is None:
        raise RunError(f"the image's user {shown(user)} is not in its /etc/passwd; give a numeric uid")
    home = entry[5] if entry is not None else None
    if not group:
        gid = (_id(entry[3]) if entry is not None else None) or 0
    elif _id(group) is not None:
        gid = _id(group)
    else:
        found = [row for row in _table(read_in_root(rootfs, "/etc/group"))
                 if len(row) >= 3 and row[0] == group and _id(row[2]) is not None]
        if not found:
            raise RunError(f"the image's group {shown(group)} is not in its /etc/group; give a numeric gid")
        gid = _id(found[0][2])
    return uid, gid, home  # type: ignore[return-value]  # both set above


def process_types(rootfs: Path) -> list[str]:
    host = resolve_in_root(rootfs, PROCESS_DIR).host_path(rootfs)
    return sorted(os.listdir(host)) if host is not None and host.is_dir() else []


def step_for(config: RunConfig, rootfs: Path, request: RunRequest) -> Step:
    """The sandbox step that runs the image as ``request`` asks."""
    if request.process:
        types = process_types(rootfs)
        if request.process not in types:
            have = ", ".join(types) if types else f"none: no {PROCESS_DIR}, so it was not built with buildpacks"
            raise RunError(f"the image has no process type {request.process!r} (it has: {have})")
    uid, gid, home = resolve_user(config.user, rootfs)
    private = request.network == "private"
    return Step(argv=command_for(config, request), env=environment_for(config, request, home),
                cwd=config.working_dir or "/", uid=uid, gid=gid, network=request.network != "none",
                own_network=private, publish=(Publish(request.port, request.port),) if private else ())


# -- running -------------------------------------------------------------------------------


def run_image(ref: str, request: RunRequest, *, docker: bool = False, options=None,  # noqa: ANN001
              cache_dir: Path | None = None, platform=None) -> int:  # noqa: ANN001
    """``pallet run REF``: the image ``ref`` names, from any store; the app's exit code.
    From an index, ``platform``'s image (default: this machine's); a foreign one runs under
    QEMU (``builder.platforms`` checks that it can, first).

    The image is read (and unpacked, or loaded into the engine) first; the store is closed
    before the app starts.
    """
    from builder.oci import reference as refs
    from builder.oci.image import load_image
    from builder.oci.stores import open_store

    parsed = refs.parse(ref)
    with open_store(parsed, options) as store:
        image = load_image(store, parsed.ref, platform)
        _check_runnable(image)
        request = for_image(image.config.config, request)
        if docker:
            from builder.oci.stores.daemon import connect

            client = connect()
            loaded = ensure_in_docker(image, repository="pallet-run", client=client)
        else:
            rootfs = unpack_image(image, cache_dir)
            step = step_for(image.config.config, rootfs, request)
    if docker:
        return run_container(client, loaded, docker_options(request))
    check_step(step)  # before the copies: a NUL in the working directory is the config's error, not a path's
    box = BwrapSandbox(rootfs)
    box.preflight(step)  # what no program could start with comes first, then whether this one is there
    check_command(rootfs, step)
    with writable_copies(rootfs, [step.cwd, step.env.get("HOME", "")]) as binds:
        return box.run(replace(step, binds=(*step.binds, *binds)))


#: The most of an image's working directory (or home) pallet run copies to make it writable.
WRITABLE_COPY_LIMIT = 256 << 20


@contextlib.contextmanager
def writable_copies(rootfs: Path, paths: list[str]) -> Iterator[list[Bind]]:
    """Writable copies of the image's working directory and home for one run, gone after it.

    Apps write where they run (a SQLite file, uploads, a cache, pm2's ~/.pm2), as a container's
    writable layer lets them. The unpacked image is shared and stays read-only; a copy owned by
    the user running pallet is the step's own in the sandbox, whoever owns the image's files.
    A directory that is ``/``, missing, over ``WRITABLE_COPY_LIMIT`` or inside another one
    copied stays as it is (read-only). Links are copied as links, special files are left out."""
    with tempfile.TemporaryDirectory(prefix="pallet-run-") as tmp:
        binds: list[Bind] = []
        chosen: list[str] = []
        for path in paths:
            if not path.startswith("/") or path.rstrip("/") == "" or "\0" in path:
                continue
            res = resolve_in_root(rootfs, path)
            host = res.host_path(rootfs)
            inside = "/" + "/".join(res.real)
            if res.rest or host is None or not host.is_dir() or inside == "/":
                continue
            if any(inside == c or inside.startswith(c + "/") for c in chosen):
                continue
            if _tree_size(host, WRITABLE_COPY_LIMIT) > WRITABLE_COPY_LIMIT:
                continue
            copy = Path(tmp) / str(len(binds))
            _copy_tree(host, copy)
            chosen.append(inside)
            binds.append(Bind(copy, inside, writable=True))
        yield binds


def _tree_size(root: Path, limit: int) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
        if total > limit:
            break
    return total


def _copy_tree(src: Path, dst: Path) -> None:
    os.mkdir(dst)
    shutil.copystat(src, dst, follow_symlinks=False)
    with os.scandir(src) as entries:
        for e in entries:
            target = dst / e.name
            if e.is_symlink():
                os.symlink(os.readlink(e.path), target)
            elif e.is_dir(follow_symlinks=False):
                _copy_tree(Path(e.path), target)
            elif e.is_file(follow_symlinks=False):
                shutil.copy2(e.path, target, follow_symlinks=False)


def direct_process(config: RunConfig) -> str | None:
    """The process type of an image built without a launcher (its one process is the
    entrypoint), read from the build metadata label; None for any other image."""
    import json

    from builder.lifecycle.compose import BUILD_METADATA, LIFECYCLE_METADATA

    try:
        lifecycle = jsonsafe.loads(config.labels.get(LIFECYCLE_METADATA) or "{}")
        if (lifecycle.get("pallet") or {}).get("launchEnv") is None:
            return None
        processes = jsonsafe.loads(config.labels.get(BUILD_METADATA) or "{}").get("processes") or []
        return str(processes[0]["type"]) if len(processes) == 1 else None
    except (ValueError, AttributeError, TypeError, KeyError, IndexError):
        return None


def for_image(config: RunConfig, request: RunRequest) -> RunRequest:
    """``request`` for this image: in an image without a launcher, its one process type is the
    entrypoint (asking for it by name runs the entrypoint; another name is an error)."""
    only = direct_process(config) if request.process else None
    if only is None:
        return request
    if request.process != only:
        raise RunError(f"the image has no process type {request.process!r} (it has one, {only}, "
                       "as its entrypoint: it was built without a launcher)")
    return replace(request, process=None)


def _check_runnable(image) -> None:  # noqa: ANN001
    from builder.oci.model import Platform
    from builder.platforms import require_runnable

    cfg = image.config
    require_runnable(Platform(cfg.os or "linux", cfg.architecture or "amd64", cfg.variant))


def docker_options(request: RunRequest) -> dict:
    """How the container is created: the network asked (``private``: the engine's bridge, PORT
    published on 127.0.0.1), PORT and ``--env`` over the image's env,
    ``/cnb/process/PROCESS`` as the entrypoint when asked, arguments as the cmd."""
    create: dict = {"environment": {"PORT": str(request.port), **request.env}}
    if request.network == "private":
        create["ports"] = {f"{request.port}/tcp": ("127.0.0.1", request.port)}
    else:
        create["network_mode"] = request.network
    if request.process:
        create["entrypoint"] = [f"{PROCESS_DIR}/{request.process}"]
        create["command"] = list(request.args or ())
    elif request.args is not None:
        create["command"] = list(request.args)
    return create
