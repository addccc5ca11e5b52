"""``pallet stack lock|build|packages``: parsing and printing only (the work is in ``builder.stacks``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from builder.errors import UsageError, for_terminal


def _log(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines on stderr when it is a terminal (or with --verbose), never mixed into --json."""
    if getattr(args, "verbose", False) or sys.stderr.isatty():
        return lambda line: print(f"pallet: {line}", file=sys.stderr, flush=True)
    return lambda _: None


def cmd_stack_lock(args: argparse.Namespace) -> int:
    from builder.cli import _emit, _options
    from builder.stacks.lock import lock_stack
    from builder.stacks.spec import load

    stack = load(args.stack_file)
    if args.check:
        return _check_lock(args, stack)
    result = lock_stack(stack, options=_options(args), log=_log(args))
    counts = {arch: {kind: len(a.packages(kind)) for kind in ("build", "run") if kind not in a.images}
              for arch, a in result.lock.arches.items()}
    summary = ", ".join(f"{arch}: " + ", ".join(f"{n} {kind} packages" for kind, n in c.items())
                        for arch, c in counts.items())
    _emit(args, {"lock": str(result.path), "changed": result.changed, "sourceDateEpoch": result.lock.epoch,
                 "packages": counts},
          f"{result.path}: {'written' if result.changed else 'unchanged'} ({summary})")
    return 0


def _check_lock(args: argparse.Namespace, stack: Any) -> int:
    """``stack lock --check``: exit 1, with the ``old -> new`` list, when the mirror has moved on."""
    from builder.cli import _emit, _options
    from builder.stacks import lockfile
    from builder.stacks.lock import resolve_lock

    committed, _ = lockfile.load(stack)
    current = resolve_lock(stack, options=_options(args), log=_log(args), previous=committed)
    changes = lockfile.lock_changes(committed, current)
    lines = lockfile.describe_changes(changes)
    text = (f"{stack.lock_path}: current" if not changes else
            "\n".join([f"{stack.lock_path}: stale ({len(changes)} packages changed on the mirror):",
                       *(f"  {line}" for line in lines), f"  update it with: pallet stack lock {stack.path}"]))
    _emit(args, {"lock": str(stack.lock_path), "stale": bool(changes),
                 "changes": [{"arch": c.arch, "package": c.name, "locked": c.old, "mirror": c.new} for c in changes]},
          text)
    return 1 if changes else 0


def cmd_stack_build(args: argparse.Namespace) -> int:
    from builder.cli import _emit, _options
    from builder.stacks.build import STALE_REFRESH, STALE_REFUSE, STALE_UPDATE, build_stack

    stale = STALE_UPDATE if args.update_lock else STALE_REFRESH if args.refresh else STALE_REFUSE
    build_tag, run_tag = args.build_tag, args.run_tag
    if args.publish:
        from builder.stacks.build import publish_targets

        if build_tag or run_tag:
            raise UsageError("--publish names where both images go: drop --build-tag and --run-tag")
        build_tag, run_tag = publish_targets(args.stack_file, args.publish)
    result = build_stack(args.stack_file, build_tag=build_tag, run_tag=run_tag, no_cache=args.no_cache,
                         options=_options(args), log=_log(args), stale=stale)
    text = "\n".join(result.images[kind].reference for kind in ("build", "run"))
    data = result.to_json()
    if args.publish:  # what a project.toml names to build on these images from any machine
        data["published"] = {"build-image": result.images["build"].reference,
                             "run-image": result.images["run"].reference}
    _emit(args, data, text)
    return 0


def cmd_stack_packages(args: argparse.Namespace) -> int:
    from builder.cli import _emit, _options
    from builder.oci.model import Platform
    from builder.stacks.build import list_packages

    platform = Platform.parse(args.platform) if args.platform else None
    ref, digest, packages = list_packages(args.ref, _options(args), platform)
    rows = [tuple(for_terminal(c, limit=None) for c in (p.name, p.version, p.arch, p.source,  # the image's words
                                                        ", ".join(p.licenses) or "-")) for p in packages]
    header = ("NAME", "VERSION", "ARCH", "SOURCE", "LICENSE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in [header, *rows]]
    _emit(args, {"reference": ref.at_digest(digest), "digest": digest, "packages": [p.to_json() for p in packages]},
          "\n".join(lines))
    return 0


def register(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    stack = sub.add_parser("stack", help="build and run images from pinned Debian packages (stacks/*.toml)",
                           description="Stacks: a stack file lists the Debian packages of a build image and a run "
                                       "image; its lock pins every package; build makes both images, bit for bit "
                                       "reproducibly.")
    stack_sub = stack.add_subparsers(dest="stack_command", metavar="SUBCOMMAND", parser_class=type(stack))
    stack_sub.required = True

    p = stack_sub.add_parser("lock", parents=[common()], help="resolve every package to an exact version",
                             description="Resolve the stack's packages (dependencies included) to exact versions "
                                         "against its mirror (or the host's apt sources) and write STACK.lock next "
                                         "to the stack file.")
    p.add_argument("stack_file", metavar="STACK.toml")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list each package `old -> new` when the mirror has moved on "
                        "(a scheduled job's signal that updates are out)")
    p.add_argument("--verbose", action="store_true", help="show progress on stderr")
    p.set_defaults(func=cmd_stack_lock)

    p = stack_sub.add_parser("build", parents=[common()], help="build the stack's build and run images",
                             description="Assemble the build and run images from the locked packages and write them "
                                         "to the local store as STACK-build:VERSION and STACK-run:VERSION (or where "
                                         "--build-tag/--run-tag say: oci:, docker://, docker-daemon:, "
                                         "docker-archive:). An unchanged stack file and lock come from the cache.")
    p.add_argument("stack_file", metavar="STACK.toml")
    p.add_argument("--build-tag", metavar="REF", help="where to write the build image")
    p.add_argument("--run-tag", metavar="REF", help="where to write the run image")
    p.add_argument("--no-cache", action="store_true", help="assemble from scratch (the result is identical)")
    p.add_argument("--publish", metavar="REPO",
                   help="push both images to a registry, as REPO/NAME-build:VERSION and REPO/NAME-run:VERSION "
                        "(REPO: docker://HOST/PATH), and print them by digest: what a project.toml's "
                        "[io.pallet.stack] names, so builds elsewhere pull the stack instead of assembling it")
    stale = p.add_mutually_exclusive_group()
    stale.add_argument("--update-lock", action="store_true",
                       help="when the lock is stale (the mirror and the package cache no longer have a locked "
                            "version), lock again, write the lock and build, in one step")
    stale.add_argument("--refresh", action="store_true",
                       help="when the lock is stale, build with the mirror's current versions without writing "
                            "the lock (what `pallet build` does), and say what changed")
    p.add_argument("--verbose", action="store_true", help="show progress on stderr")
    p.set_defaults(func=cmd_stack_build)

    p = stack_sub.add_parser("packages", parents=[common()], help="list the Debian packages in an image",
                             description="List every package of an image from the dpkg database it keeps: name, "
                                         "version, architecture, source package and the licences its copyright "
                                         "file states.")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--platform", help="OS/ARCH[/VARIANT] to pick from an index (default: this machine's)")
    p.set_defaults(func=cmd_stack_packages)
