"""Go for arm64 from one amd64 machine, cross-compiled by default where it can be, on
``tests/stacks/go-multi.toml`` (Debian 13's essential set and golang-go, amd64 and arm64):
samples/go-http for linux/arm64 without ``--cross`` is cross-compiled in the amd64 build image
and is the very image the emulated build (``--emulate``: arm64's Go under QEMU) gives; a Go app
with a cgo file (tests/apps/go-cgo) is emulated instead.

Slow: the emulated Go builds compile under QEMU (samples/go-http: about 4 minutes on this shared
2-core machine), and the stack's arm64 images are assembled under QEMU the first time (about
2 minutes; later runs are cache hits in the shared stack cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import pallet
from tests.emulation import need_arm64
from tests.samplekit import free_port, pallet_run, wait_http

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "tests" / "stacks" / "go-multi.toml"
GO_HTTP = ROOT / "samples" / "go-http"
GO_CGO = ROOT / "tests" / "apps" / "go-cgo"
ARM64 = "linux/arm64"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    need_arm64()
    env = {"PALLET_HOME": str(tmp_path_factory.mktemp("pallet-home"))}
    pallet("stack", "build", str(STACK), "--refresh", env=env, timeout=3600)
    return env


def build(src: Path, tag: str, cache: Path, env: dict[str, str], *extra: str) -> tuple[dict, str]:
    """(the --json output's one platform, stderr)."""
    proc = pallet("build", str(src), "-t", tag, "--stack", str(STACK), "--platform", ARM64, "--json",
                  "--cache-dir", str(cache), *extra, env=env, timeout=3600)
    out = json.loads(proc.stdout)
    assert [p["platform"] for p in out["platforms"]] == ["linux/arm64/v8"]
    return out["platforms"][0], proc.stderr


def build_image(platform: str, env: dict[str, str]) -> str:
    return json.loads(pallet("inspect", "--json", "go-multi-build:0.1.0", "--platform", platform,
                             env=env).stdout)["digest"]


def test_go_is_cross_compiled_by_default_and_is_the_emulated_image(home: dict[str, str], tmp_path: Path) -> None:
    auto, said = build(GO_HTTP, "go-http:auto", tmp_path / "c1", home)
    assert auto["build"] == {"way": "cross", "on": "linux/amd64",
                             "reason": "every buildpack cross-compiles: pallet/go; no cgo in the app"}
    assert "linux/arm64/v8: cross-compiled on linux/amd64 (every buildpack cross-compiles" in said
    assert auto["buildImage"] == build_image("linux/amd64", home)   # natively, in this machine's build image
    emulated, said = build(GO_HTTP, "go-http:emulated", tmp_path / "c2", home, "--emulate")
    assert emulated["build"] == {"way": "emulated", "on": "linux/arm64", "reason": "--emulate"}
    assert "linux/arm64/v8: emulated under QEMU as linux/arm64 (--emulate)" in said
    assert emulated["buildImage"] == build_image(ARM64, home)       # arm64's Go, under QEMU
    assert auto["digest"] == emulated["digest"]
    # and the image is arm64's: it answers under QEMU, saying so
    port = free_port()
    with pallet_run(home, "go-http:auto", port, "--platform", ARM64) as proc:
        info = json.loads(wait_http(port, "/api/info", timeout=120, alive=lambda: proc.poll() is None).body)
        assert info["arch"] == "arm64"


def test_go_app_with_cgo_is_emulated(home: dict[str, str], tmp_path: Path) -> None:
    built, said = build(GO_CGO, "go-cgo:1", tmp_path / "c", home)
    assert built["build"] == {"way": "emulated", "on": "linux/arm64",
                              "reason": 'the app may need cgo: impl_cgo.go imports "C"'}
    assert 'linux/arm64/v8: emulated under QEMU as linux/arm64 (the app may need cgo' in said
    assert built["buildImage"] == build_image(ARM64, home)
    # go-multi's build image has no gcc: built with CGO_ENABLED=0 (a warning), the app's pure-Go fallback, for arm64
    assert pallet("run", "go-cgo:1", "--platform", ARM64, env=home).stdout.strip() == "pure Go on arm64"
