"""pallet/node-build's lib/nextbuild.js, on the host's node: what it does to a `next build`'s
output so that one source gives one image (tests/apps/node-nextjs builds a real one,
test_realworld_apps.py). Two outputs that differ only in their random build ID become the same
bytes, with an ID made from the output; the preview (draft mode) keys are derived from the
user's NEXT_SERVER_ACTIONS_ENCRYPTION_KEY, never from the source, and nothing is seeded without it.
lib/nuxtbuild.js does the same to a `nuxt build`'s .output (tests/apps/node-nuxt builds a real one):
its random build ID, its build time and Nitro's assets manifest (mtimes, order, etags)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.samplekit import ROOT

NODE = shutil.which("node")
SCRIPT = ROOT / "buildpacks" / "node-build" / "lib" / "nextbuild.js"
pytestmark = pytest.mark.skipif(NODE is None and os.environ.get("CI") != "true", reason="no node on this machine")


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NODE or "node", str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def _next_output(app: Path, build_id: str, page: str = "Hello") -> None:
    """What next build writes, in small: the ID in BUILD_ID, in a directory name, in manifests
    and pages (also of out/, output: "export"), and a cache and traces that are not output."""
    dist = app / ".next"
    (dist / "static" / build_id).mkdir(parents=True)
    (dist / "static" / build_id / "_buildManifest.js").write_text(f'self.__BUILD_MANIFEST={{"id":"{build_id}"}}')
    (dist / "static" / "chunks").mkdir()  # beside the ID's directory: C... sorts before it, l... after
    (dist / "static" / "chunks" / "main.js").write_text("console.log(1)")
    (dist / "BUILD_ID").write_text(build_id)
    (dist / "build-manifest.json").write_text(json.dumps({"pages": {"/": [f"static/{build_id}/_ssgManifest.js"]}}))
    (dist / "server" / "app").mkdir(parents=True)
    (dist / "server" / "app" / "index.html").write_bytes(f"<p>{page}</p><script>b:{build_id}</script>\0".encode())
    (dist / "cache").mkdir()
    (dist / "cache" / "random").write_text(build_id)
    (dist / "trace").write_text('[{"timestamp": 1}]')
    (app / "out" / "_next" / "static" / build_id).mkdir(parents=True)
    (app / "out" / "_next" / "static" / "chunks").mkdir()
    (app / "out" / "_next" / "static" / "chunks" / "main.js").write_text("console.log(1)")
    (app / "out" / "index.html").write_text(f'<script src="/_next/static/{build_id}/_buildManifest.js"></script>')


def _tree(app: Path) -> dict[str, str]:
    return {str(p.relative_to(app)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(app.rglob("*")) if "cache" not in p.parts}


def test_the_build_id_is_made_from_the_output(tmp_path):
    trees, ids = [], []
    for n, old in enumerate(["lu1yDvkU2FCQZAJoOZ_MV", "Cvsu3TLco-XAyCg56ZGqd"]):
        app = tmp_path / f"app{n}"
        _next_output(app, old)
        assert _run(app, "forget", ".next").returncode == 0
        done = _run(app, "fix-build-id", ".next", "out")
        assert done.returncode == 0, done.stderr
        was, new = done.stdout.split()
        assert was == old and new != old
        ids.append(new)
        trees.append(_tree(app))
        text = "".join(p.read_text(errors="replace") for p in app.rglob("*") if p.is_file() and "cache" not in p.parts)
        assert old not in text and new in text
        assert (app / ".next" / "static" / new).is_dir() and (app / "out" / "_next" / "static" / new).is_dir()
        assert not (app / ".next" / "trace").exists()
        assert (app / ".next" / "cache" / "random").read_text() == old  # the cache is not output: untouched
    assert ids[0] == ids[1] and trees[0] == trees[1]
    other = tmp_path / "other"  # another source (another page): another ID
    _next_output(other, "lu1yDvkU2FCQZAJoOZ_MV", page="Bye")
    assert _run(other, "fix-build-id", ".next").stdout.split()[1] != _run(tmp_path / "app0", "fix-build-id", ".next").stdout.split()[1]
    # a static export: the ID is made from out/, what is served (.next holds random keys, and is not in the image)
    keyed = tmp_path / "keyed"
    _next_output(keyed, "jYMwzjFurvDXEy5eDPwU9")
    (keyed / ".next" / "prerender-manifest.json").write_text('{"preview": {"previewModeId": "random"}}')
    assert _run(keyed, "fix-build-id", ".next", "out").stdout.split()[1] == ids[0]


def test_an_id_that_is_no_build_id_is_left_alone(tmp_path):
    _next_output(tmp_path, "lu1yDvkU2FCQZAJoOZ_MV")
    (tmp_path / ".next" / "BUILD_ID").write_text("a b")  # generateBuildId returned something odd
    assert _run(tmp_path, "fix-build-id", ".next").returncode == 1
    assert (tmp_path / ".next" / "static" / "lu1yDvkU2FCQZAJoOZ_MV").is_dir()


def test_preview_keys_come_from_the_users_key_never_without_it(tmp_path):
    assert _run(tmp_path, "seed", ".next", env={"NEXT_SERVER_ACTIONS_ENCRYPTION_KEY": ""}).returncode == 1
    assert not (tmp_path / ".next").exists()
    seeded = []
    for key in ("a" * 43 + "=", "a" * 43 + "=", "b" * 43 + "="):
        shutil.rmtree(tmp_path / ".next", ignore_errors=True)
        assert _run(tmp_path, "seed", ".next", env={"NEXT_SERVER_ACTIONS_ENCRYPTION_KEY": key}).returncode == 0
        seeded.append(json.loads((tmp_path / ".next" / "cache" / ".previewinfo").read_text()))
    assert seeded[0] == seeded[1] and seeded[0] != seeded[2]
    info = seeded[0]
    assert len(info["previewModeId"]) == 32 and len(info["previewModeSigningKey"]) == 64
    assert len({info["previewModeId"], info["previewModeSigningKey"][:32], info["previewModeEncryptionKey"][:32]}) == 3
    assert info["expireAt"] > 4_000_000_000_000  # Next.js makes new keys once they expire


NUXT = ROOT / "buildpacks" / "node-build" / "lib" / "nuxtbuild.js"


def _nuxt_output(app: Path, build_id: str, stamp: int, date: str, page: str = "Hello") -> None:
    """What nuxt build writes into .output, in small: the random ID in the builds' manifests (one
    named by it), the build's time there, Nitro's date in nitro.json, the ID in the server, and
    what comes in the order parallel work finished (the assets manifest, the styles module)."""
    builds = app / ".output" / "public" / "_nuxt" / "builds"
    (builds / "meta").mkdir(parents=True)
    (builds / "latest.json").write_text(json.dumps({"id": build_id, "timestamp": stamp}))
    (builds / "meta" / f"{build_id}.json").write_text(json.dumps({"id": build_id, "timestamp": stamp, "prerendered": []}))
    (app / ".output" / "nitro.json").write_text(json.dumps({"date": date, "preset": "node-server"}))
    (app / ".output" / "server" / "chunks").mkdir(parents=True)
    (app / ".output" / "public" / "a.js").write_text("1")
    served = {f"/_nuxt/builds/{n}": {"etag": f'"{stamp}"', "mtime": date, "size": 1, "path": f"../public/_nuxt/builds/{n}"}
              for n in ("latest.json", f"meta/{build_id}.json")}
    served["/a.js"] = {"etag": '"1-x"', "mtime": date, "size": 1, "path": "../public/a.js"}  # found in another order
    order = sorted(served, reverse=stamp % 2 == 1)
    manifest = json.dumps({k: served[k] for k in order}, indent=2)
    (app / ".output" / "server" / "chunks" / "nitro.mjs").write_text(
        f'const c={{app:{{buildId:"{build_id}"}}}};"{page}"\nconst assets = {manifest};\nexport {{ assets }};\n')
    # The components' styles, in the order Vite finished them (it varies with the machine's load).
    styles = [(f'  "../node_modules/nuxt/dist/app/components/error-{c}.vue": () => import(\'../build/error-{c}.mjs\')'
               ".then(interopDefault)", f'"error-{c}.css":[["error-{c}.vue"]]') for c in sorted(("404", "500"), reverse=stamp % 2 == 1)]
    (app / ".output" / "server" / "chunks" / "virtual").mkdir()
    (app / ".output" / "server" / "chunks" / "virtual" / "styles.mjs").write_text(
        "const interopDefault = r => r.default || r || [];\nconst styles = {\n" + ",\n".join(e for e, _ in styles)
        + "\n};\n\nconst inlinedCSS = {" + ",".join(c for _, c in styles) + "};\n\nexport { styles as default, inlinedCSS };\n")


def test_a_nuxt_build_id_is_made_from_the_output_and_its_time_is_the_source_dates(tmp_path):
    ids, trees = [], []
    for n, (old, stamp, date) in enumerate([("6f1c2a9e-3b7d-4e21-9c0a-5d8e7f6a1b2c", 1765075200123, "2025-12-07T02:40:00.123Z"),
                                            ("0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d", 1765075311456, "2025-12-07T02:41:51.456Z")]):
        app = tmp_path / f"app{n}"
        _nuxt_output(app, old, stamp, date)
        done = subprocess.run([NODE or "node", str(NUXT), "fix", ".output"], cwd=app, capture_output=True, text=True,
                              timeout=60, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
        assert done.returncode == 0, done.stderr
        was, new = done.stdout.split()
        assert was == old and new != old and len(new) == 36 and new[14] == "4"
        builds = app / ".output" / "public" / "_nuxt" / "builds"
        assert json.loads((builds / "latest.json").read_text()) == {"id": new, "timestamp": 1700000000000}
        assert json.loads((builds / "meta" / f"{new}.json").read_text())["id"] == new
        assert json.loads((app / ".output" / "nitro.json").read_text())["date"] == "2023-11-14T22:13:20.000Z"
        server = (app / ".output" / "server" / "chunks" / "nitro.mjs").read_text()
        assert f'buildId:"{new}"' in server
        assets = json.loads(server.split("const assets = ", 1)[1].split(";\nexport", 1)[0])
        assert list(assets) == sorted(assets) and {a["mtime"] for a in assets.values()} == {"2023-11-14T22:13:20.000Z"}
        latest = (builds / "latest.json").read_bytes()  # its etag and size are Nitro's, of the new bytes
        assert assets["/_nuxt/builds/latest.json"]["size"] == len(latest)
        assert assets["/_nuxt/builds/latest.json"]["etag"] == '"%x-%s"' % (
            len(latest), base64.b64encode(hashlib.sha1(latest).digest()).decode().rstrip("="))
        ids.append(new)
        trees.append(_tree(app))
    assert ids[0] == ids[1] and trees[0] == trees[1]
    other = tmp_path / "other"  # another source (another page): another ID
    _nuxt_output(other, "6f1c2a9e-3b7d-4e21-9c0a-5d8e7f6a1b2c", 1765075200123, "2025-12-07T02:40:00.123Z", page="Bye")
    assert subprocess.run([NODE or "node", str(NUXT), "fix", ".output"], cwd=other, capture_output=True,
                          text=True, timeout=60).stdout.split()[1] != ids[0]
    bare = tmp_path / "bare"  # no builds manifest (nitropack without Nuxt): left alone
    (bare / ".output" / "public").mkdir(parents=True)
    assert subprocess.run([NODE or "node", str(NUXT), "fix", ".output"], cwd=bare, timeout=60).returncode == 1


def test_a_standalone_server_gets_the_static_assets_and_public(tmp_path):
    """output: "standalone": next build leaves .next/static and public/ out of .next/standalone,
    and `node .next/standalone/server.js` answered 404 for every script, stylesheet and image.
    They are linked in: the assets relatively (.next moves to the launch layer whole)."""
    (tmp_path / ".next" / "static" / "chunks").mkdir(parents=True)
    (tmp_path / ".next" / "static" / "chunks" / "main.js").write_text("console.log(1)")
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "hello.txt").write_text("hello")
    assert _run(tmp_path, "standalone", ".next/").stdout == ""  # no standalone output: nothing
    (tmp_path / ".next" / "standalone" / ".next").mkdir(parents=True)
    (tmp_path / ".next" / "standalone" / "server.js").write_text("")
    done = _run(tmp_path, "standalone", ".next/")
    assert done.returncode == 0 and done.stdout.split() == [".next/standalone/.next/static", ".next/standalone/public"]
    inner = tmp_path / ".next" / "standalone"
    assert os.readlink(inner / ".next" / "static") == "../../static"
    assert (inner / ".next" / "static" / "chunks" / "main.js").read_text() == "console.log(1)"
    assert os.readlink(inner / "public") == str(tmp_path / "public")
    assert _run(tmp_path, "standalone", ".next/").stdout == ""  # linked once
