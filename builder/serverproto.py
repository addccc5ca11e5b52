"""The build server's rendezvous and wire protocol, client side (see ``entry`` and ``server``).

Rendezvous: one socket per user, pallet checkout and Python, in a directory only that user can
enter (``$XDG_RUNTIME_DIR/pallet`` or ``/tmp/pallet-server-UID``); the server also checks the
peer's uid. Protocol, over one Unix stream connection:

- client -> server: a 4-byte big-endian length and a JSON object {argv, env, cwd, umask}; the
  client's stdin, stdout and stderr ride along as file descriptors (SCM_RIGHTS);
- server -> client: JSON lines: ``{"pid": N}`` once the worker runs (``{"stale": true}`` if the
  server runs other code: the client then runs the command itself), then ``{"exit": CODE}``;
- client -> worker: ``{"signal": N}`` lines for each signal the client receives (Ctrl-C).
A worker whose client goes away (killed) kills itself, as the command would have died.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import zlib

import builder

PACKAGE_DIR = os.path.dirname(os.path.abspath(builder.__file__))
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def socket_dir() -> str | None:
    """A directory only this user can use, or None (then no server)."""
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = os.path.join(runtime, "pallet") if runtime and os.path.isdir(runtime) else f"/tmp/pallet-server-{uid}"
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        st = os.lstat(base)
    except OSError:
        return None
    if st.st_uid != uid or st.st_mode & 0o077 or not os.path.isdir(base) or os.path.islink(base):
        return None
    return base


def socket_path() -> str | None:
    explicit = os.environ.get("PALLET_SERVER_SOCKET")  # another server (tests, or one per project)
    if explicit:
        return explicit
    base = socket_dir()
    if base is None:
        return None
    tag = zlib.crc32(f"{PACKAGE_DIR}\0{sys.executable}\0{sys.version}".encode())
    return os.path.join(base, f"server-{tag:08x}.sock")


#: What the server inherits of the environment of the command that starts it: only what
#: Python needs to find and import pallet. Each build brings its own environment to its
#: worker; the rest (a signing password, cloud credentials) must not live on in a process
#: that outlasts the build by many minutes.
SERVER_ENV = ("PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "VIRTUAL_ENV",
              "PALLET_SERVER_IDLE", "LANG", "LC_ALL", "LC_CTYPE")


def server_env(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The server's environment. It runs in /, so a relative PYTHONPATH entry (``.``, or an
    empty one: the current directory) is made absolute: else the server would import another
    pallet than the client's (an installed one) and build with its buildpacks."""
    env = {name: environ[name] for name in SERVER_ENV if name in environ}
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p or ".") for p in env["PYTHONPATH"].split(os.pathsep))
    return env


def spawn_server(path: str) -> None:
    """Start a server in the background (its own session, no terminal, no inherited fds)."""
    import subprocess

    try:
        subprocess.Popen([sys.executable, "-m", "builder.server", path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                         start_new_session=True, cwd="/", env=server_env(os.environ))
    except OSError:
        pass


def _std_fds() -> list[int]:
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, os.O_RDWR))
    return fds


def client_session(sock: socket.socket, argv: list[str]) -> int | None:
    """Run ``argv`` in a worker; its exit status, or None if the server did not take it."""
    umask = os.umask(0)
    os.umask(umask)
    payload = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "umask": umask,
                          "package": PACKAGE_DIR}).encode()
    try:
        socket.send_fds(sock, [struct.pack(">I", len(payload)) + payload], _std_fds())
        reader = sock.makefile("rb")
        first = reader.readline()
    except OSError:
        return None
    if not first:
        return None
    message = json.loads(first)
    if "pid" not in message:
        return None  # stale: a server of other code
    forwarded: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        try:
            sock.sendall(json.dumps({"signal": signum}).encode() + b"\n")
        except OSError:
            pass

    for signum in FORWARDED:
        # A signal this process was started ignoring (a background job of a non-interactive shell
        # ignores SIGINT; nohup, SIGHUP) stays ignored, as it would for pallet in its own process.
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, forward)
    try:
        line = reader.readline()
    except OSError:
        line = b""
    if line:
        return int(json.loads(line)["exit"])
    if forwarded:
        return 128 + forwarded[-1]
    print("pallet: error: the build worker ended without an exit status (killed?)", file=sys.stderr)
    return 1
