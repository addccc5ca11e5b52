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
    # The server, not its workers: a worker (forked, so with the server's command line) is a
    # build of another test run using the same checkout's server, which must not die with this one.
    servers: dict[int, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"builder.server" in argv and path.encode() in argv:
            servers[int(pid)] = ppid
    for pid, ppid in servers.items():
        if ppid not in servers:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


# A skip that hides a missing tool is a failure in CI: CI runs the README's set-up, so a tool the
# suite needs and does not find means the set-up is broken, not that the test does not apply.
_MISSING_TOOL = ("not installed", "apt-get install", "pip install", "could not import", "scripts/setup.sh",
                 "no docker", "no docker-registry", "no node", "no real go binary", "dockerd could not start",
                 "not allowed here")


def _hides_missing_tool(reason: str) -> bool:
    lowered = reason.lower()
    return any(marker in lowered for marker in _MISSING_TOOL)


import pytest  # noqa: E402 - the hook below needs it; the fixtures above are plugins


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001 - pytest's hook signature
    import os

    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() != "true" or not report.skipped or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    if _hides_missing_tool(reason):
        report.outcome = "failed"
        report.longrepr = f"CI=true: this skip hides a tool the README's set-up should have installed: {reason}"
