"""Stack files and lock files: parsing, validation (errors name the field and the file), rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from builder.stacks import lockfile, spec
from builder.stacks.errors import LockError, StackFileError
from builder.stacks.lockfile import ArchLock, Lock, Package

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"

MINIMAL = """
id = "io.example.stacks.mini"
version = "1.2.3"
architectures = ["amd64"]

[distro]
name = "debian"
version = "12"
suite = "bookworm"

[user]
uid = 1000
gid = 1000
home = "/home/cnb"

[build]
packages = ["jq"]

[run]
packages = []
"""


def parse(text: str, name: str = "stacks/mini.toml") -> spec.Stack:
    return spec.parse(text, name)


def edit(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


def test_minimal_stack_file_gets_defaults() -> None:
    s = parse(MINIMAL)
    assert (s.id, s.name, s.version, s.architectures) == ("io.example.stacks.mini", "mini", "1.2.3", ("amd64",))
    assert s.distro == spec.Distro(name="debian", version="12", suite="bookworm", components=("main",))
    assert s.user == spec.User(uid=1000, gid=1000, name="cnb", group="cnb", home="/home/cnb", shell="/bin/bash")
    assert s.build.packages == ("jq",) and s.run.packages == ()
    assert s.files == spec.Files()  # docs pruned, copyright files kept
    assert s.lock_path == Path("stacks/mini.lock")


@pytest.mark.parametrize("name", ["tiny", "bookworm", "bookworm-static"])
def test_shipped_stacks_are_valid_and_locked(name: str) -> None:
    s = spec.load(STACKS / f"{name}.toml")
    assert s.name == name and s.user.uid == 1000 and s.user.gid == 1000
    lock = lockfile.parse((STACKS / f"{name}.lock").read_bytes(), f"{name}.lock")
    lockfile.check_current(lock, s, f"{name}.lock")
    arch = lock.arch("amd64")
    assert arch.base and set(arch.base) <= set(arch.build) and set(arch.base) <= set(arch.run)
    lockfile.check_same_versions(s, arch, name)


def test_bookworm_run_image_has_runtimes_and_nothing_to_compile_with() -> None:
    s = spec.load(STACKS / "bookworm.toml")
    lock = lockfile.parse((STACKS / "bookworm.lock").read_bytes(), "bookworm.lock")
    arch = lock.arch("amd64")
    run = {p.name for p in arch.run}
    build = {p.name: p.version for p in arch.build}
    assert {"python3", "nodejs", "ca-certificates", "tzdata"} <= run
    assert not run & {"gcc", "gcc-12", "cpp", "make", "golang-go", "npm", "python3-pip", "libc6-dev", "binutils"}
    assert {"gcc", "golang-go", "npm", "python3-pip", "git", "make"} <= set(build)
    provides = lockfile.provided(s, arch, "run")
    assert set(provides) == {"python", "node"}
    for runtime, info in provides.items():
        assert build[info["package"]] == info["version"]  # the same runtime builds and runs
        assert re.match(r"^\d+\.\d+(\.\d+)?$", info["upstream"])


@pytest.mark.parametrize("old,new,message", [
    ('id = "io.example.stacks.mini"\n', "", "stacks/mini.toml: field 'id' is missing"),
    ('suite = "bookworm"', "", "stacks/mini.toml: field 'distro.suite' is missing"),
    ('suite = "bookworm"', "suite = 12", "field 'distro.suite' must be a string, not a number"),
    ('uid = 1000', 'uid = "1000"', "field 'user.uid' must be a whole number"),
    ('uid = 1000', 'uid = 0', "field 'user.uid' is 0; expected a number from 1"),
    ('home = "/home/cnb"', 'home = "home"', "field 'user.home' has an invalid value 'home'"),
    ('architectures = ["amd64"]', 'architectures = ["x86"]', "field 'architectures[0]' has an invalid value 'x86'"),
    ('architectures = ["amd64"]', "architectures = []", "field 'architectures' is empty"),
    ('packages = ["jq"]', 'packages = ["jq", "JQ"]', "field 'build.packages[1]' has an invalid value 'JQ'"),
    ('packages = ["jq"]', 'packages = ["jq", 3]', "field 'build.packages[1]' must be a string"),
    ('packages = ["jq"]', 'packages = ["jq", "jq"]', "field 'build.packages' lists 'jq' twice"),
    ('packages = ["jq"]', 'packagez = ["jq"]', "unknown field 'build.packagez' in [build]"),
    ('[run]\npackages = []', '', "table [run] is missing"),
    ('[run]\npackages = []', '[run]\n', "field 'run.packages' is missing"),
    ('version = "1.2.3"', 'version = "1.2.3 beta"', "field 'version' has an invalid value"),
    ('[run]\npackages = []', '[run]\nimage = "docker.io/library/debian:12"', "field 'run.image'"),
    ('[run]\npackages = []', '[run]\npackages = []\nimage = "x@sha256:' + "a" * 64 + '"', "cannot be given together"),
    ('[run]\npackages = []', '[run]\nprovides = { python = "python3" }\nimage = "x@sha256:' + "a" * 64 + '"',
     "field 'run.provides' needs packages"),
    ('suite = "bookworm"', 'suite = "bookworm"\nsecurity-mirror = "http://deb.debian.org/debian-security"',
     "field 'distro.security-mirror' needs distro.mirror"),
    ('suite = "bookworm"', 'suite = "bookworm"\nmirror = "deb.debian.org"', "field 'distro.mirror' has an invalid value"),
    ("[distro]", "[distro]\nflavour = 1", "unknown field 'distro.flavour'"),
    ('id = "io.example.stacks.mini"', 'id = "io.example.stacks.mini"\nlabels = ["a"]', "field 'labels' must be a table"),
    ('[run]\npackages = []', '[run]\npackages = []\nenv = { "1X" = "y" }', "field 'run.env.1X' has an invalid name"),
])
def test_bad_fields_are_named_with_the_file(old: str, new: str, message: str) -> None:
    with pytest.raises(StackFileError) as err:
        parse(edit(old, new))
    assert message in str(err.value)
    assert str(err.value).startswith("stacks/mini.toml: ")


def test_not_toml_and_missing_file_are_clear() -> None:
    with pytest.raises(StackFileError, match=r"^stacks/mini.toml: not valid TOML"):
        parse("id = ")
    with pytest.raises(StackFileError, match="no such stack file"):
        spec.load("/nonexistent/stack.toml")


def test_name_comes_from_the_file_unless_given() -> None:
    assert parse(MINIMAL, "x/My Stack.toml".replace(" ", "-").lower()).name == "my-stack"
    assert parse('name = "other"\n' + MINIMAL).name == "other"
    with pytest.raises(StackFileError, match="not a valid image name"):
        parse(MINIMAL, "x/Bad_Name!.toml")


def test_image_by_digest_and_resolution_inputs() -> None:
    digest = "sha256:" + "b" * 64
    s = parse(edit("[run]\npackages = []", f'[run]\nimage = "docker://registry.example/run@{digest}"'))
    assert s.run.image and not s.run.from_packages and s.build.from_packages
    # env and labels do not need a new lock; packages and the distro do
    base = parse(MINIMAL).resolution_digest()
    assert parse(edit('[build]', '[build]\nenv = { A = "1" }')).resolution_digest() == base
    assert parse(edit('packages = ["jq"]', 'packages = ["jq", "curl"]')).resolution_digest() != base
    assert parse(edit('suite = "bookworm"', 'suite = "trixie"')).resolution_digest() != base


# -- lock files --------------------------------------------------------------------------------


def sample_lock(stack: spec.Stack) -> Lock:
    base = (Package("base-files", "12.4+deb12u10", "amd64"), Package("debconf", "1.5.82", "all"))
    jq = (Package("jq", "1.6-2.1", "amd64"), Package("libjq1", "1.6-2.1", "amd64"))
    return Lock(stack=stack.name, inputs=stack.resolution_digest(), epoch=1700000000,
                arches={"amd64": ArchLock("amd64", base=base, build=base + jq, run=base)})


def test_lock_renders_one_package_a_line_and_parses_back() -> None:
    s = parse(MINIMAL)
    lock = sample_lock(s)
    data = lockfile.render(lock, "stacks/mini.toml")
    text = data.decode()
    assert '    "base-files:amd64=12.4+deb12u10",\n' in text and '    "debconf:all=1.5.82",\n' in text
    assert "source-date-epoch = 1700000000  # 2023-11-14T22:13:20Z" in text
    back = lockfile.parse(data, "mini.lock")
    assert back == lock
    assert lockfile.render(back, "stacks/mini.toml") == data  # stable bytes
    assert back.arch("amd64").added("build") == (Package("jq", "1.6-2.1", "amd64"), Package("libjq1", "1.6-2.1", "amd64"))
    assert back.arch("amd64").added("run") == ()


def test_lock_with_epoch_versions() -> None:
    p = Package.parse("bsdutils:amd64=1:2.38.1-5+deb12u3")
    assert (p.name, p.arch, p.version) == ("bsdutils", "amd64", "1:2.38.1-5+deb12u3")
    assert p.apt_spec == "bsdutils=1:2.38.1-5+deb12u3"
    assert p.deb_filename == "bsdutils_1%3a2.38.1-5+deb12u3_amd64.deb"


def test_stale_and_broken_locks_say_what_to_run() -> None:
    s = parse(MINIMAL)
    lock = sample_lock(s)
    lockfile.check_current(lock, s, "mini.lock")
    changed = parse(edit('packages = ["jq"]', 'packages = ["jq", "curl"]'))
    with pytest.raises(LockError, match=r"mini.lock is out of date.*run `pallet stack lock stacks/mini.toml`"):
        lockfile.check_current(lock, changed, "mini.lock")
    with pytest.raises(LockError, match="field 'amd64.base' has an invalid entry 'nonsense'"):
        lockfile.parse(lockfile.render(lock, "x").replace(b'"debconf:all=1.5.82"', b'"nonsense"'), "mini.lock")
    with pytest.raises(LockError, match="field 'source-date-epoch' is missing"):
        lockfile.parse(b'lock-version = 1\nstack = "mini"\ninputs = "x"\n', "mini.lock")
    with pytest.raises(LockError, match="not a valid lock file"):
        lockfile.parse(b"[[[", "mini.lock")


def test_missing_lock_says_to_lock_first(tmp_path: Path) -> None:
    (tmp_path / "mini.toml").write_text(MINIMAL)
    with pytest.raises(LockError, match=r"no lock file .* run `pallet stack lock .*mini.toml` first"):
        lockfile.load(spec.load(tmp_path / "mini.toml"))


def test_runtime_versions_must_agree_between_the_images() -> None:
    s = parse(edit("[run]\npackages = []", '[run]\npackages = ["python3"]\nprovides = { python = "python3" }')
              .replace('packages = ["jq"]', 'packages = ["python3"]'))
    base = (Package("base-files", "1", "amd64"),)
    good = ArchLock("amd64", base=base, build=base + (Package("python3", "3.11.2-1+b1", "amd64"),),
                    run=base + (Package("python3", "3.11.2-1+b1", "amd64"),))
    lockfile.check_same_versions(s, good, "x")
    assert lockfile.provided(s, good, "run") == {
        "python": {"package": "python3", "version": "3.11.2-1+b1", "upstream": "3.11.2"}}
    bad = ArchLock("amd64", base=base, build=base + (Package("python3", "3.11.2-1", "amd64"),),
                   run=good.run)
    with pytest.raises(LockError, match=r"python3 \(3.11.2-1 in build, 3.11.2-1\+b1 in run\)"):
        lockfile.check_same_versions(s, bad, "x")


@pytest.mark.parametrize("version,upstream", [
    ("3.11.2-1+b1", "3.11.2"), ("18.19.0+dfsg-6~deb12u2", "18.19.0"), ("2:1.19~1", "1.19"), ("1.6-2.1", "1.6"),
    ("2024a-0+deb12u1", "2024"),
])
def test_upstream_version(version: str, upstream: str) -> None:
    assert lockfile.upstream_version(version) == upstream
