"""Locked packages -> root file system trees, with Debian's ``mmdebstrap``.

One ``mmdebstrap --variant=essential`` run per image that adds packages to the essential set:
every package is named with its locked version (``--include=name=version``) and the essential
set is held to the lock by apt pins, so what is installed is exactly the lock. The run that
installs the least also snapshots its tree right after the essential set is installed (an
``--essential-hook``): that is the **base** tree, the layer both images share. The runs go in
parallel, from the package index the lock was checked against (``--skip=update``) and from a
cache of .deb files (``~/.cache/pallet/debs``) that apt verifies against that index.

Then each tree is made reproducible and finished the same way (``finish_tree``): caches, logs,
device nodes, the host's resolv.conf, hostname and apt proxy settings removed; documentation
pruned as the stack file says (copyright files kept: they carry the licences); the CNB user
added. What dpkg recorded as installed is checked against the lock before any tree is used.
Nothing here follows a symlink inside a tree: its absolute links point into the image.

mmdebstrap runs as root (``--mode=root``), under ``unshare`` in a private mount and PID
namespace: the /proc and /sys it mounts vanish with it, and if pallet dies (even by SIGKILL)
the whole assembly, dpkg and maintainer scripts included, is killed with it. It gets a fixed
environment (``SOURCE_DATE_EPOCH`` from the lock, ``LC_ALL=C.UTF-8``, the proxy variables) so
maintainer scripts see the same thing on every machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import os
import shlex
import shutil
import signal
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from builder.stacks import debcache
from builder.stacks.apt import PrivateApt, Source, host_proxy_options
from builder.stacks.aptrepo import write_repository
from builder.stacks.errors import AssemblyError, StackError, StaleLockError
from builder.stacks.inventory import installed_packages
from builder.stacks.lockfile import ArchLock, Package
from builder.stacks.spec import KINDS, RUN, Files, Stack, User

MMDEBSTRAP = "mmdebstrap"
BASE = "base"

Log = Callable[[str], None]


# -- planning: pure ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One mmdebstrap invocation: the essential set plus ``include``, making the tree ``name``."""

    name: str  # "build", "run", or "base" when no image adds anything
    include: tuple[Package, ...]
    expected: tuple[Package, ...]  # what dpkg must report installed at the end
    snapshot: bool  # copy the tree out after the essential set: the base tree


@dataclass(frozen=True)
class Plan:
    """The runs of one architecture, which tree each image is, and how the trees stack up as layers."""

    runs: tuple[Run, ...]
    image_tree: dict[str, str]  # image kind -> tree name
    lower: dict[str, str | None]  # tree name -> the tree its layer is the difference to (None: whole)

    def layers(self, kind: str) -> list[str]:
        """The trees whose layers make the image, bottom first (``base`` always first)."""
        chain = [self.image_tree[kind]]
        while (below := self.lower[chain[-1]]) is not None:
            chain.append(below)
        return chain[::-1]


def plan_runs(arch_lock: ArchLock, kinds: Iterable[str]) -> Plan:
    """The mmdebstrap runs for the package-based images ``kinds``, and how their trees layer.

    An image that adds nothing to the essential set is the base tree itself (one layer). An
    image whose added packages include all of another's is layered on that one (the build image
    on the run image: both share the run image's layers). The run that installs the least
    takes the base snapshot: it finishes first, so layers can be written while the bigger one
    is still installing.
    """
    runs: list[Run] = []
    image_tree: dict[str, str] = {}
    for kind in kinds:
        added = arch_lock.added(kind)
        if added:
            runs.append(Run(kind, added, arch_lock.packages(kind), False))
            image_tree[kind] = kind
        else:
            image_tree[kind] = BASE
    lower: dict[str, str | None] = {BASE: None}
    if runs:
        runs.sort(key=lambda r: (len(r.include), r.name != RUN))
        placed: list[Run] = []
        for r in runs:
            below = [p for p in placed if set(p.include) <= set(r.include)]
            lower[r.name] = max(below, key=lambda p: len(p.include)).name if below else BASE
            placed.append(r)
        runs = [Run(r.name, r.include, r.expected, i == 0) for i, r in enumerate(runs)]
    else:
        runs = [Run(BASE, (), arch_lock.base, False)]
    return Plan(runs=tuple(runs), image_tree=image_tree, lower=lower)


def pins(packages: Iterable[Package]) -> str:
    """apt preferences that make each locked version the candidate (so the essential set is the lock's)."""
    return "".join(f"Package: {p.name}\nPin: version {p.version}\nPin-Priority: 1001\n\n"
                   for p in sorted(set(packages)))


_SNAPSHOT_EXCLUDED = ("dev", "proc", "sys", "run", "tmp", "var/cache/apt", "var/lib/apt/lists")


def mmdebstrap_argv(run: Run, *, arch: str, suite: str, sources: list[Source], target: Path,
                    snapshot_dir: Path | None, aptopts: Iterable[str] = ()) -> list[str]:
    argv = [MMDEBSTRAP, "--mode=root", "--variant=essential", "--format=directory", f"--architectures={arch}",
            "--skip=check/empty", "--skip=update", "--skip=essential/unlink",
            "--dpkgopt=force-unsafe-io", "--verbose"]
    argv += [f"--aptopt={opt}" for opt in aptopts]
    if run.include:
        argv.append("--include=" + ",".join(p.apt_spec for p in run.include))
    if run.snapshot:
        assert snapshot_dir is not None
        # The tree as the essential set left it, but for what finish_tree empties anyway: the
        # package files and lists we put there, and the mount points (/dev is the host's, bind
        # mounted: its /dev/shm may hold this very tree). tar keeps owners, modes and hard links.
        excludes = " ".join(f"--exclude='./{d}/*'" for d in _SNAPSHOT_EXCLUDED)
        argv.append(f"--essential-hook=tar -C \"$1\" --one-file-system --numeric-owner {excludes} -cf - . | "
                    f"tar -C {shlex.quote(str(snapshot_dir))} --numeric-owner -xpf -")
    argv += [suite, str(target), *(s.line() for s in sources)]
    return argv


# -- finishing a tree: I/O on a directory ----------------------------------------------------

#: Emptied (directories kept): what a running system or the assembly leaves behind.
_EMPTIED = ("dev", "run", "tmp", "var/tmp", "proc", "sys", "var/cache/apt", "var/lib/apt/lists")
#: Mount points and scratch directories: the modes a fresh Debian system has (a snapshot taken
#: while /proc or /sys were mounted would otherwise record the mounted file system's mode).
_DIR_MODES = {"dev": 0o755, "proc": 0o755, "sys": 0o755, "run": 0o755, "tmp": 0o1777, "var/tmp": 0o1777}
#: Removed: logs, caches, host files, and what mmdebstrap puts in place while it works (its apt
#: and dpkg options, which would carry the host's proxy settings into the image).
_REMOVED = ("etc/hostname", "etc/resolv.conf", "etc/apt/sources.list", "etc/apt/preferences.d/pallet-lock.pref",
            "etc/apt/apt.conf.d/00mmdebstrap", "etc/apt/apt.conf.d/99mmdebstrap", "etc/dpkg/dpkg.cfg.d/99mmdebstrap",
            "var/cache/ldconfig/aux-cache", "var/lib/dbus/machine-id", "var/log/dpkg.log",
            "var/log/alternatives.log", "var/log/bootstrap.log")
_REMOVED_GLOBS = (("var/lib/dpkg", "*-old"), ("var/cache/debconf", "*-old"), ("var/log/apt", "*"), ("etc", "*-"))
_FAKE_POLICY_RC_D = b"#!/bin/sh\nexit 101\n"


def inside(root: Path, rel: str) -> Path | None:
    """``root/rel`` if no directory on the way is a symlink, else None.

    A tree is an image's root: its absolute symlinks point into the image, not at the host, so
    nothing here may follow one. (The last component is never followed either: callers lstat.)
    """
    path = root
    parts = [p for p in rel.split("/") if p]
    for part in parts[:-1]:
        path = path / part
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return None
        except FileNotFoundError:
            return None
    return path / parts[-1] if parts else path


def _lexists(path: Path) -> bool:
    try:
        os.lstat(path)
        return True
    except FileNotFoundError:
        return False


def _remove(path: Path | None) -> None:
    if path is None or not _lexists(path):
        return
    if stat.S_ISDIR(os.lstat(path).st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def clean_tree(root: Path) -> None:
    """Remove what differs between two assemblies of the same packages, or between hosts."""
    for rel in _EMPTIED:
        d = inside(root, rel)
        if d is not None and _lexists(d) and stat.S_ISDIR(os.lstat(d).st_mode):
            if os.path.ismount(d):
                raise AssemblyError(f"{d} is still mounted; unmount it (umount -l {d}) and build again")
            for child in list(d.iterdir()):
                _remove(child)
    for rel, mode in _DIR_MODES.items():
        d = inside(root, rel)
        if d is not None and _lexists(d) and stat.S_ISDIR(os.lstat(d).st_mode):
            os.chown(d, 0, 0)
            os.chmod(d, mode)
    for rel in _REMOVED:
        _remove(inside(root, rel))
    for rel_dir, pattern in _REMOVED_GLOBS:
        d = inside(root, rel_dir + "/x")
        d = d.parent if d is not None else None
        if d is not None and _lexists(d) and stat.S_ISDIR(os.lstat(d).st_mode):
            for child in list(d.iterdir()):
                if fnmatch.fnmatchcase(child.name, pattern):
                    _remove(child)
    # mmdebstrap's stand-ins while packages install (a tree snapshotted mid-way still has them)
    sbin = inside(root, "usr/sbin/x")
    if sbin is not None:
        sbin = sbin.parent
        real = sbin / "start-stop-daemon.REAL"
        if _lexists(real) and not real.is_symlink():
            os.replace(real, sbin / "start-stop-daemon")
        policy = sbin / "policy-rc.d"
        if _lexists(policy) and not policy.is_symlink() and policy.read_bytes() == _FAKE_POLICY_RC_D:
            policy.unlink()
    machine_id = inside(root, "etc/machine-id")
    if machine_id is not None and _lexists(machine_id) and not machine_id.is_symlink():
        machine_id.write_bytes(b"")


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def prune(root: Path, files: Files) -> int:
    """Delete files matching ``exclude`` and not ``keep`` (dpkg's path-exclude/path-include rules).

    Directories left empty under an excluded pattern go too. Returns how many files went.
    """
    if not files.exclude:
        return 0
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel_dir = "/" + os.path.relpath(dirpath, root) if dirpath != str(root) else ""
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in filenames + links:
            rel = f"{rel_dir}/{name}"
            if _matches(rel, files.exclude) and not _matches(rel, files.keep):
                os.unlink(os.path.join(dirpath, name))
                removed += 1
        for name in dirnames:
            full = os.path.join(dirpath, name)
            rel = f"{rel_dir}/{name}"
            if name not in links and _matches(rel, files.exclude) and not os.listdir(full):
                os.rmdir(full)
    return removed


def _append_line(path: Path, line: str, first_field: str) -> None:
    """Append an entry to a passwd-style file, keeping its mode and owner; error if the name is taken."""
    text = path.read_text()
    names = {entry.split(":", 1)[0] for entry in text.splitlines() if entry}
    if first_field in names:
        return
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + line + "\n")


def add_user(root: Path, user: User, epoch: int) -> None:
    """The CNB user and group (``/etc/passwd``, ``group``, ``shadow``, ``gshadow``) and its home.

    Written directly, not with useradd: the essential set does not have it, and the shadow
    entry's date must come from SOURCE_DATE_EPOCH rather than today.
    """
    etc = root / "etc"
    passwd, group = etc / "passwd", etc / "group"
    for f in (passwd, group):
        if not _lexists(f) or not stat.S_ISREG(os.lstat(f).st_mode):
            raise AssemblyError(f"{f} is missing from the assembled tree (is base-passwd installed?)")
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2] == str(user.uid) and fields[0] != user.name:
            raise AssemblyError(f"uid {user.uid} is already user {fields[0]!r} in the image; choose another [user] uid")
    for line in group.read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2] == str(user.gid) and fields[0] != user.group:
            raise AssemblyError(f"gid {user.gid} is already group {fields[0]!r} in the image; choose another [user] gid")
    _append_line(group, f"{user.group}:x:{user.gid}:", user.group)
    _append_line(passwd, f"{user.name}:x:{user.uid}:{user.gid}::{user.home}:{user.shell}", user.name)
    for name, line, key in (("gshadow", f"{user.group}:!::", user.group),
                            ("shadow", f"{user.name}:!:{epoch // 86400}:0:99999:7:::", user.name)):
        f = etc / name
        if _lexists(f) and stat.S_ISREG(os.lstat(f).st_mode):
            _append_line(f, line, key)
    parts = [p for p in user.home.split("/") if p]
    home = root
    for i, part in enumerate(parts):
        home = home / part
        if not _lexists(home):
            home.mkdir(mode=0o755)
            os.chmod(home, 0o755)
        elif not stat.S_ISDIR(os.lstat(home).st_mode):
            raise AssemblyError(f"the CNB user's home {user.home}: /{'/'.join(parts[:i + 1])} is not a directory "
                                "in the image")
    os.chown(home, user.uid, user.gid)
    os.chmod(home, 0o755)


def finish_tree(root: Path, stack: Stack, epoch: int) -> None:
    clean_tree(root)
    prune(root, stack.files)
    add_user(root, stack.user, epoch)


def check_installed(root: Path, expected: Iterable[Package], what: str, lock_path: Path) -> None:
    """AssemblyError unless dpkg's database in ``root`` lists exactly the expected packages."""
    status = root / "var" / "lib" / "dpkg" / "status"
    try:
        have = {Package(p.name, p.version, p.arch) for p in installed_packages(status.read_text())}
    except FileNotFoundError:
        raise AssemblyError(f"the {what} tree has no dpkg database ({status})") from None
    want = set(expected)
    extra, missing = sorted(have - want), sorted(want - have)
    if extra or missing:
        parts = []
        if extra:
            parts.append("installed but not locked: " + ", ".join(map(str, extra)))
        if missing:
            parts.append("locked but not installed: " + ", ".join(map(str, missing)))
        raise AssemblyError(f"the {what} image does not match {lock_path} ({'; '.join(parts)}); "
                            f"run `pallet stack lock` again")


# -- running mmdebstrap: I/O -----------------------------------------------------------------


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Kill the child when pallet dies (even by SIGKILL), so no assembly outlives its build."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _assembly_env(epoch: int) -> dict[str, str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
           "SOURCE_DATE_EPOCH": str(epoch), "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}
    for key in ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def check_can_assemble() -> None:
    if shutil.which(MMDEBSTRAP) is None:
        raise StackError("mmdebstrap is not installed; stacks are assembled with it (apt-get install mmdebstrap)")
    if os.geteuid() != 0:
        raise StackError("building a stack from packages needs root (mmdebstrap --mode=root); run it with sudo")


def _run_logged(argv: list[str], log_path: Path, env: dict[str, str], what: str) -> None:
    if shutil.which("unshare"):
        argv = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child=SIGKILL", *argv]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=_set_pdeathsig)
        try:
            code = proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if code != 0:
        lines = log_path.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if ln.startswith("E: ")] or lines[-5:]
        raise AssemblyError(f"mmdebstrap failed to assemble the {what} tree: {' | '.join(errors[-4:])} "
                            f"(full log: {log_path})")


def _place_debs(packages: Iterable[Package], cache: Path, archives: Path) -> None:
    """Put the cached .deb files where apt in the chroot looks first (hard links where possible)."""
    archives.mkdir(parents=True, exist_ok=True)
    (archives / "partial").mkdir(exist_ok=True)
    for p in packages:
        src = cache / p.deb_filename
        if not src.is_file():
            continue  # apt downloads it
        dst = archives / p.deb_filename
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)


def _copy_lists(lists: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "partial").mkdir(exist_ok=True)
    for f in lists.iterdir():
        if f.is_file() and f.name != "lock":
            shutil.copyfile(f, dest / f.name)


def with_cached_packages(stack: Stack, gone: list[Package], sources: list[Source], deb_cache: Path,
                         repo: Path) -> list[Source]:
    """``sources`` plus a repository of the cache's verified copies of ``gone`` (locked versions the
    mirror dropped); StaleLockError naming those the cache cannot vouch for."""
    have = debcache.verified(deb_cache, gone)
    missing = [p for p in gone if p not in have]
    if missing:
        names = ", ".join(map(str, missing))
        raise StaleLockError(
            f"{stack.lock_path} is stale: the mirror no longer has {names}, nor does the package cache; "
            f"lock the versions it has now (`pallet stack lock {stack.path}`, or `pallet stack build "
            f"--update-lock {stack.path}` to lock and build in one step)", tuple(str(p) for p in missing))
    write_repository(repo, have.values(), suite=stack.distro.suite)
    return [*sources, Source(f"file:{repo}", stack.distro.suite, ("main",), trusted=True)]


def fetch_debs(apt: PrivateApt, packages: Iterable[Package], cache: Path) -> int:
    """Download into the cache every package it does not have; returns how many were fetched.

    Downloads land in a private directory first and move in whole, so an interrupted download
    leaves no partial file under a package's name.
    """
    cache.mkdir(parents=True, exist_ok=True)
    packages = sorted(set(packages))
    todo = [p for p in packages if not (cache / p.deb_filename).is_file()]
    unrecorded = [p for p in packages if debcache.recorded_sha256(cache, p) is None]
    if not todo:
        if unrecorded:  # cached by an older pallet: vouch for them while the index has them
            debcache.record_from_index(cache, unrecorded, apt.stanzas(p.name for p in unrecorded))
        return 0
    partial = cache / f".partial-{os.getpid()}-{threading.get_ident()}"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    try:
        apt.download(todo, partial)
        for f in partial.iterdir():
            if f.suffix == ".deb":
                os.replace(f, cache / f.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    # apt checked each download against the index: keep the index's SHA256 beside the file
    debcache.record_from_index(cache, unrecorded, apt.stanzas(p.name for p in unrecorded))
    return len(todo)


@dataclass
class Trees:
    """The finished trees of one architecture, by name (``base``, ``build``, ``run``), and the plan."""

    paths: dict[str, Path]
    plan: Plan

    def of(self, kind: str) -> Path:
        return self.paths[self.plan.image_tree[kind]]


def assemble(stack: Stack, arch: str, arch_lock: ArchLock, epoch: int, sources: list[Source],
             workdir: Path, deb_cache: Path, log: Log,
             on_ready: Callable[[str, Path, Plan], None] = lambda *_: None, log_dir: Path | None = None) -> Trees:
    """Assemble, finish and check the trees of the package-based images of one architecture.

    ``on_ready(name, path, plan)`` is called as soon as each tree is finished and checked (from
    the thread that assembled it), so its layer can be written while other trees assemble.
    """
    check_can_assemble()
    kinds = [k for k in KINDS if stack.image(k).from_packages]
    everything = sorted(set(arch_lock.base).union(*(arch_lock.packages(k) for k in kinds)))

    apt = PrivateApt(workdir / "apt", arch, sources, str(stack.path))
    apt.update()
    gone = apt.missing(everything)
    if gone:
        sources = with_cached_packages(stack, gone, sources, deb_cache, workdir / "cached-packages")
        log(f"{len(gone)} locked packages that the mirror no longer has come from the package cache "
            f"({deb_cache}), verified by the SHA256 their index gave")
        apt = PrivateApt(workdir / "apt-cached", arch, sources, str(stack.path))
        apt.update()
    fetched = fetch_debs(apt, everything, deb_cache)
    if fetched:
        log(f"downloaded {fetched} packages into {deb_cache}")

    plan = plan_runs(arch_lock, kinds)
    paths: dict[str, Path] = {}
    aptopts = host_proxy_options()
    base_dir = workdir / "tree-base"
    base_dir.mkdir()
    paths[BASE] = base_dir
    expected = {BASE: arch_lock.base, **{r.name: r.expected for r in plan.runs}}

    def ready(name: str) -> None:
        finish_tree(paths[name], stack, epoch)
        check_installed(paths[name], expected[name], f"{name} ({arch})", stack.lock_path)
        on_ready(name, paths[name], plan)

    def one(run: Run) -> None:
        target = base_dir if run.name == BASE else workdir / f"tree-{run.name}"
        if target != base_dir:
            target.mkdir()
            paths[run.name] = target
        _place_debs((*arch_lock.base, *run.include), deb_cache, target / "var/cache/apt/archives")
        _copy_lists(apt.lists_dir, target / "var/lib/apt/lists")
        prefs = target / "etc/apt/preferences.d"
        prefs.mkdir(parents=True, exist_ok=True)
        (prefs / "pallet-lock.pref").write_text(pins(arch_lock.base))
        argv = mmdebstrap_argv(run, arch=arch, suite=stack.distro.suite, sources=sources, target=target,
                               snapshot_dir=base_dir if run.snapshot else None, aptopts=aptopts)
        started = time.monotonic()
        log(f"assembling the {run.name} tree for {arch}: {len(run.expected)} packages")
        logs = log_dir or workdir
        logs.mkdir(parents=True, exist_ok=True)
        _run_logged(argv, logs / f"mmdebstrap-{stack.name}-{run.name}-{arch}.log", _assembly_env(epoch),
                    f"{run.name} ({arch})")
        log(f"assembled the {run.name} tree for {arch} in {time.monotonic() - started:.0f} s")
        if run.snapshot:
            ready(BASE)
        ready(run.name)

    errors: list[BaseException] = []

    def guarded(run: Run) -> None:
        try:
            one(run)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(r,), name=f"assemble-{r.name}") for r in plan.runs[1:]]
    for t in threads:
        t.start()
    guarded(plan.runs[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return Trees(paths=paths, plan=plan)


# -- work directories ------------------------------------------------------------------------


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                out.append(point)
    return sorted(out, key=len, reverse=True)


def remove_workdir(path: Path) -> None:
    """Delete a work directory, unmounting first anything an interrupted assembly left mounted."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "--lazy", point], capture_output=True)
    if _mounts_under(path):
        raise AssemblyError(f"cannot remove {path}: something is still mounted under it")
    shutil.rmtree(path, ignore_errors=True)


def remove_stale_workdirs(base: Path, prefix: str = "pallet-stack-") -> None:
    """Remove work directories of builds whose process is gone (killed, or the machine rebooted)."""
    if not base.is_dir():
        return
    for d in base.iterdir():
        if not d.name.startswith(prefix) or not d.is_dir():
            continue
        try:
            pid = int(d.name[len(prefix):].split("-", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        remove_workdir(d)


def work_base(cache_root: Path, min_free: int = 8 << 30) -> Path:
    """Where trees are assembled: ``$PALLET_STACK_TMPDIR``, else /dev/shm when it has room, else the cache.

    A tmpfs halves assembly time on slow disks (dpkg writes many small files), and nothing
    there needs to survive the build.
    """
    env = os.environ.get("PALLET_STACK_TMPDIR")
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        st = os.statvfs(shm)
        if stat.S_ISDIR(os.stat(shm).st_mode) and st.f_bavail * st.f_frsize >= min_free and os.access(shm, os.W_OK):
            return shm
    return cache_root / "work"
