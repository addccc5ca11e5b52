"""Writing an apt repository from .deb files: ``dists/SUITE/COMPONENT/binary-ARCH/Packages`` and a
``Release`` that lists it, with the package files under ``pool/``.

pallet uses it for one thing: to let apt install exact package versions that the mirror has
dropped but the local package cache still holds, verified (the cache's copy has the SHA256 the
mirror's index gave when it was downloaded). The tests use the same writer to serve archives on
loopback (a moving mirror, a snapshot archive). What goes into the index is computed by pure
functions; reading a package's control fields is the only I/O (``dpkg-deb``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from builder.stacks.errors import StackError


@dataclass(frozen=True)
class DebFile:
    """A package file and what its index entry needs: control fields, size, SHA256."""

    path: Path
    control: dict[str, str]
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.control["Package"]

    @property
    def version(self) -> str:
        return self.control["Version"]

    @property
    def arch(self) -> str:
        return self.control["Architecture"]


def parse_control(text: str) -> dict[str, str]:
    """A control paragraph as an ordered dict (continuation lines kept with their newlines)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += "\n" + line
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def read_deb(path: Path, sha256: str | None = None) -> DebFile:
    """The control fields of a .deb (``dpkg-deb --field``), its size and SHA256.

    With ``sha256`` given (what an index said), the file must have it: StackError otherwise.
    """
    done = subprocess.run(["dpkg-deb", "--field", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"{path}: not a Debian package ({done.stderr.strip() or 'dpkg-deb failed'})")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256:
        raise StackError(f"{path}: SHA256 {digest} is not the {sha256} its index gave")
    return DebFile(path=path, control=parse_control(done.stdout), size=path.stat().st_size, sha256=digest)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def pool_name(deb: DebFile) -> str:
    """Where a package lives in the repository (the name apt gives it in its archives directory)."""
    return f"pool/{deb.name}_{deb.version.replace(':', '%3a')}_{deb.arch}.deb"


def packages_index(debs: Iterable[DebFile]) -> bytes:
    """The ``Packages`` file for these packages: their control fields plus where and what the file is."""
    paras = []
    for deb in sorted(debs, key=lambda d: (d.name, d.version, d.arch)):
        fields = {k: v for k, v in deb.control.items() if k not in ("Filename", "Size", "SHA256", "MD5sum")}
        fields.update({"Filename": pool_name(deb), "Size": str(deb.size), "SHA256": deb.sha256})
        paras.append("".join(f"{k}: {v}\n" for k, v in fields.items()))
    return "\n".join(paras).encode()


def release_file(*, suite: str, codename: str, components: Iterable[str], architectures: Iterable[str],
                 files: dict[str, bytes], date: int, origin: str = "pallet") -> bytes:
    """A ``Release`` for the index files ``files`` (path under dists/SUITE -> content)."""
    when = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(date))
    lines = [f"Origin: {origin}", f"Label: {origin}", f"Suite: {suite}", f"Codename: {codename}", f"Date: {when}",
             f"Architectures: {' '.join(sorted(set(architectures)))}",
             f"Components: {' '.join(sorted(set(components)))}", "SHA256:"]
    for rel, data in sorted(files.items()):
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>16} {rel}")
    return ("\n".join(lines) + "\n").encode()


def write_repository(root: Path, debs: Iterable[DebFile], *, suite: str, codename: str | None = None,
                     component: str = "main", date: int = 315532801, link: bool = True) -> Path:
    """A repository at ``root`` (``deb URI SUITE COMPONENT``) holding exactly ``debs``.

    Files are hard-linked into ``pool/`` when ``link`` (same file system), else copied. Returns
    ``root/dists/SUITE/Release``, the file a test may sign.
    """
    debs = list(debs)
    pool = root / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        dest = root / pool_name(deb)
        if dest.exists():
            continue
        try:
            if not link:
                raise OSError
            os.link(deb.path, dest)
        except OSError:
            shutil.copyfile(deb.path, dest)
    arches = sorted({d.arch for d in debs if d.arch != "all"}) or ["amd64"]
    files: dict[str, bytes] = {}
    for arch in arches:
        data = packages_index(d for d in debs if d.arch in (arch, "all"))
        files[f"{component}/binary-{arch}/Packages"] = data
        files[f"{component}/binary-{arch}/Packages.gz"] = gzip.compress(data, mtime=0)
    dists = root / "dists" / suite
    for rel, data in files.items():
        (dists / rel).parent.mkdir(parents=True, exist_ok=True)
        (dists / rel).write_bytes(data)
    release = dists / "Release"
    release.write_bytes(release_file(suite=suite, codename=codename or suite, components=[component],
                                     architectures=arches, files=files, date=date))
    return release
