"""Skip (a failure under CI=true: the set-up installs QEMU) when this machine cannot run arm64."""

from __future__ import annotations

import pytest

from builder.oci.model import Platform
from builder.platforms import EmulationError, require_runnable

ARM64 = Platform("linux", "arm64", "v8")


def need_arm64() -> None:
    try:
        require_runnable(ARM64)
    except EmulationError as exc:
        pytest.skip(f"{exc} -- scripts/setup.sh sets it up")
