"""Manifests of the wrong types: every file pallet's buildpacks read from an app, with values of
the wrong JSON/TOML type, garbage, or a byte-order mark. ``pallet detect`` (fast: no build) must
report each as one clear line naming the file and the value, never a Python or Node.js error
message ("'int' object is not iterable") or a traceback; and a file npm reads must read the same
here (a BOM is fine to npm)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli import pallet
from tests.test_hostile_inputs import write_app

J = json.dumps
PY = '[project]\nname = "a"\n'

#: (files, what the detect report must say). Each runs ``pallet detect`` once.
CASES: list[tuple[dict[str, str | bytes], str]] = [
    ({"pyproject.toml": PY + "requires-python = 3\n"}, "pyproject.toml: project.requires-python must be a string, not int"),
    ({"pyproject.toml": '[build-system]\nbuild-backend = ["x"]\n'}, "build-system.build-backend must be a string"),
    ({"pyproject.toml": '[tool.poetry]\nname = "a"\n', "poetry.lock": "package = 5\n"},
     "poetry.lock: package must be a list, not int"),
    ({"pyproject.toml": '[tool.poetry]\nname = "a"\n', "poetry.lock": '[[package]]\nname = "a"\ngroups = "main"\n'},
     "poetry.lock: package[0].groups must be a list of strings, not str"),
    ({"pyproject.toml": PY, "uv.lock": "version = 1\n[[package]]\nname = 5\n"}, "uv.lock: package[0].name must be a string"),
    ({"pyproject.toml": PY, "pdm.lock": '[[package]]\nname = "a"\nversion = "1"\nfiles = [5]\n'},
     "pdm.lock: [package[0].files[0]] must be a table, not int"),
    ({"Pipfile": "requires = 5\n"}, "Pipfile: [requires] must be a table, not int"),
    ({"Pipfile": '[packages]\nflask = {version = "==3", extras = "async"}\n'},
     "Pipfile: packages.flask.extras must be a list of strings"),
    ({"Pipfile": "[packages]\n", "Pipfile.lock": J({"_meta": 5})}, "Pipfile.lock: [_meta] must be a table, not int"),
    ({"Pipfile": "[packages]\n", "Pipfile.lock": J({"default": {"flask": {"version": 3}}})},
     "Pipfile.lock: default.flask.version must be a string, not int"),
    ({"Pipfile": "[packages]\n", "Pipfile.lock": J({"default": {"flask": {"version": "==3", "hashes": [1]}}})},
     "Pipfile.lock: default.flask.hashes must be a list of strings"),
    # held before: pinned so they stay one line
    ({"pyproject.toml": PY + "scripts = 5\n"}, "[project.scripts] must be a table"),
    ({"package.json": J({"packageManager": 5})}, "package.json packageManager 5 is not NAME@VERSION"),
    ({"package.json": "{", "package-lock.json": "{}"}, "package.json is not valid JSON"),
    # a Staticfile root that climbs out of the app would serve the image's files (the last root: wins)
    ({"index.html": "x", "Staticfile": "root: dist\nroot: '../..'  # up\n"}, "Staticfile: root '../..' is outside the app"),
    # an Aptfile with a quote or binary junk: detect's summary was xargs's warning, the names lost
    ({"index.html": "x", "Aptfile": "it's # a typo\n"}, "pallet/apt: found Aptfile: it's\n"),
    ({"index.html": "x", "Aptfile": b"\x00\xffcurl\n"}, "pallet/apt: found Aptfile: curl\n"),
    # a buildpack by URL (pack fetches them; pallet does not): was "app/https:/...: no such buildpack directory"
    ({"index.html": "x", "project.toml": '[[io.buildpacks.group]]\nuri = "https://example.com/bp.tgz"\n'},
     "pallet: error: project.toml: buildpack uri 'https://example.com/bp.tgz' is not a directory"),
    # nested past Python's recursion limit: pyapp.py's traceback was the detect report
    ({"pyproject.toml": PY + "x = " + "[" * 100000 + "]" * 100000 + "\n"}, "pyproject.toml is not valid TOML: nested too deep"),
    ({"Pipfile": "[packages]\n", "Pipfile.lock": "[" * 100000 + "]" * 100000}, "Pipfile.lock is not valid JSON: nested too deep"),
    # a byte-order mark (Windows editors write one): npm and Node.js read the file without it
    ({"package.json": b"\xef\xbb\xbf" + J({"scripts": {"start": "node s.js", "build": "echo hi"}}).encode()},
     "web: node s.js (scripts.start)"),
]


def test_manifests_of_the_wrong_types_are_one_clear_line(tmp_path: Path) -> None:
    failures = []
    for i, (files, needle) in enumerate(CASES):
        app = write_app(tmp_path / f"app{i}", files)
        proc = pallet("detect", str(app), check=False)
        out = proc.stdout + proc.stderr
        bad = ("Traceback" in out or "object is not" in out or "could not be read" in out
               or needle not in out)
        if bad:
            failures.append(f"{sorted(files)} -> want {needle!r}:\n{out}")
    assert not failures, "\n\n".join(failures)


def test_a_staticfile_edited_to_climb_out_of_the_app_is_detected_again(bookworm, tmp_path: Path) -> None:
    """pallet/static declared no detect inputs: its remembered detect was replayed while the
    Staticfile's content changed, so a root edited to ``..`` was built (and served the image's
    /proc/self/environ). Its detect reads the Staticfile now, and refuses such a root."""
    app = write_app(tmp_path / "app", {"dist/index.html": "hi", "Staticfile": "root: dist\n"})
    bookworm.build(app, "oci:" + str(tmp_path / "site.oci"), tmp_path / "cache")
    (app / "Staticfile").write_text("root: ..\n")
    done = bookworm.build(app, "oci:" + str(tmp_path / "site.oci"), tmp_path / "cache", check=False)
    assert done.returncode != 0 and "Staticfile: root '..' is outside the app" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_start_script_with_a_del_or_a_lone_surrogate_builds(bookworm, tmp_path: Path) -> None:
    """JSON's escapes are TOML's but for DEL (left as it is) and a lone surrogate (written as
    \\ud800): a start script with either made launch.toml invalid, and the build failed on the
    buildpack's own file. Now DEL is escaped, a lone surrogate becomes U+FFFD."""
    app = write_app(tmp_path / "app", {
        "package.json": '{"scripts": {"start": "node s.js \\u007f \\ud800 \\ud83d\\ude00"}}',
        "s.js": "require('http').createServer((q, s) => s.end('hi')).listen(process.env.PORT)\n"})
    done = bookworm.build(app, "oci:" + str(tmp_path / "o.oci"), tmp_path / "cache", check=False)
    assert done.returncode == 0, done.stderr
    assert "web process: node s.js \x7f \ufffd \U0001f600 (scripts.start)" in done.stderr, done.stderr


def test_the_static_detect_key_reads_no_node_modules(tmp_path: Path) -> None:
    """pallet/static's detect reads package.json files one and two levels down (workspaces): a
    developer's node_modules, there in a source without git, is thousands of them to hash at
    every build; the key leaves node_modules out, as pallet/nodejs's does."""
    import hashlib

    from builder.lifecycle import buildpack as bpmod
    from builder.lifecycle import inputs as inputsmod
    from tests.samplekit import ROOT

    bp = bpmod.load(ROOT / "buildpacks" / "static")
    app = write_app(tmp_path / "app", {"Staticfile": "root: dist\n", "web/package.json": "{}",
                                       "node_modules/x/package.json": "{}"})
    declared = inputsmod.declared(bp, detect=True)
    assert declared is not None

    def key() -> str:
        h = hashlib.sha256()
        inputsmod.digest_app(h, app, declared)
        return h.hexdigest()

    before = key()
    (app / "node_modules" / "x" / "package.json").write_text('{"name": "x"}')
    assert key() == before
    (app / "web" / "package.json").write_text('{"name": "web"}')
    assert key() != before


def test_a_front_end_output_directory_outside_the_app_is_refused(bookworm, tmp_path: Path) -> None:
    """vite.config's outDir "../../tmp/site" (or angular.json's outputPath) was served as
    /workspace/../../tmp/site: the build passed, /workspace was emptied of all but "..", and the
    image had nothing to serve. Now the build fails saying where the output went."""
    app = write_app(tmp_path / "app", {
        "package.json": J({"name": "vo", "version": "1.0.0",
                           "scripts": {"build": "mkdir -p ../../tmp/site && echo hi > ../../tmp/site/index.html"}}),
        "package-lock.json": J({"name": "vo", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
                                "packages": {"": {"name": "vo", "version": "1.0.0"}}}),
        "vite.config.js": 'export default { build: { outDir: "../../tmp/site" } }\n',
        "index.html": "<h1>src</h1>\n"})
    done = bookworm.build(app, "oci:" + str(tmp_path / "o.oci"), tmp_path / "cache", check=False)
    assert done.returncode != 0, done.stderr
    assert "the build's output directory '../../tmp/site' (vite.config's outDir" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_project_toml_buildpack_outside_the_app_is_refused_unprobed(tmp_path: Path) -> None:
    """project.toml comes with the source: a ``uri`` of /root/.ssh said "no such buildpack
    directory", /etc "file not found" (a probe of the host's files), and a host directory with a
    buildpack.toml would have run. Absolute, climbing and symlinked paths are all outside the app;
    a buildpack inside it still detects."""
    from tests.samplekit import ROOT

    app = write_app(tmp_path / "app", {"index.html": "x"})
    (app / "host").symlink_to(ROOT / "buildpacks" / "static")
    shutil.copytree(ROOT / "buildpacks" / "static", app / "bp")
    for uri in ("/etc", "file:///nonexistent", "../../etc", "host", "bp/../host"):
        (app / "project.toml").write_text(f'[[build.buildpacks]]\nuri = "{uri}"\n')
        proc = pallet("detect", str(app), check=False)
        assert proc.returncode != 0 and f"buildpack uri '{uri}' is outside the app" in proc.stderr, proc.stderr
        assert "no such" not in proc.stderr and "not found" not in proc.stderr
    (app / "project.toml").write_text('[[build.buildpacks]]\nuri = "bp"\n')
    assert "detected: pallet/static" in pallet("detect", str(app)).stdout


def test_a_buildpack_echoing_the_apps_files_shows_their_escapes_escaped(bookworm, tmp_path: Path) -> None:
    """A build step's output went to the terminal raw: a Procfile line (any of the app's files a
    tool echoes) could retitle or clear the user's terminal; so did pallet's own line naming
    the virtualenvs it leaves out (a directory name may hold a newline too, forging a line).
    Now each line shows its control characters escaped, and each name its newlines."""
    app = write_app(tmp_path / "app", {"index.html": "hi\n",
                                       "Procfile": "web: x\nworker\x1b]0;owned\x07: y \x1b[2J\x9b31m\n",
                                       "env\x1b[2J\npallet: forged/pyvenv.cfg": ""})
    done = bookworm.build(app, "oci:" + str(tmp_path / "o.oci"), tmp_path / "cache", check=False)
    assert done.returncode != 0 and "worker\\x1b]0;owned\\x07: y \\x1b[2J\\x9b31m" in done.stderr, done.stderr
    assert "virtualenv): env\\x1b[2J\\x0apallet: forged/" in done.stderr, done.stderr
    assert not any(c in done.stderr for c in "\x1b\x07\x9b"), done.stderr


def test_a_step_printing_without_newlines_is_read_in_bounded_pieces() -> None:
    """A step's output was read a whole line at a time (``readline()``): the app's build script
    printing gigabytes without a newline filled pallet's memory. Now in pieces."""
    import io

    from builder.lifecycle.sandbox import MAX_OUTPUT_LINE, pump_lines

    got: list[int] = []
    pump_lines(io.BytesIO(b"x" * (10 * MAX_OUTPUT_LINE + 5) + b"\nend\n"), lambda line: got.append(len(line)))
    assert got == [MAX_OUTPUT_LINE] * 10 + [5, 3], got
