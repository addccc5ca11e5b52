"""Phase 1, detect: run each group's ``bin/detect`` and pick the first group that passes
with a valid build plan. Writes ``group.toml`` and ``plan.toml`` for the build phase."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from builder.errors import PalletError
from builder.lifecycle import tomlio
from builder.lifecycle.buildpack import Buildpack, check_runnable
from builder.lifecycle.context import BUILDPACKS, PLATFORM, Context
from builder.lifecycle.detected import FAIL, PASS, DetectResult, GroupTrial, Outcome
from builder.lifecycle.envfiles import user_env_over
from builder.lifecycle.order import Group
from builder.lifecycle.plan import Alternative, Candidate, Resolution, parse_plan, plan_toml, resolve
from builder.lifecycle.process import WORKSPACE

_PLAN_DIR = "/tmp/cnb-detect"


class DetectError(PalletError):
    """No group of buildpacks passed detection (or a buildpack's detect errored)."""

    multiline = True  # one line per group tried


def buildpack_dir_in_sandbox(bp: Buildpack) -> str:
    return f"{BUILDPACKS}/{bp.layers_name}/{bp.version}"


def run_detect(bp: Buildpack, ctx: Context) -> Outcome:
    from builder.lifecycle.sandbox import Bind, Step

    plan_dir = ctx.work_dir / "detect" / bp.layers_name
    shutil.rmtree(plan_dir, ignore_errors=True)
    plan_dir.mkdir(parents=True)
    if ctx.chown_writable and os.geteuid() == 0:
        os.chown(plan_dir, ctx.uid, ctx.gid)
    bp_dir = buildpack_dir_in_sandbox(bp)
    env = dict(ctx.base_env) if bp.clear_env else user_env_over(ctx.base_env, ctx.user_env)
    env.update(ctx.target.env())
    env.update({
        "CNB_BUILDPACK_DIR": bp_dir,
        "CNB_PLATFORM_DIR": PLATFORM,
        "CNB_BUILD_PLAN_PATH": f"{_PLAN_DIR}/plan.toml",
        "CNB_EXEC_ENV": "production",
    })
    if ctx.explain:
        env["PALLET_EXPLAIN"] = "1"
    memo = ctx.detect_memo
    key = memo.key(bp, env, ctx.target.env()) if memo is not None else None  # type: ignore[attr-defined]
    if key is not None:
        hit = memo.get(bp, key)  # type: ignore[union-attr]
        if hit is not None:
            return hit
    step = Step(
        argv=(f"{bp_dir}/bin/detect", PLATFORM, f"{_PLAN_DIR}/plan.toml"),
        env=env, cwd=WORKSPACE, uid=ctx.uid, gid=ctx.gid,
        binds=(Bind(ctx.app_dir, WORKSPACE), Bind(ctx.platform_dir, PLATFORM),
               Bind(bp.path, bp_dir), Bind(plan_dir, _PLAN_DIR, writable=True)),
    )
    check_runnable(bp, "detect", ctx.sandbox)
    lines: list[str] = []
    code = ctx.sandbox.run(step, lines.append)  # type: ignore[attr-defined]
    alternatives: tuple[Alternative, ...] = (Alternative(),)
    if code == PASS:
        plan_file = plan_dir / "plan.toml"
        if os.path.lexists(plan_file) and (plan_file.is_symlink() or plan_file.stat().st_size):
            alternatives = parse_plan(tomlio.read(plan_file, f"buildpack {bp.id}", follow_symlinks=False),
                                      f"buildpack {bp.id}: build plan")
    outcome = Outcome(bp, code, lines, alternatives)
    if key is not None and code in (PASS, FAIL):
        memo.put(key, outcome)  # type: ignore[union-attr]
    return outcome


def detect(groups: list[Group], ctx: Context) -> DetectResult:
    """Try the groups in order; the first whose buildpacks pass with a valid plan wins."""
    result = DetectResult()
    ran: dict[tuple[str, str], Outcome] = {}
    for group in groups:
        _run_concurrently([m.buildpack for m in group], ctx, ran)
        outcomes: list[Outcome] = []
        trial = GroupTrial([(m.buildpack, m.optional) for m in group], outcomes)
        result.trials.append(trial)
        candidates: list[Candidate] = []
        failed_required = False
        for member in group:
            bp = member.buildpack
            target = ctx.target
            if not bp.supports(target.os, target.arch, target.variant, target.distro, target.distro_version,
                               target.stack_id):
                outcome = Outcome(bp, FAIL, [f"does not support target {target.os}/{target.arch} "
                                             f"{target.distro or ''} {target.distro_version or ''}".rstrip()])
            else:
                key = (bp.id, bp.version)
                if key not in ran:
                    ran[key] = run_detect(bp, ctx)
                outcome = ran[key]
            outcomes.append(outcome)
            if outcome.passed:
                candidates.append(Candidate(bp.id, bp.version, member.optional, outcome.alternatives))
            elif not member.optional:
                failed_required = True
                trial.reason = f"{bp.id} did not pass" + (f" (exit {outcome.code})" if outcome.errored else "")
                break
        if failed_required:
            continue
        if not candidates:
            trial.reason = "no buildpack passed"
            continue
        resolution = resolve(candidates)
        if resolution is None:
            trial.reason = "no valid build plan (a requirement is not provided, or a provision not required)"
            continue
        by_key = {(m.buildpack.id, m.buildpack.version): m for m in group}
        for chosen in resolution.group:
            m = by_key[(chosen.id, chosen.version)]
            result.group.append(m.buildpack)
            result.optional.append(m.optional)
        result.resolution = resolution
        return result
    return result


def _run_concurrently(bps: list[Buildpack], ctx: Context, ran: dict[tuple[str, str], Outcome]) -> None:
    """Run the group's detects that have not run yet at once, as the CNB lifecycle does: each is
    a sandbox start and a process or two, mostly waiting. The first runs on this thread (which
    forwards Ctrl-C to its step); an outcome a failed required member makes moot is unused."""
    target = ctx.target
    todo = [bp for bp in dict.fromkeys(bps) if (bp.id, bp.version) not in ran
            and bp.supports(target.os, target.arch, target.variant, target.distro, target.distro_version,
                            target.stack_id)]
    if len(todo) < 2:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(todo) - 1, thread_name_prefix="detect") as pool:
        futures = [(bp, pool.submit(run_detect, bp, ctx)) for bp in todo[1:]]
        ran[(todo[0].id, todo[0].version)] = run_detect(todo[0], ctx)
        for bp, future in futures:
            ran[(bp.id, bp.version)] = future.result()


def write_outputs(result: DetectResult, out_dir: Path) -> None:
    """``group.toml`` and ``plan.toml``, as the CNB platform spec names them."""
    assert result.resolution is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    tomlio.write(out_dir / "group.toml", {"group": [
        {"id": bp.id, "version": bp.version, "api": bp.api, **({"optional": True} if opt else {})}
        for bp, opt in zip(result.group, result.optional)]})
    tomlio.write(out_dir / "plan.toml", plan_toml(result.resolution))


def explain_failure(result: DetectResult) -> str:
    """One line per group: what each buildpack looked for (its detect output), for the error."""
    parts = []
    for i, trial in enumerate(result.trials, 1):
        ids = ", ".join(bp.id + ("?" if opt else "") for bp, opt in trial.members)
        said = "; ".join(f"{o.buildpack.id}: {' / '.join(o.output[-3:]) or ('passed' if o.passed else 'failed')}"
                         for o in trial.outcomes)
        parts.append(f"group {i} [{ids}]: {trial.reason}. {said}")
    return "\n".join(parts)
