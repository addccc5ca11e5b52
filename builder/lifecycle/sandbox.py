"""Run one step (a buildpack's ``bin/detect`` or ``bin/build``, or an app) inside an image.

A ``Step`` says what to run and as whom; a ``Sandbox`` runs it and returns its exit code,
streaming its output (stdout and stderr merged, line by line) to a callback, or letting it
go straight to our own stdout/stderr. Two sandboxes, one contract:

- ``BwrapSandbox``: no daemon. bubblewrap over a root filesystem unpacked from the image
  (``builder.lifecycle.rootfs``), in new user, pid, ipc (and, without network or with a
  network of its own, net) namespaces, with no capabilities. Needs unprivileged user
  namespaces when not root. A step with ``own_network`` reaches out through pasta
  (``builder.lifecycle.netns``), its ``publish`` ports on the host's loopback.
- ``DockerSandbox``: the same step in a container of the image, through the Docker engine.

What a step sees, in both:
- the image's filesystem read-only at ``/``, a fresh ``/proc``, a minimal ``/dev``, an empty
  writable ``/tmp``, and the step's binds (read-only unless ``writable``);
- exactly the step's environment (the rest of ours is cleared; Docker puts the image's own
  ENV under it, which the engine cannot leave out), plus the platform's network
  settings: the host's ``HTTP(S)_PROXY``/``NO_PROXY`` (both cases) and, when a CA bundle is
  given (default: the host trust store), that bundle at ``/run/pallet/ca-certificates.crt``
  with ``SSL_CERT_FILE``, ``PIP_CERT``, ``REQUESTS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS`` and
  ``GIT_SSL_CAINFO`` pointing at it. These win over the step's own values: they describe the
  machine, which a build cannot know. The host's ``/etc/resolv.conf`` and ``/etc/hosts`` are
  mounted read-only when the step has network.
- nothing of pallet's own environment: bubblewrap starts with an empty one, and gets its
  options, the step's variables among them, through a file descriptor (``--args``), so
  neither ``ps`` nor the sandbox's ``/proc/1/environ`` shows them.
  None of this is under ``/layers`` or ``/workspace``, so none of it can land in a layer.

Signals and terminals: while a step runs, SIGINT, SIGTERM and SIGHUP sent to pallet (Ctrl-C
included) are forwarded to the step's process group; a second one, or 10 s after a
SIGTERM/SIGHUP, kills it. ``run`` then raises ``Interrupted`` (a KeyboardInterrupt) once the
step is gone, so a build stops there and ``pallet run`` exits 128+signal. bubblewrap itself
runs in its own process group, so a Ctrl-C from the terminal reaches pallet only (bubblewrap
would die of it and take the step down with SIGKILL). The step always gets a new session
(``--new-session``: no controlling terminal, so it cannot push input into the user's shell
with TIOCSTI); without ``on_output`` its stdin, stdout and stderr are still the terminal, so
``isatty`` holds and an interactive app reads the keyboard; Ctrl-C reaches it by forwarding.
If pallet itself is killed (even ``kill -9``), ``--die-with-parent`` kills the step.
A step starts with the default action for SIGINT, SIGQUIT, SIGTERM and SIGHUP even when pallet
started with them ignored (a script's background job), as a container's process does.

How ``BwrapSandbox`` builds ``/`` without writing to the cached rootfs (which is shared, and
read-only to us): the root is bubblewrap's own tmpfs, holding one read-only bind per entry of
the rootfs's top directory (a symlink is recreated as a symlink), then made read-only. A
mount whose mountpoint the image lacks (``/etc/resolv.conf`` in an image without one, a bind
target under ``/cnb``) is handled the same way one level down: the deepest directory on its
path that exists is rebuilt on a tmpfs from binds of its entries, which leaves room for the
mountpoint. Paths are resolved inside the rootfs (symlinks followed as the sandbox would,
never onto the host), and mounts go to the resolved paths.

Ownership inside ``BwrapSandbox``: the user namespace maps the step's uid/gid to the user
running pallet, and no one else. So files that user owns (the whole rootfs when it was
unpacked as non-root; for root, everything root owns) appear owned by the step's uid, files
of other owners appear as ``nobody``, and files the step writes to a writable bind are owned,
on the host, by the user running pallet. (Docker runs the step as the real uid instead: there
a writable bind must be writable by that uid on the host.) So as root a step is host uid 0:
what contains it is having no capability (``--cap-drop ALL``: no remount, no mount) and every
host path it can reach being a read-only mount, ``/proc/sys`` included (see ``bwrap_options``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Protocol, Sequence

from builder.errors import NotFoundError, PalletError, cut, for_terminal, shown
from builder.lifecycle.netns import Pasta, find_pasta, wait_for_loopback
from builder.lifecycle.rootfs import Resolved, in_use, resolve_in_root

if TYPE_CHECKING:
    import docker

    from builder.oci.image import Image

#: Where the CA bundle appears inside a sandbox, and the variables that point at it.
CA_PATH = "/run/pallet/ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO")
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
#: The host trust store: Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine.
HOST_CA_CANDIDATES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                      "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")
#: Where Debian's bubblewrap is, when it is not on PATH.
BWRAP_FALLBACK = "/usr/bin/bwrap"
#: Seconds a step gets to exit after a forwarded SIGTERM/SIGHUP, as ``docker stop`` gives.
GRACE_SECONDS = 10.0

OutputFn = Callable[[str], None]
CaCerts = Path | None | Literal["host"]


class SandboxError(PalletError):
    """A step cannot be started: no bubblewrap, no namespaces, a missing bind or directory."""


class Interrupted(KeyboardInterrupt):
    """pallet got SIGINT/SIGTERM/SIGHUP while a step ran; the step has been stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass(frozen=True)
class Bind:
    """A host path mounted into the sandbox at ``target`` (an absolute path inside)."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Step:
    """One program to run: argv (argv[0] looked up on the step's PATH if bare), environment
    (exactly this, plus the network settings above), working directory, uid/gid."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    binds: tuple[Bind, ...] = ()
    #: Network access at all. Where: the host's network (builds: their proxy and trust store
    #: are the host's), or, with ``own_network``, a network namespace of the step's own whose
    #: outside traffic goes through pasta, with ``publish`` ports forwarded from the host.
    network: bool = True
    own_network: bool = False
    publish: tuple["Publish", ...] = ()


@dataclass(frozen=True)
class Publish:
    """A TCP port of the step's own network reachable on the host at ``host_ip:host_port``."""

    host_port: int
    port: int
    host_ip: str = "127.0.0.1"


class Sandbox(Protocol):
    def run(self, step: Step, on_output: OutputFn | None = None) -> int:
        """Run the step; its exit code. Output lines go to ``on_output``, else to our stdout/stderr."""
        ...


# -- the platform's network settings (pure) ------------------------------------------------


def host_ca_certs(environ: dict[str, str] | None = None) -> Path | None:
    """The host's CA bundle: ``$SSL_CERT_FILE`` if it is a file, else the distribution's."""
    env = os.environ if environ is None else environ
    candidates = [env.get("SSL_CERT_FILE") or "", *HOST_CA_CANDIDATES]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


def network_env(with_ca: bool, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a sandbox adds to a step: the host's proxies, and the CA variables."""
    env = os.environ if environ is None else environ
    out = {name: env[name] for name in PROXY_ENV if env.get(name)}
    if with_ca:
        out.update({name: CA_PATH for name in CA_ENV})
    return out


def _resolve_ca(ca_certs: CaCerts) -> Path | None:
    ca = host_ca_certs() if ca_certs == "host" else ca_certs
    if ca is not None and not os.path.isfile(ca):
        raise SandboxError(f"CA bundle {ca} is not a file; give a PEM bundle (e.g. "
                           "/etc/ssl/certs/ca-certificates.crt)")
    return Path(ca) if ca is not None else None


# -- the bubblewrap command line (computed; reads only the rootfs's directories) -------------


@dataclass(frozen=True)
class Mount:
    """One mount of the sandbox: ``bind``/``ro-bind`` (with ``source``), ``proc``, ``dev``,
    ``tmpfs``, or ``dir`` (a directory made where the image has none)."""

    kind: str
    target: str
    source: Path | None = None
    perms: int | None = None

    @property
    def wants_dir(self) -> bool:
        return self.kind in ("proc", "dev", "tmpfs", "dir") or (self.source is not None and self.source.is_dir())


Real = tuple[str, ...]


@dataclass
class _Plan:
    rootfs: Path
    composed: set[Real] = field(default_factory=lambda: {()})
    targets: dict[Real, Mount] = field(default_factory=dict)  # resolved mountpoint -> mount
    blocked: set[Real] = field(default_factory=set)  # non-directories in the way of a mountpoint


def _path(real: Real) -> str:
    return "/" + "/".join(real)


def mount_args(rootfs: Path, mounts: list[Mount]) -> list[str]:
    """bubblewrap arguments that build ``/`` from ``rootfs`` plus ``mounts`` (see module doc)."""
    plan = _Plan(rootfs)
    resolved: list[tuple[Real, Mount]] = []
    for mount in mounts:
        inside = [t for t in plan.targets if t]
        res = resolve_in_root(rootfs, mount.target, stop=lambda real: real in inside)
        real = res.real + res.rest
        if not res.stopped and (res.rest or (res.kind == "dir") != mount.wants_dir):
            # No mountpoint of the right kind: the deepest existing directory on the way is
            # rebuilt on a tmpfs, leaving out whatever is in the way (a file where a
            # directory must go, a directory where a file is bound).
            if res.rest:
                plan.composed.add(res.real)
                if res.blocked:
                    plan.blocked.add(res.real + res.rest[:1])
            else:
                plan.composed.add(res.real[:-1])
                plan.blocked.add(res.real)
        elif mount.kind == "dir" and not res.stopped:
            continue  # the image has that directory already
        plan.targets[real] = mount
        resolved.append((real, mount))

    args: list[str] = []
    args += _compose((), plan, tmpfs=False)
    for real in sorted((c for c in plan.composed if c and not _composed_parent(c, plan)), key=len):
        args += _compose(real, plan, tmpfs=True)
    for real, mount in resolved:
        args += _mount_args(real, mount)
    for real in sorted(plan.composed, key=len):
        if not real or not _composed_parent(real, plan):
            args += ["--remount-ro", _path(real)]
    return args


def _composed_parent(real: Real, plan: _Plan) -> bool:
    return real[:-1] in plan.composed


def _compose(real: Real, plan: _Plan, *, tmpfs: bool) -> list[str]:
    """Arguments that rebuild the rootfs directory ``real`` with one mount per entry."""
    host = plan.rootfs.joinpath(*real)
    st = os.stat(host)
    args = ["--perms", f"{stat.S_IMODE(st.st_mode):04o}", "--tmpfs" if tmpfs else "--dir", _path(real)]
    if not real:
        args = []  # bubblewrap's own root tmpfs
    for name in sorted(os.listdir(host)):
        child = real + (name,)
        if child in plan.targets or child in plan.blocked:
            continue  # a mount goes exactly there, or something must be made there instead
        path = host / name
        if child in plan.composed:
            args += _compose(child, plan, tmpfs=False)
        elif path.is_symlink():
            args += ["--symlink", os.readlink(path), _path(child)]
        else:
            args += ["--ro-bind", str(path), _path(child)]
    return args


def _mount_args(real: Real, mount: Mount) -> list[str]:
    dest = _path(real)
    if mount.kind in ("bind", "ro-bind"):
        return [f"--{mount.kind}", str(mount.source), dest]
    perms = ["--perms", f"{mount.perms:04o}"] if mount.perms is not None else []
    return [*perms, f"--{mount.kind}", dest]


#: Kernel interfaces a step may read but never change. bubblewrap covers /proc/bus and
#: /proc/irq itself, but /proc/sys only when its directory is writable, which it never is:
#: its files are, for host root (uid 0 keeps that power with no capability at all).
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/fs", "/proc/acpi", "/proc/scsi", "/proc/asound")
#: Hidden, as Docker and runc hide them: kernel memory, keys, timers.
PROC_MASKED = ("/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
               "/proc/sched_debug")


@functools.lru_cache(maxsize=None)
def proc_cover_args() -> tuple[str, ...]:
    """Arguments that make this kernel's sensitive ``/proc`` entries read-only or empty (after
    ``--proc``), one bind each (a mount is what a step's start-up costs). Computed once: which
    entries exist is the kernel's business, not the image's. The host's ``/proc/sys`` is the
    same files as the sandbox's: a sysctl shows the network namespace of whoever reads it."""
    args: list[str] = []
    for path in PROC_READ_ONLY:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for path in PROC_MASKED:
        if os.path.exists(path):
            args += ["--ro-bind", "/dev/null", path]
    return tuple(args)


#: bubblewrap's limit on its arguments, ``--args`` included (bubblewrap.c's MAX_ARGS).
BWRAP_MAX_ARGS = 9000


def bwrap_options(rootfs: Path, step: Step, *, ca: Path | None, info_fd: int | None = None,
                  block_fd: int | None = None, environ: dict[str, str] | None = None) -> list[str]:
    """bubblewrap's options for ``step`` over ``rootfs`` (what goes between ``bwrap`` and ``--``).

    Containment holds even when pallet runs as root, where the user namespace maps the step's
    uid to host root: the step has no capability at all (``--cap-drop ALL``; a root step in
    its own network keeps only binding ports below 1024 there), so it cannot remount, and
    nothing it can reach is writable but ``/tmp`` and its writable binds: the image, the host
    files bound in, ``/proc/sys`` and the rest of ``PROC_READ_ONLY`` are read-only mounts.
    """
    mounts = [Mount("proc", "/proc"), Mount("dev", "/dev"), Mount("tmpfs", "/tmp", perms=0o1777)]
    if step.network:
        for name in ("/etc/resolv.conf", "/etc/hosts"):
            if os.path.isfile(name):
                mounts.append(Mount("ro-bind", name, Path(name)))
    if ca is not None:
        mounts.append(Mount("dir", os.path.dirname(CA_PATH), perms=0o755))
        mounts.append(Mount("ro-bind", CA_PATH, ca))
    for bind in step.binds:
        mounts.append(Mount("bind" if bind.writable else "ro-bind", bind.target, Path(bind.source)))
    env = {**step.env, **network_env(ca is not None, environ)}
    opts = [*mount_args(rootfs, mounts), *proc_cover_args()]
    opts += ["--unshare-user", "--uid", str(step.uid), "--gid", str(step.gid),
             "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if step.uid == 0 and step.own_network:
        opts += ["--cap-add", "CAP_NET_BIND_SERVICE"]  # checked against its own network's namespace only
    if not step.network or step.own_network:
        opts.append("--unshare-net")
    opts += ["--chdir", step.cwd, "--clearenv"]
    for key, value in env.items():
        opts += ["--setenv", key, value]
    if info_fd is not None:
        opts += ["--info-fd", str(info_fd)]
    if block_fd is not None:
        opts += ["--block-fd", str(block_fd)]
    if len(opts) + len(step.argv) + 2 > BWRAP_MAX_ARGS:
        # every top-level entry of the image is one mount: a hostile image with thousands of them
        # would get bubblewrap's own error and a broken pipe
        raise SandboxError(f"the sandbox needs {len(opts) + len(step.argv) + 2} bubblewrap arguments, over its limit "
                           f"of {BWRAP_MAX_ARGS}: the image's root directory has {len(os.listdir(rootfs))} entries "
                           f"(each a mount), its environment {len(env)} variables and its command "
                           f"{len(step.argv)} arguments; an image has a few dozen of each")
    _check_string_sizes(step.argv, env, opts)
    return opts


#: Linux's limit on one argument or environment string, its NUL included (MAX_ARG_STRLEN).
MAX_ARG_STRLEN = 32 * 4096


def _check_string_sizes(argv: Sequence[str], env: dict[str, str], opts: list[str]) -> None:
    """SandboxError naming the argument or variable Linux would refuse to start the step with
    (an image's config may hold one of megabytes): the kernel's E2BIG would name bubblewrap, or
    come from inside it, and not say which."""
    for i, arg in enumerate(argv):
        size = len(os.fsencode(arg)) + 1
        if size > MAX_ARG_STRLEN:
            raise SandboxError(f"argument {i} of the command ({shown(arg, 60)}) is {size} bytes, over Linux's "
                               f"limit of {MAX_ARG_STRLEN} for one argument: it cannot be started")
    for key, value in env.items():
        size = len(os.fsencode(f"{key}={value}")) + 1
        if size > MAX_ARG_STRLEN:
            raise SandboxError(f"variable {shown(key, 60)} of the environment is {size} bytes, over Linux's "
                               f"limit of {MAX_ARG_STRLEN} for one variable: the command cannot be started")
    total = sum(len(os.fsencode(a)) + 1 for a in (*opts, *argv))
    limit = os.sysconf("SC_ARG_MAX") - 65536   # what bubblewrap itself and its own environment take
    if total > limit:
        raise SandboxError(f"the command, its environment and the sandbox's options come to {total} bytes, over "
                           f"Linux's limit of {limit} for starting a program: the image's config holds too much")


def bwrap_command(rootfs: Path, step: Step, *, ca: Path | None, bwrap: str = "bwrap",
                  info_fd: int | None = None, environ: dict[str, str] | None = None) -> list[str]:
    """The whole bubblewrap command line for ``step`` over ``rootfs``, as one list (for tests
    and ``--debug``; ``BwrapSandbox.run`` passes the options through a file descriptor)."""
    return [bwrap, *bwrap_options(rootfs, step, ca=ca, info_fd=info_fd, environ=environ), "--", *step.argv]


def args_fd(options: list[str]) -> int:
    """A memory file holding ``options`` NUL-separated, for bubblewrap's ``--args FD``: the
    step's environment (``--env`` values, proxy credentials) is on no command line that
    ``ps`` shows. The caller closes it."""
    fd = os.memfd_create("pallet-bwrap-args", os.MFD_CLOEXEC)
    data = memoryview(b"".join(os.fsencode(arg) + b"\0" for arg in options))
    while data:
        data = data[os.write(fd, data):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# -- running it -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _preflight(bwrap: str, euid: int) -> str | None:
    """Why bubblewrap cannot make a sandbox here (its own words), or None if it can."""
    probe = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-user",
             "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, env={})
    except OSError as exc:
        return exc.strerror or str(exc)
    if done.returncode == 0:
        return None
    return " ".join(done.stderr.split()) or f"exit code {done.returncode}"


def find_bwrap() -> str:
    """Path of a bubblewrap that can make sandboxes here; SandboxError saying how to fix it."""
    path = shutil.which("bwrap") or (BWRAP_FALLBACK if os.path.exists(BWRAP_FALLBACK) else None)
    if path is None:
        raise SandboxError("bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: "
                           "apt-get install bubblewrap), or use Docker instead (--executor docker / --docker)")
    why = _preflight(path, os.geteuid())
    if why is not None:
        raise SandboxError(
            f"bubblewrap cannot create the sandbox's namespaces ({why}). Allow unprivileged user "
            "namespaces: sysctl -w kernel.unprivileged_userns_clone=1 (Debian), sysctl -w "
            "kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 23.10+), user.max_user_namespaces > 0; "
            "inside a container, run it with --privileged (or a seccomp profile allowing unshare); "
            "or use Docker instead (--executor docker / --docker)")
    return path


#: Signals a step must start able to die of, whatever pallet inherited.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stoppable_child() -> Iterator[None]:
    """A step starts with the default action for the signals that stop it, as a container's
    process does. A signal pallet inherited as ignored (a script's ``pallet run IMAGE &`` starts
    with SIGINT ignored) stays ignored through exec, so the app ignored the Ctrl-C pallet
    forwarded and ran on. exec resets a *handled* signal to its default: while the step is
    started, those signals are handled here (a no-op: pallet was ignoring them anyway)."""
    changed: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _STOP_SIGNALS:
            if signal.getsignal(sig) is signal.SIG_IGN:
                changed[sig] = signal.signal(sig, lambda *_: None)
    try:
        yield
    finally:
        for sig, old in changed.items():
            signal.signal(sig, old)


class _Supervisor:
    """Forwards SIGINT/SIGTERM/SIGHUP to a running step; escalates to a kill. Main thread only."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, deliver: Callable[[int], None], kill: Callable[[], None], *, threaded: bool) -> None:
        self._deliver = deliver
        self._kill = kill
        self._threaded = threaded  # deliver from a thread (an HTTP call must not run in a handler)
        self.received: int | None = None
        self._timer: threading.Timer | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Supervisor":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if self._timer is not None:
            self._timer.cancel()

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is not None:
            self._run(self._kill)
            return
        self.received = signum
        self._run(lambda: self._deliver(signum))
        if signum != signal.SIGINT:
            self._timer = threading.Timer(GRACE_SECONDS, self._kill)
            self._timer.daemon = True
            self._timer.start()

    def _run(self, fn: Callable[[], None]) -> None:
        def safe() -> None:
            try:
                fn()
            except Exception:  # noqa: BLE001 - the step may be gone already
                pass

        if self._threaded:
            threading.Thread(target=safe, daemon=True).start()
        else:
            safe()

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)


#: The longest piece of a step's output handed on as one line: a step (the app's own build
#: script) may print gigabytes without a newline, which would otherwise be held in our memory.
MAX_OUTPUT_LINE = 64 * 1024


def output_line(raw: bytes) -> str:
    """One line a step printed, as it may reach the user's terminal: decoded (undecodable bytes
    replaced), without its line end, control characters shown escaped (what the app's files
    say, echoed by a tool, must not drive the terminal)."""
    return for_terminal(raw.decode("utf-8", "replace").rstrip("\n").rstrip("\r"), limit=None)


def pump_lines(stream: Any, on_output: OutputFn) -> None:
    """Call ``on_output`` with each line of a binary stream; a line longer than
    ``MAX_OUTPUT_LINE`` comes in pieces of that size."""
    for raw in iter(lambda: stream.readline(MAX_OUTPUT_LINE), b""):
        on_output(output_line(raw))


def _read_info(fd: int) -> dict[str, Any]:
    """bubblewrap's ``--info-fd`` JSON, or {} if it exited without writing it."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not chunk:
            return {}
        data += chunk
        try:
            return json.loads(data)
        except ValueError:
            continue


class BwrapSandbox:
    """Steps run with bubblewrap over an unpacked root filesystem. See the module docstring."""

    def __init__(self, rootfs: Path, *, ca_certs: CaCerts = "host", bwrap: str | None = None) -> None:
        self.rootfs = Path(rootfs)
        self.ca = _resolve_ca(ca_certs)
        self._bwrap = bwrap

    def command(self, step: Step, info_fd: int | None = None) -> list[str]:
        """The bubblewrap command that runs ``step`` (for tests and ``--debug``)."""
        return bwrap_command(self.rootfs, step, ca=self.ca, bwrap=self._bwrap or "bwrap", info_fd=info_fd)

    def _check(self, step: Step) -> None:
        check_step(step)
        if not self.rootfs.is_dir():
            raise SandboxError(f"root filesystem {self.rootfs} is not a directory")
        for bind in step.binds:
            if not os.path.exists(bind.source):
                raise SandboxError(f"cannot mount {bind.source} at {bind.target}: it does not exist")
            if not bind.target.startswith("/"):
                raise SandboxError(f"bind target {bind.target!r} must be an absolute path")
        if not step.argv:
            raise SandboxError("nothing to run: the step's command is empty")
        if not _is_dir_in_sandbox(self.rootfs, step.binds, step.cwd):
            raise SandboxError(f"working directory {cut(step.cwd, 200)} does not exist in the image or its binds")

    def preflight(self, step: Step) -> None:
        """What ``run`` refuses before it starts anything (a missing working directory, strings
        Linux cannot start a program with), asked on its own: so that a caller's later checks
        (``pallet run``'s of the command) come second, as they would when run starts."""
        self._check(step)
        bwrap_options(self.rootfs, step, ca=self.ca)

    def run(self, step: Step, on_output: OutputFn | None = None) -> int:
        """Run ``step``. bubblewrap starts with an empty environment and its options (the
        step's environment among them) in a memory file, never on a command line; so neither
        ``ps`` nor the sandbox's ``/proc/1/environ`` shows anything of ours or of the step's."""
        self._bwrap = self._bwrap or find_bwrap()
        self._check(step)
        pasta = find_pasta() if step.own_network else None
        read_fd, write_fd = os.pipe()
        block_r, block_w = os.pipe() if pasta else (None, None)
        with in_use(self.rootfs):
            options = args_fd(bwrap_options(self.rootfs, step, ca=self.ca, info_fd=write_fd, block_fd=block_r))
            try:
                with _stoppable_child():
                    proc = subprocess.Popen(
                        [self._bwrap, "--args", str(options), "--", *step.argv],
                        pass_fds=tuple(fd for fd in (write_fd, options, block_r) if fd is not None),
                        env={}, process_group=0,  # terminal signals reach only us
                        stdin=subprocess.DEVNULL if on_output else None,
                        stdout=subprocess.PIPE if on_output else None,
                        stderr=subprocess.STDOUT if on_output else None)
            finally:
                for fd in (write_fd, options, block_r):
                    if fd is not None:
                        os.close(fd)
            child: list[int] = []  # the sandbox's pid 1 (host pid), session and group leader
            network: Pasta | None = None

            def deliver(signum: int) -> None:
                if child:
                    os.killpg(child[0], signum)  # pid 1 ignores it; the step and its children get it
                else:
                    proc.kill()

            try:
                with _Supervisor(deliver, proc.kill, threaded=False) as supervisor:
                    info = _read_info(read_fd)
                    if "child-pid" in info:
                        child.append(int(info["child-pid"]))
                    if pasta and child:
                        # The step waits (--block-fd) until its network is up.
                        wait_for_loopback(child[0])
                        network = Pasta(pasta, child[0], step.publish)
                        network.wait_ready(lambda: supervisor.received is not None)
                    if block_w is not None and supervisor.received is None:
                        os.write(block_w, b"1")
                        os.close(block_w)
                        block_w = None
                    elif block_w is not None:
                        _kill_blocked(child, block_w)
                        block_w = None
                    if on_output is not None:
                        assert proc.stdout is not None
                        pump_lines(proc.stdout, on_output)
                    code = proc.wait()
            finally:
                os.close(read_fd)
                if block_w is not None:
                    _kill_blocked(child, block_w)
                if proc.poll() is None:
                    proc.kill()  # --die-with-parent takes the sandbox with it
                    proc.wait()
                if network is not None:
                    network.stop()
                if proc.stdout is not None:
                    proc.stdout.close()
        supervisor.check()
        return code


#: The largest uid or gid a user namespace maps (2^32 - 1 is "no id").
MAX_ID = 2 ** 32 - 2


def check_step(step: Step) -> None:
    """Refuse what no program can be started with, before anything starts: a NUL byte in an
    argument, a variable or the working directory (``exec`` takes C strings), a variable name
    that is empty or holds '=', an id out of range. An image's config can hold any of these;
    bubblewrap failed on them half-way ('setenv failed', then our broken pipe) or Python did."""
    for arg in step.argv:
        if "\0" in arg:
            raise SandboxError(f"the command's argument {_short(arg)} contains a NUL byte; no program can be "
                               "started with it")
    for key, value in step.env.items():
        if not key or "=" in key or "\0" in key:
            raise SandboxError(f"the environment variable name {_short(key)} (value {_short(value)}) is not valid: "
                               "a name is not empty and holds no '=' or NUL byte")
        if "\0" in value:
            raise SandboxError(f"the environment variable {key} contains a NUL byte; no program can be "
                               "started with it")
    if "\0" in step.cwd:
        raise SandboxError(f"the working directory {_short(step.cwd)} contains a NUL byte")
    for what, value in (("uid", step.uid), ("gid", step.gid)):
        if not 0 <= value <= MAX_ID:
            raise SandboxError(f"{what} {value} is out of range (0 to {MAX_ID})")


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _kill_blocked(child: list[int], block_w: int) -> None:
    """Stop a sandbox whose step never started (it waits on ``--block-fd``): killed first, as
    it would otherwise run the step once the pipe closes. It does not die with its parent
    yet: bubblewrap sets that up just before the step starts. (So if pallet itself is killed
    in the instant pasta takes to start, the step runs orphaned, without network, and
    ``--die-with-parent`` cannot stop it; nothing else we know of can.)"""
    if child:
        try:
            os.kill(child[0], signal.SIGKILL)  # the namespace's pid 1: all of it goes
        except ProcessLookupError:
            pass
    os.close(block_w)


def _is_dir_in_sandbox(rootfs: Path, binds: tuple[Bind, ...], path: str) -> bool:
    """Whether ``path`` will be a directory inside the sandbox (in a bind, /tmp, or the image)."""
    if not path.startswith("/"):
        return False
    parts = tuple(p for p in path.split("/") if p and p != ".")
    for bind in sorted(binds, key=lambda b: -len(b.target)):
        target = tuple(p for p in bind.target.split("/") if p)
        if parts[:len(target)] == target:
            return Path(bind.source, *parts[len(target):]).is_dir()
    if parts[:1] == ("tmp",):
        return len(parts) == 1
    res: Resolved = resolve_in_root(rootfs, path)
    return not res.rest and res.kind == "dir"


# -- Docker ---------------------------------------------------------------------------------


def run_container(client: "docker.DockerClient", image: str, create: dict[str, Any],
                  on_output: OutputFn | None = None) -> int:
    """Create, start and follow a container; its exit code. Always removed afterwards."""
    from builder.oci.stores.daemon import _engine_call

    with _engine_call(f"create a container of {image}"):
        container = client.containers.create(image, detach=True, tty=False, stdin_open=False, **create)
    try:
        def deliver(signum: int) -> None:
            container.kill(signal=signal.Signals(signum).name)

        def kill() -> None:
            container.kill()

        with _Supervisor(deliver, kill, threaded=True) as supervisor:
            with _engine_call(f"start a container of {image}"):
                # Attached before it starts (the request is made here), so no output is missed.
                stream = client.api.attach(container.id, stdout=True, stderr=True, stream=True,
                                           logs=True, demux=True)
                container.start()
            _follow(stream, on_output)
            with _engine_call(f"wait for a container of {image}"):
                code = int(container.wait().get("StatusCode", 1))
    finally:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone (auto-removed, engine restarted)
            pass
    supervisor.check()
    return code


def _follow(stream: Iterator[tuple[bytes | None, bytes | None]], on_output: OutputFn | None) -> None:
    pending = {1: b"", 2: b""}  # a partial line per stream, so the two never splice
    for out, err in stream:
        for fd, chunk in ((1, out), (2, err)):
            if not chunk:
                continue
            if on_output is None:
                target = sys.stdout.buffer if fd == 1 else sys.stderr.buffer
                target.write(chunk)
                target.flush()
                continue
            *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
            while len(pending[fd]) >= MAX_OUTPUT_LINE:  # no newline for ever: in pieces
                lines.append(pending[fd][:MAX_OUTPUT_LINE])
                pending[fd] = pending[fd][MAX_OUTPUT_LINE:]
            for line in lines:
                on_output(output_line(line))
    if on_output is not None:
        for rest in pending.values():
            if rest:
                on_output(output_line(rest))


class DockerSandbox:
    """Steps run in a container of ``image_ref`` (already in the engine: see ``ensure_in_docker``).

    Binds become volumes, the user is ``uid:gid``, the network the host's (the engine's bridge
    is not relied on) or none, and the CA bundle and proxies are passed as ``BwrapSandbox``
    passes them. The engine adds the image's own ENV under the step's (it cannot be cleared)
    and makes missing mountpoints itself. Writable binds must be writable by ``uid`` on the host.
    The engine carries stdout and stderr apart, so lines of one may come before earlier lines
    of the other.
    """

    def __init__(self, image_ref: str, client: "docker.DockerClient | None" = None, *,
                 ca_certs: CaCerts = "host") -> None:
        self.image_ref = image_ref
        self._client = client
        self.ca = _resolve_ca(ca_certs)

    @property
    def client(self) -> "docker.DockerClient":
        if self._client is None:
            from builder.oci.stores.daemon import connect

            self._client = connect()
        return self._client

    def create_options(self, step: Step) -> dict[str, Any]:
        """What the container is created with (for tests)."""
        volumes: dict[str, dict[str, str]] = {}
        for bind in step.binds:
            if not os.path.exists(bind.source):
                raise SandboxError(f"cannot mount {bind.source} at {bind.target}: it does not exist")
            volumes[str(Path(bind.source).resolve())] = {"bind": bind.target, "mode": "rw" if bind.writable else "ro"}
        if self.ca is not None:
            volumes[str(self.ca.resolve())] = {"bind": CA_PATH, "mode": "ro"}
        return {
            "entrypoint": list(step.argv),
            "environment": {**step.env, **network_env(self.ca is not None)},
            "user": f"{step.uid}:{step.gid}",
            "working_dir": step.cwd,
            "network_mode": "host" if step.network else "none",
            "volumes": volumes,
        }

    def run(self, step: Step, on_output: OutputFn | None = None) -> int:
        if not step.argv:
            raise SandboxError("nothing to run: the step's command is empty")
        return run_container(self.client, self.image_ref, self.create_options(step), on_output)


def ensure_in_docker(image: "Image", repository: str = "pallet-build-image",
                     client: "docker.DockerClient | None" = None) -> str:
    """``REPOSITORY:<hex12>`` naming ``image`` in the engine, loading it first when missing.

    The tag comes from the manifest digest; an image already under it is trusted when its ID
    (its config digest) is the one expected, and reloaded otherwise.
    """
    from builder.oci.copy import copy_image
    from builder.oci.digest import split
    from builder.oci.stores.daemon import DaemonStore, _engine_call, connect

    tag = split(image.digest)[1][:12]
    ref = f"{repository}:{tag}"
    client = client or connect()
    try:
        with _engine_call(f"look up {ref}", missing=NotFoundError(ref)):
            if client.images.get(ref).id == image.manifest.config.digest:
                return ref
    except NotFoundError:
        pass
    with DaemonStore(repository, client=client) as store:
        copy_image(image.store, image.digest, store, tag)
    return ref
