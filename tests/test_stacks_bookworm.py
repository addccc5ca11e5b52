"""The shipped full stacks, locked and built for real, then asked questions in Docker (slow: minutes)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.fixtures_docker import run_cli
from tests.test_stacks_build import ROOT, Env, needs_stack_build

pytestmark = [pytest.mark.slow, needs_stack_build]


def lock_and_build(tmp: Path, name: str) -> tuple[Env, Path, dict]:
    env = Env(tmp / "env")
    (tmp / "stacks").mkdir()
    stack = tmp / "stacks" / f"{name}.toml"
    shutil.copy(ROOT / "stacks" / f"{name}.toml", stack)
    env.pallet("stack", "lock", str(stack))
    return env, stack, json.loads(env.pallet("stack", "build", str(stack), "--json", timeout=1800).stdout)


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory):
    return lock_and_build(tmp_path_factory.mktemp("bookworm"), "bookworm")


def test_bookworm_images_run_their_toolchains_and_runtimes(bookworm, docker_cli: str, image_name: str) -> None:
    env, stack, result = bookworm
    env.pallet("copy", result["build"]["reference"], f"docker-daemon:{image_name}:build")
    env.pallet("copy", result["run"]["reference"], f"docker-daemon:{image_name}:run")

    def run(tag: str, script: str) -> list[str]:
        return run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:{tag}", "sh", "-c",
                       script, timeout=300).splitlines()

    python, node, user, compilers = run("run", "python3 --version; node --version; id -un; "
                                               "command -v gcc cc go pip pip3 npm make || echo nothing-to-compile-with")
    assert python.startswith("Python 3.11.") and node.startswith("v18.")
    assert (user, compilers) == ("cnb", "nothing-to-compile-with")
    b_python, b_node, gcc, go, pip, npm, git = run(
        "build", "python3 --version; node --version; gcc --version | head -1; go version; pip --version; "
                 "npm --version; git --version")
    assert (b_python, b_node) == (python, node)  # the runtimes apps are built with are the ones they run on
    assert gcc.startswith("gcc (Debian 12") and go.startswith("go version go1.19")
    assert pip.startswith("pip ") and npm[0].isdigit() and git.startswith("git version")
    # and they work, as the CNB user, without the network
    assert run("build", "cd /tmp && printf 'package main\\nimport \"fmt\"\\nfunc main() { fmt.Println(\"go ok\") }\\n'"
                        " > m.go && HOME=/tmp GOCACHE=/tmp/gocache go run m.go; "
                        "python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print(\"venv ok\")'") == ["go ok", "venv ok"]
    provides = json.loads(json.loads(env.pallet("inspect", result["run"]["reference"], "--json").stdout)
                          ["config"]["labels"]["io.pallet.stack.provides"])
    assert python == f"Python {provides['python']}" and node == f"v{provides['node']}"


def test_bookworm_layers_are_shared_and_few(bookworm) -> None:
    _, _, result = bookworm
    build = [layer["digest"] for layer in result["build"]["layers"]]
    run = [layer["digest"] for layer in result["run"]["layers"]]
    assert len(run) == 2 and build[:2] == run and len(build) == 3
    assert result["run"]["size"] < result["build"]["size"] / 2


def test_bookworm_inventory_and_cached_rebuild(bookworm) -> None:
    env, stack, result = bookworm
    out = json.loads(env.pallet("stack", "packages", result["run"]["reference"], "--json").stdout)
    by_name = {p["name"]: p for p in out["packages"]}
    assert {"python3", "nodejs", "ca-certificates", "tzdata", "libc6"} <= set(by_name)
    assert "gcc-12" not in by_name
    assert by_name["python3"]["source"] == "python3-defaults" and by_name["nodejs"]["licenses"]
    started = time.monotonic()
    again = json.loads(env.pallet("stack", "build", str(stack), "--json").stdout)
    assert again["cached"] and time.monotonic() - started < 5
    assert again["build"]["digest"] == result["build"]["digest"]


def test_bookworm_static_run_image(tmp_path: Path, docker_cli: str, image_name: str) -> None:
    env, _, result = lock_and_build(tmp_path, "bookworm-static")
    env.pallet("copy", result["run"]["reference"], f"docker-daemon:{image_name}:run")
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:run", "sh", "-c",
                  "test -s /etc/ssl/certs/ca-certificates.crt && echo certs; test -f /usr/share/zoneinfo/Europe/Paris "
                  "&& echo tz; ls /lib/x86_64-linux-gnu/libc.so.6 >/dev/null && echo libc; "
                  "command -v python3 node gcc || echo no-runtimes; id -un").splitlines()
    assert out == ["certs", "tz", "libc", "no-runtimes", "cnb"]
    assert len(result["run"]["layers"]) == 2 and result["run"]["size"] < 60_000_000
