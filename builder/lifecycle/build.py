"""Phase 3, build: run each buildpack's ``bin/build`` in order, in the sandbox, with the
environment the previous buildpacks' build layers give, and collect what they left."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from builder import treewalk
from builder.errors import PalletError
from builder.lifecycle import envfiles, tomlio
from builder.lifecycle.envfiles import user_env_over
from builder.lifecycle.buildpack import Buildpack, check_runnable
from builder.lifecycle.cache import Record
from builder.lifecycle.inputs import inputs_key
from builder.lifecycle.context import PLATFORM, Context
from builder.lifecycle.detect import buildpack_dir_in_sandbox
from builder.lifecycle.layers import LaunchInfo, Layer, check_no_symlinks, read_launch, read_layers, read_unmet
from builder.lifecycle.plan import Resolution, buildpack_plan
from builder.lifecycle.process import LAYERS, WORKSPACE

_PLAN_DIR = "/tmp/cnb-plan"


class BuildpackFailed(PalletError):
    """A buildpack's ``bin/build`` exited non-zero."""


@dataclass
class BuildpackOutput:
    buildpack: Buildpack
    layers: list[Layer]
    launch: LaunchInfo
    skipped: bool = False
    inputs_key: str | None = None
    #: What bin/build did to the top of /workspace: name -> symlink target, or None if removed.
    workspace: dict[str, str | None] = field(default_factory=dict)


@dataclass
class BuildResult:
    outputs: list[BuildpackOutput] = field(default_factory=list)


def layers_dir_of(ctx: Context, bp: Buildpack) -> Path:
    return ctx.layers_dir / bp.layers_name


def run_build(bp: Buildpack, plan_entries: list[dict], env: dict[str, str], ctx: Context) -> int:
    from builder.lifecycle.sandbox import Bind, Step

    plan_dir = ctx.work_dir / "plans" / bp.layers_name
    treewalk.rmtree_quiet(plan_dir)
    plan_dir.mkdir(parents=True)
    tomlio.write(plan_dir / "plan.toml", {"entries": plan_entries})
    bp_layers = layers_dir_of(ctx, bp)
    check_no_symlinks(bp_layers, bp.id)  # planted by an earlier buildpack: mkdir and chown would follow it
    bp_layers.mkdir(parents=True, exist_ok=True)
    if ctx.chown_writable and os.geteuid() == 0:
        os.chown(bp_layers, ctx.uid, ctx.gid)
    bp_dir = buildpack_dir_in_sandbox(bp)
    layers_in = f"{LAYERS}/{bp.layers_name}"
    step_env = dict(env)
    step_env.update(ctx.target.env())
    step_env.update({
        "CNB_LAYERS_DIR": layers_in,
        "CNB_BP_PLAN_PATH": f"{_PLAN_DIR}/plan.toml",
        "CNB_BUILDPACK_DIR": bp_dir,
        "CNB_PLATFORM_DIR": PLATFORM,
        "CNB_EXEC_ENV": "production",
    })
    step = Step(
        argv=(f"{bp_dir}/bin/build", layers_in, PLATFORM, f"{_PLAN_DIR}/plan.toml"),
        env=step_env, cwd=WORKSPACE, uid=ctx.uid, gid=ctx.gid,
        binds=(Bind(ctx.app_dir, WORKSPACE, writable=True), Bind(ctx.layers_dir, LAYERS, writable=True),
               Bind(ctx.platform_dir, PLATFORM), Bind(bp.path, bp_dir), Bind(plan_dir, _PLAN_DIR)),
    )
    check_runnable(bp, "build", ctx.sandbox)
    prefix = f"[{bp.id}] "
    return ctx.sandbox.run(step, lambda line: ctx.output(prefix + line))  # type: ignore[attr-defined]


def build(group: list[Buildpack], resolution: Resolution, ctx: Context,
          records: dict[str, Record] | None = None) -> BuildResult:
    """Run the group's buildpacks; BuildpackFailed (its output already shown) on failure.

    ``records`` are the last build's outputs per buildpack (from the build cache): a buildpack
    whose declared inputs are unchanged is not run again (see ``inputs``).
    """
    result = BuildResult()
    env = dict(ctx.base_env)
    served: set[str] = set()
    records = records or {}
    for bp in group:
        entries = buildpack_plan(resolution, bp.id, served)
        step_env = env if bp.clear_env else user_env_over(env, ctx.user_env)
        key = inputs_key(bp, ctx.app_dir, build_image=ctx.build_image, target=ctx.target.env(),
                         plan=entries, env=step_env)
        bp_layers = layers_dir_of(ctx, bp)
        record = records.get(bp.id)
        skipped = key is not None and record is not None and record.key == key and record.reinstate(bp_layers)
        workspace: dict[str, str | None] = {}
        if skipped:
            assert record is not None
            workspace = record.reinstate_workspace(ctx.app_dir)
            ctx.output(f"[{bp.id}] inputs unchanged: reusing its layers (bin/build not run)")
        else:
            before = _top_level(ctx.app_dir) if key is not None else {}
            started = time.perf_counter()
            code = run_build(bp, entries, step_env, ctx)
            if os.environ.get("PALLET_TIMINGS"):
                ctx.output(f"[timings] {bp.id}: {time.perf_counter() - started:.3f} s")
            if code != 0:
                raise BuildpackFailed(f"buildpack {bp.id} {bp.version} failed (exit {code}); its output is above")
            if key is not None:
                workspace = _workspace_changes(before, _top_level(ctx.app_dir))
        unmet = read_unmet(bp_layers, bp.id)
        served |= {e["name"] for e in entries} - unmet
        layers = read_layers(bp_layers, bp.id)
        for layer in layers:
            if layer.types.ignored and layer.path.is_dir():
                # Spec: ignored layers are renamed so later buildpacks cannot come to depend on them.
                target = layer.path.with_name(layer.name + ".ignore")
                treewalk.rmtree_quiet(target)
                layer.path.rename(target)
        build_layers = [(layer.path, f"{LAYERS}/{bp.layers_name}/{layer.name}")
                        for layer in layers if layer.types.build and layer.path.is_dir()]
        env = envfiles.buildpack_build_env(env, build_layers)
        result.outputs.append(BuildpackOutput(bp, layers, read_launch(bp_layers, bp.id), skipped, key, workspace))
    for output in result.outputs:  # a later buildpack may have rewritten an earlier one's directory
        check_no_symlinks(layers_dir_of(ctx, output.buildpack), output.buildpack.id)
    return result


def _top_level(app_dir: Path) -> dict[str, str]:
    """Each top-level entry of the app: ``link:TARGET`` for a symlink, else its inode number."""
    out = {}
    with os.scandir(app_dir) as it:
        for e in it:
            out[e.name] = f"link:{os.readlink(e.path)}" if e.is_symlink() else f"{e.inode()}"
    return out


def _workspace_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, str | None]:
    """Top-level symlinks a buildpack made (or replaced) and entries it removed, so that a skipped
    buildpack's changes to /workspace can be made again (e.g. node_modules -> a layer)."""
    changes: dict[str, str | None] = {name: None for name in before if name not in after}
    for name, what in after.items():
        if what.startswith("link:") and before.get(name) != what:
            changes[name] = what[len("link:"):]
    return changes
