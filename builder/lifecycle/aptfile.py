"""Debian packages an app asks for (an ``Aptfile``, or ``[io.pallet.apt] packages`` in
project.toml), resolved once against its stack and handed to the ``pallet/apt`` buildpack.

The stack machinery does the work, not a second apt path: the stack's sources (its mirror, else
the host's), ``PrivateApt`` to resolve (a simulated install on top of exactly what the image has
installed: its own dpkg status), the lock format of stack locks (``Aptfile.lock`` beside the
Aptfile, read by ``lockfile.parse``), and the verified .deb cache (``~/.cache/pallet/debs``).

- Packages whose name ends in ``-dev`` are build-only: they go to the build layer (resolved on
  top of the build image); all others are resolved on top of the run image for the launch
  layer, and are in the build layer too.
- The lock is written when there is none; a lock whose package lists or stack no longer match
  the Aptfile is refused (delete it to resolve again), as a stale stack lock is.
- Nothing runs in a chroot: the buildpack extracts the .deb files with ``dpkg-deb`` into its
  layers and records each package's control fields in ``var/lib/dpkg/status.d`` of the layer,
  which is where the SBOM (and ``audit``) finds them. Maintainer scripts do not run.

Parsing and the lock's text are pure; ``provide`` does the I/O.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from builder.errors import PalletError
from builder.stacks.lockfile import LOCK_VERSION, Package

APTFILE = "Aptfile"
LOCK_NAME = "Aptfile.lock"
#: Where the platform hands the .deb files to the buildpack: /platform/apt/{run,build}/.
PLATFORM_SUBDIR = "apt"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class AptfileError(PalletError):
    """An Aptfile (or its lock) that cannot be used as it is; the message says what to change."""


@dataclass(frozen=True)
class AptRequest:
    packages: tuple[str, ...]  # as listed, in order, without duplicates
    where: str  # "Aptfile" or "project.toml [io.pallet.apt]"

    @property
    def run(self) -> tuple[str, ...]:
        return tuple(p for p in self.packages if not is_build_only(p))

    @property
    def build(self) -> tuple[str, ...]:
        return self.packages

    def inputs(self, suite: str, arch: str) -> str:
        """What the lock was resolved from: the lists, the suite and the architecture."""
        text = f"suite {suite}\narch {arch}\nrun {' '.join(sorted(self.run))}\nbuild {' '.join(sorted(self.build))}\n"
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def is_build_only(name: str) -> bool:
    return name.endswith("-dev")


# -- reading what the app asks for: pure ------------------------------------------------------------


def parse_aptfile(text: str, where: str = APTFILE) -> tuple[str, ...]:
    """One package a line; ``#`` comments and blank lines allowed; several names a line are
    accepted too (Heroku's Aptfile allows them). URLs and versions are refused with the line."""
    names: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        for name in line.split():
            if not _NAME_RE.match(name):
                raise AptfileError(f"{where} line {number}: {name!r} is not a Debian package name (one name a "
                                   "line; URLs, versions and options are not supported: versions come from the lock)")
            if name not in names:
                names.append(name)
    return tuple(names)


def requested(source: Path) -> AptRequest | None:
    """The app's package list: ``Aptfile``, or ``[io.pallet.apt] packages`` in project.toml (not both)."""
    aptfile = source / APTFILE
    from_file = parse_aptfile(aptfile.read_text(errors="replace")) if aptfile.is_file() else None
    from_project = None
    project = source / "project.toml"
    if project.is_file():
        try:
            data = tomllib.loads(project.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}  # read_project reports it
        table = data.get("io", {}).get("pallet", {}).get("apt") if isinstance(data.get("io"), dict) else None
        if table is not None:
            packages = table.get("packages") if isinstance(table, dict) else None
            if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
                raise AptfileError("project.toml: [io.pallet.apt] packages must be a list of package names")
            from_project = parse_aptfile("\n".join(packages), "project.toml [io.pallet.apt] packages")
    if from_file is not None and from_project is not None:
        raise AptfileError("both Aptfile and project.toml [io.pallet.apt] list packages: keep one of them")
    if from_file is not None:
        return AptRequest(from_file, APTFILE) if from_file else None
    if from_project:
        return AptRequest(from_project, "project.toml [io.pallet.apt]")
    return None


# -- the lock: pure -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AptLock:
    stack: str
    inputs: str
    epoch: int
    arch: str
    run: tuple[Package, ...]  # added on top of the run image: the launch layer
    build: tuple[Package, ...]  # added on top of the build image: the build layer


def render_lock(lock: AptLock, where: str) -> bytes:
    """The same format as a stack lock (``lockfile.parse`` reads it), one package a line."""
    def listing(key: str, packages: tuple[Package, ...]) -> list[str]:
        if not packages:
            return [f"{key} = []"]
        return [f"{key} = [", *(f'    "{p}",' for p in sorted(packages)), "]"]

    lines = [f"# The exact Debian packages of {where} on stack {lock.stack!r}, written by `pallet build`.",
             "# Do not edit: delete it and build again to resolve the packages again.",
             f"lock-version = {LOCK_VERSION}", f'stack = "{lock.stack}"', f'inputs = "{lock.inputs}"',
             f"source-date-epoch = {lock.epoch}", "", f"[{lock.arch}]",
             *listing("build", lock.build), *listing("run", lock.run)]
    return ("\n".join(lines) + "\n").encode()


def parse_lock(data: bytes, path: str, arch: str) -> AptLock:
    from builder.stacks import lockfile
    from builder.stacks.errors import LockError

    try:
        lock = lockfile.parse(data, path)
        arch_lock = lock.arch(arch)
    except (LockError, KeyError) as exc:
        raise AptfileError(f"{path}: not a usable lock ({exc if isinstance(exc, LockError) else 'no ' + arch}); "
                           "delete it and build again") from None
    return AptLock(lock.stack, lock.inputs, lock.epoch, arch, arch_lock.run, arch_lock.build)


def check_current(lock: AptLock, request: AptRequest, stack: str, suite: str, path: str) -> None:
    if lock.stack != stack:
        raise AptfileError(f"{path} was resolved for stack {lock.stack!r}, and this build is on {stack!r}: delete it "
                           "and build again (or build with --stack " + lock.stack + ")")
    if lock.inputs != request.inputs(suite, lock.arch):
        raise AptfileError(f"{path} is out of date: the package list in {request.where} changed since it was "
                           "written; delete it and build again to resolve the packages again")


# -- resolving, downloading, handing over: I/O --------------------------------------------------------


def _stack_of(run_image) -> tuple[str, Path]:
    from builder.lifecycle.images import stack_file

    name = run_image.config.config.labels.get("io.pallet.stack.name")
    if not name:
        raise AptfileError("an Aptfile needs a run image of a pallet stack (its io.pallet.stack.name label says "
                           "which mirror and packages to resolve against); this one has none")
    return name, stack_file(name)


def _dpkg_status_of(image, dest: Path) -> Path:
    """The image's own dpkg status (what it has installed), read out of its layers."""
    from builder.oci.layerread import LayerTar
    from builder.stacks.inventory import STATUS, read_layer_files

    raw = []
    try:
        for desc, _ in image.layers():
            raw.append((image.store.open_blob(desc), image.layer_name(desc)))
        files, _ = read_layer_files([LayerTar(s, what=name) for s, name in raw], wanted=lambda p: p == STATUS)
    finally:
        for s, _ in raw:
            s.close()
    dest.write_bytes(files.get(STATUS, b""))
    return dest


def provide(source: Path, build_image, run_image, platform_dir: Path,
            say: Callable[[str], None]) -> AptRequest | None:
    """Resolve (or read the lock of) the app's packages and put the .deb files where the
    ``pallet/apt`` buildpack finds them (``/platform/apt/run``, ``/platform/apt/build``)."""
    request = requested(source)
    if request is None:
        return None
    from builder.stacks import debcache, spec
    from builder.stacks.api import cache_root
    from builder.stacks.apt import PrivateApt, sources_for

    stack_name, path = _stack_of(run_image)
    stack = spec.load(path)
    arch = stack.architectures[0]
    lock_path = source / LOCK_NAME
    cache = cache_root() / "debs"
    cache.mkdir(parents=True, exist_ok=True)
    from builder.gc import lease

    lease.hold_for_process(cache, "all")  # pallet prune --debs leaves the package cache to this build
    with tempfile.TemporaryDirectory(prefix="pallet-apt-") as tmp:
        work = Path(tmp)
        apt: PrivateApt | None = None

        def index() -> PrivateApt:
            nonlocal apt
            if apt is None:
                apt = PrivateApt(work / "apt", arch, sources_for(stack.distro, str(path)), request.where)
                apt.update()
            return apt

        if lock_path.is_file():
            lock = parse_lock(lock_path.read_bytes(), str(lock_path), arch)
            check_current(lock, request, stack_name, stack.distro.suite, str(lock_path))
        else:
            a = index()
            a.check_names(request.packages, "the package list")
            run_status = _dpkg_status_of(run_image, work / "status-run")
            build_status = _dpkg_status_of(build_image, work / "status-build")
            run = tuple(sorted(a.simulate(list(request.run), status=run_status))) if request.run else ()
            build = tuple(sorted(a.simulate(list(request.build), status=build_status)))
            lock = AptLock(stack_name, request.inputs(stack.distro.suite, arch), a.newest_release_date() or 0,
                           arch, run, build)
            tmp_lock = lock_path.with_name(f".{LOCK_NAME}.{os.getpid()}")
            tmp_lock.write_bytes(render_lock(lock, request.where))
            os.replace(tmp_lock, lock_path)
            say(f"{LOCK_NAME}: written ({len(run)} packages to run with, {len(build)} to build with): commit it")
        wanted = sorted(set(lock.run) | set(lock.build))
        have = debcache.verified(cache, wanted)
        missing = [p for p in wanted if p not in have]
        if missing:
            from builder.stacks.errors import LockError

            a = index()
            try:
                a.download(missing, cache)
            except LockError as exc:  # the mirror moved on: the message names the versions it lost
                detail = str(exc).split(";", 1)[0]
                raise AptfileError(f"{lock_path}: {detail}, and the package cache does not have them; delete "
                                   f"{LOCK_NAME} and build again to resolve the versions the mirror has now") from None
            debcache.record_from_index(cache, missing, a.stanzas(p.name for p in missing))
            have = debcache.verified(cache, wanted)
            lost = [str(p) for p in wanted if p not in have]
            if lost:
                raise AptfileError(f"cannot verify the downloaded packages {', '.join(lost)} against the mirror's index")
    for kind, packages in (("run", lock.run), ("build", lock.build)):
        dest = platform_dir / PLATFORM_SUBDIR / kind
        dest.mkdir(parents=True, exist_ok=True)
        for p in packages:
            target = dest / p.deb_filename
            try:
                os.link(cache / p.deb_filename, target)
            except OSError:
                shutil.copyfile(cache / p.deb_filename, target)
    say(f"{request.where}: {', '.join(request.packages)} -> {len(lock.run)} Debian packages at run time, "
        f"{len(lock.build)} at build time ({stack_name}, from {LOCK_NAME})")
    return request
