"""The lock: the exact packages of each image of a stack, per architecture. Pure.

``stacks/<name>.lock`` is TOML that people read in reviews, one package a line::

    lock-version = 1
    stack = "bookworm"
    inputs = "sha256:..."            # what the lock was resolved from (see Stack.resolution_digest)
    source-date-epoch = 1747699200   # every timestamp in the images

    [amd64]
    base = ["base-files:amd64=12.4+deb12u10", ...]   # the essential layer, shared by both images
    build = [...]                                     # everything in the build image (base included)
    run = [...]                                       # everything in the run image (base included)

An image declared as an existing image has ``build-image = "sha256:..."`` (the manifest for that
architecture) instead of a package list.
"""

from __future__ import annotations

import hashlib
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.inputfile import read_input
from builder.stacks.errors import LockError
from builder.stacks.spec import BUILD, KINDS, Stack

LOCK_VERSION = 1
_PACKAGE_RE = re.compile(r"^([a-z0-9][a-z0-9+.-]+):([a-z0-9-]+)=([A-Za-z0-9.+~:-]+)$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    arch: str

    def __str__(self) -> str:
        return f"{self.name}:{self.arch}={self.version}"

    @property
    def apt_spec(self) -> str:
        """How to ask apt for exactly this package (the lock is per architecture, so no qualifier)."""
        return f"{self.name}={self.version}"

    @property
    def deb_filename(self) -> str:
        """The file name apt gives the package in /var/cache/apt/archives (``:`` quoted as ``%3a``)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"

    @classmethod
    def parse(cls, text: str) -> "Package":
        m = _PACKAGE_RE.match(text)
        if not m:
            raise ValueError(text)
        return cls(name=m.group(1), version=m.group(3), arch=m.group(2))


@dataclass(frozen=True)
class ArchLock:
    arch: str
    base: tuple[Package, ...] = ()
    build: tuple[Package, ...] = ()
    run: tuple[Package, ...] = ()
    #: manifest digests of images declared by reference, per kind
    images: dict[str, str] = field(default_factory=dict)

    def packages(self, kind: str) -> tuple[Package, ...]:
        return self.build if kind == BUILD else self.run

    def added(self, kind: str) -> tuple[Package, ...]:
        """Packages of an image that are not in the base layer's set (or differ in version)."""
        base = set(self.base)
        return tuple(p for p in self.packages(kind) if p not in base)


@dataclass(frozen=True)
class Lock:
    stack: str
    inputs: str
    epoch: int
    arches: dict[str, ArchLock]

    def arch(self, arch: str) -> ArchLock:
        return self.arches[arch]


# -- rendering and parsing -------------------------------------------------------------------


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(key: str, packages: tuple[Package, ...]) -> list[str]:
    if not packages:
        return [f"{key} = []"]
    return [f"{key} = [", *(f"    {_q(str(p))}," for p in sorted(packages)), "]"]


def render(lock: Lock, stack_file: str) -> bytes:
    """The lock file's bytes: stable (sorted packages, fixed layout), so an unchanged lock diffs empty."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lock.epoch))
    lines = [
        f"# The exact packages of stack {lock.stack!r}, written by `pallet stack lock {stack_file}`.",
        "# Do not edit: run that command again to update it.",
        f"lock-version = {LOCK_VERSION}",
        f"stack = {_q(lock.stack)}",
        f"inputs = {_q(lock.inputs)}",
        f"source-date-epoch = {lock.epoch}  # {created}",
    ]
    for arch in sorted(lock.arches):
        a = lock.arches[arch]
        lines += ["", f"[{arch}]"]
        for kind, digest in sorted(a.images.items()):
            lines.append(f"{kind}-image = {_q(digest)}")
        if a.base:
            lines += _list("base", a.base)
        for kind in KINDS:
            if kind not in a.images:
                lines += _list(kind, a.packages(kind))
    return ("\n".join(lines) + "\n").encode()


def parse(data: bytes, path: str) -> Lock:
    """Parse a lock file's bytes; LockError naming the file and the problem."""
    try:
        d = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: not a valid lock file ({exc}); run `pallet stack lock` again") from None
    except RecursionError:  # tomllib recurses per level of nesting; an app's Aptfile.lock is untrusted
        raise LockError(f"{path}: not a valid lock file (nested too deeply); run `pallet stack lock` again") from None

    def need(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
        if key not in table:
            raise LockError(f"{path}: field '{where}{key}' is missing; run `pallet stack lock` again")
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise LockError(f"{path}: field '{where}{key}' has the wrong type; run `pallet stack lock` again")
        return value

    version = need(d, "lock-version", int, "")
    if version != LOCK_VERSION:
        raise LockError(f"{path}: lock-version {version} is not supported (this pallet writes {LOCK_VERSION}); "
                        "run `pallet stack lock` again")
    stack = need(d, "stack", str, "")
    inputs = need(d, "inputs", str, "")
    epoch = need(d, "source-date-epoch", int, "")
    arches: dict[str, ArchLock] = {}
    for arch, table in d.items():
        if not isinstance(table, dict):
            continue
        lists: dict[str, tuple[Package, ...]] = {}
        images: dict[str, str] = {}
        for key in ("base", *KINDS):
            if key in table:
                items = need(table, key, list, f"{arch}.")
                try:
                    lists[key] = tuple(Package.parse(x) for x in items)
                except (ValueError, TypeError) as exc:
                    raise LockError(f"{path}: field '{arch}.{key}' has an invalid entry {exc.args[0]!r} "
                                    "(expected NAME:ARCH=VERSION); run `pallet stack lock` again") from None
        for kind in KINDS:
            if f"{kind}-image" in table:
                digest = need(table, f"{kind}-image", str, f"{arch}.")
                if not _DIGEST_RE.match(digest):
                    raise LockError(f"{path}: field '{arch}.{kind}-image' is not a sha256 digest")
                images[kind] = digest
            elif kind not in lists:
                raise LockError(f"{path}: field '{arch}.{kind}' is missing; run `pallet stack lock` again")
        arches[arch] = ArchLock(arch=arch, base=lists.get("base", ()), build=lists.get("build", ()),
                                run=lists.get("run", ()), images=images)
    return Lock(stack=stack, inputs=inputs, epoch=epoch, arches=arches)


#: The most of a lock file pallet reads (TOML's bound): real ones are some tens of KB.
MAX_LOCK = 16 << 20


def read_lock_bytes(path: str | Path) -> bytes:
    """A lock file's bytes: a regular file of at most ``MAX_LOCK`` (a FIFO beside a stack file, or
    an app's Aptfile.lock, blocked pallet for ever; a huge one was read whole). FileNotFoundError
    as ``open``'s; InputFileError, one line, for the rest."""
    return read_input(path, "lock file", MAX_LOCK)


def load(stack: Stack) -> tuple[Lock, bytes]:
    """The stack's lock (and its bytes), checked to be current; LockError says what to run."""
    path = stack.lock_path
    try:
        data = read_lock_bytes(path)
    except FileNotFoundError:
        raise LockError(f"{path}: no lock file for {stack.path}; run `pallet stack lock {stack.path}` first") from None
    except OSError as exc:
        raise LockError(f"{path}: cannot read it: {exc.strerror}") from None
    lock = parse(data, str(path))
    check_current(lock, stack, str(path))
    return lock, data


def check_current(lock: Lock, stack: Stack, path: str) -> None:
    """LockError unless the lock was resolved from this stack file's current package lists."""
    relock = f"run `pallet stack lock {stack.path}`"
    if lock.stack != stack.name:
        raise LockError(f"{path} is the lock of stack {lock.stack!r}, not {stack.name!r}; {relock}")
    if lock.inputs != stack.resolution_digest():
        raise LockError(f"{path} is out of date: the package lists, distro or architectures in {stack.path} "
                        f"changed since it was written; {relock}")
    missing = [a for a in stack.architectures if a not in lock.arches]
    if missing:
        raise LockError(f"{path} has no packages for {', '.join(missing)}; {relock}")


def lock_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- what a lock says about runtimes ------------------------------------------------------------


def upstream_version(version: str) -> str:
    """The upstream release of a Debian version: ``2:1.19~1`` -> ``1.19``, ``3.11.2-1+b1`` -> ``3.11.2``."""
    v = version.split(":", 1)[1] if ":" in version else version
    m = re.match(r"\d+(?:\.\d+)*", v)
    return m.group(0) if m else v


def provided(stack: Stack, arch_lock: ArchLock, kind: str) -> dict[str, dict[str, str]]:
    """What an image provides to buildpacks: runtime -> package, Debian version, upstream version.

    The run image's ``provides`` are reported for both images (the build image carries the same
    runtimes at the same versions; the lock checks that).
    """
    packages = {p.name: p for p in arch_lock.packages(kind)}
    out: dict[str, dict[str, str]] = {}
    for runtime, name in sorted(stack.run.provides.items()):
        p = packages.get(name)
        if p is not None:
            p = _versioned(p, packages)
            out[runtime] = {"package": p.name, "version": p.version, "upstream": upstream_version(p.version)}
    return out


def _versioned(meta: Package, packages: dict[str, Package]) -> Package:
    """The interpreter a metapackage stands for, when the lock has it: ``python3`` 3.14.7 depends
    on ``python3.14``, which Debian testing may carry at a newer patch (3.14.8), and that one is
    what runs (and what an app's request is checked against)."""
    upstream = upstream_version(meta.version).split(".")
    if len(upstream) < 2:
        return meta
    return packages.get(re.sub(r"\d+$", "", meta.name) + ".".join(upstream[:2]), meta)


def check_same_versions(stack: Stack, arch_lock: ArchLock, where: str) -> None:
    """Every package in both images has one version, and every provided runtime is in both.

    The run image's runtimes must be exactly what apps were built against.
    """
    if stack.build.packages is None or stack.run.packages is None:
        return
    build = {p.name: p for p in arch_lock.build}
    run = {p.name: p for p in arch_lock.run}
    differ = sorted(f"{n} ({build[n].version} in build, {run[n].version} in run)"
                    for n in set(build) & set(run) if build[n].version != run[n].version)
    if differ:
        raise LockError(f"{where}: packages resolve to different versions in the two images: {', '.join(differ)}")
    for runtime, name in sorted(stack.run.provides.items()):
        for kind, packages in (("run", run), ("build", build)):
            if name not in packages:
                raise LockError(f"{stack.path}: run.provides.{runtime} names package {name!r}, which is not in "
                                f"the {kind} image; add it to {kind}.packages")


def lock_path_for(stack_path: Path) -> Path:
    return stack_path.with_suffix(".lock")


# -- what changed between two locks ---------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Change:
    """One package whose version differs between two locks (``None``: not in that lock)."""

    arch: str
    name: str
    old: str | None
    new: str | None

    def text(self, with_arch: bool = False) -> str:
        name = f"{self.name}:{self.arch}" if with_arch else self.name
        return f"{name} {self.old or '(none)'} -> {self.new or '(removed)'}"


def lock_changes(old: Lock, new: Lock) -> list[Change]:
    """Every package, per architecture, whose version differs between ``old`` and ``new`` (all of
    base, build and run: a name has one version per architecture, ``check_same_versions``)."""
    out: list[Change] = []
    for arch in sorted(set(old.arches) | set(new.arches)):
        before = _versions(old.arches.get(arch))
        after = _versions(new.arches.get(arch))
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                out.append(Change(arch, name, before.get(name), after.get(name)))
    return out


def _versions(arch_lock: ArchLock | None) -> dict[str, str]:
    if arch_lock is None:
        return {}
    return {p.name: p.version for p in (*arch_lock.base, *arch_lock.build, *arch_lock.run)}


def describe_changes(changes: list[Change]) -> list[str]:
    """One line per change, ``name old -> new`` (the architecture named when there are several)."""
    several = len({c.arch for c in changes}) > 1
    return [c.text(with_arch=several) for c in changes]
