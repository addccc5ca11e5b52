"""Stale locks, by who is asking: Debian's mirrors keep only the current version of each package,
so a committed lock falls behind within days. A developer's `pallet build` refreshes and says so;
a platform team's `pallet stack build` refuses (or re-locks on request); `stack lock --check` is
the scheduled job's signal; the package cache rebuilds what it once built, byte for byte; a
snapshot archive resolves forever. Mirrors here are archives the tests make and serve on
loopback, so every behaviour is checked whatever Debian published today.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from builder.stacks.lockfile import Lock, ArchLock, Package, describe_changes, lock_changes
from tests.aptarchive import AptArchive, make_deb
from tests.cli import pallet

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "stacks" / "tiny.toml"
HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"

needs_stack_build = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap"),
                                       reason="stack builds need root and mmdebstrap (scripts/setup.sh installs it)")


# -- pure ---------------------------------------------------------------------------------------


def _lock(**versions: str) -> Lock:
    pkgs = tuple(Package(n, v, "amd64") for n, v in sorted(versions.items()))
    return Lock(stack="s", inputs="sha256:x", epoch=1, arches={"amd64": ArchLock("amd64", base=pkgs, run=pkgs)})


def test_lock_changes_name_each_package_old_to_new() -> None:
    old = _lock(libpam0g="1.5.2-6+deb12u2", zlib1g="1:1.2.13", gone="1")
    new = _lock(libpam0g="1.5.2-6+deb12u3", zlib1g="1:1.2.13", added="2")
    assert describe_changes(lock_changes(old, new)) == [
        "added (none) -> 2", "gone 1 -> (removed)", "libpam0g 1.5.2-6+deb12u2 -> 1.5.2-6+deb12u3"]
    assert lock_changes(old, old) == []


# -- helpers ------------------------------------------------------------------------------------


def env_for(root: Path) -> dict[str, str]:
    """A private local store, stack cache and package cache: a machine of its own."""
    for d in ("home", "cache", "work"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return {"PALLET_HOME": str(root / "home"), "PALLET_CACHE": str(root / "cache"),
            "PALLET_STACK_TMPDIR": str(root / "work")}


def tiny_copy(where: Path, lock_edit: tuple[str, str] | None = None) -> Path:
    """The shipped tiny stack and its lock in ``where/stacks`` (so the lock's bytes name the stack
    as the shipped one does), with one locked version replaced by another."""
    d = where / "stacks"
    d.mkdir(parents=True)
    shutil.copy(TINY, d / "tiny.toml")
    shutil.copy(TINY.with_suffix(".lock"), d / "tiny.lock")
    if lock_edit:
        text = (d / "tiny.lock").read_text()
        assert lock_edit[0] in text
        (d / "tiny.lock").write_text(text.replace(lock_edit[0], lock_edit[1]))
    return d / "tiny.toml"


def locked_version(stack: Path, name: str) -> str:
    for line in stack.with_suffix(".lock").read_text().splitlines():
        entry = line.strip().strip('",')
        if entry.startswith(f"{name}:"):
            return entry.split("=", 1)[1]
    raise AssertionError(f"{name} not in the lock")


# -- a lock naming a version the real mirror never had ----------------------------------------------


@needs_stack_build
def test_stale_lock_refreshes_for_a_developer_and_refuses_for_a_platform_team(tmp_path: Path) -> None:
    current = tiny_copy(tmp_path / "current")
    env = env_for(tmp_path / "machine")
    # Locked from scratch today (the shipped lock may itself be behind, and a lock whose packages
    # did not change keeps its old source-date-epoch, while a refresh that changed them takes
    # the mirror's newest Release date: from scratch, both are today's).
    current.with_suffix(".lock").unlink()
    pallet("stack", "lock", str(current), env=env)
    mirror_has = locked_version(current, "hostname")
    stale = tiny_copy(tmp_path / "stale")
    shutil.copy(current.with_suffix(".lock"), stale.with_suffix(".lock"))
    text = stale.with_suffix(".lock").read_text()
    stale.with_suffix(".lock").write_text(text.replace(f'"hostname:amd64={mirror_has}"', '"hostname:amd64=0.0-never1"'))

    # the scheduled job's signal: exit 1 and the list; 0 for the current lock
    check = pallet("stack", "lock", "--check", str(stale), env=env, check=False)
    assert check.returncode == 1, check.stderr
    assert f"hostname 0.0-never1 -> {mirror_has}" in check.stdout
    data = json.loads(pallet("stack", "lock", "--check", "--json", str(stale), env=env, check=False).stdout)
    assert data["stale"] and data["changes"] == [{"arch": "amd64", "package": "hostname", "locked": "0.0-never1",
                                                 "mirror": mirror_has}]
    assert pallet("stack", "lock", "--check", str(current), env=env).returncode == 0
    assert b"0.0-never1" in stale.with_suffix(".lock").read_bytes()  # --check writes nothing

    # a platform team's build refuses, naming the package, in one line
    refused = pallet("stack", "build", str(stale), env=env, check=False)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "hostname:amd64=0.0-never1" in refused.stderr
    assert "Traceback" not in refused.stderr

    # a developer's build: the mirror's versions, a notice, exit 0, the lock file untouched
    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.conf").write_text("Hi\n")
    built = pallet("build", str(app), "-t", "hello:1", "--stack", str(stale), "--buildpack", str(HELLO_BP),
                   "--json", env=env)
    assert f"hostname 0.0-never1 -> {mirror_has}" in built.stderr
    assert f"pallet stack lock {stale}" in built.stderr
    assert b"0.0-never1" in stale.with_suffix(".lock").read_bytes()
    # the images say what was installed: the refreshed lock equals the current one, so do the images
    fresh = json.loads(pallet("stack", "build", str(current), "--json", env=env).stdout)
    refreshed = json.loads(pallet("stack", "build", "--refresh", str(stale), "--json", env=env).stdout)
    assert refreshed["run"]["digest"] == fresh["run"]["digest"]
    assert refreshed["build"]["digest"] == fresh["build"]["digest"]
    assert refreshed["lockChanges"] == [f"hostname:amd64 0.0-never1 -> {mirror_has}"]
    packages = pallet("stack", "packages", refreshed["run"]["reference"], "--json", env=env).stdout
    assert {"hostname": mirror_has}.items() <= {p["name"]: p["version"] for p in json.loads(packages)["packages"]}.items()
    # again: the notice again (the memo remembers it), the same image
    again = pallet("build", str(app), "-t", "hello:1", "--stack", str(stale), "--buildpack", str(HELLO_BP),
                   "--json", env=env)
    assert f"hostname 0.0-never1 -> {mirror_has}" in again.stderr
    assert json.loads(again.stdout)["digest"] == json.loads(built.stdout)["digest"]

    # --locked refuses as the platform team's build does
    locked = pallet("build", str(app), "-t", "hello:2", "--stack", str(stale), "--buildpack", str(HELLO_BP),
                    "--locked", env=env, check=False)
    assert locked.returncode == 1 and "hostname:amd64=0.0-never1" in locked.stderr
    assert "Traceback" not in locked.stderr

    # --update-lock: lock again, write it, build, in one step
    updated = json.loads(pallet("stack", "build", "--update-lock", str(stale), "--json", env=env).stdout)
    assert stale.with_suffix(".lock").read_bytes() == current.with_suffix(".lock").read_bytes()
    assert updated["run"]["digest"] == fresh["run"]["digest"]


# -- a mirror that moves on: the loopback archive ------------------------------------------------


HELLO_SCRIPT = b"#!/bin/sh\necho hello from %s\n"


def hello_deb(where: Path, version: str):
    return make_deb(where, "pallet-hello", version, files={"usr/bin/pallet-hello": HELLO_SCRIPT % version.encode()})


def loopback_stack(where: Path, archive: AptArchive, **distro: str) -> Path:
    """The tiny stack with pallet-hello in its run image, against the test's archive."""
    where.mkdir(parents=True, exist_ok=True)
    lines = [f'{k.replace("_", "-")} = "{v}"' for k, v in distro.items()]
    text = (TINY.read_text()
            .replace('suite = "bookworm"\n', 'suite = "bookworm"\n' + "\n".join(lines) +
                     f'\nkeyring = "{archive.keyring}"\n')
            .replace("[run]\npackages = []", '[run]\npackages = ["pallet-hello"]'))
    path = where / "tiny.toml"
    path.write_text(text)
    return path


@needs_stack_build
def test_a_machine_that_built_a_lock_rebuilds_it_byte_for_byte_after_the_mirror_moves_on(
        tmp_path: Path, apt_archive: AptArchive, essential_debs) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    v1, v2 = hello_deb(debs, "1.0-1"), hello_deb(debs, "1.0-2")
    apt_archive.publish("debian", "bookworm", [*essential_debs, v1])
    apt_archive.publish("debian", "bookworm-updates", [])
    stack = loopback_stack(tmp_path / "stacks", apt_archive, mirror=f"{apt_archive.url}/debian")
    machine = env_for(tmp_path / "machine")
    pallet("stack", "lock", str(stack), env=machine)
    assert "pallet-hello:all=1.0-1" in stack.with_suffix(".lock").read_text()
    first = json.loads(pallet("stack", "build", str(stack), "--json", env=machine).stdout)
    # the cache vouches for what it downloaded: the index's SHA256 beside each file
    record = Path(machine["PALLET_CACHE"]) / "debs" / "pallet-hello_1.0-1_all.deb.sha256"
    assert record.read_text().strip() == v1.sha256

    # the mirror moves on: 1.0-1 is gone
    apt_archive.publish("debian", "bookworm", [*essential_debs, v2], date=1764633600)
    check = pallet("stack", "lock", "--check", str(stack), env=machine, check=False)
    assert check.returncode == 1 and "pallet-hello 1.0-1 -> 1.0-2" in check.stdout

    # this machine: the same lock, from its package cache, byte for byte (assembled again)
    again = json.loads(pallet("stack", "build", str(stack), "--no-cache", "--json", env=machine).stdout)
    assert again["run"]["digest"] == first["run"]["digest"]
    assert again["build"]["digest"] == first["build"]["digest"]
    assert again["lockChanges"] == []

    # a cached file that does not match its record is not used (and not kept)
    tampered = env_for(tmp_path / "tampered")
    shutil.copytree(Path(machine["PALLET_CACHE"]) / "debs", Path(tampered["PALLET_CACHE"]) / "debs")
    (Path(tampered["PALLET_CACHE"]) / "debs" / "pallet-hello_1.0-1_all.deb").write_bytes(v2.path.read_bytes())
    refused = pallet("stack", "build", str(stack), env=tampered, check=False)
    assert refused.returncode == 1 and "pallet-hello:all=1.0-1" in refused.stderr
    assert not (Path(tampered["PALLET_CACHE"]) / "debs" / "pallet-hello_1.0-1_all.deb").exists()

    # a fresh machine: refused by default, refreshed on request, with the package that changed
    fresh = env_for(tmp_path / "fresh")
    refused = pallet("stack", "build", str(stack), env=fresh, check=False)
    assert refused.returncode == 1 and "pallet-hello:all=1.0-1" in refused.stderr
    refreshed = pallet("stack", "build", "--refresh", str(stack), "--json", env=fresh)
    assert "pallet-hello 1.0-1 -> 1.0-2" in refreshed.stderr
    run_ref = json.loads(refreshed.stdout)["run"]["reference"]
    inventory = json.loads(pallet("stack", "packages", run_ref, "--json", env=fresh).stdout)["packages"]
    assert {p["name"]: p["version"] for p in inventory}["pallet-hello"] == "1.0-2"
    labels = json.loads(pallet("inspect", run_ref, "--json", env=fresh).stdout)["config"]["labels"]
    assert labels["io.pallet.stack.lock"] != json.loads(pallet("inspect", first["run"]["reference"], "--json",
                                                                env=machine).stdout)["config"]["labels"][
        "io.pallet.stack.lock"]
    assert "pallet-hello:all=1.0-1" in stack.with_suffix(".lock").read_text()  # untouched


@needs_stack_build
def test_a_snapshot_archive_resolves_the_same_lock_forever(tmp_path: Path, apt_archive: AptArchive,
                                                         essential_debs) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    then, later = "20261204T035428Z", "20261206T000000Z"
    for when, hello in ((then, hello_deb(debs, "1.0-1")), (later, hello_deb(debs, "1.0-2"))):
        apt_archive.publish(f"archive/debian/{when}", "bookworm", [*essential_debs, hello])
        apt_archive.publish(f"archive/debian/{when}", "bookworm-updates", [])
        apt_archive.publish(f"archive/debian-security/{when}", "bookworm-security", [])
    stack = loopback_stack(tmp_path / "stacks", apt_archive, snapshot=then, snapshot_mirror=apt_archive.url)
    env = env_for(tmp_path / "machine")
    pallet("stack", "lock", str(stack), env=env)
    assert "pallet-hello:all=1.0-1" in stack.with_suffix(".lock").read_text()
    # newer snapshots exist; this one does not move: the lock stays current
    assert pallet("stack", "lock", "--check", str(stack), env=env).returncode == 0
    built = json.loads(pallet("stack", "build", str(stack), "--json", env=env).stdout)
    inventory = json.loads(pallet("stack", "packages", built["run"]["reference"], "--json", env=env).stdout)
    assert {p["name"]: p["version"] for p in inventory["packages"]}["pallet-hello"] == "1.0-1"
    # another machine, nothing cached: the same images
    other = env_for(tmp_path / "other")
    assert json.loads(pallet("stack", "build", str(stack), "--json", env=other).stdout)["run"]["digest"] == \
        built["run"]["digest"]


def test_snapshot_fields_are_checked(tmp_path: Path) -> None:
    stack = tmp_path / "s.toml"
    base = TINY.read_text()
    for extra, needle in (('snapshot = "yesterday"', "distro.snapshot"),
                          ('snapshot-mirror = "http://x"', "needs distro.snapshot"),
                          ('snapshot = "20261204T035428Z"\nmirror = "http://x"', "one or the other")):
        stack.write_text(base.replace('suite = "bookworm"\n', f'suite = "bookworm"\n{extra}\n'))
        proc = pallet("stack", "lock", str(stack), check=False)
        assert proc.returncode != 0 and needle in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
