"""``pallet stack lock``: resolve a stack file's package lists to exact versions, with apt.

For each architecture, against the stack's sources (its mirror, else the host's apt sources):

1. the essential set, selected exactly as ``mmdebstrap --variant=essential`` selects it, and
   resolved by ``apt-get install --simulate`` on an empty system: the **base** packages;
2. each image's packages, resolved by a simulated install on a system where the base packages
   are installed (a dpkg status file made from their index entries) -- the two steps
   mmdebstrap takes, so the lock is what it will install.

Unknown names are reported all at once before resolving. The lock's ``source-date-epoch`` is
the newest ``Date`` of the suites' Release files, kept from the previous lock when the packages
did not change: locking again without changes rewrites the same bytes.

Images declared by reference are resolved to the manifest of each architecture, by digest.
Nothing is written until everything resolved; the lock file is replaced atomically.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from builder.oci import reference as refs
from builder.oci.stores.layout import atomic_write
from builder.stacks.apt import PrivateApt, Source, essential_pattern, sources_for
from builder.stacks.errors import LockError, StackError
from builder.stacks.lockfile import ArchLock, Lock, Package, check_same_versions, parse, read_lock_bytes, render
from builder.stacks.spec import ARCHITECTURES, KINDS, Stack

Log = Callable[[str], None]


@dataclass(frozen=True)
class LockResult:
    lock: Lock
    path: Path
    changed: bool
    data: bytes


def resolve_arch(stack: Stack, apt: PrivateApt, workdir: Path) -> ArchLock:
    """The packages of each package-based image of ``stack`` for ``apt``'s architecture."""
    arch = apt.arch
    for kind in KINDS:
        names = stack.image(kind).packages
        if names:
            apt.check_names(names, f"{kind}.packages")
    base = tuple(apt.simulate([essential_pattern(stack.distro.suite, arch)]))
    if not base:
        raise StackError(f"{stack.path}: the essential set of {stack.distro.suite} ({arch}) is empty; "
                         "is the suite right and does the mirror have it?")
    status = apt.status_of(base, workdir / f"status-base-{arch}")
    lists: dict[str, tuple[Package, ...]] = {}
    for kind in KINDS:
        names = stack.image(kind).packages
        if names is None:
            continue
        added = apt.simulate(list(names), status=status) if names else []
        lists[kind] = tuple(sorted(set(base) | set(added)))
    return ArchLock(arch=arch, base=tuple(sorted(base)), build=lists.get("build", ()), run=lists.get("run", ()))


def resolve_image(ref_text: str, arch: str, options) -> str:
    """The manifest digest of ``ref_text`` (pinned by digest) for a Debian architecture."""
    from builder.oci.image import load_image
    from builder.oci.model import Platform
    from builder.oci.stores import open_store

    ref = refs.parse(ref_text)
    oci_arch, variant = ARCHITECTURES[arch]
    with open_store(ref, options) as store:
        image = load_image(store, ref.ref, Platform(os="linux", architecture=oci_arch, variant=variant))
        return image.digest


def resolve_lock(stack: Stack, *, options=None, log: Log = lambda _: None,
                 work_root: Path | None = None, previous: Lock | None = None) -> Lock:
    """What the lock of ``stack`` is today, against its sources; nothing is written.

    ``previous`` (default: the lock file beside the stack) keeps its ``source-date-epoch`` when
    the packages did not change, so locking again without changes gives the same bytes.
    """
    sources: list[Source] | None = None
    arches: dict[str, ArchLock] = {}
    newest = 0
    with tempfile.TemporaryDirectory(prefix="pallet-lock-", dir=work_root) as tmp:
        work = Path(tmp)
        for arch in stack.architectures:
            arch_lock = ArchLock(arch=arch)
            if stack.from_packages:
                if sources is None:
                    sources = sources_for(stack.distro, str(stack.path))
                    log("resolving against " + "; ".join(s.line() for s in sources))
                apt = PrivateApt(work / f"apt-{arch}", arch, sources, str(stack.path))
                apt.update()
                newest = max(newest, apt.newest_release_date() or 0)
                arch_lock = resolve_arch(stack, apt, work)
                check_same_versions(stack, arch_lock, str(stack.path))
            images = {kind: resolve_image(stack.image(kind).image or "", arch, options)
                      for kind in KINDS if not stack.image(kind).from_packages}
            arches[arch] = replace(arch_lock, images=images)

    if previous is None:
        previous = _previous(stack)
    epoch = newest or 315532801
    if previous is not None and previous.arches == arches:
        epoch = previous.epoch
    return Lock(stack=stack.name, inputs=stack.resolution_digest(), epoch=epoch, arches=arches)


def render_lock(stack: Stack, lock: Lock) -> bytes:
    return render(lock, _display(stack.path))


def write_lock(stack: Stack, lock: Lock) -> LockResult:
    """Write ``lock`` beside the stack file (atomically, and only if its bytes changed)."""
    data = render_lock(stack, lock)
    path = stack.lock_path
    changed = not path.is_file() or path.read_bytes() != data
    if changed:
        atomic_write(path, data)
    return LockResult(lock=lock, path=path, changed=changed, data=data)


def lock_stack(stack: Stack, *, options=None, log: Log = lambda _: None,
               work_root: Path | None = None) -> LockResult:
    """Resolve ``stack`` and write its lock file (only if the content changed)."""
    return write_lock(stack, resolve_lock(stack, options=options, log=log, work_root=work_root))


def _display(path: Path) -> str:
    """The stack file as the lock's comment names it: relative to its repository's stacks/ dir."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _previous(stack: Stack) -> Lock | None:
    try:
        return parse(read_lock_bytes(stack.lock_path), str(stack.lock_path))
    except (OSError, LockError):
        return None


