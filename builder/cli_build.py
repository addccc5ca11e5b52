"""``pallet build`` and ``pallet detect``: parsing and printing only (the work is in
``builder.lifecycle.pipeline``)."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

from builder.errors import PalletError, UsageError

from builder.cli import _kv  # one parser for KEY=VALUE flags


def default_tag(source: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", source.resolve().name.lower()).strip("-._") or "app"
    return f"{name}:latest"


def _choose_stack(args: argparse.Namespace) -> None:
    """Without --stack (or --build-image), the stack the app's runtime requests point to: set
    ``args.stack``, and say which and why in one line (and a notice per inexact patch level)."""
    if args.stack or args.build_image:
        args.stack_choice = None
        return
    from builder.lifecycle.images import stack_for_app

    choice = stack_for_app(Path(args.src))
    args.stack, args.stack_choice = choice.stack, choice
    for line in (choice.reason, *choice.notices):
        print(line, file=sys.stderr)


def _platform_start_note(source: Path) -> str | None:
    """A Railway or Render start command the app declares and pallet does not read, as a note."""
    from builder.lifecycle.platformstart import note

    return note(Path(source))


def _given_refs(args: argparse.Namespace) -> tuple[str | None, ...]:
    """The image references the user typed (a registry among them may get ``--creds``)."""
    return tuple(getattr(args, name, None) for name in ("tag", "cache_image", "build_image", "run_image", "builder"))


def _images(args: argparse.Namespace):
    """(build image, run image, run image name as given) for the build."""
    from builder.lifecycle.images import resolve_images
    from builder.cli import _options

    if getattr(args, "builder", None):  # a published builder image: its stack, pulled once
        from builder.builders.pull import images_from_builder
        from builder.lifecycle.pipeline import default_cache_root

        if args.stack or args.build_image or args.run_image:
            raise UsageError("--builder names the stack's images: drop --stack, --build-image and --run-image")
        from builder.builders.pin import pinned_reference

        pinned_reference(args.builder, "--builder", _options(args))  # by digest, as project.toml's
        cache = Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache_root()
        build, run, run_name, args.stack = images_from_builder(args.builder, _options(args), cache)
        args.stack_choice = None
        return build, run, run_name
    if not (args.stack or args.build_image or args.run_image):  # in a builder image: the images it carries
        from builder.builders.info import builder_images, find_builder

        info = find_builder()
        if info is not None:
            args.stack, args.stack_choice = info.stack, None
            return builder_images(info)
        from builder.builders.published import images_from_stack_ref, read_stack_ref

        given = _given_refs(args)
        stack_ref = read_stack_ref(Path(args.src), _options(args), given)  # project.toml's [io.pallet.stack]: by digest
        if stack_ref is not None:
            from builder.lifecycle.pipeline import default_cache_root

            cache = Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache_root()
            build, run, run_name, args.stack = images_from_stack_ref(stack_ref, _options(args), cache, given)
            args.stack_choice = None
            return build, run, run_name
    _choose_stack(args)
    return resolve_images(stack=args.stack, build_image=args.build_image, run_image=args.run_image,
                          options=_options(args), locked=getattr(args, "locked", False))


def _stack_path(args: argparse.Namespace) -> Path | None:
    """The stack file ``--stack`` named (an Aptfile resolves against it), once ``_images`` chose it."""
    from builder.lifecycle.images import stack_file

    return stack_file(args.stack) if getattr(args, "stack", None) else None


def _options_from(args: argparse.Namespace):
    from builder.lifecycle.pipeline import BuildOptions

    source = Path(args.src)
    if not source.is_dir():
        raise PalletError(f"{source}: {'not a directory' if source.exists() else 'source directory not found'}")
    return BuildOptions(source=source, buildpacks=list(args.buildpack or []), env=_kv(args.env, "--env"),
                        cache_dir=Path(args.cache_dir) if getattr(args, "cache_dir", None) else None,
                        executor=getattr(args, "executor", None),
                        ca_certs=Path(args.ca_certs) if getattr(args, "ca_certs", None) else None,
                        output=None if not args.json else (lambda line: print(line, file=sys.stderr)),
                        locked=getattr(args, "locked", False))


def cmd_detect(args: argparse.Namespace) -> int:
    from builder.lifecycle.pipeline import run_detect

    options = _options_from(args)
    build_image, run_image, _ = _images(args)
    result = run_detect(options, build_image, run_image)
    trials = [{
        "group": [{"id": bp.id, "version": bp.version, "optional": opt} for bp, opt in t.members],
        "reason": t.reason,
        "buildpacks": [{"id": o.buildpack.id, "passed": o.passed, "exitCode": o.code, "output": o.output}
                       for o in t.outcomes],
    } for t in result.trials]
    data: dict[str, Any] = {
        "passed": result.passed,
        "stack": args.stack,
        "group": [{"id": bp.id, "version": bp.version} for bp in result.group],
        "trials": trials,
    }
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        if result.passed:
            print("detected: " + ", ".join(f"{bp.id}@{bp.version}" for bp in result.group))
            for bp in result.group:
                outcome = result.outcome(bp.id)
                why = "; ".join(outcome.output) if outcome and outcome.output else "passed"
                print(f"  {bp.id}: {why}")
            said = _platform_start_note(options.source)
            if said:
                print(said)
        else:
            from builder.lifecycle.otherruntimes import hint

            print(hint(Path(args.src)), file=sys.stderr)
            for i, t in enumerate(result.trials, 1):
                print(f"  group {i}: " + ", ".join(bp.id + ("?" if opt else "") for bp, opt in t.members)
                      + f" — {t.reason}", file=sys.stderr)
                for o in t.outcomes:
                    why = "; ".join(o.output) or ("passed" if o.passed else "did not pass")
                    print(f"    {o.buildpack.id}: {why}", file=sys.stderr)
    return 0 if result.passed else 1


def cmd_build(args: argparse.Namespace) -> int:
    from builder.cli import _options
    from builder.lifecycle.pipeline import run_build
    from builder.oci import reference as refs
    from builder.oci.stores import open_store

    options = _options_from(args)
    dst = refs.parse(args.tag or default_tag(options.source))
    if dst.digest:
        raise UsageError(f"-t {args.tag}: name a tag, not a digest")
    if getattr(args, "platform", None):
        return _build_platforms(args, options, dst)
    if getattr(args, "force_way", None):
        raise UsageError(f"--{args.force_way} goes with --platform")
    said = _platform_start_note(options.source)
    if said:
        print(said, file=sys.stderr)
    finish = None
    if args.sign_key:  # read the key (and ask its password) before any work is done
        from builder.supply.cli_hooks import build_finisher

        finish = build_finisher(args.sign_key)
    started = datetime.datetime.now(datetime.timezone.utc)
    proof: dict[str, Any] = {}
    with open_store(dst, _options(args)) as store:
        store.check_writable()  # before the stack and the build: a destination that will refuse says so now
        build_image, run_image, run_name = _images(args)
        options.stack_file = _stack_path(args)
        with _cache_image(args) as cache_image:
            options.cache_image = cache_image
            detected, exported = run_build(options, build_image, run_image, run_name, store,
                                           dst.tag or refs.DEFAULT_TAG, cache_name=str(dst.with_tag(None)))
        if finish is not None:
            proof = finish(store, _facts(args, options, dst, exported.descriptor.digest, detected, build_image,
                                         run_image, run_name, started))
    printed = dst.at_digest(exported.descriptor.digest)
    if args.json:
        print(json.dumps({
            "reference": printed, "digest": exported.descriptor.digest,
            "buildpacks": [{"id": bp.id, "version": bp.version} for bp in detected.group],
            "processes": [{"type": p.type, "command": list(p.command), "args": list(p.args)}
                          for p in exported.processes],
            "defaultProcess": exported.default_process,
            "stack": args.stack,
            **({"stackChoice": {"reason": args.stack_choice.reason, "notices": list(args.stack_choice.notices)}}
               if args.stack_choice else {}),
            "layers": {"reused": exported.layers_reused, "written": exported.layers_written},
            **({"supplyChain": proof} if proof else {}),
        }, indent=2, sort_keys=True))
    else:
        print(printed)
    return 0


@contextlib.contextmanager
def _cache_image(args: argparse.Namespace):
    """``--cache-image REF`` opened (a registry, an OCI layout: any store), or None."""
    if not getattr(args, "cache_image", None):
        if getattr(args, "cache_image_readonly", False):
            raise UsageError("--cache-image-readonly needs --cache-image REF")
        yield None
        return
    from builder.cli import _options
    from builder.lifecycle.cacheimage import CacheImageRef
    from builder.oci import reference as refs
    from builder.oci.stores import open_store

    ref = refs.parse(args.cache_image)
    if ref.digest:
        raise UsageError(f"--cache-image {args.cache_image}: name a tag, not a digest")
    with open_store(ref, _options(args)) as store:
        yield CacheImageRef(store, ref.tag or refs.DEFAULT_TAG, readonly=args.cache_image_readonly)


def _build_platforms(args: argparse.Namespace, options, dst) -> int:
    """``--platform``: a build per platform (``builder.lifecycle.platformbuild``), one index."""
    from builder.cli import _options
    from builder.lifecycle.images import resolve_images
    from builder.lifecycle.platformbuild import build_platforms
    from builder.oci import reference as refs
    from builder.oci.stores import open_store
    from builder.platforms import parse_platforms

    platforms = parse_platforms(args.platform)
    finish = sign_index = None
    if args.sign_key:  # the key (and its password) before any work
        if len(platforms) > 1:
            from builder.supply.cli_hooks import index_build_finisher

            sign_index = index_build_finisher(args.sign_key)
        else:
            from builder.supply.cli_hooks import build_finisher

            finish = build_finisher(args.sign_key)
    started = datetime.datetime.now(datetime.timezone.utc)
    if not (args.stack or args.build_image or args.run_image):
        from builder.builders.published import read_stack_ref

        if read_stack_ref(Path(args.src), _options(args), _given_refs(args)) is not None:  # not the default stack, silently
            raise UsageError("project.toml's [io.pallet.stack] does not work with --platform yet: name the stack "
                             "with --stack (or --build-image and --run-image)")
    _choose_stack(args)
    with open_store(dst, _options(args)) as store:
        store.check_writable()  # before any platform's build

    def images_for(platform):
        return resolve_images(stack=args.stack, build_image=args.build_image, run_image=args.run_image,
                              options=_options(args), locked=getattr(args, "locked", False), platform=platform)

    with open_store(dst, _options(args)) as store:
        result = build_platforms(options, platforms, images_for, store, dst.tag or refs.DEFAULT_TAG,
                                 cache_name=str(dst.with_tag(None)), force=getattr(args, "force_way", None))
        proof: dict[str, Any] = {}
        if finish is not None:  # one platform: its image, signed and attested as any build
            b = result.builds[0]
            proof = finish(store, _facts(args, options, dst, b.exported.descriptor.digest, b.detected, b.build_image,
                                         b.run_image, b.run_name, started))
        if sign_index is not None:
            proof = sign_index(store, result.descriptor.digest, [
                _facts(args, options, dst, b.exported.descriptor.digest, b.detected, b.build_image, b.run_image,
                       b.run_name, started) for b in result.builds])
    printed = dst.at_digest(result.descriptor.digest)
    if args.json:
        print(json.dumps({
            "reference": printed, "digest": result.descriptor.digest, "mediaType": result.descriptor.media_type,
            "stack": args.stack,
            "platforms": [{
                "platform": str(b.platform), "digest": b.exported.descriptor.digest,
                "buildImage": b.build_image.digest, "runImage": b.run_image.digest,
                "buildpacks": [{"id": bp.id, "version": bp.version} for bp in b.detected.group],
                "processes": [{"type": p.type, "command": list(p.command), "args": list(p.args)}
                              for p in b.exported.processes],
                "defaultProcess": b.exported.default_process,
                "build": b.way.to_json(),
            } for b in result.builds],
            **({"supplyChain": proof} if proof else {}),
        }, indent=2, sort_keys=True))
    else:
        print(printed)
    return 0


def _facts(args: argparse.Namespace, options, dst, digest: str, detected, build_image, run_image, run_name: str,
           started: datetime.datetime):
    """What the provenance statement says about this build."""
    from builder.oci import reference as refs
    from builder.supply.provenance import BuildFacts, Dependency, image_uri, requested_buildpacks, source_facts

    if dst.transport == refs.REGISTRY:
        name = f"{dst.host}/{dst.repository}"
    else:
        name = str(dst.with_tag(None))
    return BuildFacts(
        image=name, digest=digest, source=source_facts(options.source),
        started_on=started, finished_on=datetime.datetime.now(datetime.timezone.utc),
        stack=args.stack,
        buildpacks_requested=tuple(requested_buildpacks(
            tuple(options.buildpacks), tuple((bp.id, bp.version, str(bp.path)) for bp in detected.group))),
        run_image=Dependency("run-image", run_image.digest, image_uri(run_name, run_image.digest)),
        build_image=Dependency("build-image", build_image.digest, image_uri(args.build_image, build_image.digest)),
        buildpacks=tuple(Dependency(f"{bp.id}@{bp.version}", bp.digest()) for bp in detected.group),
        **({"builder_id": args.builder_id} if getattr(args, "builder_id", None) else {}),
    )


def register(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    def image_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("src", metavar="SRC", help="the app's source directory")
        p.add_argument("--stack", default=None, metavar="NAME|FILE",
                       help="stack: stacks/NAME.toml or a stack file (default: the shipped stack with "
                            "the runtime versions the app asks for; trixie when it asks for none)")
        p.add_argument("--build-image", metavar="REF", help="build image to run buildpacks in (overrides the stack's)")
        p.add_argument("--builder", metavar="REF", help="take the stack's build and run images from this builder "
                                                        "image (pallet builder create), named by digest "
                                                        "(REF@sha256:...), pulled once: no stack build")
        p.add_argument("--run-image", metavar="REF",
                       help="run image of the same stack (a mirror, a patched one); recorded as given")
        p.add_argument("--buildpack", action="append", metavar="DIR|ID",
                       help="use these buildpacks, in this order, instead of detection over the built-in order")
        p.add_argument("--env", action="append", metavar="K=V", help="build-time environment (never in a layer)")
        p.add_argument("--executor", choices=["sandbox", "docker", "in-place"], default=None,
                       help="run buildpacks in a bubblewrap sandbox (default, daemonless), in Docker, or "
                            "in-place: directly, inside a builder image (the default there)")
        p.add_argument("--ca-certs", metavar="PATH",
                       help="CA bundle build steps trust (default: the host trust store)")
        p.add_argument("--cache-dir", metavar="DIR", help="build cache (default ~/.cache/pallet)")
        p.add_argument("--locked", action="store_true",
                       help="refuse a stack lock (or Aptfile.lock) the mirror has moved past (default: build with "
                            "the mirror's current versions and say which packages changed)")

    p = sub.add_parser("build", parents=[common()], help="build an image from source with buildpacks",
                       description="Detect the app's language, run buildpacks in a daemonless sandbox over the "
                                   "stack's build image, and export a reproducible app image.")
    image_flags(p)
    p.add_argument("-t", "--tag", metavar="REF", help="where to write the image (default: the local store, "
                                                       "named after the source directory)")
    p.add_argument("--cache-image", metavar="REF",
                   help="keep the build cache and memo as an image in a registry (for runners that start "
                        "empty): restored when this machine has none, updated after the build")
    p.add_argument("--cache-image-readonly", action="store_true",
                   help="restore from --cache-image but never write it (untrusted branches)")
    p.add_argument("--sign-key", metavar="KEY", help="sign the image, attest its SLSA provenance and attach its "
                                                     "SBOMs (cosign key; the image digest is unchanged)")
    p.add_argument("--builder-id", metavar="URI", help="the builder id the provenance names (a CI platform's "
                                                       "own, e.g. its workflow URI; default: pallet's local builder)")
    p.add_argument("--platform", metavar="OS/ARCH[,OS/ARCH]",
                   help="build for these platforms (linux/amd64, linux/arm64; a foreign one is cross-compiled "
                        "where it can be, else built in its build image under QEMU): one gives its image, "
                        "several an index of one image each")
    way = p.add_mutually_exclusive_group()  # neither: cross-compile a foreign platform where it can, else emulate
    way.add_argument("--cross", dest="force_way", action="store_const", const="cross",
                     help="with --platform: always cross-compile a foreign platform (its buildpacks run natively "
                          "in this machine's build image, Go with GOARCH and CGO off); an error when a buildpack "
                          "of the group cannot. Default: cross-compile where every buildpack can and a Go app "
                          "needs no cgo, else emulate")
    way.add_argument("--emulate", "--no-cross", dest="force_way", action="store_const", const="emulate",
                     help="with --platform: always build a foreign platform in its own build image under QEMU")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("detect", parents=[common()], help="show which buildpacks would build an app, and why",
                       description="Run detection only: the group that passed and what each buildpack found.")
    image_flags(p)
    p.set_defaults(func=cmd_detect)
