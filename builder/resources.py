"""Where pallet's own data is: the built-in buildpacks and the shipped stacks.

In the repository they sit beside the package (``buildpacks/``, ``stacks/``: the layout is part
of the design, and platform teams edit them there). A wheel carries them inside the package
(``builder/_data/``, put there by ``setup.py`` at build time). Both are found from the package's
own location, so an installed pallet never depends on a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``builder/_data/NAME`` in a wheel, else ``NAME`` beside the package (a source tree)."""
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


def buildpacks_dir() -> Path:
    """``$PALLET_BUILDPACKS`` (a builder image's /cnb/buildpacks), else pallet's own."""
    override = os.environ.get("PALLET_BUILDPACKS")
    return Path(override) if override else data_dir("buildpacks")


def stacks_dir() -> Path:
    return data_dir("stacks")
