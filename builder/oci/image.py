"""An image as read from a store: manifest, config and layers, fetched lazily and verified.

Like go-containerregistry's ``v1.Image``: code that inspects, copies or rebases an image holds
one of these and never asks which store it came from.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from functools import cached_property

from builder.errors import NotFoundError, PalletError
from builder.oci import mediatypes as mt
from builder.oci.model import (MAX_CONFIG, Descriptor, ImageConfig, Index, Manifest, ModelError, Platform,
                               not_an_image)
from builder.oci.stores.base import Store

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def host_platform() -> Platform:
    machine = _platform.machine()
    return Platform(os="linux", architecture=_ARCH.get(machine, machine),
                    variant="v7" if machine == "armv7l" else None)


def platform_matches(want: Platform, have: Platform | None) -> bool:
    if have is None:
        return False
    if (want.os, want.architecture) != (have.os, have.architecture):
        return False
    return not want.variant or not have.variant or want.variant == have.variant


@dataclass
class Image:
    """One platform's image in a store. ``index`` is set when it was chosen from an index."""

    store: Store
    descriptor: Descriptor
    manifest_bytes: bytes
    index: Descriptor | None = None

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest.from_bytes(self.manifest_bytes, self.descriptor.media_type)

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @cached_property
    def config_bytes(self) -> bytes:
        if self.manifest.config.size > MAX_CONFIG:   # not fetched, never parsed
            raise ModelError(f"the config of {self.digest} declares {self.manifest.config.size} bytes, more than the "
                             f"{MAX_CONFIG} of any image's config; refusing to read it")
        return self.store.get_blob(self.manifest.config)

    @cached_property
    def config(self) -> ImageConfig:
        return ImageConfig.from_bytes(self.config_bytes)

    def layer_name(self, desc: Descriptor) -> str:
        """How errors about one of its layers name it: the layer, the image and the store."""
        return f"layer {desc.digest} of image {self.digest} in {self.store.description}"

    def layers(self) -> list[tuple[Descriptor, str]]:
        """(descriptor, diffID) pairs, bottom layer first."""
        diff_ids = self.config.diff_ids
        if len(diff_ids) != len(self.manifest.layers):
            not_an_image(f"image {self.digest}", self.manifest)
            raise PalletError(
                f"image {self.digest}: {len(self.manifest.layers)} layers in the manifest but "
                f"{len(diff_ids)} diff_ids in the config; the image is invalid")
        return list(zip(self.manifest.layers, diff_ids))



def load_image(store: Store, ref: str, platform: Platform | None = None) -> Image:
    """The image a tag or digest names; from an index, the manifest for ``platform`` (default: this host)."""
    desc, data = store.get_manifest(ref)
    if mt.is_manifest(desc.media_type):
        return Image(store, desc, data)
    if not mt.is_index(desc.media_type):
        raise PalletError(f"{ref} in {store.description} is not an image (media type {desc.media_type})")
    index = Index.from_bytes(data, desc.media_type)
    want = platform or host_platform()
    candidates = [m for m in index.manifests if mt.is_manifest(m.media_type)]
    for child in candidates:
        if platform_matches(want, child.platform):
            child_desc, child_data = store.get_manifest(child.digest)
            return Image(store, child_desc, child_data, index=desc)
    if len(candidates) == 1 and candidates[0].platform is None:
        child_desc, child_data = store.get_manifest(candidates[0].digest)
        return Image(store, child_desc, child_data, index=desc)
    have = ", ".join(str(m.platform) for m in candidates if m.platform) or "none"
    raise NotFoundError(f"{ref} in {store.description} has no image for {want} (it has: {have})")


def platform_images(store: Store, ref: str) -> tuple[Descriptor, list[Image]] | None:
    """(the index, one image per platform it names, in its order) when ``ref`` names an image
    index of platform manifests; None when it names a single image. What whole-index views
    (an index's SBOM, its audit) read, one platform at a time."""
    desc, data = store.get_manifest(ref)
    if not mt.is_index(desc.media_type):
        return None
    index = Index.from_bytes(data, desc.media_type)
    images = []
    for child in index.manifests:
        # (buildx puts its attestation manifests in the index as platform unknown/unknown)
        if mt.is_manifest(child.media_type) and child.platform is not None and child.platform.os != "unknown":
            child_desc, child_data = store.get_manifest(child.digest)
            images.append(Image(store, child_desc, child_data, index=desc))
    if not images:
        raise PalletError(f"{ref} in {store.description} is an index without platform images")
    return desc, images
