"""The build server: ``pallet build`` handed to a forked, pre-imported worker behaves exactly like
the command run in its own process (output, exit codes, cwd/env, Ctrl-C, kill -9)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.server import code_stamp
from tests.cli import ROOT, pallet, popen

HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"
TINY = str(ROOT / "stacks" / "tiny.toml")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("pallet-home")
    env = {"PALLET_HOME": str(home), "PALLET_SERVER": "0"}
    pallet("stack", "build", TINY, "--refresh", env=env, timeout=900)
    # These tests are about the server: on, whatever the environment running them says.
    return {"PALLET_HOME": str(home), "PALLET_SERVER": "1"}


@pytest.fixture()
def server(tmp_path):
    """A server of our own on a private socket; yields (env, log) where log() is its stderr."""
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    path = str(sock_dir / "s.sock")
    log_path = tmp_path / "server.log"
    log = open(log_path, "w")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "builder.server", path], stdout=log, stderr=log, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    try:
        yield {"PALLET_SERVER_SOCKET": path}, log_path.read_text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _workers(log) -> list[int]:
    return [int(line.split()[-1]) for line in log().splitlines() if line.startswith("pallet-server: worker")]


def _app(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "hello.conf").write_text("Hi there\n")
    (path / "index.txt").write_text("app file\n")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_served_build_is_the_in_process_build(tmp_path, home, server):
    env, log = server
    app = _app(tmp_path / "app")
    args = ("build", str(app), "-t", "srv:1", "--stack", TINY, "--buildpack", str(HELLO_BP), "--json",
            "--cache-dir", str(tmp_path / "c1"))
    served = pallet(*args, env={**home, **env})
    assert len(_workers(log)) == 1
    here = pallet(*args[:-1], str(tmp_path / "c2"), env={**home, **env, "PALLET_SERVER": "0"})
    assert len(_workers(log)) == 1  # PALLET_SERVER=0: not served
    assert json.loads(served.stdout)["digest"] == json.loads(here.stdout)["digest"]
    assert served.stderr.replace(str(tmp_path / "c1"), "") == here.stderr.replace(str(tmp_path / "c2"), "")


def test_served_errors_exit_codes_cwd_and_env(tmp_path, home, server):
    env, log = server
    missing = pallet("build", "nope", "--stack", TINY, env={**home, **env}, check=False)
    assert missing.returncode == 1 and missing.stderr == "pallet: error: nope: source directory not found\n"
    usage = pallet("build", "--no-such-flag", ".", env={**home, **env}, check=False)
    assert usage.returncode == 2 and "unrecognized arguments" in usage.stderr
    assert len(_workers(log)) == 2
    # a relative source is the client's cwd's, and PALLET_HOME is the client's
    _app(tmp_path / "rel")
    full_env = {**os.environ, **home, **env, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "builder", "build", "rel", "-t", "srv:rel", "--stack", TINY,
                          "--buildpack", str(HELLO_BP), "--cache-dir", str(tmp_path / "c")],
                         cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("srv:rel@sha256:")
    assert len(_workers(log)) == 3
    assert "srv" in pallet("inspect", "srv:rel", env={**home, "PALLET_SERVER": "0"}).stdout


SLEEP = "sleep 97.25"  # the build step that waits; a command line nothing else on the machine runs


def _gone(pid: int | None = None, timeout: float = 15) -> bool:
    """Whether the worker (``pid``) and the sandboxed step are gone within ``timeout``: the
    step dies with its sandbox, which follows its parent a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = subprocess.run(["pgrep", "-f", SLEEP], capture_output=True).returncode == 0
        if not step and (pid is None or not _alive(pid)):
            return True
        time.sleep(0.1)
    return False


def _slow_buildpack(tmp_path: Path) -> Path:
    bp = tmp_path / "slowbp"
    shutil.copytree(HELLO_BP, bp)
    build = bp / "bin" / "build"
    build.write_text(build.read_text().replace("set -euo pipefail\n", f"set -euo pipefail\necho started\n{SLEEP}\n", 1))
    return bp


def _wait_for(proc, text: str) -> None:
    seen = ""
    deadline = time.monotonic() + 120
    while text not in seen:
        assert time.monotonic() < deadline and proc.poll() is None, seen
        seen += proc.stderr.readline()


def test_ctrl_c_reaches_the_worker_and_its_build_step(tmp_path, home, server):
    env, log = server
    app = _app(tmp_path / "app")
    proc = popen("build", str(app), "-t", "srv:slow", "--stack", TINY, "--buildpack", str(_slow_buildpack(tmp_path)),
                 "--cache-dir", str(tmp_path / "c"), env={**home, **env})
    try:
        _wait_for(proc, "started")
        worker = _workers(log)[-1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.endswith("pallet: interrupted\n")
    assert _gone(worker)  # the worker, and the step it ran


def test_a_signal_the_client_ignores_is_not_forwarded(tmp_path, home, server):
    """A background job of a non-interactive shell starts with SIGINT ignored: a Ctrl-C meant
    for the foreground must not interrupt its build (as it does not in-process)."""
    env, _ = server
    app = _app(tmp_path / "app")
    bp = tmp_path / "pausebp"
    shutil.copytree(HELLO_BP, bp)
    build_sh = bp / "bin" / "build"
    build_sh.write_text(build_sh.read_text().replace("set -euo pipefail\n", "set -euo pipefail\necho started\nsleep 2\n", 1))
    full_env = {**os.environ, **home, **env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "builder", "build", str(app), "-t", "srv:bg", "--stack", TINY,
                             "--buildpack", str(bp), "--cache-dir", str(tmp_path / "c")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        _wait_for(proc, "started")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted" not in err and out.startswith("srv:bg@sha256:")


def test_killed_client_takes_its_worker_along(tmp_path, home, server):
    env, log = server
    app = _app(tmp_path / "app")
    proc = popen("build", str(app), "-t", "srv:killed", "--stack", TINY, "--buildpack",
                 str(_slow_buildpack(tmp_path)), "--cache-dir", str(tmp_path / "c"), env={**home, **env})
    _wait_for(proc, "started")
    worker = _workers(log)[-1]
    proc.kill()
    proc.wait()
    assert _gone(worker)  # the worker, and the step it ran
    result = pallet("inspect", "srv:killed", env={**home, "PALLET_SERVER": "0"}, check=False)
    assert result.returncode == 1  # nothing was tagged


def test_code_stamp_sees_a_changed_file(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = code_stamp(str(tmp_path))
    (tmp_path / "a.py").write_text("x = 22\n")
    assert code_stamp(str(tmp_path)) != before


def test_no_server_socket_runs_in_process_and_starts_one(tmp_path, home):
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    path = sock_dir / "s.sock"
    app = _app(tmp_path / "app")
    env = {**home, "PALLET_SERVER_SOCKET": str(path), "PALLET_SERVER_IDLE": "30"}
    first = pallet("build", str(app), "-t", "srv:first", "--stack", TINY, "--buildpack", str(HELLO_BP),
                   "--cache-dir", str(tmp_path / "c"), env=env)
    assert first.stdout.startswith("srv:first@sha256:")
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, "no server was started"
        time.sleep(0.05)
    out = subprocess.run(["pgrep", "-f", f"builder.server {path}"], capture_output=True, text=True)
    assert out.returncode == 0
    for pid in out.stdout.split():
        os.kill(int(pid), signal.SIGTERM)


def test_a_relative_pythonpath_reaches_the_server_absolute(tmp_path, monkeypatch):
    """The server runs in /: a client started with PYTHONPATH=. must not get a server that
    imports another pallet (an installed one) and builds with its buildpacks."""
    from builder.serverproto import server_env

    monkeypatch.chdir(tmp_path)
    env = server_env({"PYTHONPATH": f".:/abs/dir::sub", "HOME": "/root", "PATH": "/bin"})
    assert env == {"PYTHONPATH": f"{tmp_path}:/abs/dir:{tmp_path}:{tmp_path}/sub", "PATH": "/bin"}


def test_a_server_of_another_pallet_is_not_used_and_ends(tmp_path, home):
    """A server that imported pallet from elsewhere answers 'stale' to this pallet's client,
    which builds by itself; the server ends, so the next client starts one of its own code."""
    other = tmp_path / "other"
    shutil.copytree(ROOT / "builder", other / "builder", ignore=shutil.ignore_patterns("__pycache__"))
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    path = str(sock_dir / "s.sock")
    proc = subprocess.Popen([sys.executable, "-m", "builder.server", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(other)},
                            start_new_session=True, cwd=tmp_path)  # not here: -m imports from the cwd first
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        app = _app(tmp_path / "app")
        out = pallet("build", str(app), "-t", "srv:other", "--stack", TINY, "--buildpack", str(HELLO_BP),
                     "--cache-dir", str(tmp_path / "c"), env={**home, "PALLET_SERVER_SOCKET": path})
        assert out.stdout.startswith("srv:other@sha256:")
        assert proc.wait(timeout=30) != 0  # ended by its worker's SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
