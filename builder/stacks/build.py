"""``pallet stack build``: a stack file and its lock -> the build and run images, in any store.

1. Load the stack file and its lock (the lock must be current: same package lists).
2. Look the result up in the cache, keyed by sha256(stack content, lock, builder version). The
   cache is an OCI layout (``~/.cache/pallet/stacks/images``) whose tags are the keys: a hit
   needs no assembly, no network, only a copy to the destination (seconds).
3. Otherwise, per architecture: assemble the trees (``assemble``) and write the layers -- the
   base tree whole, each other tree as its difference to the tree below it (``tree``; the build
   image sits on the run image when it has all of its packages) -- each as soon as its trees
   are done, straight into the cache; then configs and manifests (``image``); an index when the
   stack has several architectures. Images declared by reference are copied in by digest and get
   the stack's labels, env and user. Cache tags are written last.
4. Copy each image to its destination (default: the local store, ``<stack>-build:<version>``
   and ``<stack>-run:<version>``): blobs, then manifest, then the tag. Layouts on the same
   file system get hard links to the cache's verified blobs instead of copies.

``--no-cache`` skips step 2 (the downloaded .deb files are still reused: that is not assembly);
the result is the same image, digest for digest. An interrupted build leaves no tag anywhere
(work directories of dead builds are removed by the next one), so running it again is safe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from builder.errors import NotFoundError, StoreError, UsageError, for_terminal
from builder.oci import mediatypes as mt
from builder.oci import mutate
from builder.oci import reference as refs
from builder.oci.copy import copy_blobs, copy_image
from builder.oci.digest import hasher, split
from builder.oci.image import load_image
from builder.oci.layer import LayerResult, layer_from_entries, write_layer
from builder.oci.model import Descriptor, Index, Manifest, Platform, canonical_json
from builder.oci.stores import StoreOptions, open_store
from builder.oci.stores.layout import LayoutStore
from builder.stacks import STACK_BUILDER_VERSION, lockfile, spec
from builder.stacks import image as stack_image
from builder.stacks.apt import sources_for
from builder.stacks.assemble import BASE, assemble, remove_stale_workdirs, remove_workdir, work_base
from builder.stacks.errors import StackError, StaleLockError
from builder.stacks.spec import KINDS, Stack
from builder.stacks.api import cache_root  # noqa: F401 - also bench_stack's
from builder.stacks.tree import diff_entries

COMPRESSION = "gzip"  # what every registry and Docker engine reads

Log = Callable[[str], None]


def cache_key(stack: Stack, lock_bytes: bytes) -> str:
    payload = canonical_json({"stack": stack.to_json(), "lock": hashlib.sha256(lock_bytes).hexdigest(),
                              "builder": STACK_BUILDER_VERSION, "compression": COMPRESSION})
    return hashlib.sha256(payload).hexdigest()


@dataclass
class ImageResult:
    kind: str
    reference: str
    digest: str
    media_type: str
    size: int  # config + layers, of the first architecture's image
    layers: list[dict[str, object]] = field(default_factory=list)
    provides: dict[str, dict[str, str]] = field(default_factory=dict)
    #: an index's manifests, ``{"platform": "linux/arm64/v8", "digest": ...}`` (empty for one image)
    platforms: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"reference": self.reference, "digest": self.digest, "mediaType": self.media_type,
                "size": self.size, "layers": self.layers, "provides": self.provides,
                **({"platforms": self.platforms} if self.platforms else {})}


@dataclass
class BuildResult:
    stack: str
    images: dict[str, ImageResult]
    cached: bool
    seconds: float
    key: str
    #: packages a refreshed (stale) lock changed, "name:arch old -> new"; empty when the lock was used as is
    changes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"stack": self.stack, "cached": self.cached, "seconds": round(self.seconds, 2), "cacheKey": self.key,
                "lockChanges": self.changes, **{kind: img.to_json() for kind, img in self.images.items()}}


def default_reference(stack: Stack, kind: str) -> str:
    return f"{stack.name}-{kind}:{stack.version}"


def publish_targets(stack_path: str | Path, repo: str) -> tuple[str, str]:
    """Where ``pallet stack build --publish REPO`` pushes: ``REPO/NAME-build:VERSION`` and
    ``REPO/NAME-run:VERSION`` in a registry (tags for humans; builds name them by digest)."""
    stack = spec.load(stack_path)
    ref = refs.parse(repo)
    if ref.transport != refs.REGISTRY:
        raise UsageError(f"--publish {repo}: name a registry repository prefix (docker://HOST/PATH), "
                         "where both images are pushed")
    if ref.tag or ref.digest:
        raise UsageError(f"--publish {repo}: name a repository prefix without a tag or digest; the images are "
                         f"tagged {stack.name}-build:{stack.version} and {stack.name}-run:{stack.version} under it")
    base = f"docker://{ref.host}/{ref.repository}"
    return tuple(f"{base}/{default_reference(stack, kind)}" for kind in ("build", "run"))  # type: ignore[return-value]


#: What to do with a lock that names versions neither the mirror nor the package cache has.
STALE_REFUSE = "refuse"  # an error naming them (`pallet stack build`, `pallet build --locked`)
STALE_REFRESH = "refresh"  # build at the mirror's current versions, lock file untouched (`pallet build`)
STALE_UPDATE = "update"  # lock again, write the lock, build (`pallet stack build --update-lock`)


def _stderr(line: str) -> None:
    import sys

    print(f"pallet: {for_terminal(line, multiline=True, limit=None)}", file=sys.stderr, flush=True)


def build_stack(stack_path: str | Path, *, build_tag: str | None = None, run_tag: str | None = None,
                no_cache: bool = False, options: StoreOptions | None = None, log: Log = lambda _: None,
                stale: str = STALE_REFUSE, notice: Log = _stderr) -> BuildResult:
    """Build (or take from the cache) a stack's images and deliver them.

    ``stale`` says what a stale lock does (see ``STALE_*``); ``notice`` gets the block that names
    each package a refreshed build changed, ``old -> new``, and the command that records them.
    The stack cache and the package cache are leased meanwhile (``pallet prune`` leaves them).
    """
    from builder.gc import lease

    root = cache_root()
    with lease.held(root / "stacks", "images"), lease.held(root / "debs", "all"):
        result = _build_stack(stack_path, build_tag=build_tag, run_tag=run_tag, no_cache=no_cache, options=options,
                              log=log, stale=stale, notice=notice)
        lease.touch(root / "stacks", result.key)  # its last use, for pallet prune --stacks
        return result


def _build_stack(stack_path: str | Path, *, build_tag: str | None, run_tag: str | None, no_cache: bool,
                 options: StoreOptions | None, log: Log, stale: str, notice: Log) -> BuildResult:
    started = time.monotonic()
    stack = spec.load(stack_path)
    lock, lock_bytes = lockfile.load(stack)
    dests = {}
    for kind, given in (("build", build_tag), ("run", run_tag)):
        ref = refs.parse(given or default_reference(stack, kind))
        if ref.digest:
            raise UsageError(f"{given}: the destination takes a tag, not a digest (the digest is the image's)")
        dests[kind] = ref

    key = cache_key(stack, lock_bytes)
    root = cache_root()
    cache = LayoutStore(root / "stacks" / "images")
    found = None if no_cache else cached(cache, key)
    changes: list[lockfile.Change] = []
    if found is None and not no_cache and stale == STALE_REFRESH:
        refreshed = _refreshed(root, key, stack, lock)
        if refreshed is not None:  # refreshed before, on this machine: the same images again
            lock, lock_bytes, changes = refreshed
            found = cached(cache, cache_key(stack, lock_bytes))
            if found is None:
                lock, lock_bytes = lockfile.load(stack)
                changes = []
    was_cached = found is not None
    if found is None:
        try:
            found = build_into_cache(stack, lock, lock_bytes, cache, key, root, options, log)
        except StaleLockError:
            if stale == STALE_REFUSE:
                raise
            stale_key = key
            lock, lock_bytes, changes = _relock(stack, lock, options, log, write=stale == STALE_UPDATE)
            key = cache_key(stack, lock_bytes)
            found = None if no_cache else cached(cache, key)
            if found is None:
                found = build_into_cache(stack, lock, lock_bytes, cache, key, root, options, log)
            if stale == STALE_REFRESH:
                _remember_refresh(root, stale_key, lock_bytes)
    else:
        log(f"unchanged since the last build: using {cache.root} ({key[:12]})")
    if changes:
        notice(stale_notice(stack, changes, written=stale == STALE_UPDATE))

    results = {}
    for kind in KINDS:
        desc = found[kind]
        provides = (lockfile.provided(stack, lock.arch(stack.architectures[0]), kind)
                    if stack.image(kind).from_packages else {})
        results[kind] = deliver(cache, desc, dests[kind], options, kind, provides)
    return BuildResult(stack=stack.name, images=results, cached=was_cached, seconds=time.monotonic() - started,
                       key=key, changes=[c.text(True) for c in changes])


# -- stale locks -------------------------------------------------------------------------------


def stale_notice(stack: Stack, changes: list[lockfile.Change], *, written: bool) -> str:
    """The block a refreshed build prints: what changed, and how to record it."""
    return stale_block(stack.lock_path, changes, f"pallet stack lock {stack.path}", written=written)


def stale_block(lock_path: Path | str, changes: list[lockfile.Change], record: str, *, written: bool,
                why: str = "the mirror has moved on") -> str:
    """The notice of any refreshed lock (a stack's, an Aptfile's): ``old -> new`` a line, and the
    command that records them."""
    head = (f"{lock_path} was stale: locked again at the mirror's current versions and written"
            if written else
            f"{lock_path} is stale ({why}); built with the mirror's current versions:")
    lines = [head, *(f"  {line}" for line in lockfile.describe_changes(changes))]
    if not changes:
        lines.append("  (the same versions)")
    if not written:
        lines.append(f"  record them with: {record}")
    return "\n".join(lines)


def _relock(stack: Stack, old: lockfile.Lock, options: StoreOptions | None, log: Log,
            *, write: bool) -> tuple[lockfile.Lock, bytes, list[lockfile.Change]]:
    from builder.stacks.lock import render_lock, resolve_lock, write_lock

    log("the lock is stale: resolving the same packages at the mirror's current versions")
    new = resolve_lock(stack, options=options, log=log, previous=old)
    data = write_lock(stack, new).data if write else render_lock(stack, new)
    return new, data, lockfile.lock_changes(old, new)


def _refresh_path(root: Path, stale_key: str) -> Path:
    return root / "stacks" / "refreshed" / f"{stale_key}.lock"


def _remember_refresh(root: Path, stale_key: str, lock_bytes: bytes) -> None:
    """Keep the lock a stale one was refreshed to, so the next build of the same stale lock on
    this machine gives the same images without asking the mirror again."""
    from builder.oci.stores.layout import atomic_write

    path = _refresh_path(root, stale_key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lock_bytes)
    except OSError:
        pass


def _refreshed(root: Path, stale_key: str, stack: Stack,
               old: lockfile.Lock) -> tuple[lockfile.Lock, bytes, list[lockfile.Change]] | None:
    try:
        data = _refresh_path(root, stale_key).read_bytes()
        new = lockfile.parse(data, str(stack.lock_path))
        lockfile.check_current(new, stack, str(stack.lock_path))
    except (OSError, StackError):
        return None
    return new, data, lockfile.lock_changes(old, new)


def cached(cache: LayoutStore, key: str) -> dict[str, Descriptor] | None:
    """The cached images for ``key`` if the cache has them whole, else None."""
    out = {}
    try:
        for kind in KINDS:
            desc, data = cache.get_manifest(f"{key}-{kind}")
            for blob in _blobs(cache, desc, data):
                if not cache.has_blob(blob.digest):
                    return None
            out[kind] = desc
    except (NotFoundError, StoreError):
        return None
    return out


def image_blobs(store: LayoutStore, desc: Descriptor) -> list[Descriptor]:
    """Every blob an image (or index) needs besides its own manifest: child manifests, configs, layers."""
    _, data = store.get_manifest(desc.digest)
    return _blobs(store, desc, data)


def _blobs(store: LayoutStore, desc: Descriptor, data: bytes) -> list[Descriptor]:
    if mt.is_index(desc.media_type):
        out: list[Descriptor] = []
        for child in Index.from_bytes(data, desc.media_type).manifests:
            child_desc, child_data = store.get_manifest(child.digest)
            out += [child, *_blobs(store, child_desc, child_data)]
        return out
    m = Manifest.from_bytes(data, desc.media_type)
    return [m.config, *m.layers]


# -- building into the cache ---------------------------------------------------------------------


def remove_stale_layers(cache: LayoutStore) -> None:
    """Delete half-written layers of builds that were killed (their pid is in the name): the
    ``.tmp-layer-PID-...`` name ``_write_one`` gives and the ``..tmp-layer-PID-....N.tmp`` file
    ``write_layer`` writes for it until complete (the one a kill leaves behind)."""
    blobs = cache.root / "blobs"
    if not blobs.is_dir():
        return
    for tmp in [*blobs.glob(".tmp-layer-*"), *blobs.glob("..tmp-layer-*")]:
        try:
            pid = int(tmp.name.lstrip(".").split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError):
            continue


def _write_one(cache: LayoutStore, name: str, write: Callable[[Path], LayerResult]) -> LayerResult:
    """Write a layer next to the cache's blobs, then adopt it (a rename-like hard link)."""
    tmp_dir = cache.root / "blobs"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f".tmp-layer-{os.getpid()}-{threading.get_ident()}-{name}"
    try:
        result = write(tmp)
        cache.put_blob_file(result.descriptor(), tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return result


class LayerWriter:
    """Writes each tree's layer into the cache as soon as the trees it needs are finished.

    The base tree's layer is the whole tree; any other tree's is its difference to the tree
    below it (``Plan.lower``). Jobs run in threads, overlapping with assemblies still running
    (dpkg is mostly one core; the compressor takes what is left).
    """

    def __init__(self, cache: LayoutStore, epoch: int) -> None:
        self.cache = cache
        self.epoch = epoch
        self.ready: dict[str, Path] = {}
        self.results: dict[str, LayerResult] = {}
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.started: set[str] = set()
        self.lock = threading.Lock()

    def tree_ready(self, name: str, path: Path, plan) -> None:
        with self.lock:
            self.ready[name] = path
            for tree, below in plan.lower.items():
                if tree in self.started or tree not in self.ready or (below is not None and below not in self.ready):
                    continue
                self.started.add(tree)
                t = threading.Thread(target=self._run, args=(tree, below), name=f"layer-{tree}")
                self.threads.append(t)
                t.start()

    def _run(self, tree: str, below: str | None) -> None:
        upper = self.ready[tree]
        if below is None:
            def write(dest: Path) -> LayerResult:
                return write_layer(upper, dest, keep_owners=True, mtime=self.epoch, compression=COMPRESSION)
        else:
            lower = self.ready[below]

            def write(dest: Path) -> LayerResult:
                return layer_from_entries(diff_entries(lower, upper), dest, mtime=self.epoch, compression=COMPRESSION)
        try:
            self.results[tree] = _write_one(self.cache, tree, write)
        except BaseException as exc:  # noqa: BLE001 - re-raised by wait()
            self.errors.append(exc)

    def wait(self, raise_errors: bool = True) -> dict[str, LayerResult]:
        """Wait for every started job; the first error of one is raised (unless told not to)."""
        while True:
            with self.lock:
                pending = [t for t in self.threads if t.is_alive()]
            if not pending:
                break
            for t in pending:
                t.join()
        if self.errors and raise_errors:
            raise self.errors[0]
        return self.results


def build_into_cache(stack: Stack, lock: lockfile.Lock, lock_bytes: bytes, cache: LayoutStore, key: str,
                     root: Path, options: StoreOptions | None, log: Log) -> dict[str, Descriptor]:
    epoch = lock.epoch
    ldigest = lockfile.lock_digest(lock_bytes)
    sources = sources_for(stack.distro, str(stack.path)) if stack.from_packages else []
    package_kinds = [k for k in KINDS if stack.image(k).from_packages]
    children: dict[str, list[tuple[Descriptor, Platform]]] = {k: [] for k in KINDS}

    work = None
    remove_stale_layers(cache)
    if stack.from_packages:
        base_dir = work_base(root)
        base_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_workdirs(base_dir)
        work = Path(tempfile.mkdtemp(prefix=f"pallet-stack-{os.getpid()}-", dir=base_dir))
    try:
        for arch in stack.architectures:
            arch_lock = lock.arch(arch)
            layers: dict[str, LayerResult] = {}
            plan = None
            if package_kinds:
                assert work is not None
                arch_work = work / arch
                arch_work.mkdir()
                writer = LayerWriter(cache, epoch)
                started = time.monotonic()
                try:
                    trees = assemble(stack, arch, arch_lock, epoch, sources, arch_work, root / "debs", log,
                                     on_ready=writer.tree_ready, log_dir=root / "stacks" / "logs")
                except BaseException:
                    writer.wait(raise_errors=False)  # they read the trees about to be removed
                    raise
                layers = writer.wait()
                plan = trees.plan
                log(f"assembled and layered {arch} in {time.monotonic() - started:.0f} s")
                remove_workdir(arch_work)
            for kind in KINDS:
                if stack.image(kind).from_packages:
                    assert plan is not None
                    chain = plan.layers(kind)
                    own = [layers[name] for name in chain]
                    comments = [f"{name} packages: {_count(arch_lock, name)}" for name in chain]
                    config = stack_image.assembled_config(
                        stack, kind, arch, diff_ids=[layer.diff_id for layer in own], comments=comments,
                        epoch=epoch, lock_digest=ldigest, provides=lockfile.provided(stack, arch_lock, kind),
                        packages={pkg.name: pkg.version for pkg in arch_lock.packages(kind)})
                    layer_descs = [layer.descriptor() for layer in own]
                else:
                    config, layer_descs = _from_reference(stack, kind, arch_lock.images[kind], cache, options,
                                                          epoch, ldigest)
                config_bytes = config.to_bytes()
                cache.put_blob_bytes(config_bytes, mt.OCI_CONFIG)
                manifest = stack_image.manifest(config_bytes, layer_descs)
                desc = cache.put_manifest(manifest.to_bytes(), manifest.media_type)
                children[kind].append((desc, stack_image.platform(arch)))
    finally:
        if work is not None:
            remove_workdir(work)

    final: dict[str, Descriptor] = {}
    for kind in KINDS:
        if len(children[kind]) == 1:
            final[kind] = children[kind][0][0]
        else:
            index = stack_image.index(children[kind])
            final[kind] = cache.put_manifest(index.to_bytes(), index.media_type)
    for kind in KINDS:  # tags last: a cache entry is whole or absent
        cache.tag(f"{key}-{kind}", final[kind])
    return final


def _count(arch_lock: lockfile.ArchLock, tree: str) -> str:
    """How many packages a tree's layer adds (for the image history)."""
    if tree == BASE:
        return f"{len(arch_lock.base)} (the essential set)"
    return f"{len(arch_lock.packages(tree))} in all"


def _from_reference(stack: Stack, kind: str, digest: str, cache: LayoutStore, options: StoreOptions | None,
                    epoch: int, ldigest: str):
    """An image declared by reference: its layers copied into the cache, its config restamped."""
    ref = refs.parse(stack.image(kind).image or "")
    with open_store(ref, options) as src:
        image = load_image(src, digest)
        manifest = mutate.to_oci(image.manifest)
        copy_blobs(src, cache, list(image.manifest.layers))
        config = stack_image.restamped_config(stack, kind, image.config, epoch=epoch, lock_digest=ldigest)
    return config, list(manifest.layers)


# -- delivering ---------------------------------------------------------------------------------


def _verified_path(cache: LayoutStore, desc: Descriptor) -> Path:
    algo, hexpart = split(desc.digest)
    path = cache.root / "blobs" / algo / hexpart
    h = hasher(desc.digest)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    if f"{algo}:{h.hexdigest()}" != desc.digest or size != desc.size:
        path.unlink(missing_ok=True)
        raise StackError(f"the stack cache has a damaged blob {desc.digest} (removed); build again")
    return path


def _link_tree(cache: LayoutStore, dst: LayoutStore, desc: Descriptor, data: bytes) -> None:
    """Blobs and child manifests of a cached image into a layout, as hard links where possible."""
    if mt.is_index(desc.media_type):
        for child in Index.from_bytes(data, desc.media_type).manifests:
            child_desc, child_data = cache.get_manifest(child.digest)
            _link_tree(cache, dst, child_desc, child_data)
            dst.put_manifest(child_data, child_desc.media_type)
        return
    m = Manifest.from_bytes(data, desc.media_type)
    for blob in (m.config, *m.layers):
        if not dst.has_blob(blob.digest):
            dst.put_blob_file(blob, _verified_path(cache, blob))


def deliver(cache: LayoutStore, desc: Descriptor, dst_ref: refs.Reference, options: StoreOptions | None,
            kind: str, provides: dict[str, dict[str, str]]) -> ImageResult:
    """Copy a cached image to its destination (tag last) and describe what was written."""
    tag = dst_ref.tag or refs.DEFAULT_TAG
    _, data = cache.get_manifest(desc.digest)
    with open_store(dst_ref, options) as dst:
        if isinstance(dst, LayoutStore):
            _link_tree(cache, dst, desc, data)
            out = dst.put_manifest(data, desc.media_type, tag=tag)
        else:
            out, _ = copy_image(cache, desc.digest, dst, tag)
    platforms: list[dict[str, str]] = []
    if mt.is_index(desc.media_type):  # sizes of the first architecture's image
        children = Index.from_bytes(data, desc.media_type).manifests
        platforms = [{"platform": str(c.platform), "digest": c.digest} for c in children]
        child = children[0]
        child_desc, child_data = cache.get_manifest(child.digest)
        manifest = Manifest.from_bytes(child_data, child_desc.media_type)
    else:
        manifest = Manifest.from_bytes(data, desc.media_type)
    layers = [{"digest": layer.digest, "size": layer.size} for layer in manifest.layers]
    size = manifest.config.size + sum(layer.size for layer in manifest.layers)
    return ImageResult(kind=kind, reference=dst_ref.at_digest(out.digest), digest=out.digest,
                       media_type=out.media_type, size=size, layers=layers, provides=provides, platforms=platforms)


# -- inventory of any image ------------------------------------------------------------------------


def list_packages(ref_text: str, options: StoreOptions | None = None, platform: Platform | None = None):
    """(reference, image digest, packages) of the image ``ref_text`` names, from its dpkg database."""
    from builder.stacks.inventory import inventory, read_layer_files

    ref = refs.parse(ref_text)
    with open_store(ref, options) as store:
        image = load_image(store, ref.ref, platform)

        def streams():
            from builder.oci.layerread import LayerTar

            for desc, _ in image.layers():
                with store.open_blob(desc) as stream:
                    yield LayerTar(stream, what=image.layer_name(desc))

        files, links = read_layer_files(streams())
    if "var/lib/dpkg/status" not in files and not any(p.startswith("var/lib/dpkg/status.d/") for p in files):
        raise StackError(f"{ref}: the image has no dpkg database (/var/lib/dpkg/status); "
                         "only images assembled from Debian packages have a package inventory")
    return ref, image.digest, inventory(files, links)
