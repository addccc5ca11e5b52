"""What a builder image says about itself, read from inside it.

``pallet builder create`` writes ``/cnb/pallet/builder.json``: the stack, the build image's and
the run image's digests, the run image's name as a build on the stack records it, and where the
image carries them (an OCI layout: the run image whole, the build image's manifest and config
only, as the container already *is* its filesystem). Finding that file is how pallet knows it
runs in a builder image (``PALLET_BUILDER_FILE`` names another one, for tests).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder import jsonsafe
from builder.errors import PalletError

if TYPE_CHECKING:
    from builder.oci.image import Image

BUILDER_FILE = "/cnb/pallet/builder.json"
STACK_LAYOUT = "/cnb/pallet/stack"   # the OCI layout inside the builder image
BUILD_TAG, RUN_TAG = "build", "run"


class BuilderFileError(PalletError):
    """The builder image's description is unreadable or does not match what it carries."""


@dataclass(frozen=True)
class BuilderInfo:
    stack: str
    build_image: str      # manifest digest
    run_image: str        # manifest digest
    run_name: str         # the run image reference recorded in app images (as the stack gives it)
    layout: str = STACK_LAYOUT
    #: Where ``builder create`` also pushed the run image (the builder's registry repository, by
    #: digest): exports to that registry then mount its layers instead of uploading them.
    run_mirror: str | None = None

    def to_json(self) -> str:
        return json.dumps({"stack": self.stack, "buildImage": self.build_image, "runImage": self.run_image,
                           "runName": self.run_name, "layout": self.layout,
                           **({"runMirror": self.run_mirror} if self.run_mirror else {})},
                          indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "BuilderInfo":
        try:
            data = jsonsafe.loads(text)
            return cls(stack=str(data["stack"]), build_image=str(data["buildImage"]),
                       run_image=str(data["runImage"]), run_name=str(data["runName"]),
                       layout=str(data.get("layout") or STACK_LAYOUT),
                       run_mirror=str(data["runMirror"]) if data.get("runMirror") else None)
        except (ValueError, KeyError, TypeError) as exc:
            raise BuilderFileError(f"{where}: not a pallet builder description ({exc})") from None


def builder_file() -> Path:
    return Path(os.environ.get("PALLET_BUILDER_FILE") or BUILDER_FILE)


def find_builder() -> BuilderInfo | None:
    """This builder image's description, or None when pallet is not running in one."""
    path = builder_file()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BuilderFileError(f"{path}: {exc.strerror or exc}") from None
    return BuilderInfo.from_json(text, str(path))


def builder_images(info: BuilderInfo) -> tuple["Image", "Image", str]:
    """(build image, run image, run image name) carried by the builder image, checked by digest."""
    from builder.oci.image import load_image
    from builder.oci.stores.layout import LayoutStore

    store = LayoutStore(Path(info.layout), create=False)
    build = load_image(store, info.build_image)
    run = _mirrored_run(info) or load_image(store, info.run_image)
    return build, run, info.run_name


def _mirrored_run(info: BuilderInfo) -> "Image | None":
    """The run image from the registry the builder was pushed to, when it answers (checked by
    digest); else None and the copy inside the builder is used."""
    from builder.errors import PalletError
    from builder.oci import reference as refs
    from builder.oci.image import load_image
    from builder.oci.stores.registry import RegistryStore

    if not info.run_mirror:
        return None
    try:
        ref = refs.parse(info.run_mirror)
        if ref.transport != refs.REGISTRY or ref.digest != info.run_image:
            return None
        store = RegistryStore(ref.host or "", ref.repository or "", retries=1)
        return load_image(store, info.run_image)
    except PalletError:
        return None
