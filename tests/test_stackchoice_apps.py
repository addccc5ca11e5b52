"""The stack choice on real builds (issue 12 item 1, with issue 13's Node.js installs): apps
built without ``--stack``, each landing on the stack its request points to, then run with
``pallet run`` and asked over HTTP which runtime answers.

- a Go module whose ``go 1.19`` directive trixie's Go meets stays on trixie (its ``toolchain``
  line, newer than any stack's Go, is not a request: pallet builds with GOTOOLCHAIN=local);
- a go directive newer than every stack's Go fails before anything is built, listing the stacks;
- an Express app whose ``engines.node`` only bookworm's Node.js 18 satisfies lands on bookworm;
- an ``engines.node`` no stack has (22.x) stays on trixie, whose Node.js buildpack installs it;
- Python 3.14 (``.python-version``, as ``uv init`` writes it today) and a ``go 1.26`` directive,
  which no stable Debian has, land on forky (Debian testing), built there on first use.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.lifecycle.stackchoice import shipped_offers
from tests.cli import pallet
from tests.samplekit import ROOT, SAMPLES, Home, container_alive, docker_run, free_port, pallet_run, wait_http

pytestmark = [pytest.mark.slow]

APPS = ROOT / "tests" / "apps"
#: What each shipped stack's lock provides (the reasons name these versions).
HAS = {o.stack: o.runtimes for o in shipped_offers(ROOT / "stacks")}


def build(home: Home, src: Path, tag: str, cache: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``pallet build`` without --stack: the stack is pallet's choice."""
    return pallet("build", str(src), "-t", tag, "--cache-dir", str(cache), "--json", env=home.env, check=check,
                  timeout=900)


def reason(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in done.stderr.splitlines() if ln.startswith("stack ")]


def get(home: Home, ref: str, path: str = "/") -> str:
    port = free_port()
    with pallet_run(home, ref, port) as proc:
        resp = wait_http(port, path, alive=lambda: proc.poll() is None)
        assert resp.status == 200, resp.body
        return resp.body


def stack_of(home: Home, ref: str) -> str:
    return home.inspect(ref)["config"]["labels"]["io.pallet.stack.name"]


def test_go_119_directive_stays_on_trixie_and_a_toolchain_line_is_no_request(trixie, tmp_path):
    app = shutil.copytree(SAMPLES / "go-http", tmp_path / "go-http")
    with (app / "go.mod").open("a") as f:
        f.write("\ntoolchain go1.99.0\n")
    done = build(trixie, app, "go119:1", tmp_path / "c")
    go = json.loads(get(trixie, "go119:1", "/api/info"))["go"]
    assert reason(done) == [f"stack trixie (the default): go.mod asks for Go 1.19 or newer; it has Go {go[2:]}"]
    assert go.startswith("go1.24.") and stack_of(trixie, "go119:1") == "trixie"


def test_a_go_directive_no_stack_meets_fails_before_building(trixie, tmp_path):
    app = shutil.copytree(SAMPLES / "go-http", tmp_path / "go-new")
    (app / "go.mod").write_text("module example.com/go-http\n\ngo 1.99.1\n")
    done = build(trixie, app, "go199:1", tmp_path / "c", check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "pallet: error: no stack has what the app asks for (go.mod asks for Go 1.99.1 or newer): trixie has Go 1.24.")
    assert "bookworm has Go 1.19." in lines[0] and "GOTOOLCHAIN=local" in lines[0]
    assert pallet("inspect", "go199:1", env=trixie.env, check=False).returncode == 1


def test_node_18x_lands_on_bookworm(trixie, tmp_path):
    app = shutil.copytree(SAMPLES / "node-express", tmp_path / "node18")
    package = json.loads((app / "package.json").read_text())
    package["engines"]["node"] = "18.x"
    (app / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    done = build(trixie, app, "node18:1", tmp_path / "c")
    body = get(trixie, "node18:1")
    assert body.startswith("Hello from node-express (Node v18.")
    node = body.split("Node v", 1)[1].split(",", 1)[0]
    assert node == HAS["bookworm"]["node"]
    assert reason(done) == ["stack bookworm: package.json engines.node asks for Node.js 18.x; the default stack trixie "
                            f"has Node.js {HAS['trixie']['node']}, bookworm has Node.js {node}"]
    assert json.loads(done.stdout)["stack"] == "bookworm" and stack_of(trixie, "node18:1") == "bookworm"
    assert "installing a matching official build" not in done.stderr  # bookworm's own Node.js


def test_node_no_stack_has_stays_on_trixie_and_is_installed(trixie, tmp_path):
    """Explained by ``pallet detect`` (the build itself is test_realworld_apps' on bookworm)."""
    done = pallet("detect", str(APPS / "node-engines-22"), env=trixie.env)
    assert reason(done) == [
        f"stack trixie (the default): package.json engines.node asks for Node.js 22.x; no stack has it (trixie has "
        f"Node.js {HAS['trixie']['node']}; bookworm has Node.js {HAS['bookworm']['node']}): the Node.js buildpack "
        "installs an official Node.js build matching 22.x"]
    assert f"package.json engines.node 22.x is not satisfied by the stack's Node.js {HAS['trixie']['node']}" \
        in done.stdout


@pytest.mark.docker
def test_python_314_and_go_126_land_on_forky_reproducibly(trixie, tmp_path, docker_cli, image_name):
    """The forky stack is not built in this PALLET_HOME beforehand: the first build makes it from
    its lock (on today's mirror when the lock is stale, with a notice)."""
    py = build(trixie, APPS / "python-314", "py314:1", tmp_path / "c1")
    assert reason(py) == [f"stack forky: .python-version asks for Python 3.14; the default stack trixie has Python "
                          f"{HAS['trixie']['python']}, forky has Python {HAS['forky']['python']}"]
    assert json.loads(py.stdout)["stack"] == "forky" and stack_of(trixie, "py314:1") == "forky"
    answer = get(trixie, "py314:1")  # testing moves: the patch level is today's mirror's, not the lock's
    assert re.fullmatch(r"Hello from python-314 \(Python 3\.14\.\d+\)\n", answer), answer
    elsewhere = shutil.copytree(APPS / "python-314", tmp_path / "elsewhere" / "python-314")
    again = build(trixie, elsewhere, "py314:2", tmp_path / "c2")
    assert json.loads(again.stdout)["digest"] == json.loads(py.stdout)["digest"]
    pallet("copy", "py314:1", f"docker-daemon:{image_name}:1", env=trixie.env)
    port = free_port()
    with docker_run(docker_cli, f"{image_name}:1", port) as cid:
        resp = wait_http(port, alive=container_alive(docker_cli, cid))
        assert resp.body == answer

    go = build(trixie, APPS / "go-126", "go126:1", tmp_path / "c3")
    assert reason(go) == [f"stack forky: go.mod asks for Go 1.26 or newer; the default stack trixie has Go "
                          f"{HAS['trixie']['go']}, forky has Go {HAS['forky']['go']}"]
    go_version = re.fullmatch(r"Hello from go-126 \(go1\.(\d+)\.\d+\)\n", get(trixie, "go126:1"))
    assert go_version and int(go_version[1]) >= 26
