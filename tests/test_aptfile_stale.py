"""A stale Aptfile.lock follows the stale stack locks' rules (README, "Stale locks, by who is
asking"): a developer's build resolves again and says `old -> new`, the lock file untouched and
the refresh remembered; `--locked` refuses; `pallet apt lock --check` is the scheduled job's
signal and `pallet apt lock` records. The mirror is an archive the test makes and serves on
loopback (tests/aptarchive.py), so it moves exactly when the test says.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from builder.lifecycle import aptfile
from builder.lifecycle.aptfile import AptfileError, AptLock, AptRequest
from builder.stacks.lockfile import Package, describe_changes
from tests.aptarchive import AptArchive
from tests.cli import pallet
from tests.test_stacks_stale import HELLO_BP, TINY, env_for, hello_deb, needs_stack_build

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


class _Config:
    def __init__(self, labels: dict[str, str]) -> None:
        self.config = type("C", (), {"labels": labels})()


class _Image:  # what stack_moved reads of a run image: its labels
    def __init__(self, labels: dict[str, str]) -> None:
        self.config = _Config(labels)


def _lock(stack_lock: str | None, hello: str = "1.0-1") -> AptLock:
    req = AptRequest(("pallet-hello",), "Aptfile")
    pkgs = (Package("pallet-hello", hello, "all"),)
    return AptLock("tiny", req.inputs("bookworm", "amd64"), 1, "amd64", pkgs, pkgs, stack_lock)


def test_the_lock_records_the_stack_lock_it_was_resolved_on():
    lock = _lock(D1)
    data = aptfile.render_lock(lock, "Aptfile")
    assert f'stack-lock = "{D1}"' in data.decode()
    assert aptfile.parse_lock(data, "Aptfile.lock", "amd64") == lock
    old = aptfile.render_lock(_lock(None), "Aptfile")  # written before it was recorded: still readable
    assert b"stack-lock" not in old and aptfile.parse_lock(old, "Aptfile.lock", "amd64").stack_lock is None
    with pytest.raises(AptfileError, match="stack-lock must be a sha256 digest"):
        aptfile.parse_lock(data.replace(D1.encode(), b"sha256:nope"), "Aptfile.lock", "amd64")


def test_a_new_stack_lock_makes_the_app_lock_stale_and_an_unrecorded_one_does_not():
    assert aptfile.stack_moved(_lock(D1), _Image({"io.pallet.stack.lock": D1})) is None
    why = aptfile.stack_moved(_lock(D1), _Image({"io.pallet.stack.lock": D2}))
    assert why and "another lock of stack 'tiny'" in why
    assert aptfile.stack_moved(_lock(None), _Image({"io.pallet.stack.lock": D2})) is None  # unknown: as is
    assert describe_changes(aptfile.lock_changes(_lock(D1), _lock(D2, "1.0-2"))) == ["pallet-hello 1.0-1 -> 1.0-2"]
    # the new run image has it: the launch layer no longer does, the build layer still does
    now_in_stack = replace(_lock(D2), run=())
    assert describe_changes(aptfile.lock_changes(_lock(D1), now_in_stack)) == ["pallet-hello 1.0-1 -> (removed)"]
    assert aptfile.lock_changes(_lock(D1), _lock(D2)) == []


# -- a real build against a mirror that moves on -----------------------------------------------------


def _stack(where: Path, archive: AptArchive) -> Path:
    """The tiny stack, resolved against the test's archive."""
    where.mkdir(parents=True, exist_ok=True)
    path = where / "tiny.toml"
    distro = f'suite = "bookworm"\nmirror = "{archive.url}/debian"\nkeyring = "{archive.keyring}"\n'
    path.write_text(TINY.read_text().replace('suite = "bookworm"\n', distro))
    return path


def _deb_versions(env: dict[str, str], ref: str) -> dict[str, str]:
    doc = json.loads(pallet("sbom", ref, env=env).stdout)
    return {c["name"]: c["version"] for c in doc["components"] if c.get("purl", "").startswith("pkg:deb/")}


@needs_stack_build
@pytest.mark.slow
def test_a_stale_aptfile_lock_is_refreshed_for_a_developer_refused_when_locked_and_checked(
        tmp_path: Path, apt_archive: AptArchive, essential_debs) -> None:
    debs = tmp_path / "debs"
    debs.mkdir()
    v1, v2 = hello_deb(debs, "1.0-1"), hello_deb(debs, "1.0-2")
    apt_archive.publish("debian", "bookworm", [*essential_debs, v1])
    apt_archive.publish("debian", "bookworm-updates", [])
    stack = _stack(tmp_path / "stacks", apt_archive)
    env = env_for(tmp_path / "machine")
    pallet("stack", "lock", str(stack), env=env)
    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.conf").write_text("Hi\n")
    (app / "Aptfile").write_text("pallet-hello\n")
    lock_file = app / "Aptfile.lock"

    # recorded (nothing downloaded: the package cache never sees 1.0-1), current
    pallet("apt", "lock", str(app), "--stack", str(stack), env=env)
    first = lock_file.read_bytes()
    assert b'"pallet-hello:all=1.0-1"' in first and b"stack-lock = " in first
    assert pallet("apt", "lock", "--check", str(app), "--stack", str(stack), env=env).returncode == 0

    # the mirror moves on: 1.0-1 is gone
    apt_archive.publish("debian", "bookworm", [*essential_debs, v2], date=1764633600)
    check = pallet("apt", "lock", "--check", str(app), "--stack", str(stack), env=env, check=False)
    assert check.returncode == 1 and "pallet-hello 1.0-1 -> 1.0-2" in check.stdout, check.stdout + check.stderr
    data = json.loads(pallet("apt", "lock", "--check", "--json", str(app), "--stack", str(stack), env=env,
                             check=False).stdout)
    assert data["stale"] and data["changes"] == [{"arch": "amd64", "package": "pallet-hello", "locked": "1.0-1",
                                                 "mirror": "1.0-2"}]
    assert lock_file.read_bytes() == first  # --check writes nothing

    # a developer's build: the mirror's version, the notice, exit 0, the lock untouched
    build = ("build", str(app), "--stack", str(stack), "--buildpack", "pallet/apt", "--buildpack", str(HELLO_BP),
             "--json")
    built = pallet(*build, "-t", "aptapp:1", env=env)
    assert "Aptfile.lock is stale (the mirror has moved on)" in built.stderr
    assert "pallet-hello 1.0-1 -> 1.0-2" in built.stderr and "record them with: pallet apt lock" in built.stderr
    assert lock_file.read_bytes() == first
    assert _deb_versions(env, "aptapp:1")["pallet-hello"] == "1.0-2"
    # again: the notice again, the same image
    again = pallet(*build, "-t", "aptapp:2", env=env)
    assert "pallet-hello 1.0-1 -> 1.0-2" in again.stderr
    assert json.loads(again.stdout)["digest"] == json.loads(built.stdout)["digest"]

    # --locked refuses, in one line, and stores nothing
    locked = pallet(*build, "-t", "aptapp:3", "--locked", env=env, check=False)
    assert locked.returncode == 1 and "Traceback" not in locked.stderr
    last = locked.stderr.strip().splitlines()[-1]
    assert last.startswith("pallet: error: ") and "pallet-hello:all=1.0-1" in last and "pallet apt lock" in last
    assert pallet("inspect", "aptapp:3", env=env, check=False).returncode == 1

    # recorded: the lock now names 1.0-2 and is current
    pallet("apt", "lock", str(app), "--stack", str(stack), env=env)
    assert b'"pallet-hello:all=1.0-2"' in lock_file.read_bytes()
    assert pallet("apt", "lock", "--check", str(app), "--stack", str(stack), env=env).returncode == 0
    current = pallet(*build, "-t", "aptapp:4", env=env)
    assert "stale" not in current.stderr
    assert _deb_versions(env, "aptapp:4")["pallet-hello"] == "1.0-2"  # (the app's files hold the new lock)

    # resolved on another stack lock (the run image has a new one): stale too, for build and check
    text = lock_file.read_text()
    recorded = text.split('stack-lock = "', 1)[1].split('"', 1)[0]
    lock_file.write_text(text.replace(recorded, "sha256:" + "0" * 64))
    moved = pallet(*build, "-t", "aptapp:5", env=env)
    assert "Aptfile.lock is stale (resolved on another lock of stack 'tiny'" in moved.stderr
    assert "(the same versions)" in moved.stderr and lock_file.read_text().count("0" * 64) == 1
    check = pallet("apt", "lock", "--check", str(app), "--stack", str(stack), env=env, check=False)
    assert check.returncode == 1 and "another lock of stack 'tiny'" in check.stdout
    assert pallet(*build, "-t", "aptapp:6", "--locked", env=env, check=False).returncode == 1

    # a lock written before stack-lock was recorded: unknown, so builds use it as is; --check asks to record it
    pallet("apt", "lock", str(app), "--stack", str(stack), env=env)
    lock_file.write_text("".join(line for line in lock_file.read_text().splitlines(keepends=True)
                                 if not line.startswith("stack-lock = ")))
    unknown = pallet(*build, "-t", "aptapp:7", env=env)
    assert "stale" not in unknown.stderr
    assert _deb_versions(env, "aptapp:7")["pallet-hello"] == "1.0-2"
    check = pallet("apt", "lock", "--check", str(app), "--stack", str(stack), env=env, check=False)
    assert check.returncode == 1 and "the stack lock it was resolved on is not recorded" in check.stdout
    written = json.loads(pallet("apt", "lock", "--json", str(app), "--stack", str(stack), env=env).stdout)
    assert written["changed"] and written["changes"] == [] and b"stack-lock = " in lock_file.read_bytes()
    again = json.loads(pallet("apt", "lock", "--json", str(app), "--stack", str(stack), env=env).stdout)
    assert not again["changed"] and not again["stale"]

    # the stack's lock changes for real: its run image now has pallet-hello itself
    stack.write_text(stack.read_text().replace("[run]\npackages = []", '[run]\npackages = ["pallet-hello"]'))
    pallet("stack", "lock", str(stack), env=env)
    moved = pallet(*build, "-t", "aptapp:8", env=env)
    assert "Aptfile.lock is stale (resolved on another lock of stack 'tiny'" in moved.stderr
    assert "pallet-hello 1.0-2 -> (removed)" in moved.stderr  # from the launch layer: the run image has it
    assert b'"pallet-hello:all=1.0-2",\n]' in lock_file.read_bytes().split(b"run = [", 1)[1]  # untouched
    layer_files = pallet("sbom", "aptapp:8", env=env).stdout
    assert "/layers/pallet_apt/packages/var/lib/dpkg/status.d/pallet-hello" not in layer_files
    check = pallet("apt", "lock", "--check", "--json", str(app), "--stack", str(stack), env=env, check=False)
    data = json.loads(check.stdout)
    assert check.returncode == 1 and data["stackLock"]["locked"] != data["stackLock"]["image"]
    pallet("apt", "lock", str(app), "--stack", str(stack), env=env)
    assert aptfile.parse_lock(lock_file.read_bytes(), "Aptfile.lock", "amd64").run == ()
    assert "stale" not in pallet(*build, "-t", "aptapp:9", env=env).stderr
