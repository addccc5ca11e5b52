"""pallet as a user installs it: a wheel, in a clean virtualenv outside the checkout, run from another
directory. Its buildpacks and stacks must come with it (found through the installed package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``pallet`` command of a wheel built from this checkout, in a virtualenv of its own."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"  # a copy: building must not write into the checkout (build/, egg-info)
    top_level = {".git", ".venv", "build", "dist", "bench", ".pytest_cache"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in ("__pycache__", "node_modules") or n.endswith(".egg-info")}
        return skip | (top_level & set(names) if Path(directory) == ROOT else set())

    shutil.copytree(ROOT, src, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(src)],
                   check=True, capture_output=True, text=True)
    wheels = list((work / "dist").glob("pallet-*.whl"))
    assert len(wheels) == 1
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheels[0])], check=True, capture_output=True,
                   text=True)
    shutil.rmtree(src)  # nothing may refer back to the tree it was built from
    return venv / "bin" / "pallet"


def run(pallet: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(pallet), *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True,
                          timeout=900)


def test_the_wheel_carries_its_buildpacks_and_stacks(installed: Path, tmp_path: Path) -> None:
    site = subprocess.run([str(installed.parent / "python"), "-c", "import builder, sys; print(builder.__file__)"],
                          capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert "site-packages" in site and not site.startswith(str(ROOT))
    data = Path(site).parent / "_data"
    assert (data / "buildpacks" / "order.toml").is_file() and (data / "stacks" / "tiny.lock").is_file()
    assert os.access(data / "buildpacks" / "python" / "bin" / "detect", os.X_OK)


@pytest.mark.slow
def test_an_installed_pallet_detects_and_builds_from_another_directory(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    app = tmp_path / "site"  # a sample the tiny stack's bash can detect
    shutil.copytree(ROOT / "samples" / "static-site", app)
    env = {"PALLET_HOME": str(tmp_path / "home"), "PALLET_SERVER": "0"}
    detect = run(installed, "detect", str(app), "--stack", "tiny", "--json", cwd=elsewhere, env=env)
    assert detect.returncode == 0, detect.stderr
    assert any(bp["id"] == "pallet/static" for bp in json.loads(detect.stdout)["group"])

    hello = tmp_path / "hello"
    hello.mkdir()
    (hello / "hello.conf").write_text("Hi from a wheel\n")
    built = run(installed, "build", str(hello), "-t", "hello:wheel", "--stack", "tiny", "--buildpack",
                str(ROOT / "tests" / "buildpacks" / "hello"), "--json", cwd=elsewhere, env=env)
    assert built.returncode == 0, built.stderr
    out = run(installed, "run", "hello:wheel", cwd=elsewhere, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("hello: Hi from a wheel")
