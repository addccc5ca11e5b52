"""Helpers for the buildpack and sample tests: a PALLET_HOME with the bookworm stacks (built once
per session), building with private cache directories, and asking a running app over HTTP, in
Docker (``--network host``: the bridge is not relied on) and with ``pallet run``."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.cli import pallet, popen

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@dataclass
class Home:
    """A PALLET_HOME whose local store has a stack's images."""

    env: dict[str, str]
    stack: str

    def build(self, src: Path, tag: str, cache: Path, *extra: str, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return pallet("build", str(src), "-t", tag, "--stack", self.stack, "--cache-dir", str(cache), "--json",
                      *extra, env={**self.env, **(env or {})}, check=check, timeout=900)

    def build_json(self, src: Path, tag: str, cache: Path, *extra: str) -> dict:
        return json.loads(self.build(src, tag, cache, *extra).stdout)

    def detect(self, src: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return pallet("detect", str(src), "--stack", self.stack, *extra, env=self.env, check=check)

    def inspect(self, ref: str) -> dict:
        return json.loads(pallet("inspect", "--json", ref, env=self.env).stdout)


def stack_home(tmp_path_factory: pytest.TempPathFactory, *stacks: str) -> dict[str, str]:
    home = tmp_path_factory.mktemp("pallet-home")
    env = {"PALLET_HOME": str(home)}
    for stack in stacks:
        pallet("stack", "build", str(ROOT / "stacks" / f"{stack}.toml"), "--refresh", env=env, timeout=1800)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


def http(port: int, path: str = "/", *, method: str = "GET", data: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10) -> Response:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                            resp.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as err:
        return Response(err.code, {k.lower(): v for k, v in err.headers.items()},
                        err.read().decode("utf-8", "replace"))


def wait_http(port: int, path: str = "/", *, timeout: float = 60, alive=lambda: True) -> Response:
    """The first answer on ``port`` (any status), polling until the app listens."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError("the app exited before it answered")
        try:
            return http(port, path, timeout=5)
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError) as exc:
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"nothing answered on port {port} within {timeout} s: {last}")


@contextlib.contextmanager
def pallet_run(home: Home | dict[str, str], ref: str, port: int, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """``pallet run REF -p PORT`` (daemonless, its own network, PORT published) for the duration of the block.
    ``home``: a Home, or the environment of one."""
    proc = popen("run", ref, "-p", str(port), *extra, env=home.env if isinstance(home, Home) else home)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@contextlib.contextmanager
def docker_run(docker_cli: str, image: str, port: int, *extra: str) -> Iterator[str]:
    """``docker run --rm -d --network host -e PORT=port IMAGE``; the container id; its logs on failure."""
    cid = subprocess.run([docker_cli, "run", "--rm", "-d", "--network", "host", "-e", f"PORT={port}", *extra, image],
                         capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    try:
        yield cid
    finally:
        subprocess.run([docker_cli, "rm", "-f", cid], capture_output=True, timeout=60)


def container_alive(docker_cli: str, cid: str):
    def alive() -> bool:
        out = subprocess.run([docker_cli, "inspect", "-f", "{{.State.Running}}", cid], capture_output=True, text=True)
        return out.stdout.strip() == "true"
    return alive
