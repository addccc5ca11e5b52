"""In CI a skip that hides a missing tool fails the run (the set-up should have installed it);
skips for reasons that are not a missing tool stay skips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import _hides_missing_tool

ROOT = Path(__file__).resolve().parent.parent


def test_missing_tool_reasons_are_recognised() -> None:
    assert _hides_missing_tool("skopeo is not installed (apt-get install skopeo)")
    assert _hides_missing_tool("could not import 'nacl.secret': No module named 'nacl'")
    assert _hides_missing_tool("no Docker engine at unix:///var/run/docker.sock and no dockerd to start")
    assert not _hides_missing_tool("the push finished before it could be interrupted")


def test_under_ci_such_a_skip_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_tool():\n    pytest.skip('frobnicate is not installed (apt-get install frobnicate)')\n"
        "def test_race():\n    pytest.skip('the copy finished before it could be interrupted')\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
            "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), str(tmp_path / "test_x.py")]
    env_ci = {"CI": "true", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    ci = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env_ci)
    assert "1 failed, 1 skipped" in ci.stdout, ci.stdout
    local = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={**env_ci, "CI": ""})
    assert "2 skipped" in local.stdout, local.stdout
