"""Bad input through the real command: one clear line, a non-zero exit, nothing damaged."""

from __future__ import annotations

import io
import json
import os
import signal
import time

import pytest

from builder.oci.stores.layout import LayoutStore
from builder.progress import Progress
from tests.cli import pallet, popen
from tests.fixtures_registry import free_port
from tests.imagekit import push_image
from tests.test_copy import _big_layout


def one_line_error(proc, code: int = 1) -> str:
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("pallet: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_registry_down_is_a_clear_error(tmp_path):
    push_image(LayoutStore(tmp_path / "src"), [{"a": b"1"}], tag="v1")
    port = free_port()
    start = time.monotonic()
    err = one_line_error(pallet("copy", f"oci:{tmp_path}/src:v1", f"docker://127.0.0.1:{port}/app:v1", check=False))
    assert f"127.0.0.1:{port}" in err and "not reachable" in err
    assert time.monotonic() - start < 120  # bounded retries, not a hang (generous: not a perf check)


def test_wrong_credentials_name_the_registry(tmp_path, auth_registry):
    push_image(LayoutStore(tmp_path / "src"), [{"a": b"1"}], tag="v1")
    dst = f"docker://{auth_registry.host}/secure/app:v1"
    err = one_line_error(pallet("copy", "--creds", f"{auth_registry.user}:wrong-password",
                                f"oci:{tmp_path}/src:v1", dst, check=False))
    assert auth_registry.host in err and "wrong-password" not in err
    ok = pallet("copy", "--creds", auth_registry.creds, f"oci:{tmp_path}/src:v1", dst)
    assert ok.stdout.startswith(dst + "@sha256:")
    docker_config = tmp_path / "dockercfg"
    docker_config.mkdir()
    import base64
    (docker_config / "config.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"auth": base64.b64encode(auth_registry.creds.encode()).decode()}}}))
    seen = pallet("inspect", "--json", dst, env={"DOCKER_CONFIG": str(docker_config)})
    assert json.loads(seen.stdout)["digest"] in ok.stdout


def test_registry_serving_wrong_bytes_is_refused(tmp_path, registry):
    _, data = push_image(LayoutStore(tmp_path / "src"), [{"a": b"payload" * 100}], tag="v1")
    ref = f"docker://{registry.host}/corrupt/app:v1"
    pallet("copy", f"oci:{tmp_path}/src:v1", ref)
    layer = json.loads(data)["layers"][0]["digest"]
    blob = registry.blob_path(layer)
    blob.write_bytes(blob.read_bytes()[::-1])
    err = one_line_error(pallet("copy", ref, f"oci:{tmp_path}/dst:v1", check=False))
    assert layer in err
    assert LayoutStore(tmp_path / "dst").list_tags() == []


def test_missing_source_dir_and_bad_flags(tmp_path):
    one_line_error(pallet("append", "scratch", str(tmp_path / "nope"), f"oci:{tmp_path}/x:v1", check=False))
    one_line_error(pallet("append", "scratch", str(tmp_path), f"oci:{tmp_path}/x:v1", "--cmd", "notjson",
                          check=False), code=2)
    one_line_error(pallet("append", "scratch", str(tmp_path), f"oci:{tmp_path}/x:v1", "--owner", "me",
                          check=False), code=2)
    one_line_error(pallet("append", "scratch", str(tmp_path), f"oci:{tmp_path}/x:v1", "--env", "NOEQUALS",
                          check=False), code=2)
    # an image no runtime could unpack (a uid past 32 bits) or run (a relative working directory)
    for flag, value in (("--owner", "99999999999:0"), ("--owner", "0:4294967295"), ("--owner", "1: 2"),
                        ("--workdir", "app")):
        err = one_line_error(pallet("append", "scratch", str(tmp_path), f"oci:{tmp_path}/x:v1", flag, value,
                                    check=False), code=2)
        assert flag in err
    assert not (tmp_path / "x").exists()
    # a value is never repeated: it may be a secret, and the error lands in a CI log
    for item in ("a/b=s3cr3t", "=s3cr3t"):
        for flag in ("--env", "--label"):
            err = one_line_error(pallet("append", "scratch", str(tmp_path), f"oci:{tmp_path}/x:v1", flag, item,
                                        check=False), code=2)
            assert "s3cr3t" not in err and flag in err


def test_unsupported_layer_content_is_refused(tmp_path):
    import socket

    src = tmp_path / "src"
    src.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "control.sock"))
    try:
        err = one_line_error(pallet("append", "scratch", str(src), f"oci:{tmp_path}/x:v1", check=False))
    finally:
        sock.close()
    assert "control.sock" in err
    assert not (tmp_path / "x" / "index.json").exists() or LayoutStore(tmp_path / "x").list_tags() == []


def test_push_killed_half_way_then_rerun_completes(tmp_path, registry):
    digest = _big_layout(tmp_path / "src", 300 << 20)
    dst = f"docker://{registry.host}/killed/app:v1"
    proc = popen("copy", f"oci:{tmp_path}/src:big", dst)
    uploads = registry.storage / "docker" / "registry" / "v2" / "repositories" / "killed" / "app" / "_uploads"
    deadline = time.monotonic() + 60
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        datas = list(uploads.glob("*/data")) if uploads.exists() else []
        if any(d.stat().st_size > (16 << 20) for d in datas if d.exists()):
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait()
    if not killed:
        pytest.skip("the push finished before it could be interrupted")
    missing = pallet("inspect", dst, check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    again = pallet("copy", f"oci:{tmp_path}/src:big", dst)
    assert again.stdout.strip() == f"{dst}@{digest}"
    back = pallet("copy", dst, f"oci:{tmp_path}/back:v1")
    assert back.stdout.strip().endswith(digest)


def test_progress_draws_only_when_enabled():
    out = io.StringIO()
    quiet = Progress("copying", stream=out, enabled=False)
    quiet.add_total(100)
    quiet.advance(100)
    quiet.item_done()
    assert out.getvalue() == ""
    loud = Progress("copying", stream=out, enabled=True)
    loud.add_total(2_000_000)
    loud.advance(1_000_000)
    loud.item_done()
    loud.close()
    assert "copying: 1/1 blobs, 1.0 MB / 2.0 MB" in out.getvalue()


def test_an_archive_whose_directory_is_a_file_says_so(tmp_path):
    """docker-archive:FILE/x.tar answered 'cannot stage blobs next to FILE/x.tar: File exists'."""
    (tmp_path / "d").mkdir()
    pallet("append", "scratch", str(tmp_path / "d"), f"oci:{tmp_path}/img:v1")
    (tmp_path / "afile").write_text("keep")
    err = one_line_error(pallet("copy", f"oci:{tmp_path}/img:v1", f"docker-archive:{tmp_path}/afile/x.tar", check=False))
    assert "a file is in the way of its directory" in err and f"{tmp_path}/afile" in err
    assert (tmp_path / "afile").read_text() == "keep"


def test_build_to_a_destination_that_will_refuse_fails_before_building(tmp_path, auth_registry):
    """The destination is asked first (as ko checks push permission before it builds): a path that
    is a file, a directory of someone's data, a directory named as an archive file, a registry
    that refuses the credentials. One line, before the stack or any buildpack (no other output),
    and nothing written."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("<h1>hi</h1>\n")
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    cases = [(f"oci:{afile}", "exists and is not a directory"),
             (f"oci:{afile}/sub/layout", f"{afile} is not a directory"),
             (f"oci:{foreign}", "refusing to write into it"),
             (f"docker-archive:{tmp_path}", "is a directory; name a file")]
    for dst, expected in cases:
        err = one_line_error(pallet("build", str(app), "-t", dst, "--cache-dir", str(tmp_path / "cache"), check=False))
        assert expected in err
    assert afile.read_text() == "mine\n" and sorted(os.listdir(foreign)) == ["notes.txt"]
    assert not (tmp_path / "cache").exists()
    err = one_line_error(pallet("build", str(app), "-t", f"docker://{auth_registry.host}/secure/app:v1", "--creds",
                                f"{auth_registry.user}:wrong-password", "--cache-dir", str(tmp_path / "cache"),
                                check=False))
    assert auth_registry.host in err and "wrong-password" not in err
    assert not (tmp_path / "cache").exists()
