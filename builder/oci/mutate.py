"""Pure transformations of images: take a manifest and config, give new ones. No I/O.

As in go-containerregistry's ``mutate``: building, appending and rebasing are compositions of
these functions, tested without any store; the callers move the bytes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Mapping

from builder.errors import PalletError, UsageError

from builder.oci import mediatypes as mt
from builder.oci.model import Descriptor, History, ImageConfig, Manifest, Platform, RunConfig

EPOCH_DEFAULT = 315532801  # 1980-01-01T00:00:01Z: the earliest time every zip/tar tool accepts.

_TO_OCI_LAYER = {
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": mt.OCI_LAYER,
}


def source_date_epoch(environ: Mapping[str, str] | None = None, error: type[PalletError] = UsageError) -> int:
    """``SOURCE_DATE_EPOCH`` if set (reproducible-builds.org), else 1980-01-01T00:00:01Z.

    The one reading of the variable: image times here and layer mtimes (``layer.default_mtime``,
    which reports a bad value as a LayerError) always agree.
    """
    env = os.environ if environ is None else environ
    value = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return EPOCH_DEFAULT
    try:
        epoch = int(value)
    except ValueError:
        raise error(f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds since "
                    "1970; set it to e.g. $(git log -1 --format=%ct) or unset it") from None
    if epoch < 0:
        raise error(f"SOURCE_DATE_EPOCH={value!r} is negative; use a time after 1970")
    return epoch


def rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True)
class ConfigChanges:
    """What ``pallet append`` flags change; ``None`` means keep the base's value.

    Setting an entrypoint without a cmd clears the base's cmd, as a Dockerfile ENTRYPOINT does:
    otherwise the base's CMD would silently become the new entrypoint's arguments.
    """

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def apply_changes(run: RunConfig, changes: ConfigChanges) -> RunConfig:
    new = run.with_env(changes.env) if changes.env else run
    if changes.entrypoint is not None:
        new = replace(new, entrypoint=changes.entrypoint, cmd=changes.cmd)
    elif changes.cmd is not None:
        new = replace(new, cmd=changes.cmd)
    if changes.working_dir is not None:
        new = replace(new, working_dir=changes.working_dir)
    if changes.user is not None:
        new = replace(new, user=changes.user)
    if changes.labels:
        new = replace(new, labels={**new.labels, **changes.labels})
    return new


def empty_image(platform: Platform, created: str) -> tuple[Manifest, ImageConfig]:
    """The ``scratch`` base: no layers. Its manifest's config descriptor is a placeholder."""
    config = ImageConfig(architecture=platform.architecture, os=platform.os, variant=platform.variant,
                         created=created, config=RunConfig(env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)))
    placeholder = Descriptor(mt.OCI_CONFIG, "sha256:" + "0" * 64, 0)
    return Manifest(config=placeholder, layers=()), config


def to_oci(manifest: Manifest) -> Manifest:
    """The same image as an OCI manifest: Docker media types mapped, bytes of blobs unchanged."""
    layers = tuple(replace(layer, media_type=_TO_OCI_LAYER.get(layer.media_type, layer.media_type))
                   for layer in manifest.layers)
    return replace(manifest, media_type=mt.OCI_MANIFEST, layers=layers,
                   config=replace(manifest.config, media_type=mt.OCI_CONFIG))


def append_layer(manifest: Manifest, config: ImageConfig, layer: Descriptor, diff_id: str,
                 history: History) -> tuple[Manifest, ImageConfig]:
    """Add one layer on top (manifest layer, config diff_id and history entry, kept in step)."""
    new_manifest = replace(to_oci(manifest), layers=(*to_oci(manifest).layers, layer))
    new_config = replace(config, diff_ids=(*config.diff_ids, diff_id), history=(*config.history, history))
    return new_manifest, new_config


def finalize(manifest: Manifest, config: ImageConfig) -> tuple[Manifest, bytes]:
    """Serialise the config and point the manifest at it; returns (manifest, config bytes)."""
    config_bytes = config.to_bytes()
    media_type = manifest.config.media_type if manifest.config.media_type in (mt.OCI_CONFIG, mt.DOCKER_CONFIG) else mt.OCI_CONFIG
    if manifest.media_type == mt.OCI_MANIFEST:
        media_type = mt.OCI_CONFIG
    return replace(manifest, config=Descriptor.of(config_bytes, media_type)), config_bytes
