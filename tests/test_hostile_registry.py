"""A hostile registry (issue 11, third sweep): a tiny HTTP server on 127.0.0.1 that answers as
an attacker's registry would. Each case is a one-line error in bounded time and memory, never a
hang, a loop or a traceback; nothing is written where the image was to go.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from builder.errors import RegistryError
from builder.oci import mediatypes as mt
from builder.oci.stores import auth
from builder.oci.stores.registry import RegistryStore
from tests.cli import pallet
from tests.imagekit import tar_of
from tests.test_hostile_inputs import one_line_error

LAYER_RAW = tar_of({"bin/app": b"x"})
LAYER = gzip.compress(LAYER_RAW, mtime=0)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [_digest(LAYER_RAW)]}}).encode()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                       "config": {"mediaType": mt.OCI_CONFIG, "digest": _digest(CONFIG), "size": len(CONFIG)},
                       "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": _digest(LAYER),
                                   "size": len(LAYER)}]}).encode()
BLOBS = {_digest(CONFIG): CONFIG, _digest(LAYER): LAYER}

#: What a hostile route does instead of answering: (handler, path) -> True when it answered.
Trap = Callable[[http.server.BaseHTTPRequestHandler, str], bool]


class _Registry(http.server.BaseHTTPRequestHandler):
    """An honest little registry (one image, any repository, any tag) with one ``trap``."""

    protocol_version = "HTTP/1.1"
    trap: Trap = staticmethod(lambda handler, path: False)

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, code: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self.path
        with contextlib.suppress(OSError):  # the client hanging up on a trap is what we want
            if type(self).trap(self, path):
                return
            if path.rstrip("/") == "/v2":
                self.answer(200, b"{}")
            elif "/manifests/sha256-" in path:  # the referrers fallback tag: none
                self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            elif "/manifests/" in path:
                self.answer(200, MANIFEST, (("Content-Type", mt.OCI_MANIFEST),
                                            ("Docker-Content-Digest", _digest(MANIFEST))))
            elif "/blobs/" in path and path.split("/blobs/")[1] in BLOBS:
                self.answer(200, BLOBS[path.split("/blobs/")[1]])
            else:
                self.answer(404, b'{"errors":[{"code":"NOT_FOUND"}]}')


@contextlib.contextmanager
def hostile_registry(trap: Trap, *, pushable: bool = False) -> Iterator[str]:
    """host:port of a registry whose requests go to ``trap`` first (POST, PUT, PATCH and DELETE
    too, when ``pushable``)."""
    methods = {"do_POST": _Registry.do_GET, "do_PUT": _Registry.do_GET, "do_PATCH": _Registry.do_GET,
               "do_DELETE": _Registry.do_GET} if pushable else {}
    handler = type("Hostile", (_Registry,), {"trap": staticmethod(trap), **methods})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _token_challenge(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
    """Ask for a bearer token from this same server's /token, until one is sent."""
    if path.startswith("/token") or "Authorization" in handler.headers:
        return False
    port = handler.server.server_address[1]
    handler.answer(401, b"{}", (("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",service="x"'),))
    return True


def _endless_token(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
    if not path.startswith("/token"):
        return _token_challenge(handler, path)
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b'{"token": "' + b"x" * 65536
    while True:  # until the client hangs up
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def _trickled_token(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
    if not path.startswith("/token"):
        return _token_challenge(handler, path)
    handler.send_response(200)
    handler.send_header("Content-Length", "1000000")
    handler.end_headers()
    while True:  # one byte at a time: never long enough apart for a read timeout
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.2)


def test_an_endless_token_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """The token server's answer was read whole (``resp.json()``): an endless one, for ever."""
    with hostile_registry(_endless_token) as host:
        proc = pallet("inspect", f"docker://{host}/app/x:t", check=False, timeout=120)  # a hang guard
    one_line_error(proc, "token server", f"more than {auth.MAX_TOKEN_RESPONSE} bytes")


def test_a_trickled_token_meets_a_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte every 0.2 s never trips the read timeout (between two packets): the token
    request has a deadline of its own."""
    monkeypatch.setattr(auth, "TOKEN_DEADLINE", 1.0)
    with hostile_registry(_trickled_token) as host:
        store = RegistryStore(host, "app/x", retries=1)
        with pytest.raises(RegistryError, match="took more than 1 seconds"):
            store.resolve("t")


def _redirect_loop(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
    if "/manifests/" in path or "/blobs/" in path:
        handler.answer(307, b"", (("Location", path.split("?")[0] + "?again"),))
        return True
    return False


def test_a_redirect_loop_is_a_one_line_error_naming_the_registry(tmp_path: Path) -> None:
    """It was requests' bare 'Exceeded 30 redirects.': no registry, no request named."""
    with hostile_registry(_redirect_loop) as host:
        proc = pallet("copy", f"docker://{host}/app/x:t", f"oci:{tmp_path}/out:t", check=False, timeout=120)
    one_line_error(proc, f"registry {host} redirected GET /v2/app/x/manifests/t", "redirect loop")
    assert not (tmp_path / "out" / "index.json").exists()


def _looping_pages(kind: str) -> Trap:
    """Every page of ``kind`` (``tags`` or ``referrers``) links to itself as the next one."""
    def trap(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
        if f"/{kind}/" not in path:
            return False
        body = json.dumps({"name": "app/x", "tags": ["t"]} if kind == "tags"
                          else {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()
        handler.answer(200, body, (("Content-Type", "application/json" if kind == "tags" else mt.OCI_INDEX),
                                   ("Link", f'<{path}>; rel="next"')))
        return True
    return trap


def _endless_pages(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
    """A new page every time: ?last=1, ?last=2, ... for ever."""
    if "/tags/" not in path:
        return False
    n = int(path.rsplit("last=", 1)[1]) + 1 if "last=" in path else 1
    body = json.dumps({"name": "app/x", "tags": [f"t{n}"]}).encode()
    handler.answer(200, body, (("Content-Type", "application/json"),
                               ("Link", f'</v2/app/x/tags/list?n=1&last={n}>; rel="next"')))
    return True


def test_a_tag_list_whose_next_page_is_itself_is_refused_not_read_for_ever() -> None:
    with hostile_registry(_looping_pages("tags")) as host:
        with pytest.raises(RegistryError, match="links back to a page already read"):
            RegistryStore(host, "app/x", retries=1).list_tags()


def test_a_tag_list_without_end_stops_at_a_page_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.oci.stores import registry

    monkeypatch.setattr(registry, "MAX_PAGES", 20)
    with hostile_registry(_endless_pages) as host:
        with pytest.raises(RegistryError, match="more than 20 pages"):
            RegistryStore(host, "app/x", retries=1).list_tags()


def test_a_tag_list_of_pages_too_full_stops_at_an_entry_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages were bounded in number (a thousand) and size (4 MiB) only: a thousand pages of short
    tags (or referrers) were read into memory, gigabytes of them. Now the entries are counted."""
    from builder.oci.stores import registry

    served: list[str] = []

    def full_pages(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
        if "/tags/" not in path:
            return False
        served.append(path)
        n = len(served)
        body = json.dumps({"name": "app/x", "tags": [f"t{n}-{i}" for i in range(5000)]}).encode()
        handler.answer(200, body, (("Content-Type", "application/json"),
                                   ("Link", f'</v2/app/x/tags/list?n=5000&last=t{n}>; rel="next"')))
        return True

    monkeypatch.setitem(registry.MAX_LISTED, "tags", 10000)
    with hostile_registry(full_pages) as host:
        with pytest.raises(RegistryError, match="the tag list in .* holds more than 10000 tags; refusing to read on"):
            RegistryStore(host, "app/x", retries=1).list_tags()
    assert len(served) == 3, served


def test_referrers_whose_next_page_is_itself_are_refused_not_read_for_ever(tmp_path: Path) -> None:
    """``pallet sbom`` of such an image never ended: the referrers API's Link looped."""
    with hostile_registry(_looping_pages("referrers")) as host:
        store = RegistryStore(host, "app/x", retries=1)
        with pytest.raises(RegistryError, match="links back to a page already read"):
            store.referrers(_digest(MANIFEST))
        # what a user sees: no hang; the SBOM is computed from the layers instead
        proc = pallet("sbom", f"docker://{host}/app/x:t", check=False, timeout=120)  # a hang guard
        assert "Traceback" not in proc.stderr, proc.stderr


HUGE = 1 << 40


def _huge_config(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
    """A manifest whose config declares a terabyte, and a blob route that sends as much."""
    if "/manifests/" in path:
        manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": [],
                               "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "e" * 64,
                                          "size": HUGE}}).encode()
        handler.answer(200, manifest, (("Content-Type", mt.OCI_MANIFEST),))
        return True
    if "/blobs/" in path:
        handler.send_response(200)
        handler.send_header("Content-Length", str(HUGE))
        handler.end_headers()
        while True:  # until the client hangs up
            handler.wfile.write(b"{" * 65536)
    return False


def test_a_config_declaring_a_terabyte_is_refused_before_it_is_read() -> None:
    """Its size is the manifest writer's choice: get_blob read that much into memory (configs,
    signature payloads, SBOMs all come through it). Here pallet runs with 1 GiB of address
    space: it died of MemoryError, or took the machine's memory."""
    import os
    import resource
    import subprocess
    import sys

    from builder.oci.model import MAX_CONFIG
    from tests.cli import ROOT

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    with hostile_registry(_huge_config) as host:
        proc = subprocess.run([sys.executable, "-m", "builder", "inspect", f"docker://{host}/app/x:t"],
                              capture_output=True, text=True, preexec_fn=cap, timeout=300,  # a hang guard
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    one_line_error(proc, f"declares {HUGE} bytes", f"more than the {MAX_CONFIG}")


def test_a_config_that_would_take_gigabytes_to_parse_is_refused() -> None:
    """A config may be any blob up to 256 MiB, and JSON of empty objects takes 25 times its size
    in Python: a "history" of {}s took gigabytes. Configs are bounded at 16 MiB, declared (not
    fetched) or read (a docker-archive's, a layout's)."""
    from builder.oci.model import MAX_CONFIG, ImageConfig, ModelError

    config = b'{"history": [' + b",".join([b"{}"] * (MAX_CONFIG // 3 + 1)) + b"]}"
    with pytest.raises(ModelError, match=f"image config of {len(config)} bytes is over {MAX_CONFIG}"):
        ImageConfig.from_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": [],
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": _digest(config),
                                      "size": len(config)}}).encode()
    served: list[str] = []

    def trap(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
        served.append(path)
        if "/manifests/" in path:
            handler.answer(200, manifest, (("Content-Type", mt.OCI_MANIFEST),))
            return True
        return False

    with hostile_registry(trap) as host:
        proc = pallet("inspect", f"docker://{host}/app/x:t", check=False, timeout=120)
    one_line_error(proc, f"declares {len(config)} bytes, more than the {MAX_CONFIG}")
    assert not [p for p in served if "/blobs/" in p], served


def test_credentials_go_to_no_plain_http_token_server_of_an_https_registry() -> None:
    """A registry reached over verified HTTPS whose challenge named an ``http://`` realm got the
    user's password as a Basic header in clear text. Now that is refused, naming the realm; an
    anonymous token, and a plain-HTTP registry's own realm (loopback, --insecure), are fetched."""
    seen: list[str | None] = []

    def token(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
        seen.append(handler.headers.get("Authorization"))
        handler.answer(200, b'{"token": "t"}')
        return True

    with hostile_registry(token) as host:
        challenge = auth.parse_www_authenticate(f'Bearer realm="http://{host}/token",service="x"')[0]
        who = auth.Credentials("me", "secret")
        over_https = auth.Authenticator("registry.example", who, requests.Session())
        over_https.set_verify(True, tls=True)
        with pytest.raises(auth.AuthError, match=f"token server http://{host}/token is not HTTPS"):
            over_https._fetch_token(challenge, ("repository:app:pull",))
        assert seen == []
        anonymous = auth.Authenticator("registry.example", None, requests.Session())
        anonymous.set_verify(True, tls=True)
        assert anonymous._fetch_token(challenge, ())[0] == "t"
        plain = auth.Authenticator(host, who, requests.Session())
        plain.set_verify(False, tls=False)
        assert plain._fetch_token(challenge, ())[0] == "t"
        assert seen == [None, who.basic_header()]


def _referrers_listing(count: int, kind: str = "application/vnd.dev.sigstore.bundle.v0.3+json") -> Trap:
    """Referrers of anything: the image itself (which names no subject) ``count`` times, each
    under another annotation (a registry's listing is its own word)."""
    def trap(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
        if "/referrers/" not in path:
            return False
        listed = [{"mediaType": mt.OCI_MANIFEST, "digest": _digest(MANIFEST), "size": len(MANIFEST),
                   "artifactType": kind, "annotations": {"n": str(i)}}
                  for i in range(count)]
        handler.answer(200, json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": listed}).encode(),
                       (("Content-Type", mt.OCI_INDEX),))
        return True
    return trap


def test_promote_copies_no_referrer_that_names_another_subject_nor_thousands(tmp_path: Path) -> None:
    """promote copied whatever the source's referrers API listed, as many as it listed, and their
    referrers in turn: an image (or anyone's) listed as a referrer went to the destination as this
    one's proof, and thousands per level were copied for ever. Now a referrer must name the image
    as its subject, and past 256 the promote stops, tagging nothing."""
    with hostile_registry(_referrers_listing(1)) as host:
        done = pallet("promote", f"docker://{host}/app/x:t", f"oci:{tmp_path}/one:t", "--json", timeout=120)
        assert json.loads(done.stdout)["copied"] == [], done.stdout
    with hostile_registry(_referrers_listing(300)) as host:
        proc = pallet("promote", f"docker://{host}/app/x:t", f"oci:{tmp_path}/many:t", check=False, timeout=120)
        one_line_error(proc, "has 300 referrers, more than the 256 pallet copies; nothing was tagged")
    index = json.loads((tmp_path / "many" / "index.json").read_text())
    assert not [m for m in index["manifests"] if mt.ANNOTATION_REF_NAME in (m.get("annotations") or {})], index


def test_audit_tries_a_bounded_number_of_listed_sboms() -> None:
    """audit fetched every referrer listed as an SBOM until one named the image: a listing of
    thousands that are not its own was thousands of fetches. Past 256 it computes the SBOM from
    the layers instead."""
    from builder.supply.audit import _attached_sbom

    fetched: list[str] = []
    listing = _referrers_listing(300, "application/vnd.cyclonedx+json")

    def trap(handler: http.server.BaseHTTPRequestHandler, path: str) -> bool:
        if "/manifests/sha256:" in path:
            fetched.append(path)
        return listing(handler, path)

    with hostile_registry(trap) as host:
        store = RegistryStore(host, "app/x", retries=1)
        assert _attached_sbom(store, _digest(MANIFEST)) is None
    assert 0 < len(fetched) <= 256, len(fetched)


def test_a_digest_named_in_an_image_that_is_a_path_is_asked_of_no_registry() -> None:
    """A rebase statement names its original as 64 characters of sha256, checked for length
    only: ``"../" * 21 + "a"`` was sent as /v2/app/x/manifests/sha256:../../..a, a path of the
    registry's own choosing, with the user's credentials (promote copies originals; verify
    follows them). Now the statement's digest must be hex, and the store sends nothing that is
    not a tag or a digest."""
    from builder.errors import NotFoundError
    from builder.supply.rebaseprov import ORIGINAL, original_of

    climbing = "../" * 21 + "a"
    statement = {"predicate": {"buildDefinition": {"resolvedDependencies": [
        {"name": ORIGINAL, "uri": "x", "digest": {"sha256": climbing}}]}}}
    assert original_of(statement) is None
    seen: list[str] = []
    with hostile_registry(lambda handler, path: seen.append(path) and False) as host:
        store = RegistryStore(host, "app/x", retries=1)
        for call in (store.resolve, store.get_manifest):
            with pytest.raises(NotFoundError, match="is not a tag or digest"):
                call("sha256:" + climbing)
        assert store.resolve("t").digest == _digest(MANIFEST)
    assert not any(".." in p for p in seen), seen
