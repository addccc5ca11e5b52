"""What the platform hands every phase: where the app, layers and platform files are, the
sandbox to run buildpacks in, the target, and the environment they start from."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from builder.errors import UsageError, for_terminal
from builder.lifecycle.process import LAYERS, WORKSPACE

PLATFORM = "/platform"
BUILDPACKS = "/cnb/buildpacks"


@dataclass(frozen=True)
class Target:
    """The run image's target, for ``CNB_TARGET_*`` and buildpack target matching."""

    os: str = "linux"
    arch: str = "amd64"
    variant: str | None = None
    distro: str | None = None
    distro_version: str | None = None
    stack_id: str | None = None

    def env(self) -> dict[str, str]:
        out = {"CNB_TARGET_OS": self.os, "CNB_TARGET_ARCH": self.arch}
        if self.variant:
            out["CNB_TARGET_ARCH_VARIANT"] = self.variant
        if self.distro:
            out["CNB_TARGET_DISTRO_NAME"] = self.distro
        if self.distro_version:
            out["CNB_TARGET_DISTRO_VERSION"] = self.distro_version
        if self.stack_id:
            out["CNB_STACK_ID"] = self.stack_id
        return out


def _print_line(line: str) -> None:
    sys.stderr.write(for_terminal(line, multiline=True, limit=None) + "\n")
    sys.stderr.flush()


@dataclass
class Context:
    app_dir: Path            # host copy of the app, bound at /workspace
    layers_dir: Path         # host dir bound at /layers
    platform_dir: Path       # host dir bound at /platform (env/ holds --env values)
    work_dir: Path           # scratch space for plan files
    sandbox: object          # builder.lifecycle.sandbox.Sandbox
    uid: int
    gid: int
    base_env: dict[str, str]     # the build image's env, plus HOME
    target: Target
    user_env: dict[str, str] = field(default_factory=dict)
    #: The build image's manifest digest (part of the key that lets a buildpack be skipped).
    build_image: str = ""
    #: Docker runs steps as the real uid, so directories they write must belong to it.
    chown_writable: bool = False
    #: ``pallet detect``: buildpacks may explain their choices (PALLET_EXPLAIN=1), which costs
    #: them time a build need not spend (its detect output is shown only when detection fails).
    explain: bool = False
    #: The last build's detect outcomes (``detectmemo.DetectMemo``), or None: run every detect.
    detect_memo: object | None = None
    output: Callable[[str], None] = _print_line

    def platform_env_files(self) -> None:
        """Write ``--env`` values as ``<platform>/env/NAME`` files (outside /layers and /workspace,
        so they never land in an image)."""
        from builder.lifecycle.envfiles import is_env_name

        env_dir = self.platform_dir / "env"
        env_dir.mkdir(parents=True, exist_ok=True)
        for name, value in self.user_env.items():
            if not is_env_name(name):  # a file name here: '../../x' was a file written anywhere on the host
                raise UsageError(f"build environment variable name {name!r} is not valid (empty, or with '=', "
                                 "'/' or a NUL byte)")
            (env_dir / name).write_text(value, errors="surrogateescape")

