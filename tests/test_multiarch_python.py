"""A Python sample for two platforms from one amd64 machine: samples/python-bot (the standard
library only: nothing to download) on ``tests/stacks/python-multi.toml`` (Debian 13's essential
set and python3, amd64 and arm64). The Python buildpack runs in each platform's build image
(arm64 under QEMU), the two images make one index, twice to one digest, and both answer over
HTTP, each saying which machine it runs on.

Slow: assembling the stack's arm64 images under QEMU takes minutes (dpkg byte-compiles
Python's standard library under emulation: 438 s measured on this shared 2-core machine);
it is built once into the shared stack cache, later runs are cache hits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli import pallet
from tests.emulation import need_arm64
from tests.samplekit import free_port, pallet_run, wait_http

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "tests" / "stacks" / "python-multi.toml"
BOT = ROOT / "samples" / "python-bot"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    need_arm64()
    env = {"PALLET_HOME": str(tmp_path_factory.mktemp("pallet-home"))}
    pallet("stack", "build", str(STACK), "--refresh", env=env, timeout=3600)
    return env


def build(src: Path, tag: str, platforms: str, cache: Path, env: dict[str, str]) -> dict:
    return json.loads(pallet("build", str(src), "-t", tag, "--stack", str(STACK), "--platform", platforms,
                             "--json", "--cache-dir", str(cache), env=env, timeout=3600).stdout)


def ask(ref: str, platform: str, env: dict[str, str]) -> dict:
    port = free_port()
    with pallet_run(env, ref, port, "--platform", platform) as proc:
        resp = wait_http(port, "/?say=ping", timeout=120, alive=lambda: proc.poll() is None)
        assert resp.status == 200, resp.body
        return json.loads(resp.body)


def test_python_sample_builds_for_both_platforms_into_one_index_and_both_answer(
        home: dict[str, str], tmp_path: Path) -> None:
    first = build(BOT, "bot:1", "linux/amd64,linux/arm64", tmp_path / "c1", home)
    assert first["mediaType"] == "application/vnd.oci.image.index.v1+json"
    builds = {p["platform"]: p for p in first["platforms"]}
    assert set(builds) == {"linux/amd64", "linux/arm64/v8"}
    assert builds["linux/amd64"]["buildImage"] != builds["linux/arm64/v8"]["buildImage"]  # emulated, not crossed
    for p in builds.values():
        assert [bp["id"] for bp in p["buildpacks"]] == ["pallet/python"]
        assert p["processes"] == [{"type": "web", "command": ["python", "bot.py"], "args": []}]
    # elsewhere, with an empty build cache, the platforms named the other way round: one digest
    elsewhere = shutil.copytree(BOT, tmp_path / "elsewhere" / "python-bot")
    again = build(elsewhere, "bot:2", "linux/arm64,linux/amd64", tmp_path / "c2", home)
    assert again["digest"] == first["digest"]
    for platform, machine in (("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")):
        answer = ask("bot:1", platform, home)
        assert answer["reply"] == "pong" and answer["machine"] == machine
        assert answer["python"].startswith("3.13.")


def test_python_stack_index_has_each_platforms_python(home: dict[str, str]) -> None:
    for arch in ("amd64", "arm64"):
        out = json.loads(pallet("stack", "packages", "python-multi-run:0.1.0", "--platform", f"linux/{arch}",
                                "--json", env=home).stdout)
        python = [p for p in out["packages"] if p["name"] == "python3"]
        assert len(python) == 1 and python[0]["architecture"] == arch
