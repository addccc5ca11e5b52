"""Debian packages an app asks for (an ``Aptfile``, or ``[io.pallet.apt] packages`` in
project.toml), resolved once against its stack and handed to the ``pallet/apt`` buildpack.

The stack machinery does the work, not a second apt path: the stack's sources (its mirror, else
the host's), ``PrivateApt`` to resolve (a simulated install on top of exactly what the image has
installed: its own dpkg status), the lock format of stack locks (``Aptfile.lock`` beside the
Aptfile, read by ``lockfile.parse``), and the verified .deb cache (``~/.cache/pallet/debs``).

- Packages whose name ends in ``-dev`` are build-only: they go to the build layer (resolved on
  top of the build image); all others are resolved on top of the run image for the launch
  layer, and are in the build layer too.
- The lock is written when there is none (or by ``pallet apt lock``); a lock whose package lists
  or stack no longer match the Aptfile is refused, as a stack lock out of date with its stack
  file is. A *stale* lock -- the mirror and the package cache lost a locked version, or the run
  image has another stack lock (``stack-lock``) than the one it was resolved on -- follows the
  stack locks' rules and machinery (``stacks.build``): a build resolves again, says ``old -> new``
  and remembers the refresh; ``--locked`` refuses; ``pallet apt lock --check`` reports it.
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
from typing import TYPE_CHECKING, Callable

from builder.errors import PalletError, for_terminal
from builder.stacks import lockfile
from builder.stacks.lockfile import LOCK_VERSION, Package

if TYPE_CHECKING:
    from builder.stacks.lockfile import Change, Lock

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
    from builder.inputfile import check_in_app, read_input
    from builder.lifecycle.tomlio import MAX_TOML, value_at

    aptfile = source / APTFILE
    for name in (APTFILE, LOCK_NAME):   # the lock is read (and written) wherever the list is
        check_in_app(source, source / name, name)
    # bounded, as project.toml is: a package list of gigabytes was read whole into memory
    from_file = (parse_aptfile(read_input(aptfile, APTFILE, MAX_TOML).decode("utf-8", "replace"))
                 if aptfile.is_file() else None)
    from_project = None
    project = source / "project.toml"
    check_in_app(source, project, "project.toml")
    if project.is_file():
        try:
            data = tomllib.loads(read_input(project, "project.toml", MAX_TOML).decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError):
            data = {}  # read_project reports it
        table = value_at(data, "io.pallet.apt", "project.toml")
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
    #: the run image's ``io.pallet.stack.lock`` it was resolved on (what the image had installed);
    #: None in locks written before it was recorded: "unknown", used as is by builds
    stack_lock: str | None = None

    def as_stack_lock(self, kind: str = "both") -> "Lock":
        """The stack lock's shape (only the ``run`` or ``build`` list, or both), so
        ``lockfile.lock_changes`` compares two of them."""
        from builder.stacks.lockfile import ArchLock, Lock

        run = self.run if kind != "build" else ()
        build = self.build if kind != "run" else ()
        return Lock(self.stack, self.inputs, self.epoch, {self.arch: ArchLock(self.arch, build=build, run=run)})


def render_lock(lock: AptLock, where: str) -> bytes:
    """The same format as a stack lock (``lockfile.parse`` reads it), one package a line."""
    def listing(key: str, packages: tuple[Package, ...]) -> list[str]:
        if not packages:
            return [f"{key} = []"]
        return [f"{key} = [", *(f'    "{p}",' for p in sorted(packages)), "]"]

    lines = [f"# The exact Debian packages of {where} on stack {lock.stack!r}, written by pallet.",
             "# Do not edit: `pallet apt lock` resolves the packages again.",
             f"lock-version = {LOCK_VERSION}", f'stack = "{lock.stack}"', f'inputs = "{lock.inputs}"',
             *([f'stack-lock = "{lock.stack_lock}"'] if lock.stack_lock else []),
             f"source-date-epoch = {lock.epoch}", "", f"[{lock.arch}]",
             *listing("build", lock.build), *listing("run", lock.run)]
    return ("\n".join(lines) + "\n").encode()


def parse_lock(data: bytes, path: str, arch: str) -> AptLock:
    from builder.stacks.errors import LockError

    try:
        lock = lockfile.parse(data, path)
        arch_lock = lock.arch(arch)
    except (LockError, KeyError) as exc:
        raise AptfileError(f"{path}: not a usable lock ({exc if isinstance(exc, LockError) else 'no ' + arch}); "
                           "delete it and build again") from None
    stack_lock = tomllib.loads(data.decode()).get("stack-lock")
    if stack_lock is not None and not (isinstance(stack_lock, str)
                                       and re.fullmatch(r"sha256:[0-9a-f]{64}", stack_lock)):
        raise AptfileError(f"{path}: stack-lock must be a sha256 digest; run `pallet apt lock` to write it again")
    return AptLock(lock.stack, lock.inputs, lock.epoch, arch, arch_lock.run, arch_lock.build, stack_lock)


def check_current(lock: AptLock, request: AptRequest, stack: str, suite: str, path: str) -> None:
    if lock.stack != stack:
        raise AptfileError(f"{path} was resolved for stack {lock.stack!r}, and this build is on {stack!r}: delete it "
                           "and build again (or build with --stack " + lock.stack + ")")
    if lock.inputs != request.inputs(suite, lock.arch):
        raise AptfileError(f"{path} is out of date: the package list in {request.where} changed since it was "
                           "written; delete it and build again to resolve the packages again")


def lock_changes(old: AptLock, new: AptLock) -> "list[Change]":
    """``old -> new`` for the launch layer's packages (``(removed)``: the run image has it now),
    then for the build layer's others: the two lists of one lock may differ in which packages
    they hold, not in the versions."""
    from builder.stacks.lockfile import lock_changes as changes

    run = changes(old.as_stack_lock("run"), new.as_stack_lock("run"))
    named = {c.name for c in run}
    return sorted(run + [c for c in changes(old.as_stack_lock("build"), new.as_stack_lock("build"))
                         if c.name not in named])


# -- resolving, downloading, handing over: I/O --------------------------------------------------------


STACK_LOCK_LABEL = "io.pallet.stack.lock"


def _stack_of(run_image, stack_path: Path | None = None) -> tuple[str, Path]:
    """The stack the run image was built from: ``stack_path`` (the build's ``--stack FILE``) when it
    is that stack, else ``stacks/NAME.toml`` by the image's name label."""
    from builder.lifecycle.images import stack_file

    name = run_image.config.config.labels.get("io.pallet.stack.name")
    if not name:
        raise AptfileError("an Aptfile needs a run image of a pallet stack (its io.pallet.stack.name label says "
                           "which mirror and packages to resolve against); this one has none")
    if stack_path is not None:
        from builder.stacks import spec

        if spec.load(stack_path).name == name:
            return name, stack_path
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


def lock_path_of(source: Path) -> Path:
    return source / LOCK_NAME


def read_lock(source: Path, arch: str) -> AptLock | None:
    from builder.inputfile import check_in_app

    path = lock_path_of(source)
    check_in_app(source, path, LOCK_NAME)
    return parse_lock(lockfile.read_lock_bytes(path), str(path), arch) if path.is_file() else None


def record_command(source: Path, stack_path: Path | None = None) -> str:
    """The command that records the lock, as the user would type it (a shipped stack by name)."""
    from builder.errors import PalletError
    from builder.lifecycle.images import stack_file

    where = "" if source.resolve() == Path.cwd() else f" {source}"
    stack = stack_path
    if stack_path is not None:
        try:
            if stack_file(stack_path.stem).resolve() == stack_path.resolve():
                stack = Path(stack_path.stem)
        except PalletError:
            pass
    return f"pallet apt lock{where}" + (f" --stack {stack}" if stack is not None else "")


def stack_moved(lock: AptLock, run_image) -> str | None:
    """Why ``lock`` is stale because of the stack under it (its run image has another lock than the
    one it was resolved on), or None. A lock that does not record it is taken as current."""
    now = run_image.config.config.labels.get(STACK_LOCK_LABEL)
    if lock.stack_lock is None or now is None or now == lock.stack_lock:
        return None
    return f"resolved on another lock of stack {lock.stack!r}: {lock.stack_lock[:19]}, the run image's is {now[:19]}"


class Resolver:
    """Resolving the app's packages against its stack's mirror on top of what its images have
    installed; apt's index is fetched once, on first use."""

    def __init__(self, request: AptRequest, build_image, run_image, work: Path, stack_path: Path | None = None):
        from builder.stacks import spec

        self.request, self.build_image, self.run_image, self.work = request, build_image, run_image, work
        self.stack_name, self.stack_path = _stack_of(run_image, stack_path)
        self.stack = spec.load(self.stack_path)
        self.arch = self.stack.architectures[0]
        self._apt = None

    def apt(self):
        from builder.stacks.apt import PrivateApt, sources_for

        if self._apt is None:
            self._apt = PrivateApt(self.work / "apt", self.arch, sources_for(self.stack.distro, str(self.stack_path)),
                                   self.request.where)
            self._apt.update()
        return self._apt

    def resolve(self, previous: AptLock | None = None) -> AptLock:
        """The lock as the mirror resolves it now; ``previous``'s source-date-epoch is kept when
        the packages did not change (so resolving again without changes gives the same bytes)."""
        a = self.apt()
        request = self.request
        a.check_names(request.packages, "the package list")
        run_status = _dpkg_status_of(self.run_image, self.work / "status-run")
        build_status = _dpkg_status_of(self.build_image, self.work / "status-build")
        run = tuple(sorted(a.simulate(list(request.run), status=run_status))) if request.run else ()
        build = tuple(sorted(a.simulate(list(request.build), status=build_status)))
        epoch = a.newest_release_date() or 0
        if previous is not None and (previous.run, previous.build) == (run, build):
            epoch = previous.epoch
        return AptLock(self.stack_name, request.inputs(self.stack.distro.suite, self.arch), epoch, self.arch, run,
                       build, self.run_image.config.config.labels.get(STACK_LOCK_LABEL))

    def fetch(self, lock: AptLock, cache: Path) -> list[Package]:
        """Put the lock's .deb files in the verified cache; the packages neither the cache nor the
        mirror has (a stale lock), empty when all are there."""
        from builder.stacks import debcache

        wanted = sorted(set(lock.run) | set(lock.build))
        missing = [p for p in wanted if p not in debcache.verified(cache, wanted)]
        if not missing:
            return []
        from builder.stacks.errors import LockError

        a = self.apt()
        gone: list[Package] = []
        try:
            a.download(missing, cache)
        except LockError:  # which ones: each on its own
            gone = [p for p in missing if not self._downloads(p, cache)]
        got = [p for p in missing if p not in gone]
        if got:
            debcache.record_from_index(cache, got, a.stanzas(p.name for p in got))
        if gone:
            return gone
        have = debcache.verified(cache, wanted)
        lost = [str(p) for p in wanted if p not in have]
        if lost:
            raise AptfileError(f"cannot verify the downloaded packages {', '.join(lost)} against the mirror's index")
        return []

    def _downloads(self, package: Package, cache: Path) -> bool:
        from builder.stacks.errors import LockError

        try:
            self.apt().download([package], cache)
        except LockError:
            return False
        return True


def _refresh_key(old: bytes, request: AptRequest, build_image, run_image) -> str:
    h = hashlib.sha256(old)
    h.update(f"\0{request.inputs('', '')}\0{build_image.digest}\0{run_image.digest}".encode())
    return "apt-" + h.hexdigest()


def _remembered(root: Path, key: str, path: Path, arch: str, cache: Path) -> AptLock | None:
    """The lock this stale one was refreshed to on this machine, when its .deb files are all here."""
    from builder.stacks import debcache
    from builder.stacks.build import _refresh_path

    try:
        lock = parse_lock(_refresh_path(root, key).read_bytes(), str(path), arch)
    except (OSError, AptfileError):
        return None
    wanted = sorted(set(lock.run) | set(lock.build))
    return lock if len(debcache.verified(cache, wanted)) == len(wanted) else None


def _stderr(text: str) -> None:
    import sys

    print(f"pallet: {for_terminal(text, multiline=True, limit=None)}", file=sys.stderr, flush=True)


def provide(source: Path, build_image, run_image, platform_dir: Path, say: Callable[[str], None],
            *, locked: bool = False, stack_file: Path | None = None,
            notice: Callable[[str], None] = _stderr) -> AptRequest | None:
    """Resolve (or read the lock of) the app's packages and put the .deb files where the
    ``pallet/apt`` buildpack finds them (``/platform/apt/run``, ``/platform/apt/build``).

    A stale lock (the mirror and the package cache lost a locked version, or the stack's lock
    changed under it) is built as stale stack locks are for a developer: resolved again, the
    lock file untouched, the refresh remembered, ``notice`` told ``old -> new``; ``locked``
    refuses it instead."""
    request = requested(source)
    if request is None:
        return None
    from builder.stacks.api import cache_root
    from builder.stacks.build import _remember_refresh, stale_block

    lock_path = lock_path_of(source)
    root = cache_root()
    cache = root / "debs"
    cache.mkdir(parents=True, exist_ok=True)
    from builder.gc import lease

    lease.hold_for_process(cache, "all")  # pallet prune --debs leaves the package cache to this build
    with tempfile.TemporaryDirectory(prefix="pallet-apt-") as tmp:
        r = Resolver(request, build_image, run_image, Path(tmp), stack_file)
        record = record_command(source, stack_file if r.stack_path == stack_file else None)
        if lock_path.is_file():
            old_bytes = lockfile.read_lock_bytes(lock_path)
            lock = parse_lock(old_bytes, str(lock_path), r.arch)
            check_current(lock, request, r.stack_name, r.stack.distro.suite, str(lock_path))
            why = stack_moved(lock, run_image)
            gone = [] if why else r.fetch(lock, cache)
            if gone:
                why = "the mirror has moved on"
            if why:
                if locked:
                    what = (f"the mirror no longer has {', '.join(map(str, gone))}, nor does the package cache"
                            if gone else why)
                    raise AptfileError(f"{lock_path} is stale: {what}; record the versions it has now with "
                                       f"`{record}`")
                key = _refresh_key(old_bytes, request, build_image, run_image)
                new = _remembered(root, key, lock_path, r.arch, cache)
                if new is None:
                    new = r.resolve(previous=lock)
                    if r.fetch(new, cache):
                        raise AptfileError(f"the mirror does not have the versions it resolves {request.where} to")
                    _remember_refresh(root, key, render_lock(new, request.where))
                notice(stale_block(lock_path, lock_changes(lock, new), record,
                                   written=False, why=why))
                lock = new
        else:
            lock = r.resolve()
            if r.fetch(lock, cache):
                raise AptfileError(f"the mirror does not have the versions it resolves {request.where} to")
            write_lock(lock_path, lock, request.where)
            say(f"{LOCK_NAME}: written ({len(lock.run)} packages to run with, {len(lock.build)} to build with): "
                "commit it")
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
        f"{len(lock.build)} at build time ({r.stack_name}, from {LOCK_NAME})")
    return request


def write_lock(path: Path, lock: AptLock, where: str) -> bool:
    """Write the lock (temp name + rename), only when its bytes change; whether they did."""
    data = render_lock(lock, where)
    if path.is_file() and path.read_bytes() == data:
        return False
    tmp_lock = path.with_name(f".{LOCK_NAME}.{os.getpid()}")
    tmp_lock.unlink(missing_ok=True)   # the app's, whatever it is: a symlink there is not written through
    fd = os.open(tmp_lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp_lock, path)
    return True


@dataclass
class LockCheck:
    path: Path
    old: AptLock | None
    new: AptLock
    changes: "list[Change]"
    why: list[str]  # why the lock on disk is not the current one; empty: current
    written: bool = False

    @property
    def stale(self) -> bool:
        return bool(self.why)


def lock_app(source: Path, build_image, run_image, *, stack_path: Path | None = None,
             write: bool = True) -> LockCheck:
    """``pallet apt lock``: resolve the app's packages now, compare with its lock, write (or not)."""
    request = requested(source)
    if request is None:
        raise AptfileError(f"{source}: no Aptfile (nor [io.pallet.apt] packages in project.toml) to lock")
    path = lock_path_of(source)
    with tempfile.TemporaryDirectory(prefix="pallet-apt-") as tmp:
        r = Resolver(request, build_image, run_image, Path(tmp), stack_path)
        old = None
        why: list[str] = []
        if path.is_file():
            try:
                old = parse_lock(lockfile.read_lock_bytes(path), str(path), r.arch)
                check_current(old, request, r.stack_name, r.stack.distro.suite, str(path))
            except AptfileError as exc:  # another list, another stack, unreadable: resolved from scratch
                why.append(str(exc))
                old = None
        else:
            why.append("no lock yet")
        new = r.resolve(previous=old)
    changes = lock_changes(old, new) if old is not None else []
    if old is not None:
        moved = stack_moved(old, run_image)
        if moved:
            why.append(moved)
        elif old.stack_lock is None and new.stack_lock is not None:
            why.append("the stack lock it was resolved on is not recorded")
        if changes and not moved:
            why.append("the mirror has moved on")
    written = write_lock(path, new, request.where) if write else False
    return LockCheck(path, old, new, changes, why, written)
