"""The execution substrate: the rootfs cache, the bubblewrap sandbox and the Docker one.

Steps run real programs (busybox-static) in real sandboxes; the pure parts (path resolution
inside a rootfs, the mount plan, the network environment) are tested on their own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder.lifecycle import rootfs as rootfs_mod
from builder.lifecycle import sandbox as sb
from builder.lifecycle.rootfs import prune, resolve_in_root, unpack_image
from builder.lifecycle.sandbox import (CA_ENV, CA_PATH, Bind, BwrapSandbox, DockerSandbox, SandboxError, Step,
                                       ensure_in_docker, mount_args, network_env)
from builder.oci.image import load_image
from builder.oci.stores.layout import LayoutStore
from tests.cli import ROOT
from tests.fixtures_docker import put_image, tiny_image

APPLETS = ("sh", "echo", "cat", "ls", "env", "touch", "id", "pwd", "sleep", "sort", "head", "wc", "mkdir")


def busybox_rootfs(root: Path, *, etc: bool = True) -> Path:
    (root / "usr" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "usr" / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "usr" / "bin" / applet)
    os.symlink("usr/bin", root / "bin")  # merged /usr, as Debian has it
    if etc:
        (root / "etc").mkdir()
        (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "tmp").mkdir()
    return root


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("sandbox") / "rootfs")


def step(script: str, **kw) -> Step:
    kw.setdefault("env", {"PATH": "/bin"})
    kw.setdefault("cwd", "/")
    kw.setdefault("uid", 1000)
    kw.setdefault("gid", 1001)
    return Step(argv=("sh", "-c", script), **kw)


def run(box, st: Step) -> tuple[int, list[str]]:
    lines: list[str] = []
    return box.run(st, lines.append), lines


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- paths inside a rootfs, and the mount plan (no sandbox needed) ---------------------------


def test_resolve_in_root_follows_symlinks_without_leaving_the_root(tmp_path):
    root = busybox_rootfs(tmp_path / "r")
    os.symlink("/../../../etc", root / "up")  # absolute: from the rootfs; '..' stops at its top
    os.symlink("../../../../usr/bin", root / "usr" / "rel")
    os.symlink("/run/missing/file", root / "etc" / "resolv.conf")
    assert resolve_in_root(root, "/bin/sh").real == ("usr", "bin", "busybox")  # as open() would
    assert resolve_in_root(root, "/up/passwd").real == ("etc", "passwd")
    assert resolve_in_root(root, "/usr/rel").real == ("usr", "bin")
    res = resolve_in_root(root, "/etc/resolv.conf")
    assert (res.real, res.rest) == ((), ("run", "missing", "file"))
    res = resolve_in_root(root, "/etc/passwd/x")
    assert res.blocked and res.real == ("etc",) and res.rest == ("passwd", "x")
    loop = root / "loop"
    os.symlink("loop", loop)
    assert resolve_in_root(root, "/loop/x").blocked
    assert resolve_in_root(root, "/etc/passwd").host_path(root) == root / "etc" / "passwd"


def test_mount_plan_binds_the_rootfs_and_leaves_room_for_mountpoints(tmp_path):
    root = busybox_rootfs(tmp_path / "r")
    (root / "etc" / "hosts").write_text("image hosts\n")
    (root / "opt").write_text("a file where a directory will be needed\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    args = mount_args(root, [
        sb.Mount("proc", "/proc"), sb.Mount("tmpfs", "/tmp", perms=0o1777),
        sb.Mount("ro-bind", "/etc/hosts", Path("/etc/hosts")),  # exists in the image: mounted over
        sb.Mount("ro-bind", "/etc/resolv.conf", Path("/etc/resolv.conf")),  # missing: /etc rebuilt
        sb.Mount("dir", "/run/pallet", perms=0o755), sb.Mount("ro-bind", CA_PATH, ca),
        sb.Mount("bind", "/opt/app", tmp_path),  # under a file: / is rebuilt without /opt
        sb.Mount("ro-bind", "/opt/app/inner", tmp_path),  # inside an earlier mount: nothing to do
    ])
    text = " ".join(args)
    assert args[:3] == ["--symlink", "usr/bin", "/bin"]
    assert f"--perms 0755 --dir /etc --ro-bind {root}/etc/passwd /etc/passwd" in text
    assert f"{root}/etc/hosts" not in text and f"{root}/tmp" not in text and f"{root}/opt" not in text
    assert f"--ro-bind {root}/usr /usr" in text
    assert text.index("--dir /etc") < text.index("--ro-bind /etc/resolv.conf /etc/resolv.conf")
    assert f"--perms 0755 --dir /run/pallet --ro-bind {ca} {CA_PATH}" in text
    assert f"--bind {tmp_path} /opt/app --ro-bind {tmp_path} /opt/app/inner" in text
    assert args[-2:] == ["--remount-ro", "/"]


def test_mount_plan_rebuilds_only_the_deepest_existing_directory(tmp_path):
    root = busybox_rootfs(tmp_path / "r")
    (root / "cnb" / "buildpacks").mkdir(parents=True)
    (root / "cnb" / "buildpacks" / "other").mkdir()
    os.symlink("../run", root / "var")
    (root / "run").mkdir()
    args = " ".join(mount_args(root, [sb.Mount("ro-bind", "/cnb/buildpacks/x/1.0", tmp_path),
                                      sb.Mount("ro-bind", "/var/lock/f", Path("/etc/hosts"))]))
    assert f"--ro-bind {root}/cnb /cnb" in args  # the root still binds /cnb whole...
    assert (f"--perms 0755 --tmpfs /cnb/buildpacks --ro-bind {root}/cnb/buildpacks/other "
            "/cnb/buildpacks/other") in args  # ...and only /cnb/buildpacks is rebuilt over it
    assert "--perms 0755 --dir /run" in args and "/etc/hosts /run/lock/f" in args  # via /var -> ../run
    assert "--remount-ro /cnb/buildpacks" in args


def test_network_env_passes_proxies_and_points_ca_variables_at_the_bundle():
    host = {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost", "HOME": "/root", "HTTP_PROXY": ""}
    assert network_env(False, host) == {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost"}
    env = network_env(True, {})
    assert env == {name: CA_PATH for name in CA_ENV}
    assert set(CA_ENV) == {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"}


def test_host_ca_certs_prefers_ssl_cert_file(tmp_path):
    bundle = tmp_path / "corp.pem"
    bundle.write_text("pem")
    assert sb.host_ca_certs({"SSL_CERT_FILE": str(bundle)}) == bundle
    default = sb.host_ca_certs({"SSL_CERT_FILE": str(tmp_path / "missing")})
    assert default is None or str(default) in sb.HOST_CA_CANDIDATES
    with pytest.raises(SandboxError, match="not a file"):
        BwrapSandbox(tmp_path, ca_certs=tmp_path / "missing.pem")


# -- BwrapSandbox ---------------------------------------------------------------------------------


def test_step_runs_as_its_user_with_only_its_env(rootfs, monkeypatch):
    monkeypatch.setenv("PALLET_TEST_SECRET", "must not leak")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "localhost,.internal")
    code, lines = run(BwrapSandbox(rootfs), step(
        'echo "id=$(id -u):$(id -g)"; echo "cwd=$(pwd)"; env | sort; echo oops >&2; exit 3',
        env={"PATH": "/bin", "GREETING": "hi there"}, cwd="/usr"))
    assert code == 3
    assert lines[:2] == ["id=1000:1001", "cwd=/usr"] and lines[-1] == "oops"
    env = dict(line.split("=", 1) for line in lines[2:-1])
    assert env["GREETING"] == "hi there" and env["PATH"] == "/bin"
    assert env["HTTPS_PROXY"] == "http://proxy.example:3128" and env["no_proxy"] == "localhost,.internal"
    assert "PALLET_TEST_SECRET" not in env and "HOME" not in env
    if sb.host_ca_certs() is not None:
        assert all(env[name] == CA_PATH for name in CA_ENV)


def test_root_is_read_only_tmp_and_writable_binds_are_not(rootfs, tmp_path):
    before = tree(rootfs)
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "app.txt").write_text("app\n")
    script = """
        touch /newfile 2>/dev/null && echo root-writable
        touch /usr/x 2>/dev/null && echo usr-writable
        touch /workspace/x 2>/dev/null && echo ro-bind-writable
        touch /tmp/x && echo tmp-ok
        cat /workspace/app.txt
        mkdir -p /layers/one && echo layer > /layers/one/file && echo layers-ok
    """
    code, lines = run(BwrapSandbox(rootfs), step(script, cwd="/workspace", binds=(
        Bind(ro, "/workspace"), Bind(rw, "/layers", writable=True))))
    assert code == 0, lines
    assert lines == ["tmp-ok", "app", "layers-ok"]
    assert tree(rw) == ["one", "one/file"]  # nothing but what the step wrote: no CA, no proxies
    assert tree(rootfs) == before  # the cached rootfs is never written


def test_network_files_and_ca_bundle_are_the_hosts(rootfs, tmp_path):
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    code, lines = run(BwrapSandbox(rootfs, ca_certs=ca), step(
        'cat "$SSL_CERT_FILE"; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; cat /etc/passwd'))
    assert code == 0, lines
    ca_text, resolv, hosts, passwd = "\n".join(lines).split("\n---\n")
    assert ca_text == ca.read_text().rstrip("\n")
    assert resolv == Path("/etc/resolv.conf").read_text().rstrip("\n")
    assert hosts == Path("/etc/hosts").read_text().rstrip("\n")
    assert passwd == "root:x:0:0::/root:/bin/sh"  # the image's own file, next to the mounts


def test_without_network_only_loopback(rootfs):
    code, lines = run(BwrapSandbox(rootfs, ca_certs=None), step("cat /proc/net/dev", network=False))
    assert code == 0
    interfaces = {line.split(":")[0].strip() for line in lines[2:]}
    assert interfaces == {"lo"}
    code, lines = run(BwrapSandbox(rootfs, ca_certs=None), step("cat /proc/net/dev"))
    host = {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]}
    assert {line.split(":")[0].strip() for line in lines[2:]} == host  # the host's network, shared


def test_image_without_etc_or_tmp_still_gets_its_mounts(tmp_path):
    root = busybox_rootfs(tmp_path / "bare", etc=False)
    shutil.rmtree(root / "tmp")
    code, lines = run(BwrapSandbox(root), step("ls /etc; touch /tmp/x && echo tmp-ok"))
    assert code == 0, lines
    assert lines == ["hosts", "resolv.conf", "tmp-ok"]
    assert sorted(os.listdir(root)) == ["bin", "usr"]


def test_output_is_inherited_without_a_callback(rootfs, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from builder.lifecycle.sandbox import BwrapSandbox, Step
        code = BwrapSandbox(Path({str(rootfs)!r})).run(
            Step(argv=("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 4"), env={{"PATH": "/bin"}},
                 cwd="/", uid=0, gid=0))
        print("code", code)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout == "to-stdout\ncode 4\n" and done.stderr == "to-stderr\n"


def test_bad_steps_are_clear_errors(rootfs, tmp_path):
    box = BwrapSandbox(rootfs)
    with pytest.raises(SandboxError, match="working directory /nowhere does not exist"):
        box.run(step("true", cwd="/nowhere"))
    with pytest.raises(SandboxError, match="does not exist"):
        box.run(step("true", binds=(Bind(tmp_path / "missing", "/workspace"),)))
    code, lines = run(box, Step(argv=("no-such-program",), env={"PATH": "/bin"}, cwd="/", uid=0, gid=0))
    assert code != 0 and "no-such-program" in lines[-1]


def test_missing_bwrap_or_namespaces_say_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sb, "BWRAP_FALLBACK", str(tmp_path / "none"))
    with pytest.raises(SandboxError, match="apt-get install bubblewrap"):
        sb.find_bwrap()
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxError) as err:
        sb.find_bwrap()
    assert "setting up uid map: Permission denied" in str(err.value)
    assert "unprivileged_userns_clone" in str(err.value) and "apparmor" in str(err.value)


def test_sigint_is_forwarded_and_the_step_stopped(rootfs, tmp_path):
    """Ctrl-C (SIGINT to pallet) reaches the step, which cleans up; run() then raises Interrupted."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from builder.lifecycle.sandbox import BwrapSandbox, Interrupted, Step
        step = Step(argv=("sh", "-c", 'trap "echo step-got-INT; exit 7" INT; echo ready; '
                          'while :; do sleep 0.1; done'), env={{"PATH": "/bin"}}, cwd="/", uid=0, gid=0)
        try:
            BwrapSandbox(Path({str(rootfs)!r})).run(step, lambda line: print(line, flush=True))
        except Interrupted as exc:
            print("interrupted", exc.exit_code, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert out == "step-got-INT\ninterrupted 130\n"


def test_second_signal_kills_a_step_that_ignores_the_first(rootfs):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from builder.lifecycle.sandbox import BwrapSandbox, Interrupted, Step
        step = Step(argv=("sh", "-c", 'trap "" INT TERM; echo ready; while :; do sleep 0.1; done'),
                    env={{"PATH": "/bin"}}, cwd="/", uid=0, gid=0)
        try:
            BwrapSandbox(Path({str(rootfs)!r})).run(step, lambda line: print(line, flush=True))
        except Interrupted as exc:
            print("interrupted", exc.exit_code, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None  # the step ignores it; pallet waits (up to the grace period)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert out == "interrupted 143\n"


def test_killing_pallet_kills_the_step(rootfs):
    """kill -9 of pallet leaves no step behind (bubblewrap's --die-with-parent)."""
    marker = f"pallet-step-marker-{os.getpid()}-{time.monotonic_ns()}"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from builder.lifecycle.sandbox import BwrapSandbox, Step
        step = Step(argv=("sh", "-c", "echo ready; sleep 1000; : {marker}"), env={{"PATH": "/bin"}},
                    cwd="/", uid=0, gid=0)
        BwrapSandbox(Path({str(rootfs)!r})).run(step, lambda line: print(line, flush=True))
    """)

    def step_alive() -> bool:
        for pid in os.listdir("/proc"):
            try:
                if pid.isdigit() and marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
            except OSError:
                continue
        return False

    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    assert step_alive()
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while step_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not step_alive()


def test_works_for_a_user_other_than_root(tmp_path):
    """As nobody: unprivileged user namespaces, a rootfs it owns, its own uid mapped to the step's."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root (to become nobody), setpriv and /usr/bin/python3")
    home = Path("/tmp") / f"pallet-nonroot-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o755)
    try:
        # pallet's code from a copy nobody can read (the checkout may be in a root-only directory)
        shutil.copytree(ROOT / "builder", home / "src" / "builder", ignore=shutil.ignore_patterns("__pycache__"))
        busybox_rootfs(home / "rootfs")
        shutil.chown(home, 65534, 65534)
        for p in home.rglob("*"):
            os.chown(p, 65534, 65534, follow_symlinks=False)
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(home / "src")!r})
            from pathlib import Path
            from builder.lifecycle.sandbox import BwrapSandbox, Bind, Step
            Path({str(home)!r}, "rw").mkdir()
            code = BwrapSandbox(Path({str(home)!r}, "rootfs")).run(Step(
                argv=("sh", "-c", 'echo "id=$(id -u):$(id -g)"; ls -ln /usr/bin/busybox; echo x > /out/f'),
                env={{"PATH": "/bin"}}, cwd="/", uid=1000, gid=1000,
                binds=(Bind(Path({str(home)!r}, "rw"), "/out", writable=True),)), lambda l: print(l))
            print("code", code)
        """)
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", f"HOME={home}",
                               "/usr/bin/python3", "-c", script], capture_output=True, text=True, timeout=60)
        if "cannot create the sandbox's namespaces" in done.stderr:
            pytest.skip("unprivileged user namespaces are not allowed here: " + done.stderr.strip()[-200:])
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "id=1000:1000" and lines[-1] == "code 0"
        assert " 1000 " in lines[1]  # files nobody owns appear as the step's user
        assert (home / "rw" / "f").stat().st_uid == 65534
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- the rootfs cache ------------------------------------------------------------------------------


@pytest.fixture
def small_image(tmp_path):
    store = LayoutStore(tmp_path / "store")
    img = tiny_image(motd="cached motd")
    put_image(store, img, "v1")
    return load_image(store, "v1")


def test_unpack_image_is_cached_by_manifest_digest(small_image, tmp_path):
    cache = tmp_path / "cache"
    path = unpack_image(small_image, cache)
    assert path == cache / small_image.digest.split(":")[1]
    assert (path / "etc" / "motd").read_text() == "cached motd\n"
    assert os.readlink(path / "bin" / "sh") == "busybox"
    (path / "etc" / "marker").write_text("x")  # a second call does not unpack again
    assert unpack_image(small_image, cache) == path and (path / "etc" / "marker").exists()
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith((".lock", ".size"))) == [path.name]


def test_unpacked_image_has_mountpoints_for_the_network_files(small_image, tmp_path):
    """An image without /etc/resolv.conf (mmdebstrap's have none) gets an empty one in its rootfs,
    so a step with network mounts the host's over it instead of rebuilding /etc from a mount per
    entry (25 ms of each sandbox start). What the image has there is left alone, even a dangling
    symlink; an /etc that is not a directory of the tree gets nothing; a rootfs unpacked before
    (without them) gets them on its next use."""
    path = unpack_image(small_image, tmp_path / "cache")
    for name in ("resolv.conf", "hosts"):
        assert (path / "etc" / name).is_file() and not (path / "etc" / name).is_symlink()
        assert (path / "etc" / name).stat().st_size == 0
    args = BwrapSandbox(path, ca_certs=None).command(step("true"))
    assert "/etc/resolv.conf" in args and "--dir" not in args[:args.index("--")]  # nothing rebuilt
    code, lines = run(BwrapSandbox(path, ca_certs=None), step("cat /etc/resolv.conf; cat /etc/motd"))
    assert code == 0 and lines == Path("/etc/resolv.conf").read_text().splitlines() + ["cached motd"]

    (path / "etc" / "resolv.conf").unlink()  # as an older pallet left it
    (path / "etc" / "hosts").unlink()
    os.symlink("/run/systemd/resolve/stub-resolv.conf", path / "etc" / "hosts")
    assert unpack_image(small_image, tmp_path / "cache") == path
    assert (path / "etc" / "resolv.conf").stat().st_size == 0
    assert os.readlink(path / "etc" / "hosts") == "/run/systemd/resolve/stub-resolv.conf"

    elsewhere = busybox_rootfs(tmp_path / "elsewhere")
    other = busybox_rootfs(tmp_path / "other", etc=False)
    os.symlink(elsewhere / "etc", other / "etc")
    rootfs_mod.add_mountpoints(other)
    rootfs_mod.add_mountpoints(tmp_path / "no-such-tree")
    assert sorted(os.listdir(elsewhere / "etc")) == ["passwd"]
    # An /etc pallet's user cannot write (an image's 0555 /etc, unpacked by a pallet that is not
    # root): left to the sandbox, no error. Root writes anywhere, so it tries without the power to
    # override file permissions (a user switch would need the checkout readable to that user).
    locked = busybox_rootfs(tmp_path / "locked")
    (locked / "etc").chmod(0o555)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    subprocess.run([*drop, sys.executable, "-c", "import sys, pathlib; from builder.lifecycle.rootfs import "
                    "add_mountpoints; add_mountpoints(pathlib.Path(sys.argv[1]))", str(locked)], check=True, cwd=ROOT)
    assert sorted(os.listdir(locked / "etc")) == ["passwd"]


def test_concurrent_unpacks_agree_and_leave_no_temp_dirs(small_image, tmp_path):
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from builder.lifecycle.rootfs import unpack_image
        from builder.oci.image import load_image
        from builder.oci.stores.layout import LayoutStore
        print(unpack_image(load_image(LayoutStore({str(tmp_path / 'store')!r}), "v1"), Path({str(cache)!r})))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(outs) == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    assert (Path(outs.pop()) / "etc" / "motd").exists()


def test_unpacker_killed_mid_way_leaves_nothing_behind(small_image, tmp_path):
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from builder.oci import unpack
        from builder.lifecycle.rootfs import unpack_image
        from builder.oci.image import load_image
        from builder.oci.stores.layout import LayoutStore
        real = unpack.Unpacker.apply
        def slow(self, stream, **kw):
            real(self, stream, **kw)
            print("applied", flush=True)
            time.sleep(60)
        unpack.Unpacker.apply = slow
        unpack_image(load_image(LayoutStore({str(tmp_path / 'store')!r}), "v1"), Path({str(cache)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "applied\n"
    temps = [p for p in cache.iterdir() if p.name.startswith(".tmp-")]
    assert len(temps) == 1 and not (cache / small_image.digest.split(":")[1]).exists()
    proc.kill()  # kill -9: no cleanup runs
    proc.wait()
    path = unpack_image(small_image, cache)  # takes the lock the dead process held; cleans up
    assert (path / "etc" / "motd").exists()
    assert not temps[0].exists()


def test_prune_removes_unused_keeps_in_use(small_image, tmp_path):
    cache = tmp_path / "cache"
    path = unpack_image(small_image, cache)
    (cache / ".tmp-deadbeef-1").mkdir()  # a dead unpacker's leftovers: nobody holds its lock
    with rootfs_mod.in_use(path):
        assert prune(cache) == [cache / ".tmp-deadbeef-1"]
    assert path.exists()
    assert prune(cache, keep=[small_image.digest]) == [] and path.exists()
    assert prune(cache, unused_for=3600) == [] and path.exists()
    assert prune(cache) == [] and path.exists()  # this process unpacked it: leased until it exits
    rootfs_mod.release(path)
    assert prune(cache) == [path]
    assert list(cache.iterdir()) == []


def test_sandbox_runs_in_an_unpacked_image(small_image, tmp_path):
    path = unpack_image(small_image, tmp_path / "cache")
    code, lines = run(BwrapSandbox(path), step('cat /etc/motd; echo "$GREETING"', env={"PATH": "/bin", "GREETING": "hi"}))
    assert (code, lines) == (0, ["cached motd", "hi"])


# -- DockerSandbox ----------------------------------------------------------------------------------


@pytest.fixture
def docker_image(small_image, docker_engine) -> str:
    ref = ensure_in_docker(small_image, repository="pallet-test-sandbox", client=docker_engine)
    yield ref
    docker_engine.images.remove(ref, force=True)


def test_ensure_in_docker_loads_once(small_image, docker_engine, docker_image):
    assert docker_image == f"pallet-test-sandbox:{small_image.digest.split(':')[1][:12]}"
    assert docker_engine.images.get(docker_image).id == small_image.manifest.config.digest
    started = time.monotonic()
    assert ensure_in_docker(small_image, repository="pallet-test-sandbox", client=docker_engine) == docker_image
    assert time.monotonic() - started < 5


def test_docker_sandbox_runs_the_same_step(docker_engine, docker_image, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "app.txt").write_text("app\n")
    os.chmod(rw, 0o777)  # the engine runs the step as uid 1000 for real
    before = {c.id for c in docker_engine.containers.list(all=True)}
    box = DockerSandbox(docker_image, docker_engine)
    code, lines = run(box, step(
        'busybox id -u; pwd; cat app.txt; echo "$GREETING $HTTP_PROXY"; echo made > /layers/f; '
        'touch /workspace/x 2>/dev/null || echo ro; cat "$SSL_CERT_FILE" >/dev/null && echo ca-ok; echo err >&2; exit 5',
        env={"PATH": "/bin", "GREETING": "hi"}, cwd="/workspace",
        binds=(Bind(ro, "/workspace"), Bind(rw, "/layers", writable=True))))
    assert code == 5
    expected = ["1000", "/workspace", "app", "hi http://proxy.example:3128", "ro"]
    if sb.host_ca_certs() is not None:
        expected.append("ca-ok")
    # The engine carries stdout and stderr separately: their relative order is not kept.
    assert [line for line in lines if line != "err"] == expected and lines.count("err") == 1
    assert (rw / "f").read_text() == "made\n"
    assert {c.id for c in docker_engine.containers.list(all=True)} == before  # removed
    options = box.create_options(step("true", network=False))
    assert options["network_mode"] == "none" and options["user"] == "1000:1001"
