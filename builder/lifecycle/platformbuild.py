"""``pallet build --platform linux/amd64,linux/arm64``: one build per platform, one index.

Each platform is an ordinary build (``pipeline.run_build``) over that platform's build and run
images, picked from the stack's indexes: buildpacks run in the foreign build image under QEMU
(binfmt_misc, checked first by ``builder.platforms``) inside the same sandbox, and export puts
that architecture's launcher in. Each platform keeps its own memo and build cache (the cache
name gets ``@os/arch``), so amd64 layers never restore into an arm64 build. The manifests are
stored untagged; the index (``compose.platform_index``, a pure function) is stored and tagged
last. One platform alone gives a plain manifest, as a build without ``--platform`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from builder.errors import NotFoundError, PalletError
from builder.oci.model import Descriptor, Platform
from builder.platforms import require_runnable

if TYPE_CHECKING:
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


@dataclass
class MultiBuild:
    descriptor: Descriptor  # the index (several platforms) or the one manifest
    builds: list[PlatformBuild]


def platform_cache_name(cache_name: str, platform: Platform) -> str:
    return f"{cache_name}@{platform.os}/{platform.architecture}"


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
                    cache_name: str, cross: bool = False) -> MultiBuild:
    """``cross``: a foreign platform's buildpacks run natively, in this machine's build image,
    and compile for the run image's platform (``CNB_TARGET_ARCH``: the Go and static buildpacks
    set GOARCH from it, CGO off) -- no emulation while building. Only buildpacks that cross-compile
    give a working image this way; others would put this machine's binaries in it."""
    from builder.lifecycle.compose import platform_index
    from builder.lifecycle.pipeline import run_build

    from builder.lifecycle.executors import choose
    from builder.platforms import is_native

    from builder.oci.image import host_platform

    for platform in platforms:  # before any work: a missing emulator fails in a second
        if cross:
            continue
        require_runnable(platform)
        if not is_native(platform) and choose(options.executor) == "in-place":
            raise PalletError(f"the in-place executor runs buildpacks on this machine's own architecture, not "
                              f"{platform.os}/{platform.architecture}: use --executor sandbox (QEMU) for it")
    builds: list[PlatformBuild] = []
    single = len(platforms) == 1
    for platform in platforms:
        try:
            build_image, run_image, run_name = images_for(platform)
            build_platform = platform
            if cross and not is_native(platform):
                build_platform = host_platform()
                build_image = images_for(build_platform)[0]
        except NotFoundError as exc:
            raise PalletError(f"no {platform.os}/{platform.architecture} images to build with: {exc} "
                              "(add the architecture to the stack file's `architectures`, lock and build it)"
                              ) from None
        for kind, image, want in (("build", build_image, build_platform), ("run", run_image, platform)):
            _check_platform(kind, image, want)
        detected, exported = run_build(options, build_image, run_image, run_name, dst, tag if single else None,
                                       cache_name=platform_cache_name(cache_name, platform))
        builds.append(PlatformBuild(platform, detected, exported, build_image, run_image, run_name))
    if single:
        return MultiBuild(builds[0].exported.descriptor, builds)
    index = platform_index([(b.exported.descriptor, b.platform) for b in builds])
    desc = dst.put_manifest(index.to_bytes(), index.media_type, tag=tag)
    return MultiBuild(desc, builds)
