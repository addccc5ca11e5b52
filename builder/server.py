"""The build server: pallet imported once, a fresh forked worker per ``pallet build``.

    python -m builder.server SOCKET      (started by the ``pallet`` command; see ``entry``)

The server never runs a command itself: it imports the build path's modules, then waits. Each
connection gets ``fork()``: the child starts from that untouched, fully imported state, takes
the client's working directory, umask, environment and standard streams, runs
``builder.cli.main`` and reports the status. So every build is as isolated as a new process,
without the ~50 ms of start-up. The server holds no threads (a fork copies only the caller).

It exits after ``PALLET_SERVER_IDLE`` seconds (default 600) without a connection, and at once
when pallet's code changed under it (the client then runs the command itself and a new server
starts). A lock file keeps it to one server per socket.
"""

from __future__ import annotations

import fcntl
import importlib
import io
import json
import os
import select
import signal
import socket
import struct
import sys
import threading

from builder import serverproto as proto
from builder.lifecycle.memo import code_stamp  # pallet's code by stat: a change makes the server stale

#: Imported before forking: everything a build from the local store or a registry touches.
PRELOAD = (
    "builder.cli", "builder.cli_build", "builder.lifecycle.pipeline", "builder.lifecycle.images",
    "builder.lifecycle.memo", "builder.lifecycle.incremental", "builder.lifecycle.detected",
    "builder.lifecycle.detect", "builder.lifecycle.build", "builder.lifecycle.export",
    "builder.lifecycle.compose", "builder.lifecycle.layercache", "builder.lifecycle.cache",
    "builder.lifecycle.project", "builder.lifecycle.rootfs", "builder.lifecycle.sandbox",
    "builder.lifecycle.order", "builder.lifecycle.plan", "builder.lifecycle.buildpack",
    "builder.stacks.api", "builder.stacks.build", "builder.oci.image", "builder.oci.layer",
    "builder.oci.compress", "builder.oci.copy", "builder.oci.stores.layout", "builder.oci.stores.registry",
    "builder.supply.sbom", "builder.lifecycle.launch", "builder.lifecycle.envfiles", "builder.lifecycle.layers",
    "builder.gc.areas", "builder.lifecycle.stackchoice", "builder.lifecycle.apprequests", "builder.lifecycle.detectmemo",
    "nodesemver", "poetry.core.constraints.version", "packaging.specifiers",
    "tomllib", "tomlkit", "zstandard", "concurrent.futures",
)


def idle_seconds() -> float:
    try:
        return float(os.environ.get("PALLET_SERVER_IDLE", "600"))
    except ValueError:
        return 600.0


def serve(path: str) -> int:
    lock = open(path + ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server has this socket
    stamp = code_stamp()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if threading.active_count() != 1:
        return 1  # forking with threads would copy half a lock; never serve like that
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    listener.bind(path)
    os.umask(old)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    idle = idle_seconds()
    try:
        while True:
            ready, _, _ = select.select([listener], [], [], idle)
            if not ready:
                break
            conn, _ = listener.accept()
            if not _same_user(conn):
                conn.close()
                continue
            if code_stamp() != stamp:
                _send(conn, {"stale": True})
                conn.close()
                break
            pid = os.fork()
            if pid == 0:
                try:
                    _worker(conn, listener)
                finally:
                    os._exit(70)
            conn.close()
            try:
                print(f"pallet-server: worker {pid}", file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass
    finally:
        try:
            if os.stat(path).st_ino == os.fstat(listener.fileno()).st_ino:
                os.unlink(path)
        except OSError:
            pass
    return 0


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < 4:
        raise ConnectionError("short request")
    (size,) = struct.unpack(">I", data[:4])
    body = bytearray(data[4:])
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("short request")
        body += chunk
    return json.loads(bytes(body)), fds


def _worker(conn: socket.socket, listener: socket.socket) -> None:
    """Become the client's command: its streams, directory, umask and environment."""
    listener.close()
    os.setpgid(0, 0)  # its own process group: a forwarded Ctrl-C reaches its children too, as on a terminal
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    request, fds = _receive(conn)
    if request.get("package", proto.PACKAGE_DIR) != proto.PACKAGE_DIR:
        # This server imported another pallet than the client's: the client builds by itself,
        # and the server ends (the next client starts one of its own code).
        _send(conn, {"stale": True})
        os.kill(os.getppid(), signal.SIGTERM)
        return
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    import tempfile

    tempfile.tempdir = None  # from the client's TMPDIR
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  line_buffering=os.isatty(1))
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                  errors="backslashreplace", line_buffering=True)
    argv = [str(a) for a in request["argv"]]
    sys.argv = ["pallet", *argv]
    done = threading.Event()
    _send(conn, {"pid": os.getpid()})
    threading.Thread(target=_watch, args=(conn, done), daemon=True).start()
    code = _run(argv)
    done.set()
    try:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed pipe must not hide the status
        pass
    try:
        _send(conn, {"exit": code})
    except OSError:
        pass
    os._exit(code)


def _run(argv: list[str]) -> int:
    from builder.cli import main

    try:
        return int(main(argv) or 0)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pallet: interrupted", file=sys.stderr)
        return 130
    except BaseException:  # noqa: BLE001 - a bug: its traceback, as Python would print it
        import traceback

        traceback.print_exc()
        return 1


def _watch(conn: socket.socket, done: threading.Event) -> None:
    """Signals from the client; the client gone means this command was killed."""
    reader = conn.makefile("rb")
    while True:
        try:
            line = reader.readline()
        except OSError:
            line = b""
        if not line:
            if not done.is_set():
                os.killpg(0, signal.SIGKILL)
            return
        try:
            signum = int(json.loads(line)["signal"])
        except (ValueError, KeyError, TypeError):
            continue
        os.killpg(0, signum)


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
