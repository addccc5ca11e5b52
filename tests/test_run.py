"""``pallet run``: an image's process, daemonless (bwrap over the unpacked image) or in Docker."""

from __future__ import annotations

import io
import shutil
import signal
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from builder.lifecycle.programs import elf_interpreter
from builder.lifecycle.run import RunError, RunRequest, command_for, environment_for, resolve_user
from builder.oci import reference as refs
from builder.oci.append import append
from builder.oci.image import load_image
from builder.oci.model import RunConfig
from builder.oci.mutate import ConfigChanges
from builder.oci.stores.layout import LayoutStore
from tests.cli import pallet, popen
from tests.fixtures_registry import free_port
from tests.test_launcher import check_web_env, make_launch_rootfs, parse

PRINT_ENV = 'echo "uid=$(id -u):$(id -g)"; echo "cwd=$(pwd)"; echo "args=$*"; env | sort'


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """Keep the rootfs cache (and the local store) of these tests out of the home directory."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PALLET_HOME": str(tmp_path / "home")}


def make_image(rootfs: Path, ref: str, **changes) -> str:
    append(refs.parse("scratch", allow_scratch=True), rootfs, refs.parse(ref), ConfigChanges(**changes))
    return ref


@pytest.fixture
def launch_image(tmp_path) -> str:
    """An image as pallet build exports one: the launcher, layers, process types; user cnb."""
    rootfs = make_launch_rootfs(tmp_path / "launch-rootfs")
    return make_image(rootfs, f"oci:{tmp_path}/images:launch", entrypoint=("/cnb/process/web",),
                      env={"PATH": "/bin", "EXISTING": "base", "EMPTY": "", "KEEP": "kept", "MULTI": "second"},
                      user="cnb", working_dir="/workspace")


@pytest.fixture
def plain_image(tmp_path) -> str:
    """A plain busybox image: entrypoint that prints who and where it runs, and a default cmd."""
    rootfs = make_launch_rootfs(tmp_path / "plain-rootfs", [])
    return make_image(rootfs, f"oci:{tmp_path}/images:plain", entrypoint=("/bin/sh", "-c", PRINT_ENV, "sh"),
                      cmd=("default-cmd",), env={"PATH": "/bin", "GREETING": "hello"}, user="1000:1001",
                      working_dir="/tmp")


# -- pure parts --------------------------------------------------------------------------------


def test_command_env_and_user_follow_docker_rules(tmp_path):
    config = RunConfig(entrypoint=("/app",), cmd=("--serve",), env=("A=1", "PORT=1"))
    assert command_for(config, RunRequest()) == ("/app", "--serve")
    assert command_for(config, RunRequest(args=("x",))) == ("/app", "x")
    assert command_for(config, RunRequest(args=())) == ("/app",)
    assert command_for(config, RunRequest(process="web", args=("x",))) == ("/cnb/process/web", "x")
    with pytest.raises(RunError, match="no entrypoint and no cmd"):
        command_for(RunConfig(), RunRequest())
    env = environment_for(config, RunRequest(port=9000, env={"A": "2"}), home="/home/app")
    assert env == {"A": "2", "PORT": "9000", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOME": "/home/app"}
    root = make_launch_rootfs(tmp_path / "r", [])
    assert resolve_user("cnb", root) == (1000, 1000, "/home/cnb")
    assert resolve_user("cnb:root", root) == (1000, 0, "/home/cnb")
    assert resolve_user("1000", root) == (1000, 1000, "/home/cnb")
    assert resolve_user("4242:7", root) == (4242, 7, None)
    assert resolve_user("", root) == (0, 0, "/root")
    with pytest.raises(RunError, match="not in its /etc/passwd"):
        resolve_user("nobody-here", root)


# -- daemonless ----------------------------------------------------------------------------------


def test_run_default_process_with_its_user_env_and_port(launch_image, env):
    out = pallet("run", launch_image, env=env).stdout.splitlines()
    cwd, args, app_env = parse(out)
    assert cwd == "/workspace" and args == "default-arg"
    check_web_env(app_env)
    assert app_env["PORT"] == "8080" and app_env["HOME"] == "/home/cnb"
    assert "XDG_CACHE_HOME" not in app_env and "PALLET_HOME" not in app_env  # ours, not the app's


def test_run_named_process_with_port_env_and_args(launch_image, env):
    out = pallet("run", launch_image, "worker", "-p", "9999", "--env", "FOO=bar baz", "--", "a", "-b",
                 env=env).stdout.splitlines()
    cwd, args, app_env = parse(out)
    assert cwd == "/workspace/sub" and args == "a -b"
    assert app_env["PORT"] == "9999" and app_env["FOO"] == "bar baz" and app_env["WORKER_ONLY"] == "w"


def test_run_plain_image_as_its_user(plain_image, env):
    out = pallet("run", plain_image, env=env).stdout.splitlines()
    assert out[:3] == ["uid=1000:1001", "cwd=/tmp", "args=default-cmd"]
    assert "GREETING=hello" in out and "PORT=8080" in out
    out = pallet("run", plain_image, "--", "given", env=env).stdout.splitlines()
    assert out[2] == "args=given"


def test_run_reports_bad_requests_in_one_line(launch_image, plain_image, env):
    done = pallet("run", launch_image, "nope", env=env, check=False)
    assert done.returncode == 1
    assert done.stderr == ("pallet: error: the image has no process type 'nope' "
                           "(it has: broken, tool, web, worker)\n")
    done = pallet("run", plain_image, "web", env=env, check=False)
    assert done.returncode == 1 and "not built with buildpacks" in done.stderr
    done = pallet("run", launch_image, "broken", env=env, check=False)  # the app's own failure
    assert done.returncode == 127 and 'command "no-such-command" not found' in done.stderr
    done = pallet("run", launch_image, "-p", "0", env=env, check=False)
    assert done.returncode == 2 and done.stderr.startswith("pallet: error: -p 0")
    done = pallet("run", "oci:/nonexistent/layout:v1", env=env, check=False)
    assert done.returncode == 1 and done.stderr.startswith("pallet: error: ") and "Traceback" not in done.stderr


def test_a_command_the_image_cannot_start_is_one_line_with_a_shells_exit_code(tmp_path, env):
    """bubblewrap's raw 'bwrap: execvp X: No such file or directory' was all a user saw (and, for
    a script whose #! interpreter is missing, it named the script, which is there). Now the
    command is sought as execvp would (PATH for a bare name), its #! interpreter too: 127 when
    missing, 126 when not executable, as a shell and docker run exit."""
    rootfs = make_launch_rootfs(tmp_path / "rootfs", [])
    (rootfs / "app").mkdir()
    (rootfs / "app" / "start.sh").write_text("#!/usr/bin/nosuchsh\necho hi\n")
    (rootfs / "app" / "start.sh").chmod(0o755)
    (rootfs / "app" / "data").write_text("no program\n")
    (rootfs / "app" / "ok.sh").write_text("#!/bin/sh\necho ok from the script\n")
    (rootfs / "app" / "ok.sh").chmod(0o755)
    image = make_image(rootfs, f"oci:{tmp_path}/images:cmd", env={"PATH": "/bin:/app"}, working_dir="/app")
    cases = [(("/nope",), 127, "the image's command '/nope' is not in the image\n"),
             (("nope",), 127, "the image's command 'nope' is not in the image (looked for on the image's PATH, "
                              "'/bin:/app')\n"),
             (("start.sh",), 127, "the image's command 'start.sh' starts with #!'/usr/bin/nosuchsh', which is not "
                                  "in the image\n"),
             (("./data",), 126, "the image's command './data' is not executable (no x bit)\n")]
    for argv, code, message in cases:
        done = pallet("run", image, "--", *argv, env=env, check=False)
        assert (done.returncode, done.stderr) == (code, "pallet: error: " + message)
    assert pallet("run", image, "--", "ok.sh", env=env).stdout == "ok from the script\n"  # found on PATH

    shutil.copy("/bin/ls", rootfs / "app" / "gnu-ls")  # glibc's loader, which a busybox image has not
    image = make_image(rootfs, f"oci:{tmp_path}/images:elf", env={"PATH": "/bin:/app"}, working_dir="/app")
    done = pallet("run", image, "--", "gnu-ls", env=env, check=False)
    assert done.returncode == 127 and done.stderr.startswith(
        "pallet: error: the image's command 'gnu-ls' is a program linked for the loader '/lib64/ld-linux-x86-64.so.2'"
        ", which is not in the image"), done.stderr


def _elf(wide: bool, order: str, interp: bytes) -> bytes:
    """A minimal ELF header, one PT_LOAD and one PT_INTERP entry, then the loader's path."""
    ehsize, phentsize = (64, 56) if wide else (52, 32)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if order == "<" else 2, 1]) + bytes(9)
    addr = "Q" if wide else "I"
    header = ident + struct.pack(order + "HHI" + addr * 3 + "IHHHHHH", 2, 62, 1, 0, ehsize, 0, 0, ehsize,
                                 phentsize, 2, 0, 0, 0)
    at = ehsize + 2 * phentsize
    if wide:
        load = struct.pack(order + "IIQQQQQQ", 1, 5, 0, 0, 0, 0, 0, 0)
        interp_ph = struct.pack(order + "IIQQQQQQ", 3, 4, at, 0, 0, len(interp), len(interp), 1)
    else:
        load = struct.pack(order + "IIIIIIII", 1, 0, 0, 0, 0, 0, 5, 0)
        interp_ph = struct.pack(order + "IIIIIIII", 3, at, 0, 0, len(interp), len(interp), 4, 1)
    return header + load + interp_ph + interp


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_elf_interpreter_reads_the_loader_of_32_and_64_bit_programs_of_either_byte_order(wide, order):
    loader = b"/lib/ld-musl-x86_64.so.1\0"
    assert elf_interpreter(io.BytesIO(_elf(wide, order, loader))) == "/lib/ld-musl-x86_64.so.1"
    assert elf_interpreter(io.BytesIO(_elf(wide, order, b"relative.so\0"))) is None
    assert elf_interpreter(io.BytesIO(_elf(wide, order, loader)[:40])) is None  # cut short: not an answer
    assert elf_interpreter(io.BytesIO(b"\x7fELF" + bytes(100))) is None


@pytest.mark.parametrize("ignoring", [(), (signal.SIGINT, signal.SIGQUIT)])
def test_run_http_server_and_stop_it_with_ctrl_c(tmp_path, env, ignoring):
    """Also when pallet itself started with SIGINT ignored (a script's `pallet run IMAGE &`):
    the app inherited that through exec, ignored the SIGINT pallet forwarded, and ran on."""
    rootfs = make_launch_rootfs(tmp_path / "www-rootfs", [])
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("served by pallet run\n")
    image = make_image(rootfs, f"oci:{tmp_path}/images:www", user="1000:1000", working_dir="/www",
                       entrypoint=("/bin/sh", "-c", 'echo "listening on $PORT"; exec httpd -f -p "$PORT" -h /www'))
    port = free_port()
    proc = popen("run", image, "-p", str(port), env=env, ignoring=ignoring)
    try:
        body = None
        deadline = time.monotonic() + 30
        while body is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert body == "served by pallet run\n", proc.stderr.read() if proc.poll() is not None else "no answer"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert out == f"listening on {port}\n"
    assert err == "pallet: interrupted\n"
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # the server is gone with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_rootfs_is_unpacked_once(launch_image, env, tmp_path):
    pallet("run", launch_image, "tool", env=env)
    cache = Path(env["XDG_CACHE_HOME"]) / "pallet" / "rootfs"
    unpacked = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(unpacked) == 1
    marker = unpacked[0] / "workspace" / "unpacked-once"
    marker.touch()
    assert pallet("run", launch_image, "tool", env=env).stdout == "hello-tool args=x\n"
    assert marker.exists()


# -- in Docker -------------------------------------------------------------------------------------


def test_run_in_docker(launch_image, env, docker_engine):
    port = free_port()
    done = pallet("run", "--docker", launch_image, "-p", str(port), "--env", "FOO=bar", env=env)
    cwd, args, app_env = parse(done.stdout.splitlines())
    assert cwd == "/workspace" and args == "default-arg"
    assert app_env["PORT"] == str(port) and app_env["FOO"] == "bar"
    check_web_env(app_env)
    done = pallet("run", "--docker", launch_image, "worker", "--", "x", env=env)
    cwd, args, app_env = parse(done.stdout.splitlines())
    assert cwd == "/workspace/sub" and args == "x" and app_env["WORKER_ONLY"] == "w"
    ref = refs.parse(launch_image)
    with LayoutStore(ref.path) as store:
        digest = load_image(store, ref.ref).digest
    docker_engine.images.remove(f"pallet-run:{digest.split(':')[1][:12]}", force=True)


def test_the_working_directory_and_home_are_writable_copies_for_one_run(tmp_path, env):
    """Apps write where they run (a SQLite file, uploads, ~/.pm2): each run gets copies of the
    image's working directory and home to write in; the image (and its unpacked cache) stays as
    it was, and the next run starts from the image again."""
    rootfs = make_launch_rootfs(tmp_path / "rw-rootfs", [])
    (rootfs / "home" / "cnb").mkdir(parents=True)
    (rootfs / "workspace" / "data.txt").write_text("from the image\n")
    (rootfs / "workspace" / "link").symlink_to("/layers")
    script = ('cat data.txt; ls -d link; echo written >> data.txt; echo made > new.txt; mkdir -p "$HOME/.pm2"; '
              'echo h > "$HOME/.pm2/pid"; cat data.txt new.txt "$HOME/.pm2/pid"; '
              'echo x > /etc/nope 2>/dev/null || echo "image read-only"')
    ref = make_image(rootfs, f"oci:{tmp_path}/images:rw", entrypoint=("/bin/sh", "-c", script), env={"PATH": "/bin"},
                     user="cnb", working_dir="/workspace")
    for _ in range(2):
        out = pallet("run", ref, "--network", "none", env=env, timeout=120).stdout
        assert out == ("from the image\nlink\nfrom the image\nwritten\nmade\nh\nimage read-only\n"), out
    cached = list((tmp_path / "cache").rglob("new.txt")) + list((tmp_path / "cache").rglob(".pm2"))
    assert cached == []
