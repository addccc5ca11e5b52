"""A Go module proxy served on 127.0.0.1 (the GOPROXY protocol's static layout), so a test can
build a Go app whose go.mod requires modules, the way a real app downloads them from
proxy.golang.org, on a machine with no route to the public proxy.

The module zips and go.sum lines are made here as the go command makes them (``h1:`` is
golang.org/x/mod/sumdb/dirhash's Hash1: the SHA-256 of the sorted "<sha256>  <name>" lines)."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def hash1(files: dict[str, bytes]) -> str:
    """dirhash.Hash1 of files named as the go command names them."""
    summary = "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


class ModuleProxy:
    """A directory in the proxy's layout (MODULE/@v/list, VERSION.info, .mod, .zip) and its server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_Quiet, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def publish(self, module: str, version: str, files: dict[str, str]) -> str:
        """Publish a module version (``files`` must hold its go.mod); returns its two go.sum lines."""
        prefix = f"{module}@{version}/"
        content = {prefix + name: text.encode() for name, text in files.items()}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name in sorted(content):
                z.writestr(name, content[name])
        v = self.root / module / "@v"
        v.mkdir(parents=True, exist_ok=True)
        (v / f"{version}.zip").write_bytes(buf.getvalue())
        (v / f"{version}.mod").write_text(files["go.mod"])
        (v / f"{version}.info").write_text(json.dumps({"Version": version, "Time": "2024-01-01T00:00:00Z"}))
        with (v / "list").open("a") as listing:
            listing.write(version + "\n")
        return (f"{module} {version} {hash1(content)}\n"
                f"{module} {version}/go.mod {hash1({'go.mod': files['go.mod'].encode()})}\n")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def module_proxy(root: Path) -> Iterator[ModuleProxy]:
    proxy = ModuleProxy(root)
    try:
        yield proxy
    finally:
        proxy.close()
