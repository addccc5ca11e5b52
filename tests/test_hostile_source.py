"""A hostile app source (issue 11, third sweep): building someone's repository must not write
on the host. project.toml's build env names became file names under the build's platform
directory: ``name = "../../../../tmp/x"`` wrote ``/tmp/x`` on the host, as root.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli import pallet
from tests.test_hostile_inputs import one_line_error, write_app


@pytest.mark.parametrize("name", ["{outside}", "A\\u0000B", "..", "a/b"])
def test_a_project_toml_env_name_that_is_not_a_variable_name_is_refused(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside" / "ESCAPED"
    outside.parent.mkdir()
    name = name.replace("{outside}", "../" * 30 + str(outside).lstrip("/"))
    app = write_app(tmp_path / "app", {"index.html": "hi",
                                       "project.toml": f'[[build.env]]\nname = "{name}"\nvalue = "v"\n'})
    proc = pallet("build", str(app), "-t", f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    one_line_error(proc, "project.toml", "is not a variable name", progress=True)
    assert not outside.exists()
    assert not (tmp_path / "out" / "index.json").exists()


def test_an_env_flag_whose_name_climbs_out_is_a_usage_error(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "ESCAPED"
    outside.parent.mkdir()
    app = write_app(tmp_path / "app", {"index.html": "hi"})
    proc = pallet("build", str(app), "--env", "../" * 30 + str(outside).lstrip("/") + "=v", "-t",
                  f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    assert proc.returncode == 2
    one_line_error(proc, "is not a variable name")
    assert not outside.exists()


def test_an_aptfile_lock_nested_too_deep_is_a_one_line_error(tmp_path: Path) -> None:
    """tomllib recurses per level: the app's Aptfile.lock was a RecursionError traceback."""
    app = write_app(tmp_path / "app", {"index.html": "hi", "Aptfile": "curl\n",
                                       "Aptfile.lock": "a = " + "[" * 10_000 + "]" * 10_000 + "\n"})
    proc = pallet("build", str(app), "-t", f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    one_line_error(proc, "Aptfile.lock", "nested too deeply", progress=True)


# -- fourth sweep ------------------------------------------------------------------------------


def _app_layer_names(layout: Path) -> list[str]:
    """Entry names (bytes decoded as the layer holds them) of the image's last layer (the app)."""
    import json
    import tarfile

    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
                           .split(":")[1]).read_text())
    with tarfile.open(blobs / manifest["layers"][-1]["digest"].split(":")[1], encoding="utf-8",
                      errors="surrogateescape") as tar:
        return tar.getnames()


def test_file_names_that_are_not_utf8_build_and_keep_their_bytes(tmp_path: Path) -> None:
    """The detection memo hashed app paths with str.encode(): a name that is not UTF-8 (any
    byte from a Latin-1 checkout) was a UnicodeEncodeError traceback before detection ran."""
    app = write_app(tmp_path / "app", {"index.html": "hi", "new\nline.txt": "x", "back\\slash.txt": "x"})
    (app / os.fsdecode(b"caf\xe9.txt")).write_text("x")
    out = tmp_path / "out"
    for _ in range(2):  # the second build reads the memo of the first
        proc = pallet("build", str(app), "-t", f"oci:{out}:t", "--cache-dir", str(tmp_path / "c"), check=False)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    names = _app_layer_names(out)
    assert {"workspace/" + os.fsdecode(b"caf\xe9.txt"), "workspace/new\nline.txt",
            "workspace/back\\slash.txt"} <= set(names), names


def test_a_sparse_file_of_holes_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """``truncate -s 100G disk.img``: nothing on disk, but the memo hashed 100 GB of zeros and the
    source copy wrote them out, filling the disk. Now one line, at once; project.toml's exclude
    leaves it out (the memo knows it by its stat, never reading it)."""
    from builder.lifecycle import sparse

    app = write_app(tmp_path / "app", {"index.html": "hi"})
    with open(app / "disk.img", "wb") as f:
        f.truncate(100 << 30)
    if os.stat(app / "disk.img").st_blocks * 512 > (100 << 30) - sparse.MAX_HOLES:
        pytest.skip("this file system does not make sparse files")
    out = tmp_path / "out"
    proc = pallet("build", str(app), "-t", f"oci:{out}:t", "--cache-dir", str(tmp_path / "c"), check=False,
                  timeout=300)  # a hang guard: reading 100 GB takes far longer
    one_line_error(proc, "disk.img: a sparse file of 107374182400 bytes", "exclude", progress=True)
    assert not (out / "index.json").exists()
    # No partial copy left behind. os.walk, not rglob: pallet's trash of the failed build may still
    # be going away in the background, and rglob raises for a directory that vanishes under it.
    assert not [d for d, _, files in os.walk(tmp_path / "c") if "disk.img" in files]
    (app / "project.toml").write_text('[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclude = ["disk.img"]\n')
    proc = pallet("build", str(app), "-t", f"oci:{out}:t", "--cache-dir", str(tmp_path / "c"), check=False,
                  timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "workspace/disk.img" not in _app_layer_names(out)


def test_a_file_with_a_few_holes_is_source_like_any_other(tmp_path: Path) -> None:
    """A database file's holes are no reason to refuse it; only gigabytes of them are."""
    from builder.lifecycle import sparse

    path = tmp_path / "db.sqlite"
    with open(path, "wb") as f:
        f.write(b"data")
        f.truncate(64 << 20)
    sparse.check(str(path), os.stat(path), "db.sqlite")  # no error
    assert not sparse.is_sparse(str(path), os.stat(path))


def test_go_files_linked_to_a_fifo_or_a_device_are_doubts_not_hangs(tmp_path: Path) -> None:
    """Deciding whether a Go app may need cgo (a --platform build) opened every .go file and read
    go.mod whole, following links: main.go -> a FIFO blocked pallet for ever, go.mod ->
    /dev/zero filled memory. Now each is a file that cannot be read (so: emulate, the safe way)."""
    from builder.lifecycle.gocgo import cgo_reasons

    app = write_app(tmp_path / "app", {"ok.go": 'package main\n\nimport "fmt"\n'})
    os.mkfifo(tmp_path / "fifo")
    (app / "main.go").symlink_to(tmp_path / "fifo")
    (app / "go.mod").symlink_to("/dev/zero")
    reasons = cgo_reasons(app, {})
    assert "main.go: its imports could not be read" in reasons and "go.mod cannot be read" in reasons, reasons


def test_a_huge_input_file_is_hashed_in_bounded_memory(tmp_path: Path) -> None:
    """The key of a buildpack's inputs read each file whole (requirements.txt, and app.py twice
    over: bytes, then text for its line filter): an app's file of gigabytes was that much of
    pallet's memory. Now files are streamed through the hash, and a file too big for its line
    filter counts whole. (Sparse here only to be cheap: the source copy refuses holes, not size.)"""
    import subprocess
    import sys

    from tests.samplekit import ROOT

    app = write_app(tmp_path / "app", {"Procfile": "web: python app.py\n"})
    for name in ("requirements.txt", "app.py"):
        with open(app / name, "wb") as f:
            f.truncate(256 << 20)
    script = ("import hashlib, sys\n"
              "from pathlib import Path\n"
              "from builder.lifecycle import buildpack, inputs\n"
              f"bp = buildpack.load(Path({str(ROOT / 'buildpacks' / 'python')!r}))\n"
              "inputs.digest_app(hashlib.sha256(), Path(sys.argv[1]), inputs.declared(bp))\n"
              "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')) >> 10)\n")
    done = subprocess.run([sys.executable, "-c", script, str(app)], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    assert int(done.stdout) < 128, f"{done.stdout.strip()} MiB at the peak for two files of 256 MiB"


def test_app_files_pallet_reads_itself_may_not_link_out_of_the_app(tmp_path: Path) -> None:
    """pallet reads the app's Aptfile, Aptfile.lock and project.toml on the host, before any
    sandbox: an Aptfile linked to a host file had that file's lines in the build's error ("does
    not have: secret-token-line"), the source being anyone's. A link out of the app is refused,
    naming it; one inside the app is read as before."""
    from builder.errors import InputFileError
    from builder.lifecycle import aptfile, project

    secret = tmp_path / "host-secret"
    secret.write_text("secret-token-line\n")
    for name in ("Aptfile", "Aptfile.lock", "project.toml"):
        app = write_app(tmp_path / name, {"index.html": "hi", "Aptfile": "curl\n"})
        (app / name).unlink(missing_ok=True)
        (app / name).symlink_to(secret)
        for read in (aptfile.requested, project.read_project):
            if read is project.read_project and name != "project.toml":
                continue
            with pytest.raises(InputFileError, match=f"{name} is a symlink to '{secret}', outside the app"):
                read(app)
    proc = pallet("build", str(tmp_path / "Aptfile"), "-t", f"oci:{tmp_path}/out:t", "--cache-dir",
                  str(tmp_path / "c"), check=False)
    one_line_error(proc, "Aptfile is a symlink to", "outside the app", progress=True)
    assert "secret-token-line" not in proc.stderr
    inside = write_app(tmp_path / "inside", {"conf/Aptfile": "curl\n"})
    (inside / "Aptfile").symlink_to("conf/Aptfile")
    request = aptfile.requested(inside)
    assert request is not None and request.packages == ("curl",)


def test_an_aptfile_of_gigabytes_is_refused_unread(tmp_path: Path) -> None:
    """The Aptfile (and project.toml, for its [io.pallet.apt]) was read whole before the build
    began: a package list of gigabytes was that much memory. Both are bounded as TOML files are."""
    from builder.errors import InputFileError
    from builder.lifecycle import aptfile
    from builder.lifecycle.tomlio import MAX_TOML

    for name in ("Aptfile", "project.toml"):
        app = write_app(tmp_path / name, {"index.html": "hi"})
        with open(app / name, "wb") as f:
            f.truncate(MAX_TOML + 1)
        with pytest.raises(InputFileError, match=f"{name} is over {MAX_TOML} bytes"):
            aptfile.requested(app)


def test_runtime_version_files_may_not_link_out_of_the_app(tmp_path: Path) -> None:
    """The stack choice reads the app's version files (.python-version, .nvmrc, package.json,
    go.mod ...) on the host: a ``.python-version`` linked to a host file asked for that file's
    version-shaped first line, a probe of what the host holds. Every reader goes through one
    entry point, which refuses a link out of the app, naming it."""
    from builder.errors import InputFileError
    from builder.lifecycle.apprequests import app_requests

    secret = tmp_path / "host-secret"
    secret.write_text("3.11\n")
    for name in (".python-version", ".nvmrc"):
        app = write_app(tmp_path / name, {"index.html": "hi"})
        (app / name).symlink_to(secret)
        with pytest.raises(InputFileError, match=f"{name} is a symlink to '{secret}', outside the app"):
            app_requests(app)
    proc = pallet("build", str(tmp_path / ".python-version"), "-t", f"oci:{tmp_path}/out:t", "--cache-dir",
                  str(tmp_path / "c"), check=False)
    one_line_error(proc, ".python-version is a symlink to", "outside the app", progress=True)


def test_a_directory_link_out_of_the_app_hides_no_host_file_pallet_reads(tmp_path: Path) -> None:
    """A file under a directory that links out (go.work's ``use ./mod`` with ``mod -> /host``) is
    as much the host's as a link of its own (the stack choice leaves such a module unread); and the
    cgo check read a linked go.mod's replace paths into its reasons."""
    from builder.errors import InputFileError
    from builder.lifecycle.apprequests import app_requests
    from builder.inputfile import check_in_app
    from builder.lifecycle.gocgo import cgo_reasons

    host = tmp_path / "host"
    host.mkdir()
    (host / "go.mod").write_text("module host\n\ngo 1.26\n\nreplace x => /host-secret-path\n")
    app = write_app(tmp_path / "app", {"go.work": "go 1.24\n\nuse ./mod\n", "main.go": "package main\n"})
    (app / "mod").symlink_to(host)
    assert [r.spec for r in app_requests(app)] == ["1.24"]  # go.work's own; the host's go.mod unread
    with pytest.raises(InputFileError, match="mod/go.mod is under a directory that links outside the app"):
        check_in_app(app, app / "mod" / "go.mod", "mod/go.mod")
    linked = write_app(tmp_path / "linked", {"main.go": "package main\n"})
    (linked / "go.mod").symlink_to(host / "go.mod")
    reasons = cgo_reasons(linked, {})
    assert reasons == ["go.mod cannot be read"] and "host-secret-path" not in str(reasons)


def test_a_source_repositorys_config_runs_no_command_as_provenance_reads_it(tmp_path: Path) -> None:
    """pallet build --sign-key reads the source's git facts for its provenance (source_facts):
    git status ran the repository's core.fsmonitor, and the clean filter its .gitattributes
    chose for a file whose times had changed, on the host, outside any sandbox."""
    from builder.supply.provenance import source_facts

    app = write_app(tmp_path / "app", {"index.html": "<h1>hi</h1>", ".gitattributes": "*.html filter=evil\n"})
    git = ["git", "-C", str(app), "-c", "user.email=a@b", "-c", "user.name=a"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"],
                 ["remote", "add", "origin", "https://example.com/app.git"],
                 ["config", "core.fsmonitor", f"touch {tmp_path}/fsmonitor-ran; false"],
                 ["config", "filter.evil.clean", f"touch {tmp_path}/filter-ran; cat"]):
        subprocess.run([*git, *args], check=True)
    os.utime(app / "index.html", (0, 0))   # its stat no longer the index's: git looks at its content
    facts = source_facts(app)
    assert not (tmp_path / "fsmonitor-ran").exists() and not (tmp_path / "filter-ran").exists()
    assert facts.repository == "https://example.com/app.git" and facts.commit and facts.tree_digest is None
