"""pallet's lockfile installer (buildpacks/nodejs/lib/lockinstall.js): the node_modules `npm ci`
makes from a package-lock.json, without npm's start. What it must be is npm's tree, byte for
byte: the builds here install the same apps both ways (``BP_NPM_INSTALLER=npm`` is npm ci) and
compare the images' digests, and the build-only dev trees file by file. The unpacking rules
(pacote's) and the choice of packages (arborist's optional sets) are also checked on their own,
on the host's node."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.samplekit import ROOT

LIB = ROOT / "buildpacks" / "nodejs" / "lib" / "lockinstall.js"
NODE = shutil.which("node")
APPS = ROOT / "tests" / "apps"
needs_node = pytest.mark.skipif(NODE is None and not os.environ.get("CI"), reason="no node on this machine")


def node(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NODE or "node", "-e", f"process.umask(0o022); const li = require({json.dumps(str(LIB))});\n"
                           + script, *args], capture_output=True, text=True, timeout=60, env=env)


def tarball(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def member(name: str, data: bytes = b"", mode: int = 0o644, kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


@needs_node
def test_unpacking_follows_pacote(tmp_path):
    """First part stripped, only regular files, links dropped, ``..`` refused, modes ``mode |
    0o666 | 0o600`` under the umask, .gitignore as .npmignore unless one came first, no empty
    directories, pax long names read."""
    long = "package/" + "d" * 120 + "/f.js"
    tar = tarball([
        member("package/package.json", b'{"name":"x"}'),
        member("package/lib/a.js", b"a", mode=0o600),
        member("package/bin/cli.js", b"#!/usr/bin/env node\n", mode=0o755),
        member("package/.gitignore", b"g"),
        member("package/sub/.npmignore", b"n"), member("package/sub/.gitignore", b"g2"),
        member("package/../../escape.txt", b"x"),
        member("package/link", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        member("package/hard", kind=tarfile.LNKTYPE, link="package/lib/a.js"),
        member("package/empty", kind=tarfile.DIRTYPE, mode=0o700),
        member("/abs/b.js", b"b"),
        member(long, b"long"),
    ])
    (tmp_path / "t.tar").write_bytes(tar)
    done = node("li.unpack({location: 'node_modules/x'}, require('fs').readFileSync(process.argv[1]), process.argv[2]);",
                str(tmp_path / "t.tar"), str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr
    pkg = tmp_path / "root" / "node_modules" / "x"
    files = {str(p.relative_to(pkg)): oct(p.stat().st_mode & 0o777) for p in pkg.rglob("*") if not p.is_dir()}
    assert files == {"package.json": "0o644", "lib/a.js": "0o644", "bin/cli.js": "0o755", ".npmignore": "0o644",
                     "sub/.npmignore": "0o644", "abs/b.js": "0o644", "d" * 120 + "/f.js": "0o644"}
    assert (pkg / ".npmignore").read_bytes() == b"g" and (pkg / "sub" / ".npmignore").read_bytes() == b"n"
    assert not (tmp_path / "root" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert not (pkg / "empty").exists()


#: A tar header in JavaScript, for the scripts that make tarballs too big to pass from here.
TAR_HEADER_JS = (
    "function header(name, type, size) { const h = Buffer.alloc(512); h.write(name, 0); h.write('0000644', 100);"
    " h.write(size.toString(8).padStart(11, '0'), 124); h.write('        ', 148); h.write(type, 156);"
    " h.write('ustar\\u000000', 257); let sum = 0; for (const b of h) sum += b;"
    " h.write(sum.toString(8).padStart(6, '0') + '\\u0000 ', 148); return h; }\n"
)


@needs_node
def test_tarballs_are_unzipped_a_few_at_a_time_and_big_ones_alone(tmp_path):
    """Every downloaded tarball was unzipped at once and held until its turn: a lockfile of
    gzip bombs (each within the 1 GiB bound) held them all. Sixteen tarballs of 96 MiB unpacked
    each (a pax header: nothing lands on disk) took 2.7 GiB; now a few small ones are unzipped
    ahead and a big one alone at its turn, and they still unpack in order."""
    script = (
        "const zlib = require('zlib'); const N = 16, SIZE = 96 << 20;\n"
        + TAR_HEADER_JS +
        "const tgz = zlib.gzipSync(Buffer.concat([header('pax', 'g', SIZE), Buffer.alloc(SIZE),"
        " header('package/a.js', '0', 1), Buffer.from('a'.padEnd(512, '\\u0000')), Buffer.alloc(1024)]), { level: 1 });\n"
        "const items = Array.from({ length: N }, (_, i) => ({ location: `node_modules/b${i}` }));\n"
        "const base = process.resourceUsage().maxRSS;\n"
        "li.unpackAll(items, items.map(() => Promise.resolve(tgz)), process.argv[1]).then(() =>"
        " console.log(Math.round((process.resourceUsage().maxRSS - base) / 1024)));")
    done = node(script, str(tmp_path / "root"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "root" / "node_modules").iterdir()) == sorted(f"b{i}" for i in range(16))
    assert all((tmp_path / "root" / "node_modules" / f"b{i}" / "a.js").read_text() == "a" for i in range(16))
    assert int(done.stdout) < 1024, f"{done.stdout.strip()} MiB more at the peak, for 16 x 96 MiB"


@needs_node
def test_downloads_waiting_for_their_turn_wait_on_disk_past_a_bound(tmp_path):
    """Every download that landed before its turn to unpack was held in memory until then (each
    up to 1 GiB, no bound on how many): twelve 32 MiB tarballs waiting on the first held 384 MiB.
    Now past 128 MiB they wait in a file beside node_modules, read back at their turn: memory
    stays near the bound, the tree is the same, and no file is left."""
    script = (
        "const v8 = require('v8'); v8.setFlagsFromString('--expose-gc'); const gc = require('vm').runInNewContext('gc');\n"
        "const zlib = require('zlib'); const crypto = require('crypto'); const SMALL = 8, BIG = 12, SIZE = 32 << 20;\n"
        + TAR_HEADER_JS +
        "const tgzOf = (i, pad) => zlib.gzipSync(Buffer.concat([header('pax', 'g', pad.length), pad,"
        " header('package/a.js', '0', 1), Buffer.from(String(i % 10).padEnd(512, '\\u0000')), Buffer.alloc(1024)]), { level: 1 });\n"
        "const noise = crypto.randomBytes(SIZE);   // incompressible: a 32 MiB download\n"
        "const items = Array.from({ length: 1 + SMALL + BIG }, (_, i) => ({ location: `node_modules/b${i}` }));\n"
        "gc(); const base = process.memoryUsage().arrayBuffers; let waiting = 0, landed = 0, firstLands;\n"
        "// the first lands once all the others have (only the installer's array holds them)\n"
        "const tgzs = [new Promise((r) => { firstLands = r; })];\n"
        "for (let i = 1; i < items.length; i++) tgzs.push(new Promise((r) => setImmediate(() => {"
        " r(tgzOf(i, i <= SMALL ? Buffer.alloc(0) : noise));"
        " if (++landed === items.length - 1) setImmediate(() => { gc(); waiting = process.memoryUsage().arrayBuffers - base;"
        " firstLands(tgzOf(0, Buffer.alloc(0))); }); })));\n"
        "li.unpackAll(items, tgzs, process.argv[1]).then(() => console.log(Math.round(waiting / 1048576)));")
    root = tmp_path / "root"
    root.mkdir()   # the install root, the process's cwd
    done = node(script, str(root))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (root / "node_modules").iterdir()) == sorted(f"b{i}" for i in range(21))
    assert all((root / "node_modules" / f"b{i}" / "a.js").read_text() == str(i % 10) for i in range(21))
    assert sorted(p.name for p in root.iterdir()) == ["node_modules"]
    assert int(done.stdout) < 200, f"{done.stdout.strip()} MiB held for 12 x 32 MiB downloads waiting their turn"


@needs_node
def test_downloads_coming_in_go_on_in_a_file_past_a_bound(tmp_path):
    """Each download was held whole in memory as it came in (up to 1 GiB, fifteen at a time): six
    64 MiB tarballs from a local HTTPS server took 384 MiB before any was checked. Now each goes
    on in a file past 16 MiB, is checked from it and unpacked at its turn, leaving no file; one past
    its bound is refused and its part removed."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "1"],
                   check=True, capture_output=True)
    root = tmp_path / "root"
    root.mkdir()
    script = (
        "const https = require('https'); const fs = require('fs'); const zlib = require('zlib');"
        " const crypto = require('crypto'); const N = 6;\n"
        f"const httpget = require({json.dumps(str(LIB.parent / 'httpget.js'))}); const root = process.argv[1];\n"
        + TAR_HEADER_JS +
        "const noise = crypto.randomBytes(64 << 20);   // incompressible: a 64 MiB download\n"
        "const tgz = zlib.gzipSync(Buffer.concat([header('pax', 'g', noise.length), noise, header('package/a.js', '0', 1),"
        " Buffer.from('a'.padEnd(512, '\\u0000')), Buffer.alloc(1024)]), { level: 1 });\n"
        "const integrity = { algorithm: 'sha512', digests: [crypto.createHash('sha512').update(tgz).digest('base64')] };\n"
        "const server = https.createServer({ key: fs.readFileSync(process.argv[2]), cert: fs.readFileSync(process.argv[3]) },"
        " (req, res) => {   // in pieces, as the client takes them: the server holds nothing more\n"
        "  res.setHeader('content-length', tgz.length);\n"
        "  require('stream').Readable.from((function* () { for (let o = 0; o < tgz.length; o += 1 << 20)"
        " yield tgz.subarray(o, o + (1 << 20)); })()).pipe(res); });\n"
        "server.listen(0, '127.0.0.1', async () => {\n"
        "  const url = `https://localhost:${server.address().port}/x.tgz`;\n"
        "  const agent = new https.Agent({ keepAlive: true, maxSockets: 15 }); const room = li.waitingRoom(root);\n"
        "  const base = process.resourceUsage().maxRSS;\n"
        "  const got = await Promise.all(Array.from({ length: N }, () => li.download(url, agent, room)));\n"
        "  const peak = Math.round((process.resourceUsage().maxRSS - base) / 1024);\n"
        "  const items = got.map((g, i) => ({ location: `node_modules/b${i}`, integrity }));\n"
        "  items.forEach((item, i) => li.checkIntegrity(item, got[i]));\n"
        "  await li.unpackAll(items, got.map((g) => Promise.resolve(g)), root, room);\n"
        "  const part = `${root}/part`; const body = httpget.spooler({ at: 4, file: () => part }, 10); body.add(Buffer.alloc(8));\n"
        "  const spilled = fs.existsSync(part); let refused = false;\n"
        "  try { body.add(Buffer.alloc(8)); } catch (err) { refused = err.tooLarge === true; }\n"
        "  agent.destroy(); server.close();\n"
        "  console.log(JSON.stringify({ peak, kinds: got.map((g) => (g.file ? 'file' : 'memory')), spilled, refused,"
        " partLeft: fs.existsSync(part) }));\n"
        "});")
    done = node(script, str(root), str(key), str(cert), env={**os.environ, "NODE_EXTRA_CA_CERTS": str(cert)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["kinds"] == ["file"] * 6 and out["spilled"] and out["refused"] and not out["partLeft"], out
    assert sorted(p.name for p in root.iterdir()) == ["node_modules"]
    assert all((root / "node_modules" / f"b{i}" / "a.js").read_text() == "a" for i in range(6))
    assert out["peak"] < 200, f"{out['peak']} MiB more at the peak, for 6 x 64 MiB coming in"


#: A lockfile: app -> a (which optionally needs p, for Windows only, and r), d (a devDependency);
#: p alone needs q; r is needed by a and p. npm ci leaves out d (--omit=dev) and p's optional
#: set, p and q; r stays.
LOCK = {"lockfileVersion": 3, "packages": {
    "": {"dependencies": {"a": "^1.0.0"}, "devDependencies": {"d": "^1.0.0"}},
    "node_modules/a": {"version": "1.0.0", "integrity": "sha512-AA==", "optionalDependencies": {"p": "1.0.0"},
                       "dependencies": {"r": "1.0.0"}},
    "node_modules/p": {"version": "1.0.0", "integrity": "sha512-AA==", "optional": True, "os": ["win32"],
                       "dependencies": {"q": "1.0.0", "r": "1.0.0"}},
    "node_modules/q": {"version": "1.0.0", "integrity": "sha512-AA==", "optional": True},
    "node_modules/r": {"version": "1.0.0", "integrity": "sha512-AA=="},
    "node_modules/d": {"version": "1.0.0", "integrity": "sha512-AA==", "dev": True},
    "node_modules/@s/e": {"version": "2.0.0", "integrity": "sha1-AA==", "dev": True},
}}


def plan(lock: dict, omit_dev: bool = True, npm: str = "9.2.0") -> list[str] | str:
    done = node("const lock = JSON.parse(process.argv[1]);\n"
                "try { console.log(JSON.stringify(li.plan(lock, process.argv[2] === '1', li.loadSemver(), process.argv[3])"
                ".map((i) => [i.location, i.url]))); }\n"
                "catch (e) { if (!(e instanceof li.ToNpm)) throw e; console.log(JSON.stringify(e.message)); }",
                json.dumps(lock), "1" if omit_dev else "0", npm)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_node
def test_the_packages_npm_ci_installs():
    assert plan(LOCK) == [["node_modules/a", "https://registry.npmjs.org/a/-/a-1.0.0.tgz"],
                          ["node_modules/r", "https://registry.npmjs.org/r/-/r-1.0.0.tgz"]]
    assert [loc for loc, _ in plan(LOCK, omit_dev=False)] == ["node_modules/@s/e", "node_modules/a", "node_modules/d",
                                                               "node_modules/r"]
    assert plan(LOCK, omit_dev=False)[0][1] == "https://registry.npmjs.org/@s/e/-/e-2.0.0.tgz"
    # npm 11 leaves the directories of omitted packages differently: its optional sets are npm's
    assert plan(LOCK, npm="11.21.3") == "optional packages for another platform, with npm 11.21.3"


@pytest.mark.parametrize("change,reason", [
    ({"node_modules/a": {"link": True}}, "node_modules/a is a link"),
    ({"node_modules/a/node_modules/b": {"version": "1.0.0", "inBundle": True}}, "is bundled in its parent's tarball"),
    ({"node_modules/a": {"resolved": "https://example.com/a-1.0.0.tgz"}}, "is not a tarball of https://registry.npmjs.org/"),
    ({"node_modules/a": {"resolved": "https://registry.npmjs.org/a/-/../../x.tgz"}}, "is not a tarball of"),
    ({"node_modules/a": {"resolved": "file:///etc/passwd"}}, "is not a tarball of"),
    ({"node_modules/a": {"integrity": "md5-AA=="}}, "node_modules/a has no integrity hash"),
    ({"node_modules/../../x": {"version": "1.0.0"}}, 'names a package at "node_modules/../../x"'),
    # a NUL failed the unpacking with Node.js's own message; a backslash or a newline was a directory name
    ({"node_modules/a\u0000b": {"version": "1.0.0"}}, 'names a package at "node_modules/a\\u0000b"'),
    ({"node_modules/a\\..\\..\\x": {"version": "1.0.0"}}, "names a package at"),
    ({"node_modules/a/node_modules/b\nc": {"version": "1.0.0"}}, "names a package at"),
    ({"node_modules/@s\x7f/e": {"version": "1.0.0"}}, "names a package at"),
    ({"node_modules/r": {"os": ["win32"]}}, "node_modules/r is not for this platform"),
])
@needs_node
def test_what_npm_installs_instead(change, reason):
    lock = json.loads(json.dumps(LOCK))
    for location, fields in change.items():
        lock["packages"].setdefault(location, {}).update(fields)
    assert reason in plan(lock)


@needs_node
def test_install_scripts_are_rebuilt_by_name_never_as_npm_options(tmp_path):
    """A lockfile's ``node_modules/--foo=bar`` with an install script was ``npm rebuild
    --foo=bar@1.0.0``: an option to npm. After ``--`` it is a spec (npm refuses the name)."""
    (tmp_path / "npm").write_text('#!/bin/sh\necho "npm $*"\n')
    (tmp_path / "npm").chmod(0o755)
    done = node("li.runScripts([{location: 'node_modules/--foo=bar', entry: {version: '1.0.0'}, scripts: true},"
                " {location: 'node_modules/a/node_modules/@s/b', entry: {version: '2.0.0'}, scripts: true}], '.');",
                env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.returncode == 0 and done.stdout == "npm rebuild -- --foo=bar@1.0.0 @s/b@2.0.0\n", done


def install(tmp_path: Path, npmrc: str, lock: dict, pkg: dict) -> subprocess.CompletedProcess[str]:
    """The installer's checks before any download, in an install root holding these manifests
    (HOME empty, no npm settings in the environment): a download would fail at a .invalid host."""
    root = tmp_path / "root"
    root.mkdir()
    (root / ".npmrc").write_text(npmrc)
    (root / "package-lock.json").write_text(json.dumps(lock))
    (root / "package.json").write_text(json.dumps(pkg))
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith(("npm_config_", "http_proxy", "https_proxy"))}
    env.update(HOME=str(tmp_path), PATH=f"{tmp_path / 'bin'}:{env['PATH']}")
    # an npm 9.2.0 whose `npm ci`, when the installer hands over, says so and stops
    (tmp_path / "npm" / "bin").mkdir(parents=True)
    (tmp_path / "npm" / "package.json").write_text('{"name": "npm", "version": "9.2.0"}')
    cli = tmp_path / "npm" / "bin" / "npm-cli.js"
    cli.write_text("#!/bin/sh\necho \"npm $*\"\n")
    cli.chmod(0o755)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "npm").symlink_to(cli)
    return subprocess.run([NODE or "node", str(LIB), "--omit=dev"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=60)


SMALL_LOCK = {"lockfileVersion": 3, "packages": {
    "": {"dependencies": {"a": "^1.0.0"}, "engines": {"node": ">=0.10"}},
    "node_modules/a": {"version": "1.0.0", "integrity": "sha512-AA==", "engines": {"node": "<1"},
                       "resolved": "https://registry.npmjs.org/a/-/a-1.0.0.tgz"}}}


@needs_node
@pytest.mark.parametrize("npmrc,handed_over", [
    ("registry=https://npm.example.com/\n", ".npmrc sets registry"),
    ("//npm.example.com/:_authToken=${NPM_TOKEN}\n", ".npmrc sets //npm.example.com/:_authtoken"),
    ("ignore-scripts=true\n", ".npmrc sets ignore-scripts"),
    ("engine-strict=true\n", "engine-strict, and node_modules/a asks for another Node.js or npm"),
    ("# comment\nsave-exact=true\nlegacy-peer-deps=true\nengine-strict=false\n", None),
])
def test_an_apps_npmrc_hands_the_install_to_npm_unless_it_changes_nothing(tmp_path, npmrc, handed_over):
    pkg = {"dependencies": {"a": "^1.0.0"}, "engines": {"node": ">=0.10"}}
    done = install(tmp_path, npmrc, SMALL_LOCK, pkg)
    if handed_over:
        assert f"npm ci installs: {handed_over}" in done.stderr and done.stdout == "npm ci --omit=dev\n", done
    else:   # past the settings: the download is what fails (no such package a@1.0.0 here: 404 or no network)
        assert "npm ci installs: " in done.stderr and ".npmrc" not in done.stderr and "engine" not in done.stderr, done


# -- builds, both ways -------------------------------------------------------------------------------

def tree(root: Path) -> list[tuple]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel == "node_modules/.package-lock.json":
            continue
        st = p.lstat()
        body = os.readlink(p) if p.is_symlink() else (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "")
        out.append((rel, oct(st.st_mode), body))
    return out


def both_ways(home, tmp_path: Path, src: Path) -> dict[str, tuple[str, dict[str, list]]]:
    got = {}
    for how in ("pallet", "npm"):
        cache = tmp_path / f"cache-{how}"
        done = home.build(src, f"twin:{how}", cache, "--env", f"BP_NPM_INSTALLER={how}")
        used = "pallet's lockfile installer" in done.stderr
        assert used == (how == "pallet"), done.stderr
        trees = {layer.name: tree(layer) for layer in cache.glob("builds/*/*/*") if layer.name in ("modules", "dev-modules")}
        got[how] = (json.loads(done.stdout)["digest"], trees)
    return got


@pytest.mark.slow
@pytest.mark.parametrize("app", [ROOT / "samples" / "node-express", APPS / "node-start-prod", APPS / "node-sveltekit-node"])
def test_an_image_is_the_one_npm_ci_makes(bookworm, tmp_path, app):
    """samples/node-express: 77 packages, bins, scoped devDependencies left out (npm 9 leaves their
    scope directories); node-start-prod: a build with devDependencies, then production only;
    node-sveltekit-node: esbuild's install script (npm rebuild runs it), per-platform packages."""
    got = both_ways(bookworm, tmp_path, app)
    assert got["pallet"][0] == got["npm"][0]
    assert got["pallet"][1] == got["npm"][1] and got["pallet"][1]


@pytest.mark.slow
def test_with_the_npm_of_an_installed_nodejs(bookworm, tmp_path):
    """engines.node 22.x: Node.js 22 and npm 11 from the npm registry; npm 11's tree."""
    src = tmp_path / "e22"
    shutil.copytree(ROOT / "samples" / "node-express", src)
    pkg = json.loads((src / "package.json").read_text())
    pkg["engines"] = {"node": "22.x"}
    (src / "package.json").write_text(json.dumps(pkg, indent=2))
    got = both_ways(bookworm, tmp_path, src)
    assert got["pallet"] == got["npm"]


@pytest.mark.slow
def test_a_download_that_does_not_match_the_lockfile_is_refused(bookworm, tmp_path):
    src = tmp_path / "bad"
    shutil.copytree(ROOT / "samples" / "node-express", src)
    lock = json.loads((src / "package-lock.json").read_text())
    lock["packages"]["node_modules/ms"]["integrity"] = "sha512-" + "A" * 86 + "=="
    (src / "package-lock.json").write_text(json.dumps(lock, indent=2))
    done = bookworm.build(src, "bad:1", tmp_path / "cache", check=False)
    assert done.returncode == 1, done.stderr
    assert ("error: node_modules/ms: https://registry.npmjs.org/ms/-/ms-2.1.3.tgz does not match the lockfile's "
            "integrity") in done.stderr and "Traceback" not in done.stderr
