"""The local package cache (``~/.cache/pallet/debs``) and what vouches for each file in it.

Every .deb that pallet downloads was checked by apt against the mirror's index; pallet keeps the
SHA256 that index gave beside the file (``NAME_VERSION_ARCH.deb.sha256``). When the mirror has
moved on, a locked version it dropped can still be installed from the cache -- but only a file
whose content has that recorded hash: a machine that built a stack once can build it again, byte
for byte, and nothing unverified ever enters an image.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterable

from builder.stacks.aptrepo import DebFile, read_deb
from builder.stacks.errors import StackError
from builder.stacks.lockfile import Package

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sidecar(cache: Path, package: Package) -> Path:
    return cache / (package.deb_filename + ".sha256")


def recorded_sha256(cache: Path, package: Package) -> str | None:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        value = sidecar(cache, package).read_text().strip()
        if _HEX64.match(value):
            return value
    return None


def record(cache: Path, package: Package, sha256: str) -> None:
    """Keep the index's SHA256 for a cached package (atomically; an existing record stays)."""
    path = sidecar(cache, package)
    if not _HEX64.match(sha256) or path.exists():
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(sha256 + "\n")
    os.replace(tmp, path)


def record_from_index(cache: Path, packages: Iterable[Package], stanzas: Iterable[dict[str, str]]) -> None:
    """Record the index's SHA256 of each package in ``packages`` that the cache holds."""
    wanted = {(p.name, p.version, p.arch): p for p in packages}
    for s in stanzas:
        p = wanted.get((s.get("Package", ""), s.get("Version", ""), s.get("Architecture", "")))
        if p is not None and s.get("SHA256") and (cache / p.deb_filename).is_file():
            record(cache, p, s["SHA256"].strip())


def verified(cache: Path, packages: Iterable[Package]) -> dict[Package, DebFile]:
    """The packages of ``packages`` that the cache holds with their recorded hash (and the right
    name, version and architecture inside). A file whose content does not match is removed."""
    out: dict[Package, DebFile] = {}
    for p in packages:
        path = cache / p.deb_filename
        sha = recorded_sha256(cache, p)
        if sha is None or not path.is_file():
            continue
        try:
            deb = read_deb(path, sha256=sha)
        except StackError:
            path.unlink(missing_ok=True)
            sidecar(cache, p).unlink(missing_ok=True)
            continue
        if (deb.name, deb.version, deb.arch) == (p.name, p.version, p.arch):
            out[p] = deb
    return out
