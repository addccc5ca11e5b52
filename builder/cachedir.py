"""Where pallet keeps its caches: one answer for every part (builds, layers, rootfs, stacks,
debs), so ``PALLET_CACHE`` moves all of them and ``pallet prune`` sees what the others wrote."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$PALLET_CACHE``, else ``$XDG_CACHE_HOME/pallet``, else ``~/.cache/pallet``."""
    env = os.environ.get("PALLET_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pallet"
