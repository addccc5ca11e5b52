"""Stack images as data: labels, environment, config, manifests. Pure, like ``builder.oci.mutate``.

The labels are the ones buildpacks tooling reads (``io.buildpacks.base.*`` and the deprecated
``io.buildpacks.stack.id``), the OCI annotations keys for humans (``org.opencontainers.image.*``),
and pallet's own (``io.pallet.stack.*``: which stack, which image, which lock, which runtimes).
Every timestamp is the lock's ``source-date-epoch``: the same lock gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import replace

from builder.oci import mediatypes as mt
from builder.oci.model import Descriptor, History, ImageConfig, Index, Manifest, Platform, RunConfig
from builder.oci.mutate import rfc3339
from builder.stacks.spec import ARCHITECTURES, BUILD, Stack

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

LABEL_BASE_ID = "io.buildpacks.base.id"
LABEL_STACK_ID = "io.buildpacks.stack.id"  # deprecated by the platform spec; older lifecycles read it
LABEL_DISTRO_NAME = "io.buildpacks.base.distro.name"
LABEL_DISTRO_VERSION = "io.buildpacks.base.distro.version"
LABEL_MAINTAINER = "io.buildpacks.base.maintainer"
LABEL_PROVIDES = "io.pallet.stack.provides"
LABEL_LOCK = "io.pallet.stack.lock"


def platform(arch: str) -> Platform:
    oci_arch, variant = ARCHITECTURES[arch]
    return Platform(os="linux", architecture=oci_arch, variant=variant)


#: The image's packages as ``{"name": "version"}``: the inventory ``pallet rebase`` compares
#: (a new run image that drops a package is refused) without reading any layer.
LABEL_PACKAGES = "io.pallet.stack.packages"


def labels(stack: Stack, kind: str, *, epoch: int, lock_digest: str,
           provides: dict[str, dict[str, str]], packages: dict[str, str] | None = None) -> dict[str, str]:
    spec = stack.image(kind)
    out = {
        LABEL_BASE_ID: stack.id,
        LABEL_STACK_ID: stack.id,
        LABEL_DISTRO_NAME: stack.distro.name,
        LABEL_DISTRO_VERSION: stack.distro.version,
        "org.opencontainers.image.title": f"{stack.name}-{kind}",
        "org.opencontainers.image.version": stack.version,
        "org.opencontainers.image.created": rfc3339(epoch),
        "org.opencontainers.image.source": stack.source or f"stacks/{stack.path.name}",
        "io.pallet.stack.name": stack.name,
        "io.pallet.stack.image": kind,
        LABEL_LOCK: lock_digest,
    }
    if stack.description:
        out["org.opencontainers.image.description"] = stack.description
    if stack.maintainer:
        out[LABEL_MAINTAINER] = stack.maintainer
    if provides:
        out[LABEL_PROVIDES] = json.dumps({k: v["upstream"] for k, v in provides.items()}, sort_keys=True,
                                         separators=(",", ":"))
    if packages:
        out[LABEL_PACKAGES] = json.dumps(packages, sort_keys=True, separators=(",", ":"))
    out.update(stack.labels)
    out.update(spec.labels)
    return out


def env(stack: Stack, kind: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """PATH, the stack's env, the image's env; the build image adds the CNB user and stack ids."""
    out = {"PATH": DEFAULT_PATH, **(base or {})}
    out.update(stack.env)
    out.update(stack.image(kind).env)
    if kind == BUILD:
        out.update(CNB_USER_ID=str(stack.user.uid), CNB_GROUP_ID=str(stack.user.gid), CNB_STACK_ID=stack.id)
    return out


def user(stack: Stack) -> str:
    """Both images run as the CNB user by default, numerically (no name lookup needed)."""
    return f"{stack.user.uid}:{stack.user.gid}"


def assembled_config(stack: Stack, kind: str, arch: str, *, diff_ids: list[str], comments: list[str],
                     epoch: int, lock_digest: str, provides: dict[str, dict[str, str]],
                     packages: dict[str, str] | None = None) -> ImageConfig:
    """The config of an image assembled from packages (its layers' diffIDs, bottom first)."""
    created = rfc3339(epoch)
    p = platform(arch)
    variables = env(stack, kind)
    return ImageConfig(
        architecture=p.architecture, os=p.os, variant=p.variant, created=created,
        config=RunConfig(user=user(stack), env=tuple(f"{k}={v}" for k, v in variables.items()),
                         labels=labels(stack, kind, epoch=epoch, lock_digest=lock_digest, provides=provides,
                                       packages=packages)),
        diff_ids=tuple(diff_ids),
        history=tuple(History(created=created, created_by="pallet stack build", comment=c) for c in comments),
    )


def restamped_config(stack: Stack, kind: str, config: ImageConfig, *, epoch: int, lock_digest: str) -> ImageConfig:
    """An existing image's config with the stack's labels, env and user (its layers untouched)."""
    run = config.config
    variables = env(stack, kind, base=run.env_dict())
    new_run = replace(run, user=user(stack), env=tuple(f"{k}={v}" for k, v in variables.items()),
                      labels={**run.labels, **labels(stack, kind, epoch=epoch, lock_digest=lock_digest, provides={})})
    return replace(config, config=new_run)


def manifest(config_bytes: bytes, layers: list[Descriptor], annotations: dict[str, str] | None = None) -> Manifest:
    return Manifest(config=Descriptor.of(config_bytes, mt.OCI_CONFIG), layers=tuple(layers),
                    annotations=annotations or None)


def index(children: list[tuple[Descriptor, Platform]]) -> Index:
    """A multi-architecture image: one manifest per architecture, in the stack file's order."""
    return Index(manifests=tuple(replace(d, platform=p, annotations=None) for d, p in children))


def annotations(stack: Stack, kind: str, epoch: int) -> dict[str, str]:
    return {"org.opencontainers.image.title": f"{stack.name}-{kind}",
            "org.opencontainers.image.version": stack.version,
            "org.opencontainers.image.created": rfc3339(epoch)}
