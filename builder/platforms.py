"""Target platforms of a build (``--platform linux/amd64,linux/arm64``) and whether this machine
can run a foreign one's programs (QEMU user emulation registered with binfmt_misc).

Pure parsing apart from the one check that reads /proc: the pipeline asks ``require_runnable``
once per platform before it unpacks anything, so a machine without QEMU fails in a second with
what to install, not minutes later with "Exec format error" from inside a sandbox.
"""

from __future__ import annotations

from pathlib import Path

from builder.errors import PalletError, UsageError
from builder.oci.image import host_platform
from builder.oci.model import Platform

#: Architectures pallet builds for: a launcher is committed for each (builder/lifecycle/launcher).
SUPPORTED = ("amd64", "arm64")
#: binfmt_misc entry names Debian's qemu-user-static registers, by OCI architecture.
QEMU_BINFMT = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


class EmulationError(PalletError):
    """This machine cannot run the target platform's programs."""


def parse_platforms(text: str) -> list[Platform]:
    """``linux/arm64`` or ``linux/amd64,linux/arm64``: the platforms, in the order given, no repeats."""
    out: list[Platform] = []
    for part in text.split(","):
        part = part.strip()
        try:
            platform = Platform.parse(part)
        except (ValueError, PalletError):
            raise UsageError(f"--platform {text}: {part!r} is not OS/ARCH (e.g. linux/arm64)") from None
        if platform.os != "linux" or platform.architecture not in SUPPORTED:
            raise UsageError(f"--platform {text}: {part} is not supported (pallet builds for "
                             + ", ".join(f"linux/{a}" for a in SUPPORTED) + ")")
        if any(p.architecture == platform.architecture for p in out):
            raise UsageError(f"--platform {text}: {part} is named twice")
        out.append(Platform(os="linux", architecture=platform.architecture,
                            variant="v8" if platform.architecture == "arm64" else None))
    if not out:
        raise UsageError("--platform needs at least one OS/ARCH")
    return out


def is_native(platform: Platform) -> bool:
    host = host_platform()
    return (platform.os, platform.architecture) == (host.os, host.architecture)


def emulation_entry(arch: str, binfmt_dir: Path | None = None) -> tuple[bool, str]:
    """(usable, why not) for running ``arch`` programs here through binfmt_misc.

    The entry must be enabled and have the F flag (the interpreter opened when registered), so
    that it also works inside a sandbox whose root file system has no QEMU binary.
    """
    binfmt_dir = BINFMT_DIR if binfmt_dir is None else binfmt_dir
    name = QEMU_BINFMT.get(arch)
    if name is None:
        return False, f"no QEMU emulator is known for {arch}"
    entry = binfmt_dir / name
    try:
        text = entry.read_text()
    except FileNotFoundError:
        if not (binfmt_dir / "status").exists():
            return False, (f"binfmt_misc is not mounted at {binfmt_dir} (as root: mount -t binfmt_misc "
                           f"binfmt_misc {binfmt_dir}; then update-binfmts --enable {name})")
        return False, (f"binfmt_misc has no {name} entry (apt-get install qemu-user-static binfmt-support, "
                       "or run scripts/setup.sh)")
    except OSError as exc:
        return False, f"cannot read {entry}: {exc.strerror}"
    lines = text.splitlines()
    if not lines or lines[0].strip() != "enabled":
        return False, f"{entry} is disabled (update-binfmts --enable {name})"
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        return False, (f"{entry} lacks the F flag, so sandboxes cannot find the emulator (Debian's "
                       "qemu-user-static registers it with F: apt-get install qemu-user-static)")
    return True, ""


def require_runnable(platform: Platform) -> None:
    """Raise ``EmulationError`` (what to install) unless this machine runs ``platform``'s programs."""
    if is_native(platform):
        return
    ok, why = emulation_entry(platform.architecture)
    if not ok:
        raise EmulationError(f"cannot run {platform.os}/{platform.architecture} programs on this "
                             f"{host_platform().architecture} machine: {why}")
