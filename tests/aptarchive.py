"""A Debian archive that a test makes and serves on loopback: a mirror that moves when the test
says so, or a snapshot archive laid out like snapshot.debian.org.

Packages come from two places: Debian's essential set (and whatever else a stack needs) from the
package cache, downloaded once from the real mirror at its current versions; and small packages
the test makes itself with ``dpkg-deb``. Release files are signed with a key made for the test,
so apt checks signatures exactly as it does against Debian.

    archive = AptArchive(tmp_path)                       # a fixture: ``apt_archive``
    hello_1 = make_deb(tmp_path / "debs", "pallet-hello", "1.0-1", files={...})
    archive.publish("debian", "bookworm", [*essential, hello_1])
    archive.publish("debian", "bookworm-updates", [])
    stack file: [distro] mirror = archive.url + "/debian", keyring = str(archive.keyring)
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator

import pytest

from builder.stacks.aptrepo import DebFile, read_deb, write_repository

ROOT = Path(__file__).resolve().parent.parent


def make_deb(out_dir: Path, name: str, version: str, *, files: dict[str, bytes] | None = None,
             depends: str | None = None, arch: str = "all") -> DebFile:
    """A real Debian package (``dpkg-deb --build``, root-owned files) holding ``files``."""
    work = out_dir / f".{name}_{version}"
    if work.exists():
        shutil.rmtree(work)
    (work / "DEBIAN").mkdir(parents=True)
    for rel, data in (files or {}).items():
        path = work / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if data.startswith(b"#!") else 0o644)
    control = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}",
               "Maintainer: pallet tests <tests@pallet.invalid>", "Priority: optional", "Section: misc",
               f"Description: {name}, a package made by pallet's tests"]
    if depends:
        control.append(f"Depends: {depends}")
    (work / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
    deb = out_dir / f"{name}_{version}_{arch}.deb"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532801"}
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(work), str(deb)],
                   check=True, capture_output=True, env=env)
    shutil.rmtree(work)
    return read_deb(deb)


class AptArchive:
    """Repositories under one directory, served over HTTP on 127.0.0.1, signed with a test key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        # gpg-agent's socket path must be short: not under pytest's long tmp_path
        self._gnupg = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
        self.keyring = root.parent / "archive-keyring.gpg"
        self._gpg("--quick-gen-key", "pallet test archive <archive@pallet.invalid>", "ed25519", "sign", "never")
        self.keyring.write_bytes(self._gpg("--export").stdout)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["gpg", "--homedir", str(self._gnupg), "--batch", "--yes", "--pinentry-mode",
                               "loopback", "--passphrase", "", *args], check=True, capture_output=True)

    def publish(self, prefix: str, suite: str, debs: Iterable[DebFile], *, date: int = 1764547200) -> None:
        """(Re)write suite ``suite`` of the repository at ``URL/prefix`` to hold exactly ``debs``."""
        repo = self.root / prefix
        dists = repo / "dists" / suite
        if dists.exists():
            shutil.rmtree(dists)
        release = write_repository(repo, debs, suite=suite, codename=suite.split("-")[0], date=date, link=False)
        self._gpg("--clearsign", "--digest-algo", "SHA256", "-o", str(release.with_name("InRelease")), str(release))
        self._gpg("--detach-sign", "--digest-algo", "SHA256", "-o", str(release.with_name("Release.gpg")),
                  str(release))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        subprocess.run(["gpgconf", "--homedir", str(self._gnupg), "--kill", "gpg-agent"], capture_output=True)
        shutil.rmtree(self._gnupg, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def apt_archive(tmp_path: Path) -> Iterator[AptArchive]:
    archive = AptArchive(tmp_path / "archive")
    try:
        yield archive
    finally:
        archive.close()


@pytest.fixture(scope="session")
def essential_debs(tmp_path_factory: pytest.TempPathFactory) -> list[DebFile]:
    """Every package of the tiny stack at the mirror's current versions, from the package cache
    (downloaded once from the real mirror): enough for a stack of Debian's essential set."""
    from builder.stacks import spec
    from builder.stacks.apt import PrivateApt, sources_for
    from builder.stacks.api import cache_root
    from builder.stacks.assemble import fetch_debs
    from builder.stacks.lock import resolve_lock

    work = tmp_path_factory.mktemp("essential")
    stack = spec.load(ROOT / "stacks" / "tiny.toml")
    lock = resolve_lock(stack, work_root=work)
    arch_lock = lock.arch("amd64")
    packages = sorted({*arch_lock.base, *arch_lock.build, *arch_lock.run})
    cache = cache_root() / "debs"
    apt = PrivateApt(work / "apt", "amd64", sources_for(stack.distro, str(stack.path)), str(stack.path))
    apt.update()
    fetch_debs(apt, packages, cache)
    return [read_deb(cache / p.deb_filename) for p in packages]
