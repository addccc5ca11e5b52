"""``pallet build``: the platform that drives the phases.

    prepare (copy source, platform env, restore cache) -> detect -> build -> export -> save cache

Each phase is its own module and reads what the previous one wrote; this module only wires
them together and owns the work directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

from builder.errors import PalletError, cut, for_terminal
from builder.lifecycle import buildpack as bpmod
from builder.lifecycle import memo
from builder.resources import buildpacks_dir

if TYPE_CHECKING:  # the phases are imported when they run: a memo hit needs none of them
    from builder.lifecycle.context import Context, Target
    from builder.lifecycle.detected import DetectResult
    from builder.lifecycle.order import Group
    from builder.lifecycle.results import ExportResult
    from builder.oci.image import Image

BUILTIN_BUILDPACKS = buildpacks_dir()


def default_cache_root() -> Path:
    from builder.cachedir import cache_root

    return cache_root()


@dataclass
class BuildOptions:
    source: Path
    buildpacks: list[str] = field(default_factory=list)   # ids or directories; empty: detection
    env: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None
    executor: str | None = None   # None: chosen (executors.choose)
    ca_certs: Path | None = None
    output: Callable[[str], None] | None = None
    cache_image: object | None = None   # cacheimage.CacheImageRef: the cache kept in a registry
    locked: bool = False   # a stale Aptfile.lock is refused rather than resolved again
    stack_file: Path | None = None   # --stack FILE: where an Aptfile resolves (default: stacks/NAME.toml)
    notices: list[str] = field(default_factory=list)   # a stale Aptfile.lock's, given again on a memo hit


def builtin_registry() -> bpmod.Registry:
    return bpmod.Registry.from_dirs(BUILTIN_BUILDPACKS)


def _app_buildpack_dir(source: Path, given: str, uri: str) -> Path:
    """The directory a project.toml ``uri`` names, which must be inside the app: project.toml comes
    with the source, which may be anyone's, and a path outside it would probe the host's files
    ("no such directory" or "file not found" says what exists) and run a host directory as a
    buildpack. A buildpack outside the app is the user's to name, with --buildpack."""
    root = source.resolve()
    try:
        path = (root / uri).resolve()
    except (OSError, RuntimeError, ValueError) as e:   # a symlink loop, a NUL byte
        raise PalletError(f"project.toml: buildpack uri {given!r} cannot be resolved: {e}") from None
    if not path.is_relative_to(root):
        raise PalletError(f"project.toml: buildpack uri {given!r} is outside the app: a buildpack from "
                          "elsewhere is named on the command line (--buildpack PATH)")
    return path


def groups_for(options: BuildOptions, registry: bpmod.Registry, project_refs: list) -> list[Group]:
    """Explicit --buildpack (or project.toml buildpacks): one group, in that order; else the
    built-in order (buildpacks/order.toml)."""
    from builder.lifecycle.order import Member, expand, read_order

    explicit: list[bpmod.Buildpack] = []
    for ref in options.buildpacks:
        path = Path(ref)
        if path.is_dir() or "/" in ref and (path / "buildpack.toml").exists():
            bp = bpmod.load(path)
            registry.add(bp)
        else:
            bp = registry.get(ref)
        explicit.append(bp)
    if not explicit:
        for ref in project_refs:
            if ref.uri:
                uri = ref.uri.removeprefix("file://")
                if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", uri):   # https://, docker://, urn:cnb:registry:
                    raise PalletError(f"project.toml: buildpack uri {ref.uri!r} is not a directory: pallet runs "
                                      "buildpacks from directories (a path, or file://) and its own by id")
                bp = bpmod.load(_app_buildpack_dir(options.source, ref.uri, uri))
                registry.add(bp)
            else:
                bp = registry.get(ref.id, ref.version)
            explicit.append(bp)
    if explicit:
        groups: list[Group] = []
        for bp in explicit:
            if bp.is_composite:
                raise PalletError(f"buildpack {bp.id} is composite; name its component buildpacks instead")
        groups.append(tuple(Member(bp, False) for bp in explicit))
        return groups
    order_file = BUILTIN_BUILDPACKS / "order.toml"
    return expand(read_order(order_file), registry)


def cnb_user(build_image: Image) -> tuple[int, int]:
    """The uid and gid the build image says its steps run as: ids a kernel has (int() also
    takes '-5', ' 7', '１０００' and 99999999999, which chown and bubblewrap would fail on)."""
    env = build_image.config.config.env_dict()
    ids = env.get("CNB_USER_ID", "1000"), env.get("CNB_GROUP_ID", "1000")
    if not all(v.isascii() and v.isdigit() and int(v) < 2 ** 32 - 1 for v in ids):
        raise PalletError(f"the build image's CNB_USER_ID/CNB_GROUP_ID ({cut(ids[0], 40)}/{cut(ids[1], 40)}) "
                          "are not user and group ids (0 to 4294967294)")
    return int(ids[0]), int(ids[1])


def target_of(run_image: Image) -> Target:
    from builder.lifecycle.context import Target

    cfg = run_image.config
    labels = cfg.config.labels
    return Target(os=cfg.os or "linux", arch=cfg.architecture or "amd64", variant=cfg.variant,
                  distro=labels.get("io.buildpacks.base.distro.name"),
                  distro_version=labels.get("io.buildpacks.base.distro.version"),
                  stack_id=labels.get("io.buildpacks.base.id") or labels.get("io.buildpacks.stack.id"))


@dataclass
class Prepared:
    ctx: Context
    groups: list[Group]
    work: Path


def prepare(options: BuildOptions, build_image: Image, run_image: Image, work: Path,
            packages: bool = True) -> Prepared:
    from builder.lifecycle.context import Context
    from builder.lifecycle.executors import choose, make_executor
    from builder.lifecycle.project import copy_source, read_project

    project = read_project(options.source)
    registry = builtin_registry()
    groups = groups_for(options, registry, project.buildpacks)
    uid, gid = cnb_user(build_image)
    # The build image's rootfs stays in the machine's cache whatever --cache-dir says: it is
    # keyed by digest and read-only, so cold builds (a fresh --cache-dir) share it.
    executor = make_executor(choose(options.executor), build_image, work, uid, gid, options.ca_certs)
    places = executor.places
    if packages:  # the app's Debian packages (Aptfile): locked beside it first, so the lock is in the app
        from builder.lifecycle import aptfile

        aptfile.provide(options.source, build_image, run_image, places.platform_dir, options.output or _stderr,
                        locked=options.locked, stack_file=options.stack_file,
                        notice=lambda text: _notice(options, text))
    left_out = copy_source(options.source, places.app_dir, project)
    if left_out:
        shown = ", ".join(for_terminal(name) for name in left_out[:6]) + (f" and {len(left_out) - 6} more" if len(left_out) > 6 else "")
        (options.output or _stderr)(f"left out of the app (git ignores them, or a virtualenv): {shown}")
    if executor.chown_writable:
        from builder.lifecycle.executors import _chown_tree

        _chown_tree(places.app_dir, uid, gid)
    env = build_image.config.config.env_dict()
    env["HOME"] = executor.home
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    user_env = {**project.env, **options.env}
    ctx = Context(app_dir=places.app_dir, layers_dir=places.layers_dir, platform_dir=places.platform_dir,
                  work_dir=work / "tmp", sandbox=executor.sandbox, uid=uid, gid=gid, base_env=env,
                  target=target_of(run_image), user_env=user_env, chown_writable=executor.chown_writable,
                  build_image=build_image.digest)
    if options.output:
        ctx.output = options.output
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    ctx.platform_env_files()
    return Prepared(ctx, groups, work)


def cache_key(dst_name: str) -> str:
    return hashlib.sha256(dst_name.encode()).hexdigest()[:24]


def run_detect(options: BuildOptions, build_image: Image, run_image: Image, explain: bool = True) -> DetectResult:
    """``explain``: buildpacks say more (``pallet detect``); without it detection is what a build runs."""
    from builder.lifecycle.detect import detect

    with tempfile.TemporaryDirectory(prefix="pallet-detect-", dir=_tmp_root(options)) as tmp:
        prepared = prepare(options, build_image, run_image, Path(tmp), packages=False)
        prepared.ctx.explain = explain
        return detect(prepared.groups, prepared.ctx)


@contextlib.contextmanager
def _scratch(root: str, prefix: str):
    """A build's scratch directory, removed after the build by a detached ``rm -rf`` (the app
    copy and the uncached layers are thousands of entries: ~0.1 s the build need not wait for).
    It is renamed to prune's trash name first, so nothing can mistake it for a live build's, and
    ``pallet prune`` empties what a killed removal leaves."""
    from builder.gc.areas import TRASH

    path = tempfile.mkdtemp(prefix=prefix, dir=root)
    try:
        yield path
    finally:
        gone = os.path.join(root, f"{TRASH}{os.path.basename(path)}-{os.getpid()}")
        try:
            os.rename(path, gone)
            import subprocess

            subprocess.Popen(["rm", "-rf", "--", gone], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError:
            shutil.rmtree(gone if os.path.exists(gone) else path, ignore_errors=True)


def _tmp_root(options: BuildOptions) -> str:
    root = (options.cache_dir or default_cache_root()) / "work"
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def _memo_base(options: BuildOptions, build_image: Image, run_image: Image, run_name: str) -> str:
    dirs = [BUILTIN_BUILDPACKS] + [Path(b) for b in options.buildpacks if Path(b).is_dir()]
    project_toml = options.source / "project.toml"
    return memo.base_key(buildpack_dirs=dirs, build_image=build_image.digest, run_image=run_image.digest,
                         run_name=run_name, env=dict(options.env),
                         requested=list(options.buildpacks) + ([str(project_toml)] if project_toml.exists() else []))


def _remembered(data: dict):
    """(detect result, processes, default process) as the last build recorded them, or None.
    The group's buildpacks come from the record (no buildpack.toml is read: when the memo
    matches, the buildpacks' files are the ones recorded)."""
    from builder.lifecycle.detected import DetectResult
    from builder.lifecycle.process import Process

    try:
        group = [bpmod.Buildpack(api=b["api"], id=b["id"], version=b["version"], path=Path(b["path"]))
                 for b in data["buildpacks"]]
        processes = [Process(type=p["type"], command=tuple(p["command"]), args=tuple(p["args"]),
                             default=p["type"] == data.get("default"), working_dir=p.get("working-dir"),
                             buildpack_id=p.get("buildpack", "")) for p in data["processes"]]
    except (KeyError, TypeError, ValueError):
        return None
    return DetectResult(group=group, optional=[False] * len(group)), processes, data.get("default")


def _from_memo(data: dict, options: BuildOptions, dst, tag: str) -> tuple[DetectResult, ExportResult] | None:
    """The last build's result, if its image is still in the destination (the tag moved to it)."""
    from builder.errors import NotFoundError
    from builder.lifecycle.results import ExportResult
    from builder.oci.model import Descriptor

    try:
        desc = dst.resolve(data["digest"])
    except (NotFoundError, KeyError):
        return None
    remembered = _remembered(data)
    if remembered is None:
        return None
    try:
        current = dst.resolve(tag).digest if tag is not None else desc.digest
    except NotFoundError:
        current = None
    if current != desc.digest:
        dst.tag(tag, Descriptor(desc.media_type, desc.digest, desc.size))
    result, processes, default = remembered
    return result, ExportResult(desc, processes, default, layers_reused=list(data.get("layers") or []))


def _only_app_changed(data: dict, base: str, options: BuildOptions, run_image: Image, run_name: str, dst,
                      tag: str, cache_root: Path) -> tuple[DetectResult, ExportResult] | None:
    """The last image with a new app layer, when nothing a buildpack reads has changed."""
    from builder.errors import NotFoundError
    from builder.lifecycle import incremental
    from builder.oci.image import load_image

    shape = incremental.Shape.from_json(data.get("shape"))
    if shape is None:
        return None
    remembered = _remembered(data)
    if remembered is None:
        return None
    result, processes, default = remembered
    if incremental.shape_key(base, options.source, shape.reads) != shape.key:
        return None
    try:
        previous = load_image(dst, data["digest"])
    except (NotFoundError, KeyError):
        return None
    exported = incremental.rebuild_app(source=options.source, previous=previous, run_image=run_image,
                                       run_name=run_name, dst=dst, tag=tag, shape=shape, cache_root=cache_root,
                                       work_root=Path(_tmp_root(options)), processes=processes, default=default)
    return None if exported is None else (result, exported)


def run_build(options: BuildOptions, build_image: Image, run_image: Image, run_name: str, dst, tag: str | None,
              cache_name: str) -> tuple[DetectResult, ExportResult]:
    """One platform's app image into ``dst`` (tagged ``tag``; untagged with None, as a
    multi-platform build's manifests are until their index is tagged), with its cache restored
    from and saved to ``--cache-image`` when given. Its build cache and the layer cache are
    leased meanwhile (``pallet prune`` leaves them alone)."""
    from builder.gc import lease

    root = options.cache_dir or default_cache_root()
    with lease.held(root / "builds", cache_key(cache_name)), lease.held(root / "layers", "all"):
        return _run_build_cached(options, build_image, run_image, run_name, dst, tag, cache_name)


def _run_build_cached(options: BuildOptions, build_image: Image, run_image: Image, run_name: str, dst,
                      tag: str | None, cache_name: str) -> tuple[DetectResult, ExportResult]:
    if options.cache_image is None:
        return _run_build(options, build_image, run_image, run_name, dst, tag, cache_name)
    from builder.lifecycle import cacheimage

    say = options.output or _stderr
    cache_root = options.cache_dir or default_cache_root()
    build_dir = cache_root / "builds" / cache_key(cache_name)
    memo_path = cache_root / "memo" / cache_key(cache_name)
    if not build_dir.is_dir() and not memo_path.is_file():  # an empty machine
        cacheimage.restore(options.cache_image, build_dir, memo_path, say)  # type: ignore[arg-type]
    result = _run_build(options, build_image, run_image, run_name, dst, tag, cache_name)
    cacheimage.save(options.cache_image, build_dir, memo_path, cache_root / "layers", say)  # type: ignore[arg-type]
    return result


def _run_build(options: BuildOptions, build_image: Image, run_image: Image, run_name: str, dst, tag: str | None,
               cache_name: str) -> tuple[DetectResult, ExportResult]:
    from builder.lifecycle import incremental

    say = options.output or _stderr
    cache_root = options.cache_dir or default_cache_root()
    memo_path = cache_root / "memo" / cache_key(cache_name)
    base = _memo_base(options, build_image, run_image, run_name)
    build_key = memo.key(base, options.source)
    remembered = memo.load(memo_path)
    if remembered is not None and remembered.get("notices") and options.locked:
        remembered = None  # built on a refreshed (stale) Aptfile.lock: --locked refuses it, in aptfile.provide
    if remembered is not None:
        if remembered["key"] == build_key:
            hit = _from_memo(remembered, options, dst, tag)
            if hit is not None:
                say("inputs unchanged since the last build: its image is reused")
                for text in remembered.get("notices") or []:
                    _notice(options, text)
                return hit
        else:
            hit = _only_app_changed(remembered, base, options, run_image, run_name, dst, tag, cache_root)
            if hit is not None:
                incremental.log_hit(say)
                for text in remembered.get("notices") or []:
                    _notice(options, text)
                memo.save(memo_path, build_key, {**{k: v for k, v in remembered.items() if k != "key"},
                                                 "digest": hit[1].descriptor.digest})
                return hit
    result, exported, built = _run_phases(options, build_image, run_image, run_name, dst, tag, cache_name,
                                          cache_root)
    record = {
        "digest": exported.descriptor.digest,
        "buildpacks": [{"id": bp.id, "version": bp.version, "api": bp.api, "path": str(bp.path)}
                       for bp in result.group],
        "default": exported.default_process,
        "processes": [{"type": p.type, "command": list(p.command), "args": list(p.args), "buildpack": p.buildpack_id,
                       **({"working-dir": p.working_dir} if p.working_dir else {})} for p in exported.processes],
        "layers": exported.layers_reused + exported.layers_written}
    if options.notices:
        record["notices"] = list(options.notices)
    shape = _shape_of(base, build_key, options, result, built)
    if shape is not None:
        record["shape"] = shape.to_json()
    memo.save(memo_path, build_key, record)
    return result, exported


def _shape_of(base: str, build_key: str, options: BuildOptions, result: DetectResult, built):
    """What the next build needs to recognise an app-only change (None if it cannot)."""
    from builder.lifecycle import incremental
    from builder.lifecycle.project import read_project

    if memo.key(base, options.source) != build_key:
        return None  # the source changed while it was being built: remember nothing of it
    if read_project(options.source).buildpacks:
        return None  # buildpacks inside the source: their own files are not in the shape
    detected: dict[tuple[str, str], bpmod.Buildpack] = {}
    for trial in result.trials:
        for outcome in trial.outcomes:
            detected.setdefault((outcome.buildpack.id, outcome.buildpack.version), outcome.buildpack)
    reads = incremental.reads_of(list(detected.values()), result.group)
    if reads is None:
        return None
    return incremental.Shape(incremental.shape_key(base, options.source, reads), reads,
                             [dict(o.workspace) for o in built.outputs])


def _stderr(line: str) -> None:
    import sys

    print(for_terminal(line, multiline=True, limit=None), file=sys.stderr)


def _notice(options: BuildOptions, text: str) -> None:
    """A notice the user must see each build (a stale lock's): stderr, and kept for the memo."""
    import sys

    print(f"pallet: {for_terminal(text, multiline=True, limit=None)}", file=sys.stderr, flush=True)
    if text not in options.notices:
        options.notices.append(text)


def _run_phases(options: BuildOptions, build_image: Image, run_image: Image, run_name: str, dst, tag: str,
                cache_name: str, cache_root: Path):
    from builder.lifecycle import cache as cachemod
    from builder.lifecycle.build import build
    from builder.lifecycle.detect import DetectError, detect, explain_failure, write_outputs
    from builder.lifecycle.export import LAUNCHER_CHOICE, export
    from builder.lifecycle.layercache import LayerCache

    timer = _Timer(options.output or _stderr)
    with _scratch(_tmp_root(options), "pallet-build-") as tmp:
        work = Path(tmp)
        with timer("prepare"):
            prepared = prepare(options, build_image, run_image, work)
            ctx = prepared.ctx
            build_cache = cachemod.BuildCache(cache_root / "builds" / cache_key(cache_name))
        with timer("detect"):
            from builder.lifecycle.detectmemo import FILE, DetectMemo

            ctx.detect_memo = memo_of_detect = DetectMemo(build_cache.root / FILE, ctx.app_dir, ctx.build_image)
            result = detect(prepared.groups, ctx)
            if not result.passed:
                from builder.lifecycle.otherruntimes import hint

                raise DetectError(f"{hint(options.source)}:\n" + explain_failure(result))
            write_outputs(result, work / "out")
            memo_of_detect.save()
        with timer("restore"):
            records = build_cache.restore(result.group, ctx.layers_dir)
        with timer("build"):
            built = build(result.group, result.resolution, ctx, records)
        with timer("export"):
            exported = export(built, ctx.app_dir, run_image, run_name, dst, tag, uid=ctx.uid, gid=ctx.gid,
                              cache=LayerCache(cache_root / "layers"), work_dir=work,
                              launcher=ctx.user_env.get(LAUNCHER_CHOICE, "auto"))
        with timer("save cache"):
            build_cache.save(built, ctx.layers_dir)
        return result, exported, built


class _Timer:
    """``PALLET_TIMINGS=1``: each phase's wall time on stderr (what the build race notes quote)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say if os.environ.get("PALLET_TIMINGS") else None

    @contextlib.contextmanager
    def __call__(self, phase: str):
        if self.say is None:
            yield
            return
        import time

        started = time.perf_counter()
        try:
            yield
        finally:
            self.say(f"[timings] {phase}: {time.perf_counter() - started:.3f} s")
