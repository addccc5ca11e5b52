"""Shared fixtures. Real components only: a real registry, a real Docker engine."""

pytest_plugins = ["tests.fixtures_registry", "tests.fixtures_docker", "tests.fixtures_bookworm", "tests.aptarchive"]


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001 - pytest's hook signature
    """Stop the build servers this run's ``pallet build``s started (they would idle for minutes
    after the suite; a CI job should leave nothing running)."""
    import os
    import signal

    from builder.serverproto import socket_path

    path = socket_path()
    if not path:
        return
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"builder.server" in argv and path.encode() in argv:
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass
