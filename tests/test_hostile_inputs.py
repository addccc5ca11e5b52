"""Hostile source trees and command lines: each a file an attacker (or a typo) could write.

Every case is a clear error naming the file -- one line from pallet, or one line in the detect
report from the buildpack that read it -- never a traceback, and nothing outside the app is read.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from tests.cli import pallet

HUGE = "9" * 5000


def one_line_error(proc, *needles: str, progress: bool = False) -> str:
    """The error is one line; ``progress``: after the lines a build prints as it goes (its stack)."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr.splitlines(keepends=True)[-1] if progress and proc.stderr else proc.stderr
    assert err.startswith("pallet: error: ") and err.count("\n") == 1, proc.stderr
    assert proc.stderr.count("pallet: error: ") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


def write_app(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return root


# -- buildpacks read the app's files: a malformed one is the buildpack's one-line error ------------


@pytest.mark.parametrize("files, needle", [
    ({"Pipfile": "[packages]\n", "Pipfile.lock": "garbage"}, "Pipfile.lock is not valid JSON"),
    ({"Pipfile": "[packages]\n", "Pipfile.lock": "[1, 2]"}, "Pipfile.lock must hold a JSON object"),
    ({"pyproject.toml": 'project = 5\ntool = "x"\n'}, "[project] must be a table"),
    ({"pyproject.toml": '[project]\nname = "a"\nscripts = 5\n'}, "[project.scripts] must be a table"),
    ({"pyproject.toml": '[project]\nname = "a"\ndependencies = [1, {a = 1}]\n'},
     "project.dependencies must be a list of strings"),
    ({"pyproject.toml": '[tool]\npoetry = [1]\n'}, "[tool.poetry] must be a table"),
    ({"requirements.txt": "", ".python-version": b"\xff\xfe\x00"}, ".python-version is not UTF-8 text"),
    ({"requirements.txt": "", "runtime.txt": b"\xff\xfe\x00"}, "runtime.txt is not UTF-8 text"),
    ({"package.json": json.dumps({"workspaces": [None]})}, "workspaces: null is not a directory pattern"),
    ({"package.json": json.dumps({"workspaces": {"packages": [5]}})}, "workspaces: 5 is not a directory"),
    ({"package.json": json.dumps({"workspaces": ["../../*"]})}, '"../../*" names a directory outside the app'),
    ({"package.json": json.dumps({"workspaces": ["/etc"]})}, '"/etc" names a directory outside the app'),
    ({"package.json": json.dumps({"workspaces": ["!../x", "a"]})}, "outside the app"),
    ({"package.json": "{}", "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
      "pnpm-workspace.yaml": "packages:\n  - '../*'\n"}, '"../*" names a directory outside the app'),
], ids=lambda v: "" if isinstance(v, str) else "-".join(v))
def test_malformed_app_files_are_the_buildpacks_one_line_error(tmp_path: Path, files, needle) -> None:
    app = write_app(tmp_path / "app", files)
    proc = pallet("detect", str(app), check=False)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "TypeError" not in out, out
    assert needle in out, out
    line = next(ln for ln in out.splitlines() if needle in ln)
    assert "error" in line or "the build will fail" in line, line


# -- pallet reads the versions an app asks for ------------------------------------------------------


@pytest.mark.parametrize("files, source", [
    ({"requirements.txt": "", ".python-version": f"3.{HUGE}\n"}, ".python-version"),
    ({"pyproject.toml": f'[project]\nname = "a"\nrequires-python = ">=3.{HUGE}"\n'}, "requires-python"),
    ({"go.mod": f"module x\n\ngo 1.{HUGE}\n", "main.go": "package main\n"}, "go.mod"),
    ({"requirements.txt": "", ".python-version": "3." + "1" * 300 + "\n"}, ".python-version"),
])
def test_an_absurd_version_request_is_a_one_line_error(tmp_path: Path, files, source) -> None:
    app = write_app(tmp_path / "app", files)
    one_line_error(pallet("detect", str(app), check=False), source, "is not a version")


# -- the source tree itself ---------------------------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def _zero_device(path: Path) -> None:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: a read never ends


@pytest.mark.parametrize("make", [_fifo, _socket, pytest.param(_zero_device, marks=pytest.mark.skipif(
    os.geteuid() != 0, reason="mknod of a device needs root"))], ids=["fifo", "socket", "dev-zero"])
def test_a_special_file_in_the_source_is_refused_not_read(tmp_path: Path, make) -> None:
    """The build memo read every file of the source: a FIFO blocked it forever, /dev/zero never ends."""
    app = write_app(tmp_path / "app", {"index.html": "<h1>hi</h1>"})
    make(app / "special")
    proc = pallet("build", str(app), "-t", f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"),
                  check=False, timeout=300)  # a hang guard, not a speed check
    one_line_error(proc, f"{app}/special", "device, socket or FIFO", progress=True)
    assert not (tmp_path / "out" / "index.json").exists()


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_a_source_that_is_not_a_directory_says_so(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "app"
    if kind == "file":
        src.write_text("x")
    for command in ("build", "detect"):
        one_line_error(pallet(command, str(src), check=False), str(src),
                       "not a directory" if kind == "file" else "not found")
