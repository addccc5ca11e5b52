"""``pallet builder create``: parsing and printing only (the work is in ``builder.builders``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable


def cmd_builder_create(args: argparse.Namespace) -> int:
    from builder.builders.create import create_builder
    from builder.cli import _options
    from builder.lifecycle.images import DEFAULT_STACK
    from builder.oci import reference as refs

    dst = refs.parse(args.tag)
    say = (lambda line: print(line, file=sys.stderr))
    result = create_builder(args.stack or DEFAULT_STACK, dst, _options(args),
                            buildpacks=[Path(b) for b in args.buildpack or []],
                            order=Path(args.order) if args.order else None,
                            wheel=Path(args.wheel) if args.wheel else None, say=say)
    printed = dst.at_digest(result.descriptor.digest)
    if args.json:
        print(json.dumps({"reference": printed, "digest": result.descriptor.digest, "stack": result.info.stack,
                          "python": result.python, "buildImage": result.info.build_image,
                          "runImage": {"digest": result.info.run_image, "name": result.info.run_name},
                          "buildpacks": list(result.buildpacks)}, indent=2, sort_keys=True))
    else:
        print(printed)
    return 0


def register(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    p = sub.add_parser("builder", help="builder images: a stack's build image with pallet and buildpacks inside",
                       description="Builder images for container-native CI and Kubernetes: inside one, "
                                   "'pallet build' runs the buildpacks in place, unprivileged.")
    bsub = p.add_subparsers(dest="builder_command", metavar="SUBCOMMAND", required=True)
    c = bsub.add_parser("create", parents=[common()], help="make a builder image",
                        description="The stack's build image plus a layer with pallet (for the image's own "
                                    "python3), the built-in and given buildpacks, an order, and the stack's "
                                    "run image; labels name the run image by digest.")
    c.add_argument("-t", "--tag", required=True, metavar="REF", help="where to write the builder image")
    c.add_argument("--stack", metavar="NAME|FILE", help="stack (default: trixie); its build image needs python3")
    c.add_argument("--buildpack", action="append", metavar="DIR", help="add a buildpack (replaces a built-in one "
                                                                      "with its id)")
    c.add_argument("--order", metavar="FILE", help="order.toml for detection (default: the built-in order)")
    c.add_argument("--wheel", metavar="FILE", help="pallet wheel to install (default: built from this checkout)")
    c.set_defaults(func=cmd_builder_create)
