"""``pallet apt lock``: an app's Aptfile.lock, recorded or checked as ``pallet stack lock`` does a
stack's (parsing and printing only; the work is in ``builder.lifecycle.aptfile``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable


def cmd_apt_lock(args: argparse.Namespace) -> int:
    from builder.cli import _emit
    from builder.cli_build import _images, _stack_path
    from builder.lifecycle import aptfile
    from builder.stacks.lockfile import describe_changes

    args.builder, args.locked, args.cache_dir = None, False, None
    build_image, run_image, _ = _images(args)  # the stack's images, as `pallet build` chooses them
    stack_path = _stack_path(args)
    source = Path(args.src)
    result = aptfile.lock_app(source, build_image, run_image, stack_path=stack_path, write=not args.check)
    lines = describe_changes(result.changes)
    data = {"lock": str(result.path), "stale": result.stale, "why": result.why,
            "stackLock": {"locked": result.old.stack_lock if result.old else None, "image": result.new.stack_lock},
            "changes": [{"arch": c.arch, "package": c.name, "locked": c.old, "mirror": c.new} for c in result.changes]}
    if args.check:
        text = (f"{result.path}: current" if not result.stale else
                "\n".join([f"{result.path}: stale ({'; '.join(result.why)}):", *(f"  {line}" for line in lines),
                           f"  update it with: {aptfile.record_command(source, stack_path)}"]))
        _emit(args, data, text)
        return 1 if result.stale else 0
    data["changed"] = result.written
    text = f"{result.path}: {'written' if result.written else 'unchanged'} ({len(result.new.run)} packages to run " \
           f"with, {len(result.new.build)} to build with)"
    _emit(args, data, "\n".join([text, *(f"  {line}" for line in lines)]))
    return 0


def register(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    apt = sub.add_parser("apt", help="an app's Debian packages (Aptfile): lock them, check the lock",
                         description="An app's Aptfile (or [io.pallet.apt] in project.toml) lists Debian packages; "
                                     "Aptfile.lock pins them, as a stack lock pins a stack's.")
    apt_sub = apt.add_subparsers(dest="apt_command", metavar="SUBCOMMAND", parser_class=type(apt))
    apt_sub.required = True
    p = apt_sub.add_parser("lock", parents=[common()], help="resolve the app's packages and write Aptfile.lock",
                           description="Resolve the Aptfile's packages (dependencies included) against the stack's "
                                       "mirror, on top of what its images have installed, and write Aptfile.lock "
                                       "beside it (temp name + rename; unchanged bytes when nothing changed).")
    p.add_argument("src", nargs="?", default=".", metavar="SOURCE")
    p.add_argument("--stack", metavar="NAME|FILE", help="the stack the app builds on (default: as `pallet build` "
                                                        "chooses)")
    p.add_argument("--build-image", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-image", default=None, help=argparse.SUPPRESS)
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 and list each package `old -> new` when the lock is stale (the "
                        "mirror moved on, or the stack's lock changed)")
    p.set_defaults(func=cmd_apt_lock)
