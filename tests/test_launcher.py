"""The launcher: CNB env semantics, working dir, args, process selection; in bwrap and in Docker.

The images are tiny: busybox-static for the app's tools, the committed static launcher, and
``/layers`` laid out as an exporter would, with the process files ``launch.py`` writes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.lifecycle import launch, process as procmod
from builder.lifecycle.launch import decode_process, encode_process, launch_entries, launcher_binary
from builder.lifecycle.process import Process
from builder.lifecycle.sandbox import BwrapSandbox, Step
from builder.oci import reference as refs
from builder.oci.append import append
from builder.oci.mutate import ConfigChanges
from builder.oci.layer import layer_from_entries
from tests.fixtures_docker import run_cli

LAUNCHER_DIR = Path(launch.__file__).parent / "launcher"
APPLETS = ("sh", "env", "sort", "pwd", "echo", "cat", "httpd", "sleep", "id")
SHOW = '#!/bin/sh\necho "cwd=$(pwd)"\necho "args=$*"\nenv | sort\n'

A1, A2, B1 = "/layers/bp_a/one", "/layers/bp_a/two", "/layers/bp_b/three"
LAYER_DIRS = [A1, A2, B1]
PROCESSES = [
    Process("web", ("/workspace/show",), ("default-arg",), default=True, buildpack_id="bp_a"),
    Process("worker", ("sh", "-c", 'echo "cwd=$(pwd)"; echo "args=$*"; env | sort', "worker"),
            working_dir="/workspace/sub", buildpack_id="bp_b"),
    Process("tool", ("hello-tool",), ("x",)),
    Process("broken", ("no-such-command",)),
]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def make_launch_rootfs(root: Path, processes: list[Process] = PROCESSES, *, shell: bool = True,
                       arch: str = "amd64") -> Path:
    """A rootfs as pallet's exporter lays one out: busybox, the launcher, layers, processes."""
    if shell:
        (root / "bin").mkdir(parents=True)
        shutil.copy("/bin/busybox", root / "bin" / "busybox")
        for applet in APPLETS:
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    _write(root / "etc" / "passwd", "root:x:0:0:root:/root:/bin/sh\ncnb:x:1000:1000:cnb:/home/cnb:/bin/sh\n")
    _write(root / "etc" / "group", "root:x:0:\ncnb:x:1000:\n")
    (root / "tmp").mkdir(exist_ok=True)
    _write(root / "workspace" / "show", SHOW, 0o755)
    (root / "workspace" / "sub").mkdir()
    # bp_a/one: a tool on PATH, a lib dir, env and env.launch files
    one = root / A1.lstrip("/")
    _write(one / "bin" / "hello-tool", '#!/bin/sh\necho "hello-tool args=$*"\n', 0o755)
    (one / "lib").mkdir()
    _write(one / "env" / "OVERRIDE_ME", "from-one")
    _write(one / "env" / "DEF.default", "default-one")
    _write(one / "env" / "APP.append", "a1")
    _write(one / "env" / "APP.delim", ",")
    _write(one / "env" / "EMPTY.default", "filled")
    _write(one / "env" / "KEEP.default", "not-used")
    _write(one / "env" / "UNKNOWN.suffix", "ignored")
    _write(one / "env.launch" / "LAUNCH_ONLY", "yes")
    _write(one / "env.launch" / "web" / "WEB_ONLY.override", "web")
    _write(one / "env.build" / "BUILD_ONLY", "never at launch")
    # bp_a/two: more of the same variables, applied after one's
    two = root / A2.lstrip("/")
    _write(two / "env" / "APP.append", "a2")
    _write(two / "env" / "APP.delim", ",")
    _write(two / "env" / "DEF.default", "default-two")
    _write(two / "env" / "EXISTING.prepend", "pre-")  # no delim: plain concatenation
    _write(two / "env" / "OVERRIDE_ME.override", "from-two")
    _write(two / "env" / "MULTI.prepend", "first")
    _write(two / "env" / "MULTI.delim", " ")
    # bp_b/three: another buildpack; its bin goes before bp_a's
    three = root / B1.lstrip("/")
    _write(three / "bin" / "other-tool", "#!/bin/sh\n", 0o755)
    _write(three / "env.launch" / "PATH.append", "/extra")
    _write(three / "env.launch" / "PATH.delim", ":")
    _write(three / "env.launch" / "worker" / "WORKER_ONLY", "w")
    # the launch layer: launcher, /cnb/process/<type>, /layers/config/processes/<type>
    for entry in launch_entries(processes, LAYER_DIRS, arch):
        path = root / entry.path.lstrip("/")
        if entry.type == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif entry.type == "symlink":
            os.symlink(entry.link_target, path)
        else:
            path.write_bytes(entry.data or b"")
            path.chmod(entry.mode)
    return root


BASE_ENV = {"PATH": "/bin", "EXISTING": "base", "EMPTY": "", "KEEP": "kept", "MULTI": "second"}
WEB_PATH = f"{B1}/bin:{A1}/bin:/bin:/extra"


def parse(lines: list[str]) -> tuple[str, str, dict[str, str]]:
    cwd = next(line.split("=", 1)[1] for line in lines if line.startswith("cwd="))
    args = next(line.split("=", 1)[1] for line in lines if line.startswith("args="))
    env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith(("cwd=", "args=")))
    return cwd, args, env


def check_web_env(env: dict[str, str]) -> None:
    assert env["OVERRIDE_ME"] == "from-two"
    assert env["DEF"] == "default-one"
    assert env["APP"] == "a1,a2"
    assert env["EXISTING"] == "pre-base"
    assert env["MULTI"] == "first second"
    assert env["EMPTY"] == "filled"  # empty counts as unset, as in the lifecycle
    assert env["KEEP"] == "kept"
    assert env["LAUNCH_ONLY"] == "yes" and env["WEB_ONLY"] == "web"
    assert "WORKER_ONLY" not in env and "BUILD_ONLY" not in env and "UNKNOWN" not in env
    assert env["PATH"] == WEB_PATH
    assert env["LD_LIBRARY_PATH"] == f"{A1}/lib"


# -- the process file ---------------------------------------------------------------------


def test_process_file_round_trips():
    proc = Process("web", ("python", "-m", "app"), ("--port", "8080"), default=True,
                   working_dir="/workspace/srv", buildpack_id="example/python")
    data = encode_process(proc, ["/layers/example_python/runtime", "/layers/example_python/deps"])
    assert data.startswith(b"pallet-process-v1\0web\0/workspace/srv\0" b"1\0example/python\0" b"2\0")
    assert data.endswith(b"2\0--port\0" b"8080\0")
    assert decode_process(data) == (proc, ["/layers/example_python/runtime", "/layers/example_python/deps"])
    empty = Process("worker", ("w",))
    assert decode_process(encode_process(empty, [])) == (empty, [])


@pytest.mark.parametrize("bad", [
    Process("we/b", ("x",)), Process("", ("x",)), Process("launcher", ("x",)), Process("web", ()),
    Process("web", ("a\0b",)), Process("web", ("x",), working_dir="relative"),
    Process("w" * 256, ("x",)),   # /cnb/process/TYPE: longer than a file name
])
def test_process_file_refuses_what_the_launcher_could_not_read(bad):
    with pytest.raises(launch.ProcessFileError):
        encode_process(bad, [])


def test_decode_refuses_damaged_files():
    data = encode_process(Process("web", ("x",), ("a", "b")), ["/layers/a/b"])
    for damaged in (data[:-1], data[:-4], b"other\0", data + b"extra\0"):
        with pytest.raises(launch.ProcessFileError):
            decode_process(damaged)


def test_launch_entries_are_sorted_and_complete():
    entries = launch_entries([Process("web", ("x",), default=True), Process("a", ("y",))], ["/layers/b/l"])
    paths = [e.path for e in entries]
    assert "/cnb/lifecycle/launcher" in paths and "/cnb/process/a" in paths
    link = next(e for e in entries if e.path == "/cnb/process/web")
    assert link.type == "symlink" and link.link_target == procmod.LAUNCHER
    with pytest.raises(launch.ProcessFileError):
        launch_entries([Process("web", ("x",), default=True), Process("w", ("y",), default=True)], [])
    with pytest.raises(launch.ProcessFileError):
        launch_entries([Process("web", ("x",)), Process("web", ("y",))], [])


def test_launcher_source_uses_the_python_constants():
    source = (LAUNCHER_DIR / "launcher.c").read_text()
    assert f'#define PROCESS_CONFIG_DIR "{procmod.PROCESS_CONFIG_DIR}"' in source
    assert f'#define DEFAULT_WORKING_DIR "{launch.DEFAULT_WORKING_DIR}"' in source
    assert f'#define FORMAT_MAGIC "{launch.FORMAT_MAGIC}"' in source
    assert launch.DEFAULT_WORKING_DIR == procmod.WORKSPACE


@pytest.mark.parametrize("arch,machine", [("amd64", 62), ("arm64", 183)])  # e_machine: EM_X86_64, EM_AARCH64
def test_committed_launcher_is_static_and_small(arch, machine):
    data = launcher_binary(arch)
    assert data[:4] == b"\x7fELF" and len(data) < 200_000
    assert int.from_bytes(data[18:20], "little") == machine
    assert b"/lib/ld-" not in data and b"ld-linux" not in data  # no dynamic loader: static
    with pytest.raises(Exception):
        launcher_binary("riscv64")


@pytest.mark.slow
def test_launcher_rebuilds_bit_for_bit(tmp_path):
    if not shutil.which("musl-gcc"):
        pytest.skip("musl-gcc not installed (apt-get install musl-tools)")
    out = tmp_path / "launcher"
    subprocess.run([str(LAUNCHER_DIR / "build.sh"), str(out)], check=True, timeout=300)
    assert out.read_bytes() == launcher_binary("amd64"), \
        "launcher.c changed without rebuilding: run builder/lifecycle/launcher/build.sh and commit the binary"


@pytest.mark.slow
def test_arm64_launcher_rebuilds_bit_for_bit(tmp_path):
    if not shutil.which("aarch64-linux-gnu-gcc"):
        pytest.skip("aarch64-linux-gnu-gcc not installed (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)")
    out = tmp_path / "launcher"
    subprocess.run([str(LAUNCHER_DIR / "build.sh"), str(out)], check=True, timeout=300,
                   env={**os.environ, "ARCH": "arm64"})
    assert out.read_bytes() == launcher_binary("arm64"), \
        "launcher.c changed without rebuilding: run ARCH=arm64 builder/lifecycle/launcher/build.sh and commit it"


# -- in the bwrap sandbox -------------------------------------------------------------------


@pytest.fixture(scope="module")
def launch_rootfs(tmp_path_factory) -> Path:
    return make_launch_rootfs(tmp_path_factory.mktemp("launch") / "rootfs")


def run_in_bwrap(rootfs: Path, argv: tuple[str, ...], env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = BwrapSandbox(rootfs, ca_certs=None).run(
        Step(argv=argv, env=dict(BASE_ENV, **(env or {})), cwd="/", uid=1000, gid=1000, network=False),
        lines.append)
    return code, lines


@pytest.fixture(scope="module")
def launch_rootfs_arm64(tmp_path_factory) -> Path:
    """The same rootfs with the arm64 launcher (run by QEMU through binfmt; busybox stays amd64)."""
    from tests.emulation import need_arm64

    need_arm64()
    return make_launch_rootfs(tmp_path_factory.mktemp("launch-arm64") / "rootfs", arch="arm64")


def test_arm64_launcher_under_qemu_has_the_same_semantics(launch_rootfs_arm64):
    code, lines = run_in_bwrap(launch_rootfs_arm64, ("/cnb/process/web",))
    assert code == 0, lines
    cwd, args, env = parse(lines)
    assert cwd == "/workspace" and args == "default-arg"
    check_web_env(env)
    assert run_in_bwrap(launch_rootfs_arm64, ("/cnb/process/tool",)) == (0, ["hello-tool args=x"])
    code, lines = run_in_bwrap(launch_rootfs_arm64, ("/cnb/process/broken",))
    assert code == 127 and lines == [f'launcher (broken): command "no-such-command" not found in PATH={WEB_PATH}']


def test_web_process_env_workdir_and_default_args_in_bwrap(launch_rootfs):
    code, lines = run_in_bwrap(launch_rootfs, ("/cnb/process/web",))
    assert code == 0, lines
    cwd, args, env = parse(lines)
    assert cwd == "/workspace" and args == "default-arg"
    check_web_env(env)


def test_runtime_args_replace_default_args_in_bwrap(launch_rootfs):
    code, lines = run_in_bwrap(launch_rootfs, ("/cnb/process/web", "one", "two words"))
    assert code == 0
    assert parse(lines)[1] == "one two words"


def test_worker_process_has_its_own_env_and_working_dir(launch_rootfs):
    code, lines = run_in_bwrap(launch_rootfs, ("/cnb/process/worker",))
    assert code == 0, lines
    cwd, args, env = parse(lines)
    assert cwd == "/workspace/sub" and args == ""
    assert env["WORKER_ONLY"] == "w" and "WEB_ONLY" not in env
    assert env["LAUNCH_ONLY"] == "yes" and env["APP"] == "a1,a2"


def test_launcher_itself_picks_default_or_cnb_process_type(launch_rootfs):
    code, lines = run_in_bwrap(launch_rootfs, (procmod.LAUNCHER,))
    assert code == 0 and parse(lines)[0] == "/workspace" and parse(lines)[2]["WEB_ONLY"] == "web"
    code, lines = run_in_bwrap(launch_rootfs, (procmod.LAUNCHER,), {"CNB_PROCESS_TYPE": "worker"})
    assert code == 0 and parse(lines)[0] == "/workspace/sub"


def test_bare_command_is_found_on_the_computed_path(launch_rootfs):
    code, lines = run_in_bwrap(launch_rootfs, ("/cnb/process/tool",))
    assert (code, lines) == (0, ["hello-tool args=x"])


def test_unknown_type_and_missing_command_are_clear_errors(launch_rootfs, tmp_path):
    code, lines = run_in_bwrap(launch_rootfs, (procmod.LAUNCHER,), {"CNB_PROCESS_TYPE": "nope"})
    assert code == 1
    assert lines == ['launcher: unknown process type "nope" (this image has: broken, tool, web, worker)']
    code, lines = run_in_bwrap(launch_rootfs, ("/cnb/process/broken",))
    assert code == 127
    assert lines == [f'launcher (broken): command "no-such-command" not found in PATH={WEB_PATH}']


def test_no_default_process_is_an_error(tmp_path):
    rootfs = make_launch_rootfs(tmp_path / "rootfs", [Process("web", ("x",))])
    code, lines = run_in_bwrap(rootfs, (procmod.LAUNCHER,))
    assert code == 1 and "no default process type" in lines[0] and "web" in lines[0]


# -- in Docker ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def launch_image(tmp_path_factory, docker_engine) -> str:
    """The launch rootfs as an image in the engine, made with pallet's own append."""
    import uuid

    rootfs = make_launch_rootfs(tmp_path_factory.mktemp("launch-docker") / "rootfs")
    name = f"pallet-test/launcher-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in BASE_ENV.items()}
    append(refs.parse("scratch", allow_scratch=True), rootfs, refs.parse(f"docker-daemon:{name}:v1"),
           ConfigChanges(entrypoint=("/cnb/process/web",), env=env, user="1000:1000"))
    yield f"{name}:v1"
    docker_engine.images.remove(f"{name}:v1", force=True)


def test_launcher_in_docker(launch_image, docker_cli):
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", launch_image).splitlines()
    cwd, args, env = parse(out)
    assert cwd == "/workspace" and args == "default-arg"
    check_web_env(env)
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", launch_image, "a", "b").splitlines()
    assert parse(out)[1] == "a b"
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", "--entrypoint", "/cnb/process/worker",
                  launch_image).splitlines()
    cwd, _, env = parse(out)
    assert cwd == "/workspace/sub" and env["WORKER_ONLY"] == "w" and "WEB_ONLY" not in env
    done = subprocess.run([docker_cli, "run", "--rm", "--network", "none", "-e", "CNB_PROCESS_TYPE=nope",
                           "--entrypoint", procmod.LAUNCHER, launch_image], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "unknown process type \"nope\"" in done.stderr


def test_launcher_runs_in_an_image_without_shell_or_libc(tmp_path, docker_engine, docker_cli, image_name):
    """Only the launcher, a static program and the process files: nothing else in the image."""
    rootfs = make_launch_rootfs(tmp_path / "rootfs", [Process("web", ("/app/echo", "static"), default=True)],
                                shell=False)
    (rootfs / "app").mkdir()
    shutil.copy("/bin/busybox", rootfs / "app" / "echo")  # busybox runs the applet named by argv[0]
    shutil.rmtree(rootfs / "workspace")
    (rootfs / "workspace").mkdir()
    assert not (rootfs / "bin").exists() and not (rootfs / "lib").exists()
    append(refs.parse("scratch", allow_scratch=True), rootfs, refs.parse(f"docker-daemon:{image_name}:v1"),
           ConfigChanges(entrypoint=("/cnb/process/web",)))
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:v1")
    assert out == "static\n"
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:v1", "given", "args")
    assert out == "static given args\n"


def test_launch_layer_from_entries_is_reproducible(tmp_path):
    """What the exporter writes from ``launch_entries``: the same bytes every time."""
    entries = launch_entries(PROCESSES, LAYER_DIRS)
    first = layer_from_entries(entries, tmp_path / "a", uid=1000, gid=1000)
    second = layer_from_entries(list(reversed(entries)), tmp_path / "b", uid=1000, gid=1000)
    assert first.digest == second.digest
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first.diff_id)
