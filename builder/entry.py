"""The ``pallet`` command's first step: hand a build to the warm build server, or run here.

Most of a rebuild's time is not building: it is starting Python and importing pallet (tens of
milliseconds, about what BuildKit takes for the whole of an unchanged build, because BuildKit
is a daemon that has everything loaded). So ``pallet build`` works like a zygote: a background
server (``builder.server``) has pallet imported and forks a fresh worker per build; this client
passes it the command line, environment, working directory and its own stdin/stdout/stderr,
forwards signals (Ctrl-C) and exits with the worker's status. Output, exit codes and errors
are those of an in-process run, because the worker runs the same ``builder.cli.main``.

Only what is cheap to import is imported here. Anything unusual (no server yet, a server of
other code, ``PALLET_SERVER=0``) runs the command in this process, as before; the first build
starts the server in the background for the next one. The server exits when idle.
"""

from __future__ import annotations

import os
import sys

#: The commands the server runs (the others gain little: they are not run in tight loops).
SERVED = frozenset({"build"})


def main() -> int:
    argv = sys.argv[1:]
    if _served(argv):
        code = _via_server(argv)
        if code is not None:
            return code
    from builder.cli import main as cli_main

    return cli_main(argv)


def _served(argv: list[str]) -> bool:
    if os.environ.get("PALLET_SERVER", "1").lower() in ("0", "no", "off", "false"):
        return False
    if sys.platform != "linux":
        return False
    if any(arg == "--sign-key" or arg.startswith("--sign-key=") for arg in argv):
        return False  # it may ask for a password: that needs this process's terminal
    for arg in argv:
        if not arg.startswith("-"):
            return arg in SERVED
        if arg == "--":
            return False
    return False


def _via_server(argv: list[str]) -> int | None:
    """The worker's exit status, or None when no server could take the command."""
    import socket

    from builder import serverproto as proto

    path = proto.socket_path()
    if path is None:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        proto.spawn_server(path)  # for the next build; this one runs here
        return None
    try:
        return proto.client_session(sock, argv)
    finally:
        sock.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
