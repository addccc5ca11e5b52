"""Hostile source trees and command lines: each a file an attacker (or a typo) could write.

Every case is a clear error naming the file -- one line from pallet, or one line in the detect
report from the buildpack that read it -- never a traceback, and nothing outside the app is read.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from builder.oci.stores.layout import LayoutStore
from tests.cli import ROOT, pallet
from tests.imagekit import push_layer_blobs, tar_of

HUGE = "9" * 5000


def one_line_error(proc, *needles: str, progress: bool = False) -> str:
    """The error is one line; ``progress``: after the lines a build prints as it goes (its stack)."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr.splitlines(keepends=True)[-1] if progress and proc.stderr else proc.stderr
    assert err.startswith("pallet: error: ") and err.count("\n") == 1, proc.stderr
    assert proc.stderr.count("pallet: error: ") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


def write_app(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return root


# -- buildpacks read the app's files: a malformed one is the buildpack's one-line error ------------


@pytest.mark.parametrize("files, needle", [
    ({"Pipfile": "[packages]\n", "Pipfile.lock": "garbage"}, "Pipfile.lock is not valid JSON"),
    ({"Pipfile": "[packages]\n", "Pipfile.lock": "[1, 2]"}, "Pipfile.lock must hold a JSON object"),
    ({"pyproject.toml": 'project = 5\ntool = "x"\n'}, "[project] must be a table"),
    ({"pyproject.toml": '[project]\nname = "a"\nscripts = 5\n'}, "[project.scripts] must be a table"),
    ({"pyproject.toml": '[project]\nname = "a"\ndependencies = [1, {a = 1}]\n'},
     "project.dependencies must be a list of strings"),
    ({"pyproject.toml": '[tool]\npoetry = [1]\n'}, "[tool.poetry] must be a table"),
    ({"requirements.txt": "", ".python-version": b"\xff\xfe\x00"}, ".python-version asks for '\ufffd"),  # read as UTF-16 after its mark (73ea3e9)
    ({"requirements.txt": "", "runtime.txt": b"\xff\xfe\x00"}, "runtime.txt asks for '\ufffd"),
    ({"package.json": json.dumps({"workspaces": [None]})}, "workspaces: null is not a directory pattern"),
    ({"package.json": json.dumps({"workspaces": {"packages": [5]}})}, "workspaces: 5 is not a directory"),
    ({"package.json": json.dumps({"workspaces": ["../../*"]})}, '"../../*" names a directory outside the app'),
    ({"package.json": json.dumps({"workspaces": ["/etc"]})}, '"/etc" names a directory outside the app'),
    ({"package.json": json.dumps({"workspaces": ["!../x", "a"]})}, "outside the app"),
    ({"package.json": "{}", "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
      "pnpm-workspace.yaml": "packages:\n  - '../*'\n"}, '"../*" names a directory outside the app'),
], ids=lambda v: "" if isinstance(v, str) else "-".join(v))
def test_malformed_app_files_are_the_buildpacks_one_line_error(tmp_path: Path, files, needle) -> None:
    app = write_app(tmp_path / "app", files)
    proc = pallet("detect", str(app), check=False)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "TypeError" not in out, out
    assert needle in out, out
    line = next(ln for ln in out.splitlines() if needle in ln)
    assert "error" in line or "the build will fail" in line, line


@pytest.mark.parametrize("procfile, size", [
    ("web: " + "a b" * 700_000 + "\n", "2100006 bytes of 1 process types"),   # bash: minutes, quadratic
    ("".join(f"w{i}: x\n" for i in range(300)), "2290 bytes of 300 process types"),
])
def test_a_procfile_no_one_writes_is_refused_before_it_is_read(tmp_path: Path, procfile: str, size: str) -> None:
    """A Procfile of one 2 MiB line held the build for more than five minutes (bash's string
    matching on the line), one of 6,500 process types a minute: now at most 64 KiB and 256 types."""
    (tmp_path / "layers").mkdir()
    (tmp_path / "Procfile").write_text(procfile)
    done = subprocess.run(["bash", str(ROOT / "buildpacks" / "procfile" / "bin" / "build"), str(tmp_path / "layers")],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.startswith(f"Procfile: the file is {size}, more than any Procfile")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "layers" / "launch.toml").exists()


def test_a_procfile_with_a_nul_byte_is_refused(tmp_path: Path) -> None:
    """bash's read dropped the NUL without a word: `web: rm -rf /tmp/a<NUL>b` would run another command."""
    (tmp_path / "layers").mkdir()
    (tmp_path / "Procfile").write_bytes(b"web: ./serve\x00r\nworker: ./work\n")
    done = subprocess.run(["bash", str(ROOT / "buildpacks" / "procfile" / "bin" / "build"), str(tmp_path / "layers")],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr == ("Procfile: the file has NUL bytes: it is not text (one line per "
                                                    "process type, TYPE: COMMAND)\n")
    assert not (tmp_path / "layers" / "launch.toml").exists()


# -- pallet reads the versions an app asks for ------------------------------------------------------


@pytest.mark.parametrize("files, source", [
    ({"requirements.txt": "", ".python-version": f"3.{HUGE}\n"}, ".python-version"),
    ({"pyproject.toml": f'[project]\nname = "a"\nrequires-python = ">=3.{HUGE}"\n'}, "requires-python"),
    ({"go.mod": f"module x\n\ngo 1.{HUGE}\n", "main.go": "package main\n"}, "go.mod"),
    ({"requirements.txt": "", ".python-version": "3." + "1" * 300 + "\n"}, ".python-version"),
])
def test_an_absurd_version_request_is_a_one_line_error(tmp_path: Path, files, source) -> None:
    app = write_app(tmp_path / "app", files)
    one_line_error(pallet("detect", str(app), check=False), source, "is not a version")


# -- the source tree itself ---------------------------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def _zero_device(path: Path) -> None:
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: a read never ends


@pytest.mark.parametrize("make", [_fifo, _socket, pytest.param(_zero_device, marks=pytest.mark.skipif(
    os.geteuid() != 0, reason="mknod of a device needs root"))], ids=["fifo", "socket", "dev-zero"])
def test_a_special_file_in_the_source_is_skipped_not_read(tmp_path: Path, make) -> None:
    """The build memo opened every file of the source: a FIFO blocked the build forever, /dev/zero
    never ended, a socket was 'No such device or address'. They are not source: the copy of the
    source skips them, and so does the memo now; the image is the one without them."""
    plain = write_app(tmp_path / "plain", {"index.html": "<h1>hi</h1>"})
    app = write_app(tmp_path / "app", {"index.html": "<h1>hi</h1>"})
    make(app / "special")
    digests = []
    for src in (plain, app):
        proc = pallet("build", "--json", str(src), "-t", f"oci:{tmp_path}/out:{src.name}", "--cache-dir",
                      str(tmp_path / f"c-{src.name}"), timeout=300)  # a hang guard, not a speed check
        digests.append(json.loads(proc.stdout)["digest"])
    assert digests[0] == digests[1]


def test_a_source_deeper_than_any_image_is_a_one_line_error(tmp_path: Path) -> None:
    """1200 levels made os.walk (the source copy, the build memo) die of RecursionError."""
    app = write_app(tmp_path / "app", {"index.html": "x"})
    deep = app.joinpath(*["d"] * 300)
    deep.mkdir(parents=True)
    for command in ("detect", "build"):
        proc = pallet(command, str(app), "-t", f"oci:{tmp_path}/out:t", check=False) if command == "build" \
            else pallet(command, str(app), check=False)
        one_line_error(proc, "over 256 directories deep", progress=True)


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_a_source_that_is_not_a_directory_says_so(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "app"
    if kind == "file":
        src.write_text("x")
    for command in ("build", "detect"):
        one_line_error(pallet(command, str(src), check=False), str(src),
                       "not a directory" if kind == "file" else "not found")


# -- images: layers, layouts and archives -----------------------------------------------------------


def _layer(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size, info.mode = 1, 0o644
            tf.addfile(info, io.BytesIO(b"x"))
    return gzip.compress(buf.getvalue(), mtime=0)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PALLET_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize("name, needle", [
    ("a/" * 3000 + "x", "3001 directories deep"),
    ("a/" * 300 + "x", "301 directories deep"),
    ("b" * 200 + "/" + "c" * 250 + ("/" + "d" * 250) * 16, "characters long"),
])
def test_a_layer_entry_deeper_than_any_image_is_refused_and_the_cache_stays_usable(
        tmp_path: Path, env: dict[str, str], name: str, needle: str) -> None:
    """3000 levels unpacked fine, then every recursive walk of the rootfs cache (the cleanup of
    that very unpack, and of every later run's) died of RecursionError: one image poisoned
    ``pallet run`` of all images."""
    push_layer_blobs(LayoutStore(tmp_path / "deep"), [_layer([name])], tag="t")
    push_layer_blobs(LayoutStore(tmp_path / "good"), [_layer(["bin/app"])], tag="t",
                     config_extra={"config": {"Env": ["PATH=/bin"]}})
    one_line_error(pallet("run", f"oci:{tmp_path}/deep:t", env=env, check=False), needle, "refusing to unpack")
    root = Path(env["XDG_CACHE_HOME"]) / "pallet" / "rootfs"
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == []
    # the next image is unaffected: it gets as far as its own (missing) command
    one_line_error(pallet("run", f"oci:{tmp_path}/good:t", env=env, check=False), "no entrypoint and no cmd")


def test_an_image_with_thousands_of_top_level_entries_is_a_one_line_error(tmp_path: Path, env) -> None:
    """Each top-level entry is a bubblewrap mount: 3100 of them exceed bubblewrap's 9000 arguments."""
    push_layer_blobs(LayoutStore(tmp_path / "wide"), [_layer([f"f{i}" for i in range(3100)])], tag="t",
                     config_extra={"config": {"Entrypoint": ["/f1"]}})
    one_line_error(pallet("run", f"oci:{tmp_path}/wide:t", env=env, check=False), "3100 entries",
                   "limit of 9000")


@pytest.mark.parametrize("victim", ["index.json", "oci-layout", "manifest", "layer"])
def test_a_fifo_in_a_layout_is_damage_not_a_hang(tmp_path: Path, env: dict[str, str], victim: str) -> None:
    manifest, (layer,) = push_layer_blobs(LayoutStore(tmp_path / "lay"), [_layer(["bin/app"])], tag="t")
    blobs = tmp_path / "lay" / "blobs" / "sha256"
    path = {"index.json": tmp_path / "lay" / "index.json", "oci-layout": tmp_path / "lay" / "oci-layout",
            "manifest": blobs / manifest.digest.split(":")[1], "layer": blobs / layer.digest.split(":")[1]}[victim]
    path.unlink()
    os.mkfifo(path)
    # a hang guard, not a speed check: each of these blocked forever opening the FIFO
    for args in (("inspect",), ("run",), ("copy",)):
        ref = f"oci:{tmp_path}/lay:t"
        argv = (*args, ref, f"oci:{tmp_path}/out:t") if args == ("copy",) else (*args, ref)
        if victim == "layer" and args == ("inspect",):
            continue  # inspect reads no layer
        needles = ("no oci-layout file",) if victim == "oci-layout" else (str(path), "not a regular file")
        one_line_error(pallet(*argv, env=env, check=False, timeout=120), *needles)


def test_a_docker_archive_whose_repotags_is_not_a_list_is_a_one_line_error(tmp_path: Path) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = json.dumps([{"Config": "c.json", "RepoTags": 5, "Layers": []}])
    (tmp_path / "a.tar").write_bytes(tar_of({"manifest.json": manifest.encode(), "c.json": config.encode()}))
    for command in ("inspect", "run"):
        one_line_error(pallet(command, f"docker-archive:{tmp_path}/a.tar", check=False), "manifest.json", "RepoTags")


def _break(lay: Path, how: str) -> None:
    """Damage the layout ``lay`` (one image, tag t) the way ``how`` says."""
    blobs = lay / "blobs" / "sha256"
    index = json.loads((lay / "index.json").read_text())
    manifest_path = blobs / index["manifests"][0]["digest"].split(":")[1]
    layer = json.loads(manifest_path.read_bytes())["layers"][0]["digest"].split(":")[1]
    if how == "missing-layer":
        (blobs / layer).unlink()
    elif how == "tampered-layer":
        (blobs / layer).write_bytes(b"not the layer")
    elif how == "fifo-layer":
        (blobs / layer).unlink()
        os.mkfifo(blobs / layer)
    elif how == "tampered-manifest":
        manifest_path.write_bytes(manifest_path.read_bytes().replace(b"schemaVersion", b"schemaVersiom"))
    elif how == "missing-manifest":
        manifest_path.unlink()
    elif how == "bad-index-digest":
        index["manifests"][0]["digest"] = "sha256:../../../etc/passwd"
        (lay / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("how", ["missing-layer", "tampered-layer", "fifo-layer", "tampered-manifest",
                                 "missing-manifest", "bad-index-digest"])
def test_a_failed_copy_leaves_the_destination_byte_identical(tmp_path: Path, how: str) -> None:
    push_layer_blobs(LayoutStore(tmp_path / "src"), [_layer(["bin/new"])], tag="t")
    _break(tmp_path / "src", how)
    push_layer_blobs(LayoutStore(tmp_path / "dst"), [_layer(["bin/old"])], tag="keep")
    before = {p.relative_to(tmp_path / "dst"): p.read_bytes() for p in (tmp_path / "dst").rglob("*") if p.is_file()}
    for tag in ("keep", "new"):
        proc = pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{tmp_path}/dst:{tag}", check=False, timeout=120)
        one_line_error(proc)
    after = {p.relative_to(tmp_path / "dst"): p.read_bytes() for p in (tmp_path / "dst").rglob("*") if p.is_file()
             and p.name != ".pallet.lock"}
    # everything that was there is byte-identical (index.json above all); what is new is only
    # whole blobs, each under its own digest (copied before the failure; unreferenced, for prune)
    assert {k: after[k] for k in before if k.name != ".pallet.lock"} == \
        {k: v for k, v in before.items() if k.name != ".pallet.lock"}
    for name in set(after) - set(before):
        assert name.parent == Path("blobs/sha256") and hashlib.sha256(after[name]).hexdigest() == name.name
    assert LayoutStore(tmp_path / "dst").list_tags() == ["keep"]


# -- a hostile registry ------------------------------------------------------------------------------


CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()


class _EndlessConfig(http.server.BaseHTTPRequestHandler):
    """A registry whose manifest is honest and whose config blob never ends (10^12 bytes declared)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") == "/v2":
            body, ctype = b"{}", "application/json"
        elif "/manifests/" in self.path:
            config = {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": "sha256:" + hashlib.sha256(CONFIG).hexdigest(), "size": len(CONFIG)}
            body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config, "layers": []}).encode()
            ctype = "application/vnd.oci.image.manifest.v1+json"
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(10 ** 12))
            self.end_headers()
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b"x" * 65536)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_config_blob_that_never_ends_is_cut_one_byte_past_its_size(tmp_path: Path) -> None:
    """The config (a small blob) was read whole into memory before its size was checked."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EndlessConfig)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ref = f"docker://localhost:{server.server_address[1]}/endless:t"
        proc = pallet("inspect", ref, check=False, timeout=120)  # a hang guard, not a speed check
        one_line_error(proc, f"more than the expected {len(CONFIG)} bytes")
    finally:
        server.shutdown()


# -- the command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["0", "-5"])
@pytest.mark.parametrize("command", ["copy", "promote"])
def test_jobs_below_one_is_a_usage_error(tmp_path: Path, command: str, jobs: str) -> None:
    """copy and promote took --jobs 0 (or -5) and ran one at a time without a word; rebase refused it."""
    push_layer_blobs(LayoutStore(tmp_path / "src"), [_layer(["bin/app"])], tag="t")
    extra = ("--key", str(tmp_path / "none.pub")) if command == "promote" else ()
    proc = pallet(command, "--jobs", jobs, *extra, f"oci:{tmp_path}/src:t", f"oci:{tmp_path}/dst:t", check=False)
    assert proc.returncode == 2
    one_line_error(proc, "--jobs", "at least 1")
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("body, needle", [
    ("io = 5\n", "[io] must be a table"),
    ("[io]\npallet = 5\n", "[io.pallet] must be a table"),  # AttributeError traceback (Aptfile, stack)
    ("[io.pallet]\napt = 5\n", "[io.pallet.apt] packages must be a list"),
    ("[build]\nenv = 5\n", "build.env must be an array of tables"),
    ("[build]\nenv = {a = 1}\n", "build.env must be an array of tables"),
    ("[build]\nbuildpacks = 5\n", "build.buildpacks must be an array of tables"),
    ("[build]\nbuildpacks = [{id = 5, version = [1]}]\n", "must be strings"),
    ("[_]\nschema-version = 0.2\n", "_.schema-version must be a string"),
    ("_ = 5\n", "[_] must be a table"),
    ('[_]\nschema-version = "0.2"\n[[io.buildpacks.pre.group]]\nid = "pallet/static"\n', "pre.group]] is not supported"),
    ('[[io.buildpacks.post.group]]\nuri = "bp"\n', "post.group]] is not supported"),
    ('[build]\nexclude = ["x"]\n[[io.buildpacks.post.group]]\nuri = "bp"\n', "post.group]] is not supported"),
])
def test_a_project_toml_of_the_wrong_types_is_a_one_line_error(tmp_path: Path, body: str, needle: str) -> None:
    app = write_app(tmp_path / "app", {"index.html": "<h1>hi</h1>", "project.toml": body})
    proc = pallet("build", str(app), "-t", f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    one_line_error(proc, "project.toml", needle, progress=True)


@pytest.mark.parametrize("work, outside", [
    ("go 1.22\nuse ../../etc\n", "../../etc"),
    ("go 1.22\nuse (\n\t./a\n\t/etc\n)\n", "/etc"),
    ('go 1.22\nuse "./a/../../x"\n', "./a/../../x"),
])
def test_a_go_work_using_a_directory_outside_the_app_is_refused(tmp_path: Path, work: str, outside: str) -> None:
    """go.work's use lines were built as they were: the build image's /etc as a workspace module."""
    app = write_app(tmp_path / "app", {"go.work": work, "a/go.mod": "module a\n\ngo 1.22\n",
                                       "a/main.go": "package main\n\nfunc main() {}\n"})
    proc = pallet("build", str(app), "-t", f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"go.work uses {outside}, a directory outside the app" in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "index.json").exists()


def test_append_refuses_a_directory_deeper_than_pallet_would_unpack(tmp_path: Path) -> None:
    """append made a 300-level layer that pallet run then refused: now refused where it is made."""
    from builder.oci import layer, unpack

    assert layer.MAX_DEPTH == unpack.MAX_DEPTH
    push_layer_blobs(LayoutStore(tmp_path / "base"), [_layer(["bin/app"])], tag="t")
    src = tmp_path / "dir"
    src.joinpath(*["d"] * (layer.MAX_DEPTH + 1)).mkdir(parents=True)
    proc = pallet("append", f"oci:{tmp_path}/base:t", str(src), f"oci:{tmp_path}/out:t", check=False)
    one_line_error(proc, "directories deep")
    assert not (tmp_path / "out").exists()
    src.joinpath(*["d"] * (layer.MAX_DEPTH + 1)).rmdir()  # 256 levels: fine
    pallet("append", f"oci:{tmp_path}/base:t", str(src), f"oci:{tmp_path}/out:t")
