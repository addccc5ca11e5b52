"""``pallet build --builder REF``: the stack's images taken from a published builder image, so a
runner builds without assembling a stack (no mmdebstrap, no Debian mirror).

A builder image (``builder.builders.create``) is the build image's layers plus one layer that
carries the run image and the build image's manifest and config (``/cnb/pallet/stack``). Pulled
once per builder digest: that top layer is unpacked, the build image's layers are copied from
the builder's repository (they are the same blobs), and the result is an OCI layout in the cache
(``builders/<digest>``), made under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from builder.builders.info import BUILDER_FILE, STACK_LAYOUT, BuilderInfo
from builder.errors import PalletError

if TYPE_CHECKING:
    from builder.oci.image import Image
    from builder.oci.stores import StoreOptions


class NotABuilderError(PalletError):
    """The image named by --builder was not made by ``pallet builder create``."""


def images_from_builder(text: str, options: "StoreOptions", cache_root: Path) -> tuple["Image", "Image", str, str]:
    """(build image, run image, run image name, stack) from the builder image ``text``."""
    from builder.builders.info import builder_images
    from builder.gc import lease
    from builder.oci import reference as refs
    from builder.oci.image import load_image
    from builder.oci.stores import open_store

    ref = refs.parse(text)
    with open_store(ref, options) as store:
        builder = load_image(store, ref.ref)
        hexd = builder.digest.split(":", 1)[1]
        done = cache_root / "builders" / hexd
        lease.hold_for_process(cache_root / "builders", hexd)  # pallet prune leaves it to this build
        if not (done / "builder.json").is_file():
            _pull(builder, store, done)
    info = BuilderInfo.from_json((done / "builder.json").read_text(), str(done / "builder.json"))
    info = BuilderInfo(info.stack, info.build_image, info.run_image, info.run_name, layout=str(done / "stack"))
    build, run, run_name = builder_images(info)
    return build, run, run_name, info.stack


def _pull(builder: "Image", store, done: Path) -> None:
    from builder.oci.copy import copy_blobs
    from builder.oci.image import load_image
    from builder.oci.stores.layout import LayoutStore
    from builder.oci.unpack import unpack_layer

    labels = builder.config.config.labels
    if "io.pallet.builder.build-image.digest" not in labels or not builder.manifest.layers:
        raise NotABuilderError(f"{builder.digest} is not a pallet builder image (no io.pallet.builder labels); "
                               "make one with pallet builder create")
    done.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{done.name}-", dir=done.parent))
    try:
        top = builder.manifest.layers[-1]
        with store.open_blob(top) as stream:
            unpack_layer(stream, tmp / "top")
        info_file = tmp / "top" / BUILDER_FILE.lstrip("/")
        layout = tmp / "top" / STACK_LAYOUT.lstrip("/")
        for path in (info_file, layout):
            # symlinks of the layer are unpacked as they are: one on the way would be read (and the
            # layout written to) as a host path; the top layer's files must be its own
            real, top = os.path.realpath(path), os.path.realpath(tmp / "top")
            if path.is_symlink() or not real.startswith(top + os.sep):
                raise NotABuilderError(f"{builder.digest}: {path.relative_to(tmp / 'top')} in its top layer is "
                                       "reached through a symlink; a builder's files must be in the layer itself")
        if not info_file.is_file() or not layout.is_dir():
            raise NotABuilderError(f"{builder.digest}: its top layer has no {BUILDER_FILE}")
        info = BuilderInfo.from_json(info_file.read_text(), f"{builder.digest}:{BUILDER_FILE}")
        if labels.get("io.pallet.builder.build-image.digest") != info.build_image:
            raise NotABuilderError(f"{builder.digest}: its labels and {BUILDER_FILE} name different build images")
        os.replace(layout, tmp / "stack")
        with LayoutStore(tmp / "stack") as stack:
            build = load_image(stack, info.build_image)
            ours = {d.digest for d in builder.manifest.layers[:-1]}
            if any(d.digest not in ours for d in build.manifest.layers):
                raise NotABuilderError(f"{builder.digest}: its layers are not its build image's")
            copy_blobs(store, stack, list(build.manifest.layers))
        shutil.copy2(info_file, tmp / "builder.json")
        shutil.rmtree(tmp / "top")
        if done.exists():
            shutil.rmtree(done)
        os.replace(tmp, done)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
