"""``lts/*``, ``lts/-N`` and ``lts/<codename>`` in .nvmrc, .node-version or engines.node
(buildpacks/nodejs/lib/nodelts.js, on the host's node): the newest LTS line, from a release list
given as data here (the build reads the npm registry's ``node`` package versions), by Node.js's
release rule: an even major is LTS once the next major is out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.samplekit import ROOT

NODE = shutil.which("node")
LIB = ROOT / "buildpacks" / "nodejs" / "lib"

pytestmark = pytest.mark.skipif(NODE is None and not os.environ.get("CI"), reason="no node on this machine")


def lts(spec: str, versions: list[str]) -> dict:
    done = subprocess.run([NODE or "node", str(LIB / "nodelts.js"), spec], input=json.dumps(versions),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


#: Release lists as the `node` package on the npm registry has them, cut at moments of the
#: release calendar (a new odd major in October makes the even one before it LTS).
APRIL_2024 = ["18.20.2", "19.9.0", "20.12.2", "21.7.3", "22.0.0"]           # 22 out, not yet LTS
OCTOBER_2024 = APRIL_2024 + ["22.10.0", "23.0.0"]                           # 23 out: 22 is LTS
DECEMBER_2026 = ["20.19.5", "21.7.3", "22.21.1", "23.11.1", "24.11.1", "25.2.1", "26.0.0", "26.10.0"]


@pytest.mark.parametrize("versions,major", [
    (APRIL_2024, 20),
    (OCTOBER_2024, 22),
    (DECEMBER_2026, 24),                                       # 26 is out, 27 is not: 24 is the newest LTS
    (DECEMBER_2026 + ["27.0.0-rc.1", "27.0.0-nightly2026"], 24),  # prereleases are not releases
    (DECEMBER_2026 + ["27.0.0"], 26),
    (["v0.10.48", "v0.12.18", "v4.9.1", "v5.12.0"], 4),          # 0.x had no LTS; v-prefixed versions read
    (list(reversed(OCTOBER_2024)), 22),                         # order does not matter
])
def test_lts_star_is_the_newest_even_major_with_a_later_major_released(versions, major):
    assert lts("lts/*", versions) == {"range": f"{major}.x", "major": major,
                                      "why": f"the newest LTS line, Node.js {major}: an even major is LTS once the "
                                             "next is released"}


def test_lts_minus_n_counts_back_over_lts_lines_only():
    assert lts("lts/-1", DECEMBER_2026)["major"] == 22
    assert lts("lts/-2", DECEMBER_2026)["major"] == 20
    assert lts("lts/-3", DECEMBER_2026) == {"error": "lts/-3: the Node.js releases listed have only 3 LTS lines "
                                                     "(20, 22, 24)"}


@pytest.mark.parametrize("versions", [[], ["25.0.0", "26.0.0"], ["0.12.18", "1.8.4", "3.3.1"]])
def test_no_lts_line_in_the_list_is_an_error(versions):
    assert lts("lts/*", versions) == {"error": "lts/*: the Node.js releases listed have no LTS line"}


@pytest.mark.parametrize("name,major", [("argon", 4), ("boron", 6), ("carbon", 8), ("dubnium", 10), ("erbium", 12),
                                        ("fermium", 14), ("gallium", 16), ("hydrogen", 18), ("iron", 20), ("jod", 22),
                                        ("krypton", 24), ("Hydrogen", 18), ("KRYPTON", 24)])
def test_a_codename_is_its_line_whatever_the_list(name, major):
    # an empty list: a codename needs no release list (no registry lookup)
    assert lts(f"lts/{name}", []) == {"range": f"{major}.x", "major": major,
                                      "why": f"the LTS line {name.lower()}, Node.js {major}"}


def test_an_unknown_codename_lists_the_known_ones():
    err = lts("lts/platinum", DECEMBER_2026)["error"]
    assert err.startswith('unknown LTS codename "platinum" in "lts/platinum": known are argon (4), boron (6), carbon '
                          "(8), dubnium (10), erbium (12), fermium (14), gallium (16), hydrogen (18), iron (20), jod "
                          "(22), krypton (24); or lts/* (the newest LTS line)"), err
    assert "\n" not in err


def plan(app: Path, tmp_path: Path, files: dict[str, str | bytes]) -> subprocess.CompletedProcess[str]:
    app.mkdir()
    for name, text in files.items():
        (app / name).write_bytes(text) if isinstance(text, bytes) else (app / name).write_text(text)
    (tmp_path / "layers").mkdir()
    # PATH without npm: a codename must not need the registry
    return subprocess.run([NODE or "node", str(LIB / "nodeapp.js"), "plan", str(tmp_path / "layers"),
                           str(LIB.parent)], cwd=app, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": str(tmp_path / "nobin")})


@pytest.mark.parametrize("files,source", [
    ({".nvmrc": "lts/gallium\n"}, '.nvmrc "lts/gallium" (the LTS line gallium, Node.js 16)'),
    ({".node-version": "lts/Gallium"}, '.node-version "lts/Gallium" (the LTS line gallium, Node.js 16)'),
    ({".nvmrc": "lts/gallium\r\n".encode("utf-16")},  # PowerShell 5's echo > .nvmrc: UTF-16, as the stack choice reads it
     '.nvmrc "lts/gallium" (the LTS line gallium, Node.js 16)'),
    ({".node-version": b"\xfe\xff" + "lts/gallium\n".encode("utf-16-be")},
     '.node-version "lts/gallium" (the LTS line gallium, Node.js 16)'),
    ({"package.json.engines": "lts/gallium"}, 'package.json engines.node "lts/gallium" (the LTS line gallium, '
                                              'Node.js 16)'),
])
def test_the_build_plan_takes_a_codename_as_its_major_line(tmp_path, files, source):
    engines = files.pop("package.json.engines", None)
    pkg = {"name": "a", **({"engines": {"node": engines}} if engines else {})}
    done = plan(tmp_path / "app", tmp_path, {"package.json": json.dumps(pkg), "package-lock.json": "{}", "server.js": "",
                                             **files})
    assert done.returncode == 0, done.stderr
    assert "NODE_RANGE='16.x'" in done.stdout and f"NODE_SOURCE='{source}'" in done.stdout, done.stdout
    assert "NODE_STACK_OK=''" in done.stdout  # the host's node is not 16: an official 16 gets installed


def test_the_build_plan_refuses_an_unknown_codename_in_one_line(tmp_path):
    done = plan(tmp_path / "app", tmp_path, {"package.json": '{"name": "a"}', ".nvmrc": "lts/zinc\n"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        'error: .nvmrc: unknown LTS codename "zinc" in "lts/zinc": known are argon (4), boron (6), carbon (8), dubnium '
        "(10), erbium (12), fermium (14), gallium (16), hydrogen (18), iron (20), jod (22), krypton (24); or lts/* "
        "(the newest LTS line), lts/-1 (the one before), or a version"]


@pytest.mark.slow
def test_an_app_asking_for_lts_star_runs_on_the_newest_lts_line(bookworm, tmp_path):
    """A build on bookworm (Node.js 18): .nvmrc lts/* installs the line nodelts.js picks from the
    npm registry's node releases now (looked up here too, so the test does not go stale)."""
    from tests.samplekit import free_port, pallet_run, wait_http

    listed = subprocess.run(["npm", "view", "node", "versions", "--json"], capture_output=True, text=True,
                            timeout=300, check=True)
    major = lts("lts/*", json.loads(listed.stdout))["major"]
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "lts-app", "version": "1.0.0", "private": True,
                                                  "scripts": {"start": "node server.js"}}))
    (app / "package-lock.json").write_text(json.dumps({"name": "lts-app", "version": "1.0.0", "lockfileVersion": 3,
                                                       "requires": True, "packages": {"": {"name": "lts-app",
                                                                                           "version": "1.0.0"}}}))
    (app / ".nvmrc").write_text("lts/*\n")
    (app / "server.js").write_text(
        'require("http").createServer((q, r) => r.end(`lts on ${process.versions.node.split(".")[0]}\\n`))'
        '.listen(Number(process.env.PORT || 8080));\n')
    said = bookworm.detect(app).stdout
    assert f'.nvmrc "lts/*" (the newest LTS line, Node.js {major}: an even major is LTS once the next is released) ' \
           f"{major}.x is not satisfied by the stack's Node.js 18" in said, said
    done = bookworm.build(app, "lts:1", tmp_path / "cache")
    assert f"installing Node.js {major}." in done.stderr, done.stderr
    port = free_port()
    with pallet_run(bookworm, "lts:1", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body == f"lts on {major}\n"


@pytest.mark.slow
def test_a_new_nvmrc_is_a_new_build_not_the_last_ones_layers(bookworm, tmp_path):
    """.nvmrc (and .node-version) are inputs of pallet/nodejs: an edit that changes only it runs
    bin/build again (it was taken for an app file no buildpack reads, and the image kept Node.js 20)."""
    from tests.samplekit import free_port, pallet_run, wait_http

    app = tmp_path / "app"
    shutil.copytree(ROOT / "tests" / "apps" / "node-nvmrc-20", app)
    bookworm.build(app, "nv:20", tmp_path / "cache")
    (app / ".nvmrc").write_text("lts/jod\n")
    again = bookworm.build(app, "nv:22", tmp_path / "cache")
    assert "installing Node.js 22." in again.stderr, again.stderr
    port = free_port()
    with pallet_run(bookworm, "nv:22", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body == "Hello from node-nvmrc-20 on Node.js 22: 1,2,3\n"
