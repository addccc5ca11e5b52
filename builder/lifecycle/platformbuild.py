"""``pallet build --platform linux/amd64,linux/arm64``: one build per platform, one index.

Each platform is an ordinary build (``pipeline.run_build``) over that platform's build and run
images, picked from the stack's indexes. A foreign platform is cross-compiled when every
buildpack of its group can (``buildway``: Go without cgo, a Procfile): the buildpacks run in
this machine's build image and compile for the run image's platform. Otherwise they run in the
foreign build image under QEMU (binfmt_misc, checked first by ``builder.platforms``) inside the
same sandbox. Either way export puts that architecture's launcher in. Each platform keeps its
own memo and build cache (the cache name gets ``@os/arch``, and ``+cross`` when cross-compiled),
so amd64 layers never restore into an arm64 build. The manifests are
stored untagged; the index (``compose.platform_index``, a pure function) is stored and tagged
last. One platform alone gives a plain manifest, as a build without ``--platform`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from builder.errors import NotFoundError, PalletError, for_terminal
from builder.oci.model import Descriptor, Platform
from builder.lifecycle.buildway import EMULATED, FORCE_EMULATE
from builder.oci.image import host_platform
from builder.platforms import is_native, require_runnable

if TYPE_CHECKING:
    from builder.lifecycle.buildway import BuildWay
    from builder.lifecycle.detected import DetectResult
    from builder.lifecycle.pipeline import BuildOptions
    from builder.lifecycle.results import ExportResult
    from builder.oci.image import Image

ImagesFor = Callable[[Platform], "tuple[Image, Image, str]"]


@dataclass
class PlatformBuild:
    platform: Platform
    detected: "DetectResult"
    exported: "ExportResult"
    build_image: "Image"
    run_image: "Image"
    run_name: str
    way: "BuildWay"


@dataclass
class MultiBuild:
    descriptor: Descriptor  # the index (several platforms) or the one manifest
    builds: list[PlatformBuild]


def platform_cache_name(cache_name: str, platform: Platform, cross: bool = False) -> str:
    """A cross-compiled build keeps its own cache: its layers come from this machine's build image."""
    return f"{cache_name}@{platform.os}/{platform.architecture}" + ("+cross" if cross else "")


def _check_platform(kind: str, image: "Image", platform: Platform) -> None:
    """A plain manifest (no index) is taken whatever platform is asked for: say so if it is another."""
    from builder.oci.image import platform_matches

    cfg = image.config
    have = Platform(cfg.os or "linux", cfg.architecture or "", cfg.variant)
    if not platform_matches(platform, have):
        raise PalletError(f"no {platform.os}/{platform.architecture} images to build with: the {kind} image "
                          f"{image.digest} is {have.os}/{have.architecture} only (add the architecture to the "
                          "stack file's `architectures`, lock and build it)")


def build_platforms(options: "BuildOptions", platforms: list[Platform], images_for: ImagesFor, dst, tag: str,
                    cache_name: str, force: str | None = None) -> MultiBuild:
    """Each foreign platform is cross-compiled or emulated as ``buildway.choose_way`` says (after a
    detection on this machine's build image; ``force``: ``--cross`` or ``--emulate``), all decided and
    printed before any build. Cross-compiled: the buildpacks run natively in this machine's build
    image and compile for the run image's platform (``CNB_TARGET_ARCH``: the Go and static
    buildpacks set GOARCH from it, CGO off). Emulated: they run in the platform's own build image
    under QEMU."""
    from builder.lifecycle.compose import platform_index
    from builder.lifecycle.executors import choose
    from builder.lifecycle.pipeline import run_build

    say = options.output or _stderr
    ways = [decide(options, platform, images_for, force) for platform in platforms]
    for platform, (way, _) in zip(platforms, ways):
        say(way.line(platform))
    for platform, (way, _) in zip(platforms, ways):  # before any build: a missing emulator fails now
        if way.way != EMULATED:
            continue
        require_runnable(platform)
        if choose(options.executor) == "in-place":
            raise PalletError(f"the in-place executor runs buildpacks on this machine's own architecture, not "
                              f"{platform.os}/{platform.architecture}: use --executor sandbox (QEMU) for it")
    builds: list[PlatformBuild] = []
    single = len(platforms) == 1
    for platform, (way, host_build_image) in zip(platforms, ways):
        build_image, run_image, run_name = _images(images_for, platform)
        build_platform = platform
        if way.cross:
            build_image, build_platform = host_build_image, host_platform()
        for kind, image, want in (("build", build_image, build_platform), ("run", run_image, platform)):
            _check_platform(kind, image, want)
        detected, exported = run_build(options, build_image, run_image, run_name, dst, tag if single else None,
                                       cache_name=platform_cache_name(cache_name, platform, way.cross))
        builds.append(PlatformBuild(platform, detected, exported, build_image, run_image, run_name, way))
    if single:
        return MultiBuild(builds[0].exported.descriptor, builds)
    index = platform_index([(b.exported.descriptor, b.platform) for b in builds])
    desc = dst.put_manifest(index.to_bytes(), index.media_type, tag=tag)
    return MultiBuild(desc, builds)


def decide(options: "BuildOptions", platform: Platform, images_for: ImagesFor,
           force: str | None) -> "tuple[BuildWay, Image | None]":
    """How ``platform`` is built (``buildway.choose_way``), and this machine's build image when it is
    cross-compiled. The facts: detection run natively in this machine's build image (the same
    detection a cross-compiled build then runs), and the app's source read for cgo."""
    from builder.lifecycle.buildway import choose_way, needs_cgo_check
    from builder.lifecycle.gocgo import cgo_reasons
    from builder.lifecycle.pipeline import run_detect
    from builder.lifecycle.project import read_project

    host = host_platform()
    if is_native(platform) or force == FORCE_EMULATE:
        return choose_way(platform, host, None, force=force), None
    try:
        host_build_image = images_for(host)[0]
        _check_platform("build", host_build_image, host)
    except (NotFoundError, PalletError):
        return choose_way(platform, host, None, no_host_image=f"the stack has no {host.os}/{host.architecture} "
                          "build image to cross-compile in", force=force), None
    run_image = _images(images_for, platform)[1]
    detected = run_detect(options, host_build_image, run_image, explain=False)
    group = detected.group if detected.passed else None
    cgo: list[str] = []
    if group is not None and needs_cgo_check(group):
        env = {**host_build_image.config.config.env_dict(), **read_project(options.source).env, **options.env}
        cgo = cgo_reasons(options.source, env)
    way = choose_way(platform, host, group, cgo, force=force)
    return way, (host_build_image if way.cross else None)


def _images(images_for: ImagesFor, platform: Platform) -> "tuple[Image, Image, str]":
    try:
        return images_for(platform)
    except NotFoundError as exc:
        raise PalletError(f"no {platform.os}/{platform.architecture} images to build with: {exc} "
                          "(add the architecture to the stack file's `architectures`, lock and build it)") from None


def _stderr(line: str) -> None:
    import sys

    print(for_terminal(line, multiline=True, limit=None), file=sys.stderr)
