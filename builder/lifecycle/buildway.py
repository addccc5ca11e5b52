"""How a foreign platform's build runs: cross-compiled natively, or emulated under QEMU.

A pure function of what detection found (the group), what the app's source says about cgo
(``gocgo.cgo_reasons``) and what the user forced (``--cross``, ``--emulate``), to a way and a
reason the build prints -- as ``stackchoice`` picks a stack. Emulation always gives the image
the target machine would build; cross-compiling gives the same image only when every
buildpack's output does not depend on the machine it runs on. A buildpack says so in its
buildpack.toml::

    [metadata.pallet]
    cross = "any"   # nothing it makes depends on the build machine (a Procfile's processes,
                    # a prebuilt server picked by CNB_TARGET_ARCH)
    cross = "go"    # compiles Go for CNB_TARGET_ARCH with CGO off: when the app needs no cgo

Anything else (a buildpack that says nothing: Python, Node.js, Debian packages, any
third-party one) is emulated; so is a Go app that may need cgo. When in doubt, emulate: it is
only slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from builder.errors import PalletError

if TYPE_CHECKING:
    from builder.lifecycle.buildpack import Buildpack
    from builder.oci.model import Platform

NATIVE, CROSS, EMULATED = "native", "cross", "emulated"
CROSS_ANY, CROSS_GO = "any", "go"
FORCE_CROSS, FORCE_EMULATE = "cross", "emulate"


class CrossCompileError(PalletError):
    """``--cross`` asked for a build that cannot be cross-compiled."""


@dataclass(frozen=True)
class BuildWay:
    way: str            # NATIVE, CROSS or EMULATED
    reason: str
    on: str             # the platform the buildpacks run as: this machine's, or the target's (QEMU)

    @property
    def cross(self) -> bool:
        return self.way == CROSS

    def line(self, target: "Platform") -> str:
        """The one line the build prints for this platform."""
        how = {NATIVE: "built natively", CROSS: f"cross-compiled on {self.on}",
               EMULATED: f"emulated under QEMU as {self.on}"}[self.way]
        return f"{target}: {how} ({self.reason})"

    def to_json(self) -> dict[str, str]:
        return {"way": self.way, "on": self.on, "reason": self.reason}


def cross_kind(bp: "Buildpack") -> str | None:
    """What ``[metadata.pallet] cross`` says (None: nothing, or something not understood)."""
    meta = bp.metadata.get("pallet") if isinstance(bp.metadata, dict) else None
    kind = meta.get("cross") if isinstance(meta, dict) else None
    return kind if kind in (CROSS_ANY, CROSS_GO) else None


def needs_cgo_check(group: Sequence["Buildpack"]) -> bool:
    """Whether the decision needs the app's source read for cgo (a Go buildpack is in the group)."""
    return any(cross_kind(bp) == CROSS_GO for bp in group)


def choose_way(target: "Platform", host: "Platform", group: Sequence["Buildpack"] | None, cgo: Sequence[str] = (),
               no_host_image: str | None = None, force: str | None = None) -> BuildWay:
    """The way ``target`` is built on ``host``, and why.

    ``group``: the buildpacks detection chose (None: detection on this machine found none);
    ``cgo``: why the app may need cgo (read only when ``needs_cgo_check``); ``no_host_image``:
    why there is no build image for this machine's platform to cross-compile in (None: there
    is one); ``force``: FORCE_CROSS (``--cross``: an error when a buildpack cannot), FORCE_EMULATE
    (``--emulate``) or None (choose)."""
    here, there = _short(host), _short(target)
    if (target.os, target.architecture) == (host.os, host.architecture):
        return BuildWay(NATIVE, f"this machine is {here}", here)
    if force == FORCE_EMULATE:
        return BuildWay(EMULATED, "--emulate", there)
    if no_host_image is not None:
        if force == FORCE_CROSS:
            raise CrossCompileError(f"--cross: {no_host_image}")
        return BuildWay(EMULATED, no_host_image, there)
    if group is None:
        if force == FORCE_CROSS:
            raise CrossCompileError("--cross: no buildpack group passed detection on this machine's build image")
        return BuildWay(EMULATED, "no buildpack group passed detection on this machine's build image", there)
    cannot = [bp.id for bp in group if cross_kind(bp) is None]
    if cannot:
        says = f"{', '.join(cannot)} {'does' if len(cannot) == 1 else 'do'} not cross-compile"
        if force == FORCE_CROSS:
            raise CrossCompileError(f"--cross: {says} (no [metadata.pallet] cross in its buildpack.toml): build "
                                    "without --cross, it is emulated under QEMU")
        return BuildWay(EMULATED, says, there)
    ids = ", ".join(bp.id for bp in group)
    go = needs_cgo_check(group)
    if force == FORCE_CROSS:
        # cross-compiling, the Go buildpack cannot compile C: it fails naming the packages with cgo
        note = f"; the app may need cgo ({cgo[0]}): the Go build fails if a package of it has cgo files" \
            if go and cgo else ""
        return BuildWay(CROSS, f"--cross: {ids}{note}", here)
    if go and cgo:
        return BuildWay(EMULATED, f"the app may need cgo: {'; '.join(cgo)}", there)
    return BuildWay(CROSS, f"every buildpack cross-compiles: {ids}" + ("; no cgo in the app" if go else ""), here)


def _short(p: "Platform") -> str:
    return f"{p.os}/{p.architecture}"
