"""``pallet prune`` and the rootfs cache's size bound: real builds and runs on the tiny stack,
each test with a cache of its own (never the machine's shared one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.gc.select import least_recently_used
from builder.gc.units import parse_duration, parse_size
from tests.cli import pallet, popen

ROOT = Path(__file__).resolve().parent.parent
HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"
TINY = str(ROOT / "stacks" / "tiny.toml")
IMAGES = ("--build-image", "tiny-build:0.1.0", "--run-image", "tiny-run:0.1.0")


# -- pure parts ----------------------------------------------------------------------------------


class E:
    def __init__(self, name: str, size: int, last_used: float) -> None:
        self.name, self.size, self.last_used = name, size, last_used


def names(entries) -> list[str]:
    return [e.name for e in entries]


def test_least_recently_used_goes_first_until_the_bound_holds():
    entries = [E("new", 10, 300.0), E("old", 10, 100.0), E("mid", 10, 200.0)]
    assert names(least_recently_used(entries)) == ["old", "mid", "new"]
    assert names(least_recently_used(entries, keep_bytes=20)) == ["old"]
    assert names(least_recently_used(entries, keep_bytes=30)) == []
    assert names(least_recently_used(entries, keep_bytes=0)) == ["old", "mid", "new"]
    assert names(least_recently_used(entries, unused_for=150, now=400.0)) == ["old", "mid"]
    assert names(least_recently_used(entries, keep_bytes=25, unused_for=250, now=400.0)) == ["old"]
    # an entry in use stays but still counts: the next least recently used goes instead
    assert names(least_recently_used(entries, keep_bytes=20, stays={1})) == ["mid"]
    assert names(least_recently_used(entries, keep_bytes=0, stays={0, 1, 2})) == []


def test_sizes_and_durations_parse_or_say_what_is_expected():
    assert parse_size("10G") == 10 << 30 and parse_size("500m") == 500 << 20 and parse_size("1.5GiB") == 3 << 29
    assert parse_size("4096") == 4096 and parse_size("2KB") == 2048
    assert parse_duration("72h") == 72 * 3600 and parse_duration("1d12h") == 36 * 3600 and parse_duration("90s") == 90
    for bad in ("", "ten", "10X", "-1G"):
        with pytest.raises(ValueError, match="not a size"):
            parse_size(bad)
    for bad in ("", "7", "3q", "1d junk"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


# -- real builds and runs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    """A PALLET_HOME with the tiny stack's images (from the machine's stack cache: read only)."""
    home = tmp_path_factory.mktemp("pallet-home")
    env = {"PALLET_HOME": str(home)}
    pallet("stack", "build", TINY, "--refresh", env=env, timeout=900)
    return env


@pytest.fixture
def machine(tmp_path, home) -> dict[str, str]:
    """This test's own cache (every area of it), with the rootfs bound off unless a test sets one."""
    return {**home, "PALLET_CACHE": str(tmp_path / "cache"), "PALLET_ROOTFS_MAX": "off", "PALLET_SERVER": "0"}


def build_app(tmp_path: Path, greeting: str, tag: str, env: dict[str, str]) -> str:
    app = tmp_path / f"app-{tag.replace(':', '-')}"
    app.mkdir()
    (app / "hello.conf").write_text(greeting + "\n")
    out = pallet("build", str(app), "-t", tag, "--buildpack", str(HELLO_BP), *IMAGES, "--json", env=env)
    return json.loads(out.stdout)["digest"]


def run_app(tag: str, env: dict[str, str]) -> str:
    return pallet("run", tag, "--network", "none", env=env).stdout


def prune(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return pallet("prune", *args, env=env, check=check)


def prune_json(env: dict[str, str], *args: str) -> dict:
    return json.loads(prune(env, "--json", *args).stdout)


def rootfs_of(env: dict[str, str]) -> set[str]:
    root = Path(env["PALLET_CACHE"]) / "rootfs"
    return {f"sha256:{p.name}" for p in root.iterdir() if not p.name.startswith(".")} if root.is_dir() else set()


def files_in(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.lstat().st_mtime for p in sorted(path.rglob("*")) if not p.is_dir()}


def image_digest(ref: str, env: dict[str, str]) -> str:
    return json.loads(pallet("inspect", "--json", ref, env=env).stdout)["digest"]


def test_prune_removes_least_recently_used_first_within_keep_storage(tmp_path, machine):
    one = build_app(tmp_path, "one", "one:1", machine)
    two = build_app(tmp_path, "two", "two:1", machine)
    build_rootfs = rootfs_of(machine)
    assert len(build_rootfs) == 1  # the tiny build image, unpacked once for both builds
    run_app("one:1", machine)
    run_app("two:1", machine)
    assert run_app("one:1", machine).startswith("hello: one")  # one:1 is now the most recently used
    assert rootfs_of(machine) == build_rootfs | {one, two}
    listing = prune_json(machine, "--dry-run")
    sizes = {e["name"]: e["size"] for e in listing["removed"] if e["area"] == "rootfs"}
    assert set(sizes) == {one, two, *build_rootfs}

    report = prune_json(machine, "--keep-storage", str(sizes[one]))
    order = [e["name"] for e in report["removed"]]
    assert [n for n in order if n.startswith("sha256:") and n in sizes] == [*build_rootfs, two]  # LRU first
    assert order == [e["name"] for e in sorted(report["removed"], key=lambda e: e["lastUsed"])]
    assert rootfs_of(machine) == {one}
    assert sum(report["after"].values()) <= sizes[one]
    assert report["freed"] == sum(e["size"] for e in report["removed"]) > 0
    assert not list((Path(machine["PALLET_CACHE"]) / "builds").iterdir())  # builds, memo: older, gone too
    assert not [p for p in (Path(machine["PALLET_CACHE"]) / "rootfs").iterdir() if p.name.startswith(".tmp-")]
    # what was pruned comes back on demand: the same image again
    (tmp_path / "again").mkdir()
    assert build_app(tmp_path / "again", "two", "two:1", machine) == two


def test_dry_run_removes_nothing(tmp_path, machine):
    build_app(tmp_path, "dry", "dry:1", machine)
    cache = Path(machine["PALLET_CACHE"])
    before = files_in(cache)
    report = prune_json(machine, "--dry-run")
    assert report["dryRun"] and report["removed"] and report["freed"] > 0
    assert {e["area"] for e in report["removed"]} >= {"rootfs", "builds", "layers"}
    assert files_in(cache) == before
    text = prune(machine, "--dry-run").stdout
    assert "would remove rootfs sha256:" in text and text.splitlines()[-1].startswith("would free ")
    assert files_in(cache) == before


def test_an_entry_in_use_is_kept(tmp_path, machine):
    """A concurrent pallet run holds its rootfs: prune keeps it (and says so), removes the rest."""
    build_app(tmp_path, "busy", "busy:1", machine)
    run_image = image_digest("tiny-run:0.1.0", machine)
    proc = popen("run", "tiny-run:0.1.0", "--network", "none", "--", "sh", "-c", "echo started; exec sleep 300",
                 env=machine)
    try:
        assert proc.stdout.readline() == "started\n"
        assert run_image in rootfs_of(machine)
        report = prune_json(machine)
        assert run_image in [e["name"] for e in report["inUse"]]
        assert rootfs_of(machine) == {run_image}  # the build image's is gone, the running one stays
        assert "kept 1 in use" in prune(machine).stdout
    finally:
        proc.kill()
        proc.wait()
    assert prune_json(machine)["removed"][0]["name"] == run_image  # free once the run ended
    assert rootfs_of(machine) == set()


def test_a_build_holds_its_build_cache(tmp_path, machine):
    """A running build leases its build cache (builds/<key> and memo/<key>): the same lease
    the pipeline takes, held here while prune runs in another process."""
    from builder.gc import lease

    build_app(tmp_path, "lease", "lease:1", machine)
    builds = Path(machine["PALLET_CACHE"]) / "builds"
    (key,) = [p.name for p in builds.iterdir() if not p.name.startswith(".")]
    with lease.held(builds, key):
        report = prune_json(machine)
        assert key in [e["name"] for e in report["inUse"] if e["area"] == "builds"]
        assert (builds / key).is_dir() and (Path(machine["PALLET_CACHE"]) / "memo" / key).is_file()
    assert key in [e["name"] for e in prune_json(machine)["removed"]]
    assert not (builds / key).exists()


def test_rootfs_cache_is_bounded_least_recently_used_out(tmp_path, machine):
    one = build_app(tmp_path, "one", "one:1", machine)
    two = build_app(tmp_path, "two", "two:1", machine)
    (build_rootfs,) = rootfs_of(machine)
    run_app("one:1", machine)
    sizes = {e["name"]: e["size"] for e in prune_json(machine, "--dry-run")["removed"]}
    bound = 2 * sizes[one] + (1 << 20)
    assert sizes[build_rootfs] > (1 << 20)
    bounded = {**machine, "PALLET_ROOTFS_MAX": str(bound)}
    run_app("two:1", bounded)  # adds a third entry: the least recently used (the build image's) goes
    assert rootfs_of(machine) == {one, two}
    total = sum(e["size"] for e in prune_json(machine, "--dry-run")["removed"] if e["area"] == "rootfs")
    assert total <= bound
    tight = {**machine, "PALLET_ROOTFS_MAX": "1K"}
    (tmp_path / "x").mkdir()
    build_app(tmp_path / "x", "three", "three:1", tight)
    assert rootfs_of(machine) == {build_rootfs}  # over the bound alone: the entry in use stays


def test_bad_input_is_one_line(machine):
    for args, flag in ((("--keep-storage", "lots"), "--keep-storage"), (("--older-than", "soon"), "--older-than")):
        done = prune(machine, *args, check=False)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith(f"pallet: error: {flag}: ") and len(done.stderr.strip().splitlines()) == 1
    bad = {**machine, "PALLET_ROOTFS_MAX": "huge"}
    done = pallet("run", "tiny-run:0.1.0", "--network", "none", "--", "true", env=bad, check=False)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "pallet: error: PALLET_ROOTFS_MAX=huge: 'huge' is not a size: give a number with an optional unit K, M, G "
        "or T (e.g. 10G)"]


def test_debs_and_stacks_only_by_flag_and_committed_locks_kept(tmp_path, machine):
    """Packages and stack images: untouched by a plain prune; --debs/--stacks keep what a committed
    stack lock names; --all removes them too."""
    from builder.stacks import lockfile, spec

    cache = Path(machine["PALLET_CACHE"])
    debs = cache / "debs"
    debs.mkdir(parents=True)
    stack = spec.load(TINY)
    lock, _ = lockfile.load(stack)
    locked = next(iter(lock.arches.values())).base[0].deb_filename
    for name in (locked, "gone_1.0_amd64.deb"):
        (debs / name).write_bytes(b"x" * 5000)
        (debs / f"{name}.sha256").write_text("0" * 64 + "\n")
    prune(machine)
    assert sorted(p.name for p in debs.iterdir() if not p.name.startswith(".")) == sorted(
        [locked, f"{locked}.sha256", "gone_1.0_amd64.deb", "gone_1.0_amd64.deb.sha256"])
    report = prune_json(machine, "--debs")
    assert [e["name"] for e in report["removed"]] == ["gone_1.0_amd64.deb"] and report["pinned"] == 1
    assert sorted(p.name for p in debs.iterdir() if not p.name.startswith(".")) == [locked, f"{locked}.sha256"]
    prune(machine, "--all")
    assert [p.name for p in debs.iterdir() if not p.name.startswith(".")] == []


def test_stack_images_only_by_flag_and_committed_ones_kept(tmp_path, machine):
    """Two stack cache entries sharing a layer: --stacks removes the one no committed lock names
    (its own blobs, not the shared one) and keeps the committed tiny stack's; --all removes both."""
    from builder.stacks import lockfile, spec
    from builder.stacks.build import cache_key

    stack = spec.load(TINY)
    committed = cache_key(stack, lockfile.load(stack)[1])
    stale = "f" * 64
    layout = Path(machine["PALLET_CACHE"]) / "stacks" / "images"
    dirs = {}
    for name in ("shared", "mine", "theirs"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        (dirs[name] / f"{name}.txt").write_text(name * 100)
    for key, own in ((committed, "mine"), (stale, "theirs")):
        pallet("append", "scratch", str(dirs["shared"]), f"oci:{layout}:{key}-build", env=machine)
        pallet("append", f"oci:{layout}:{key}-build", str(dirs[own]), f"oci:{layout}:{key}-run", env=machine)
    blobs = layout / "blobs" / "sha256"
    sizes = {p.name: p.stat().st_blocks * 512 for p in blobs.iterdir()}
    before = set(sizes)
    prune(machine)
    assert {p.name for p in blobs.iterdir()} == before  # not without --stacks
    report = prune_json(machine, "--stacks")
    assert [e["name"] for e in report["removed"]] == [stale] and report["pinned"] == 1
    tags = json.loads((layout / "index.json").read_text())["manifests"]
    assert sorted(m["annotations"]["org.opencontainers.image.ref.name"] for m in tags) == [
        f"{committed}-build", f"{committed}-run"]
    after = {p.name for p in blobs.iterdir()}
    assert after < before and image_digest(f"oci:{layout}:{committed}-run", machine)  # whole and readable
    assert report["freed"] == report["removed"][0]["size"] == sum(sizes[n] for n in before - after) > 0
    prune(machine, "--all")
    assert json.loads((layout / "index.json").read_text())["manifests"] == []
    assert [p.name for p in blobs.iterdir()] == []


def test_what_a_killed_prune_left_is_never_an_entry_and_goes_next_time(tmp_path, machine):
    """Removal renames first: a prune killed mid-delete leaves only trash names, which no build
    or run looks at, and the next prune deletes them."""
    one = build_app(tmp_path, "one", "one:1", machine)
    run_app("one:1", machine)
    cache = Path(machine["PALLET_CACHE"])
    hexd = one.split(":", 1)[1]
    os.rename(cache / "rootfs" / hexd, cache / "rootfs" / f".tmp-{hexd}-prune1")  # as prune renames it
    (key,) = [p.name for p in (cache / "builds").iterdir() if not p.name.startswith(".")]
    os.rename(cache / "builds" / key, cache / "builds" / f".trash-{key}-1")
    os.rename(cache / "memo" / key, cache / "memo" / f".trash-{key}-1")
    listing = prune_json(machine, "--dry-run")
    assert one not in [e["name"] for e in listing["removed"]] and key not in [e["name"] for e in listing["removed"]]
    assert run_app("one:1", machine).startswith("hello: one")  # unpacked again, not the half-removed one
    prune(machine)
    leftovers = [p.name for d in ("rootfs", "builds", "memo") for p in (cache / d).iterdir()
                 if p.name.startswith((".tmp-", ".trash-"))]
    assert leftovers == []


def waiting_buildpack(path: Path, port: int) -> Path:
    """A buildpack whose build blocks until the test answers on a loopback port (build steps share
    the host's network): the build is then surely running, its leases held."""
    (path / "bin").mkdir(parents=True)
    (path / "buildpack.toml").write_text('api = "0.10"\n\n[buildpack]\nid = "tests/wait"\nversion = "1.0.0"\n\n'
                                         '[[stacks]]\nid = "*"\n')
    (path / "bin" / "detect").write_text("#!/usr/bin/env bash\nexit 0\n")
    (path / "bin" / "build").write_text(f"#!/usr/bin/env bash\nset -euo pipefail\nexec 3<>/dev/tcp/127.0.0.1/{port}\n"
                                        "read -r line <&3\necho \"released: $line\"\n")
    for name in ("detect", "build"):
        (path / "bin" / name).chmod(0o755)
    return path


def test_a_running_build_keeps_its_rootfs_build_cache_and_layers(tmp_path, machine):
    """A real concurrent build, held inside its buildpack: prune leaves the build image's rootfs,
    the build's cache and the layer cache to it, removes them once it is done."""
    import socket

    build_app(tmp_path, "first", "first:1", machine)  # a build cache and layers to protect
    first_key = {p.name for p in (Path(machine["PALLET_CACHE"]) / "builds").iterdir() if not p.name.startswith(".")}
    (build_rootfs,) = rootfs_of(machine)
    listener = socket.create_server(("127.0.0.1", 0))
    bp = waiting_buildpack(tmp_path / "wait-bp", listener.getsockname()[1])
    app = tmp_path / "waiting-app"
    app.mkdir()
    (app / "hello.conf").write_text("first\n")
    proc = popen("build", str(app), "-t", "first:1", "--buildpack", str(bp), *IMAGES, env=machine)
    try:
        listener.settimeout(600)
        conn, _ = listener.accept()  # the buildpack is running: the build holds what it uses
        with conn:
            report = prune_json(machine)
            held = {(e["area"], e["name"]) for e in report["inUse"]}
            assert ("rootfs", build_rootfs) in held
            assert {("builds", k) for k in first_key} <= held  # -t first:1: this build's cache
            assert any(area == "layers" for area, _ in held)
            assert not [e for e in report["removed"] if e["area"] in ("layers", "builds")]
            assert build_rootfs in rootfs_of(machine)
            conn.sendall(b"go\n")
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "released: go" in err + out
    finally:
        listener.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = prune_json(machine)
    assert ("rootfs", build_rootfs) in {(e["area"], e["name"]) for e in report["removed"]}
    assert rootfs_of(machine) == set()


def test_prune_removes_partial_layers_of_killed_builds_unless_a_build_runs(tmp_path):
    """A build killed while compressing a layer left ``layers/blobs/.<name>.<pid>.<n>.tmp`` (its
    partial blob, as big as the app's layer) that no prune removed. Prune holds ``layers/``
    exclusively when it tidies, so any temp file there is a dead writer's; while a build holds
    the area (its lease), prune leaves it alone."""
    from builder.gc import lease
    from builder.gc.prune import prune as run_prune

    layers = tmp_path / "layers"
    leftovers = [layers / "blobs" / "..tmp-abc-4242.4242.0.tmp", layers / "stat" / ".tmp-def-4242"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x1f\x8b partial")
    with lease.held(layers, "all"):  # a build running: nothing in layers/ is touched
        run_prune(tmp_path)
        assert all(p.exists() for p in leftovers)
    run_prune(tmp_path)
    assert not any(p.exists() for p in leftovers)
    assert (layers / "blobs").is_dir()
