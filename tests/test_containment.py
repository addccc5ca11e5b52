"""Containment against hostile images (issue 11, findings 1-3), as root too.

Each test makes its own hostile image (busybox-static and a shell script as the entrypoint)
and checks that what an adversarial review did from inside an image no longer works: an image
whose user is root remounting and writing host files, the shared rootfs cache or /proc/sys
(pallet runs as root in the README's own set-up); pallet's secrets in the sandbox's
/proc/1/environ and in the build server's environment; ``--env`` values and proxy
credentials on a command line that ``ps`` shows; and the app reaching the host's loopback
services, now that ``pallet run`` gives it a network of its own.

Nothing here can damage the host on a sandbox that fails: writes go to files the tests own
(their rootfs cache), /proc/sys gets back the value it has, and /etc/hosts is only remounted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.lifecycle.netns import NetworkError, pasta_command
from builder.lifecycle.sandbox import Bind, BwrapSandbox, Publish, Step, bwrap_options
from tests.cli import ROOT, pallet, popen
from tests.test_run import make_image

APPLETS = ("sh", "cat", "echo", "id", "grep", "mount", "umount", "unshare", "touch", "sleep", "nc", "tr", "env", "httpd", "mkdir",
           "find", "awk", "test", "[")
CAP_NET_BIND_SERVICE = 1 << 10


def hostile_rootfs(root: Path) -> Path:
    """busybox, a root user and an app user: enough for a script to try its way out."""
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\n")
    (root / "tmp").mkdir()
    return root


def hostile_image(tmp_path: Path, name: str, script: str, user: str = "0:0") -> str:
    rootfs = hostile_rootfs(tmp_path / f"{name}-rootfs")
    return make_image(rootfs, f"oci:{tmp_path}/images:{name}", entrypoint=("/bin/sh", "-c", script),
                      env={"PATH": "/bin"}, user=user, working_dir="/")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """The rootfs cache and local store of these tests, out of the home directory."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PALLET_HOME": str(tmp_path / "home")}


def cap_eff(lines: list[str]) -> int:
    return int(next(line.split()[1] for line in lines if line.startswith("CapEff:")), 16)


# -- finding 1: a root image stays inside ----------------------------------------------------------

ESCAPES = r'''
id -u
grep CapEff /proc/self/status
v=$(cat /proc/sys/kernel/printk_ratelimit)
(echo "$v" > /proc/sys/kernel/printk_ratelimit) 2>/dev/null && echo ESCAPED write /proc/sys
umount /proc/sys 2>/dev/null && echo ESCAPED umount /proc/sys
mount -o remount,bind,rw /etc/hosts 2>/dev/null && echo ESCAPED remount /etc/hosts
mount -o remount,bind,rw /bin 2>/dev/null && echo ESCAPED remount the rootfs cache
mount -o remount,rw / 2>/dev/null && echo ESCAPED remount /
touch /bin/planted 2>/dev/null && echo ESCAPED wrote the rootfs cache
touch /etc/planted 2>/dev/null && echo ESCAPED wrote /etc
mount -t tmpfs none /bin 2>/dev/null && echo ESCAPED mounted over the rootfs
unshare -U -m sh -c "mount -o remount,bind,rw /bin" 2>/dev/null && echo ESCAPED remount in a nested namespace
echo x > /tmp/mine && echo tmp is writable
'''


def test_root_image_cannot_remount_or_write_the_host_the_cache_or_proc_sys(tmp_path, env):
    """As root (the README's set-up), bubblewrap mapped the image's root to host root with
    every capability: all of these worked."""
    image = hostile_image(tmp_path, "escape", ESCAPES)
    hosts = Path("/etc/hosts").read_bytes() if os.path.isfile("/etc/hosts") else None
    done = pallet("run", image, env=env)
    lines = done.stdout.splitlines()
    assert lines[0] == "0"  # the image believes it is root
    assert cap_eff(lines) & ~CAP_NET_BIND_SERVICE == 0, lines[1]
    assert [line for line in lines if line.startswith("ESCAPED")] == []
    assert lines[-1] == "tmp is writable"
    cache = Path(env["XDG_CACHE_HOME"]) / "pallet" / "rootfs"
    assert not list(cache.glob("*/bin/planted")) and not list(cache.glob("*/etc/planted"))
    if hosts is not None:
        assert Path("/etc/hosts").read_bytes() == hosts


WRITABLE_MOUNTS = r'''
awk '$6 ~ /^rw/ {print $5}' /proc/self/mountinfo
'''
#: What bubblewrap's /dev holds: its own tmpfs with the host's harmless device nodes.
DEV = {"/dev", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/pts"}


@pytest.mark.parametrize("uid", [0, 1000])
def test_only_tmp_and_the_steps_own_binds_are_writable(tmp_path, uid):
    """A build step's view: whatever the uid (and as root, any uid is host root), the only
    writable mounts are /tmp, its writable binds, bubblewrap's /dev and /proc, whose kernel
    knobs are read-only binds of their own."""
    rootfs = hostile_rootfs(tmp_path / "rootfs")
    (tmp_path / "mine").mkdir()
    (tmp_path / "theirs").mkdir()
    step = Step(argv=("sh", "-c", WRITABLE_MOUNTS), env={"PATH": "/bin"}, cwd="/", uid=uid, gid=uid,
                binds=(Bind(tmp_path / "mine", "/workspace", writable=True), Bind(tmp_path / "theirs", "/cnb/bp")))
    lines: list[str] = []
    assert BwrapSandbox(rootfs).run(step, lines.append) == 0
    assert set(lines) - DEV == {"/proc", "/tmp", "/workspace"}
    assert "/proc/sys" not in lines


def test_proc_kernel_knobs_are_read_only_inside(tmp_path):
    """No file under /proc outside the step's own processes is writable for a root step
    (the pressure-stall files take triggers any user may set)."""
    rootfs = hostile_rootfs(tmp_path / "rootfs")
    script = r'''
for f in $(find /proc -maxdepth 4 -type f 2>/dev/null | grep -v "^/proc/[0-9]\|^/proc/self/\|^/proc/thread-self/"); do
  [ -w "$f" ] && (: >> "$f") 2>/dev/null && echo "$f"
done
echo end'''
    lines: list[str] = []
    step = Step(argv=("sh", "-c", script), env={"PATH": "/bin"}, cwd="/", uid=0, gid=0)
    assert BwrapSandbox(rootfs).run(step, lines.append) == 0
    assert [line for line in lines if not line.startswith("/proc/pressure/")] == ["end"]


# -- finding 2: nothing of pallet's environment inside ------------------------------------------

SECRETS = {"PALLET_PASSWORD": "pw-SECRET-one", "AWS_SECRET_ACCESS_KEY": "aws-SECRET-two"}
READ_ENVIRONS = r'''
for f in /proc/[0-9]*/environ; do cat "$f"; echo; done
echo "own PORT=$PORT"
'''


def test_pallets_environment_is_not_in_the_sandbox(tmp_path, env):
    """bwrap inherited pallet's environment and kept it as pid 1's: an app as uid 1000 read
    pallet's password and cloud keys from /proc/1/environ."""
    image = hostile_image(tmp_path, "environ", READ_ENVIRONS, user="1000:1000")
    done = pallet("run", image, "-p", "8123", env={**env, **SECRETS})
    assert "own PORT=8123" in done.stdout
    assert "SECRET" not in done.stdout


def test_a_build_steps_sandbox_has_only_its_environment(tmp_path, monkeypatch):
    """Build steps start the same way: a buildpack sees its own environment only."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    rootfs = hostile_rootfs(tmp_path / "rootfs")
    lines: list[str] = []
    step = Step(argv=("sh", "-c", READ_ENVIRONS), env={"PATH": "/bin", "PORT": "1"}, cwd="/", uid=1000, gid=1000)
    assert BwrapSandbox(rootfs, ca_certs=None).run(step, lines.append) == 0
    assert "own PORT=1" in lines
    assert not [line for line in lines if "SECRET" in line]
    assert "PATH=/bin" in " ".join(lines).replace("\0", " ")  # the step's own, as pid 1 had ours


def test_the_build_server_does_not_keep_the_environment_that_started_it(tmp_path):
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir(mode=0o700)
    path = sock_dir / "s.sock"
    env = {"PALLET_SERVER_SOCKET": str(path), "PALLET_SERVER_IDLE": "60", "PALLET_HOME": str(tmp_path / "h"),
           **SECRETS}
    done = pallet("build", str(tmp_path / "no-such-app"), env=env, check=False)  # starts a server
    assert done.returncode != 0
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, "no server was started"
        time.sleep(0.05)
    found = subprocess.run(["pgrep", "-f", f"builder.server {path}"], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    try:
        assert pids
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not [item for item in environ if b"SECRET" in item]
            assert any(item.startswith(b"PYTHONPATH=") for item in environ)  # what it needs to import pallet
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)


# -- finding 3: no value on a command line ------------------------------------------------------------

def _cmdlines(root: int | None = None) -> dict[int, bytes]:
    """Every process's command line, or only those of ``root`` and its descendants: other work
    on the machine (another test run's sandboxes) is not that test's."""
    parents: dict[int, int] = {}
    lines: dict[int, bytes] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                lines[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                pass
    if root is None:
        return lines
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: cmd for pid, cmd in lines.items() if pid in tree}


def test_env_values_and_proxy_credentials_are_on_no_command_line(tmp_path, env):
    """They were bwrap --setenv arguments: any local user saw them in ps while the app ran."""
    image = hostile_image(tmp_path, "argv", 'echo "token=$TOKEN proxy=$HTTPS_PROXY"; exec sleep 60', user="1000:1000")
    secrets = {"TOKEN": "argv-SECRET-three", "HTTPS_PROXY": "http://user:proxy-SECRET-four@127.0.0.1:9"}
    proc = popen("run", image, "--env", "TOKEN", "--env", "VISIBLE=on-purpose", env={**env, **secrets})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == f"token={secrets['TOKEN']} proxy={secrets['HTTPS_PROXY']}\n"  # the app got both
        cmdlines = _cmdlines(proc.pid)
        assert not {pid: cmd for pid, cmd in cmdlines.items() if b"SECRET" in cmd}
        bwraps = [cmd for cmd in cmdlines.values() if cmd.split(b"\0")[0].endswith(b"bwrap")
                  and b"sleep" in cmd]
        assert bwraps and not [cmd for cmd in bwraps if b"--setenv" in cmd or b"VISIBLE" in cmd]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130


def test_bubblewrap_options_still_hold_the_steps_environment(tmp_path):
    """What goes through the file descriptor: the step's variables, with ours cleared."""
    rootfs = hostile_rootfs(tmp_path / "rootfs")
    step = Step(argv=("true",), env={"K": "v"}, cwd="/", uid=0, gid=0, own_network=True,
                publish=(Publish(8080, 8080),))
    opts = bwrap_options(rootfs, step, ca=None, environ={})
    assert opts[opts.index("--clearenv") + 1:] == ["--setenv", "K", "v"]
    assert opts[opts.index("--cap-drop"):opts.index("--cap-drop") + 4] == ["--cap-drop", "ALL", "--cap-add",
                                                                          "CAP_NET_BIND_SERVICE"]
    assert "--unshare-net" in opts


# -- pallet run: a network of its own -------------------------------------------------------------

def test_pasta_forwards_only_published_ports_and_nothing_back_to_the_host():
    cmd = pasta_command("pasta", "/proc/self/fd/5", "/proc/self/fd/6", (Publish(8080, 80),), "/x/pid", euid=1000)
    assert cmd[cmd.index("pasta"):] == [
        "pasta", "--foreground", "--quiet", "--config-net", "--pid", "/x/pid", "--tcp-ports", "127.0.0.1/8080:80",
        "--udp-ports", "none", "--tcp-ns", "none", "--udp-ns", "none", "--no-map-gw",
        "--netns", "/proc/self/fd/5", "--userns", "/proc/self/fd/6"]
    cmd = pasta_command("pasta", "n", "u", (), "p", euid=0)
    assert cmd[cmd.index("--tcp-ports") + 1] == "none" and "--runas" in cmd


@pytest.fixture
def host_service():
    """A TCP service on the host's loopback, as a database or a metadata proxy would be."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()  # so a client sees the end at once

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def _needs_pasta() -> None:
    if shutil.which("pasta") is None and os.environ.get("CI") != "true":
        pytest.skip("pasta (Debian: passt) is not installed; scripts/setup.sh installs it")


def test_run_has_its_own_network_and_host_is_opt_in(tmp_path, env, host_service):
    _needs_pasta()
    script = (f'nc -w 3 127.0.0.1 {host_service} </dev/null && echo reached || echo refused; '
              'tr -s " " <  /proc/net/dev | awk -F: "NR > 2 {print \\$1}" | tr -d " " | sort | tr "\\n" " "')
    image = hostile_image(tmp_path, "net", script, user="1000:1000")
    own = pallet("run", image, env=env).stdout.splitlines()
    assert own[0] == "refused"  # the host's loopback is not the app's
    host = pallet("run", image, "--network", "host", env=env).stdout.splitlines()
    assert host[0] == "reached"
    none = pallet("run", image, "--network", "none", env=env).stdout.splitlines()
    assert none == ["refused", "lo "]
    assert own[1] != host[1]


def test_run_without_pasta_is_a_one_line_error(tmp_path, env):
    image = hostile_image(tmp_path, "nopasta", "echo hi")
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bwrap", "setpriv"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bare / tool)
    done = pallet("run", image, env={**env, "PATH": str(bare)}, check=False)
    assert done.returncode == 1
    assert done.stderr == ("pallet: error: pasta is not installed (Debian/Ubuntu: apt-get install passt); it gives "
                           "the app its own network namespace. Or share the host's: --network host\n")
    assert pallet("run", image, "--network", "host", env={**env, "PATH": str(bare)}).stdout == "hi\n"


def test_non_root_pallet_contains_a_root_image_too(tmp_path):
    """As an ordinary user the image's root maps to that user: still no capability, so the
    rootfs that user owns (its cache) cannot be remounted writable."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to become uid 1000 for the test")
    work = Path(os.environ.get("PALLET_TEST_TMP", "/tmp")) / f"pallet-nonroot-{os.getpid()}"
    work.mkdir(mode=0o755)
    try:
        rootfs = hostile_rootfs(work / "rootfs")
        # pallet's code where uid 1000 can read it (the checkout may sit in a directory only root
        # may enter, as a CI job's temporary directory does)
        shutil.copytree(ROOT / "builder", work / "src" / "builder", ignore=shutil.ignore_patterns("__pycache__"))
        script = (f"import os, sys; sys.path.insert(0, {str(work / 'src')!r}); print(os.getuid(), flush=True)\n"
                  "from pathlib import Path\n"
                  "from builder.lifecycle.sandbox import BwrapSandbox, Step\n"
                  f"step = Step(argv=('sh', '-c', {ESCAPES!r}), env={{'PATH': '/bin'}}, cwd='/', uid=0, gid=0)\n"
                  f"sys.exit(BwrapSandbox(Path({str(rootfs)!r}), ca_certs=None).run(step))\n")
        subprocess.run(["chown", "-R", "1000:1000", str(work)], check=True)
        done = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups", sys.executable,
                               "-c", script], capture_output=True, text=True, cwd=str(work), env={"PATH": os.environ["PATH"]})
        lines = done.stdout.splitlines()
        assert done.returncode == 0, done.stderr
        assert lines[:2] == ["1000", "0"] and cap_eff(lines) == 0  # pallet as uid 1000, the image as root
        assert [line for line in lines if line.startswith("ESCAPED")] == []
        assert not (rootfs / "bin" / "planted").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_network_that_fails_to_come_up_stops_the_step_before_it_starts(tmp_path, monkeypatch):
    """The step waits for pasta; when pasta fails, the waiting sandbox is killed, not let go
    (it would run the step without its parent, which bubblewrap cannot yet notice)."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "pasta").write_text("#!/bin/sh\necho 'Failed to open tun socket in namespace' >&2\nexit 1\n")
    (fake / "pasta").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    rootfs = hostile_rootfs(tmp_path / "rootfs")
    out = tmp_path / "out"
    out.mkdir()
    marker = f"/out/ran-{os.getpid()}-{time.monotonic_ns()}"
    step = Step(argv=("sh", "-c", f"sleep 1; touch {marker}"), env={"PATH": "/bin"}, cwd="/", uid=1000, gid=1000,
                binds=(Bind(out, "/out", writable=True),), own_network=True, publish=(Publish(18099, 8080),))
    with pytest.raises(NetworkError, match=r"^pasta could not set up the app's network \(Failed to open tun "):
        BwrapSandbox(rootfs, ca_certs=None).run(step)
    deadline = time.monotonic() + 60  # a sandbox left behind holds its command line: wait until none does
    while [cmd for cmd in _cmdlines().values() if marker.encode() in cmd]:
        assert time.monotonic() < deadline, "the sandbox is still there"
        time.sleep(0.05)
    assert not list(out.iterdir())


def test_a_root_app_still_binds_a_low_port_in_its_own_network(tmp_path, env):
    """The one capability kept: a root image listening on port 80, as many do, in its own
    network only (the host's needs root's capabilities in the host's namespace)."""
    _needs_pasta()
    script = ('mkdir -p /tmp/www && echo low-port > /tmp/www/i && httpd -p 80 -h /tmp/www && '
              'nc 127.0.0.1 80 <<EOF\nGET /i HTTP/1.0\n\nEOF\n')
    image = hostile_image(tmp_path, "lowport", script)
    assert pallet("run", image, env=env).stdout.splitlines()[-1] == "low-port"
    done = pallet("run", image, "--network", "host", env=env, check=False)  # root or not: no privilege there
    assert done.returncode != 0 and "bind: Permission denied" in done.stderr


def test_kill_9_of_pallet_run_takes_the_app_and_its_network_along(tmp_path, env):
    """The app dies with pallet (--die-with-parent), and so does pasta, which an old pasta
    would not notice on its own: it would keep the published port open."""
    _needs_pasta()
    from tests.fixtures_registry import free_port

    port = free_port()
    marker = f"alive-{os.getpid()}-{time.monotonic_ns()}"
    image = hostile_image(tmp_path, "killed", f'echo up; sleep 600; echo {marker}', user="1000:1000")
    proc = popen("run", image, "-p", str(port), env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        pasta = [pid for pid, cmd in _cmdlines().items() if cmd.split(b"\0")[0].endswith(b"pasta") and f"/{port}:".encode() in cmd]
        assert pasta, [c for c in _cmdlines().values() if b"pasta" in c]  # the app's network is up, forwarding its port
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while [cmd for pid, cmd in _cmdlines().items() if marker.encode() in cmd or pid in pasta]:
            assert time.monotonic() < deadline, "the app or pasta outlived pallet"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nobody holds the published port any more


# -- a build step: the same sandbox, started the same way ------------------------------------------

HOSTILE_BUILD = r'''#!/bin/sh
echo "uid=$(id -u)"
grep CapEff /proc/self/status
v=$(cat /proc/sys/kernel/printk_ratelimit)
(echo "$v" > /proc/sys/kernel/printk_ratelimit) 2>/dev/null && echo "ESCAPED write /proc/sys"
touch /etc/planted 2>/dev/null && echo "ESCAPED wrote the build image's rootfs cache"
touch "$SSL_CERT_FILE" 2>/dev/null && echo "ESCAPED wrote the host CA bundle"
touch /etc/resolv.conf 2>/dev/null && echo "ESCAPED wrote the host resolv.conf"
touch /cnb/buildpacks/planted "$CNB_BUILDPACK_DIR/planted" 2>/dev/null && echo "ESCAPED wrote the buildpack"
unshare -U sh -c 'echo x > /proc/sys/kernel/printk_ratelimit' 2>/dev/null && echo "ESCAPED nested"
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f"; done | grep SECRET | sed 's/^/LEAKED /'
for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done | grep -v '^$' | sed 's/^/CMDLINE /'
echo "build step done"
'''


def test_a_hostile_buildpack_reads_no_secret_and_writes_nothing_of_the_hosts(tmp_path):
    """``pallet build`` with a buildpack that tries what the hostile images try, pallet holding
    a signing password and cloud keys in its environment (and as root, the step is host root)."""
    bp = tmp_path / "bp"
    (bp / "bin").mkdir(parents=True)
    (bp / "buildpack.toml").write_text('api = "0.10"\n\n[buildpack]\nid = "tests/hostile"\nversion = "1.0.0"\n\n'
                                       '[[stacks]]\nid = "*"\n')
    (bp / "bin" / "detect").write_text("#!/bin/sh\nexit 0\n")
    (bp / "bin" / "build").write_text(HOSTILE_BUILD)
    for script in ("detect", "build"):
        (bp / "bin" / script).chmod(0o755)
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.txt").write_text("hello\n")
    env = {"PALLET_HOME": str(tmp_path / "home"), "PALLET_SERVER": "0", **SECRETS}
    done = pallet("build", str(app), "-t", "hostile:1", "--stack", str(ROOT / "stacks" / "tiny.toml"),
                  "--buildpack", str(bp), "--cache-dir", str(tmp_path / "cache"), env=env, timeout=900)
    lines = [line.split("] ", 1)[1] for line in done.stderr.splitlines() if line.startswith("[tests/hostile] ")]
    assert lines[0] == "uid=1000" and lines[-1] == "build step done", done.stderr
    assert cap_eff(lines) == 0
    assert [line for line in lines if line.startswith(("ESCAPED", "LEAKED"))] == []
    cmdlines = [line for line in lines if line.startswith("CMDLINE ")]
    assert cmdlines and not [line for line in cmdlines if "--setenv" in line or "SECRET" in line]
    assert not list(bp.rglob("planted"))


def test_pasta_waits_for_bubblewraps_loopback_before_configuring_the_namespace() -> None:
    """The race seen under load (bwrap: loopback: Failed RTM_NEWADDR): pallet starts pasta only
    once bubblewrap's child has set up lo in the new namespace."""
    from builder.lifecycle.netns import wait_for_loopback

    proc = subprocess.Popen(["bwrap", "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent", "sleep", "5"])
    try:
        for _ in range(500):
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            if kids:
                break
            time.sleep(0.01)
        child = int(kids[0])
        assert wait_for_loopback(child)
        assert b"127.0.0.1" in Path(f"/proc/{child}/net/fib_trie").read_bytes()
    finally:
        proc.kill()
        proc.wait()
    assert not wait_for_loopback(proc.pid, limit=0.1)  # gone: no wait
