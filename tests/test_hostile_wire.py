"""A registry whose HTTP itself lies (issue 11, fourth sweep): a Content-Length or chunk size
that is no number, endless header lines or interim answers, a redirect to a location no HTTP
client can follow. Each was a traceback (ValueError, RecursionError) or a hang in the lean
HTTP/1.1 client; each is now a one-line error naming the registry, in bounded time and memory.
"""

from __future__ import annotations

import base64
import json
import http.server
import time
from pathlib import Path

import pytest

from builder.errors import RegistryError
from builder.oci.stores import http1
from builder.oci.stores.layout import LayoutStore
from builder.oci.stores.registry import RegistryStore
from tests.cli import pallet
from tests.imagekit import push_image
from tests.test_hostile_inputs import one_line_error
from tests.test_hostile_registry import MANIFEST, Trap, _digest, hostile_registry

Handler = http.server.BaseHTTPRequestHandler


def _manifest_answer(head: bytes, body: bytes = MANIFEST) -> Trap:
    """Manifest requests get ``head`` (status line and headers, as bytes) and ``body``."""
    def trap(handler: Handler, path: str) -> bool:
        if "/manifests/" not in path:
            return False
        handler.wfile.write(head + b"\r\n" + body)
        handler.wfile.flush()
        handler.close_connection = True
        return True
    return trap


def _endless(line: bytes, first: bytes = b"") -> Trap:
    """Manifest requests get ``first`` then ``line`` again and again, until the client hangs up."""
    def trap(handler: Handler, path: str) -> bool:
        if "/manifests/" not in path:
            return False
        handler.wfile.write(first)
        deadline = time.monotonic() + 120  # the test's own guard: the client must leave first
        while time.monotonic() < deadline:
            handler.wfile.write(line)
        return True
    return trap


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"


@pytest.mark.parametrize("trap, said", [
    (_manifest_answer(OK + b"Content-Length: abc\r\n"), "Content-Length 'abc'"),
    (_manifest_answer(OK + b"Content-Length: -5\r\n"), "Content-Length '-5'"),
    (_manifest_answer(OK + b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + MANIFEST), "chunk size 'zz'"),
    (_manifest_answer(b"HTTP/1.1 99999999999999999999 X\r\nContent-Length: 0\r\n", b""), "not an HTTP/1.1 response"),
    (_endless(b"HTTP/1.1 100 Continue\r\n\r\n"), f"more than {http1.MAX_INTERIM} interim answers"),
    (_endless(b"X-Padding: " + b"a" * 1000 + b"\r\n", b"HTTP/1.1 200 OK\r\n"),
     f"more than {http1.MAX_HEADERS} header lines"),
], ids=["length-not-a-number", "length-negative", "chunk-not-hex", "status-absurd", "endless-100-continue",
        "endless-headers"])
def test_a_broken_http_answer_is_a_registry_error_not_a_traceback(trap: Trap, said: str) -> None:
    """Was ValueError (int('abc')), RecursionError (a 100 Continue answered by recursion) or a
    hang (header lines read for ever: each came well within the read timeout)."""
    with hostile_registry(trap) as host:
        with pytest.raises(RegistryError, match="broken HTTP response|not an HTTP/1.1 response") as info:
            RegistryStore(host, "app/x", retries=1).get_manifest("t")
    assert said in str(info.value) and host in str(info.value)


def test_a_repeated_content_length_with_one_value_is_read() -> None:
    """What HTTP allows (the same length twice) is not refused along with the lies."""
    head = OK + b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(MANIFEST), len(MANIFEST))
    with hostile_registry(_manifest_answer(head)) as host:
        _, data = RegistryStore(host, "app/x", retries=1).get_manifest("t")
    assert data == MANIFEST


@pytest.mark.parametrize("location", ["file:///etc/passwd", "http://[::1", "gopher://127.0.0.1/x"])
def test_a_redirect_no_http_client_can_follow_is_a_one_line_error(tmp_path: Path, location: str) -> None:
    """requests raised InvalidSchema ('No connection adapters were found', no registry named)
    or urllib's bare ValueError (a traceback) from inside its redirect handling."""
    def trap(handler: Handler, path: str) -> bool:
        if "/manifests/" in path:
            handler.answer(307, b"", (("Location", location),))
            return True
        return False

    with hostile_registry(trap) as host:
        proc = pallet("copy", f"docker://{host}/app/x:t", f"oci:{tmp_path}/out:t", check=False, timeout=120)
    one_line_error(proc, f"registry {host} redirected GET /v2/app/x/manifests/t", "not an HTTP(S) URL")
    assert not (tmp_path / "out" / "index.json").exists()


def _basic_auth_sending_blobs_to(storage: str):
    """A registry that asks for Basic credentials, then redirects each blob GET to ``storage``
    (host:port), as registries send blobs to S3."""
    def trap(handler: Handler, path: str) -> bool:
        if "Authorization" not in handler.headers:
            handler.answer(401, b"{}", (("WWW-Authenticate", 'Basic realm="r"'),))
            return True
        if "/blobs/" in path and handler.command == "GET":
            handler.answer(307, b"", (("Location", f"http://{storage}{path}"),))
            return True
        return False
    return trap


def test_a_redirect_to_another_host_carries_no_credentials(tmp_path: Path) -> None:
    """Registries send blobs to storage elsewhere (S3): the password stays with the registry."""
    seen: list[dict[str, str]] = []

    def elsewhere(handler: Handler, path: str) -> bool:
        seen.append(dict(handler.headers))
        return False

    with hostile_registry(elsewhere) as other:
        port = other.rsplit(":", 1)[1]

        with hostile_registry(_basic_auth_sending_blobs_to(f"127.0.0.1:{port}")) as host:
            pallet("copy", "--creds", "u:secret-pw", f"docker://{host}/app/x:t", f"oci:{tmp_path}/out:t",
                   timeout=120)
    assert seen and all("Authorization" not in headers for headers in seen), seen


@pytest.mark.parametrize("location", ["http://[::1", "file:///etc/passwd", "ftp://x/y"])
def test_an_upload_location_that_is_no_http_url_is_a_one_line_error(tmp_path: Path, location: str) -> None:
    """The Location a registry answers a blob upload's POST with: 'http://[::1' was urllib's
    ValueError traceback (twice: joining it, adding the digest to its query)."""
    def trap(handler: Handler, path: str) -> bool:
        if handler.command == "HEAD" and "/blobs/" in path:
            handler.answer(404, b"")
            return True
        if handler.command == "POST":
            handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
            handler.answer(202, b"", (("Location", location),))
            return True
        return False

    src = LayoutStore(tmp_path / "src")
    push_image(src, [{"bin/app": b"x"}], tag="t")
    with hostile_registry(trap, pushable=True) as host:
        proc = pallet("copy", f"oci:{tmp_path}/src:t", f"docker://{host}/app/x:t", check=False, timeout=120)
    one_line_error(proc, repr(location)[:-1], "location")


def test_a_challenge_from_the_storage_a_blob_is_redirected_to_gets_no_credentials(tmp_path: Path) -> None:
    """The storage a registry sends blobs to answered 401 with a Bearer challenge naming a token
    server of its own: pallet took it as the registry's and traded the registry's password there
    (and kept that challenge for the registry's later requests). A challenge counts only from the
    registry itself; the storage's 401 is the one-line error it is."""
    seen: list[str | None] = []

    def tokens(handler: Handler, path: str) -> bool:
        seen.append(handler.headers.get("Authorization"))
        handler.answer(200, b'{"token": "t"}')
        return True

    with hostile_registry(tokens) as realm:
        def storage(handler: Handler, path: str) -> bool:
            handler.answer(401, b"{}", (("WWW-Authenticate", f'Bearer realm="http://{realm}/token"'),))
            return True

        with hostile_registry(storage) as other:
            with hostile_registry(_basic_auth_sending_blobs_to(other)) as host:
                proc = pallet("copy", "--creds", "u:secret-pw", f"docker://{host}/app/x:t", f"oci:{tmp_path}/out:t",
                              check=False, timeout=120)
    assert seen == [], seen
    one_line_error(proc, f"registry {host} sent GET for app/x to {other}, which answered HTTP 401")


def test_a_stack_registry_the_source_names_gets_no_creds_the_command_line_did_not_name_it_for(
        tmp_path: Path) -> None:
    """project.toml comes with the source: its [io.pallet.stack] on docker://attacker.example had
    ``pallet build --creds`` (meant for the registry -t names) send the password there, looking up
    a tag's digest or pulling the stack. Now --creds go to it only when the command line names
    that host too."""
    seen: list[str | None] = []

    def trap(handler: Handler, path: str) -> bool:
        seen.append(handler.headers.get("Authorization"))
        if "Authorization" not in handler.headers:
            handler.answer(401, b"{}", (("WWW-Authenticate", 'Basic realm="r"'),))
            return True
        if handler.command == "POST":  # build's push check (-t names this host): an upload starts
            handler.answer(202, b"", (("Location", "/v2/app/blobs/uploads/1"),))
            return True
        return False

    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("hi\n")
    with hostile_registry(trap, pushable=True) as host:
        for pinned in ("", "@" + _digest(MANIFEST)):   # a tag (its digest looked up), a digest (pulled)
            (app / "project.toml").write_text(f'[io.pallet.stack]\nbuild-image = "docker://{host}/s/b:1{pinned}"\n'
                                              f'run-image = "docker://{host}/s/r:1{pinned}"\n')
            proc = pallet("detect", str(app), "--creds", "u:secret-pw", "--cache-dir", str(tmp_path / "cache"),
                          check=False, timeout=120)
            one_line_error(proc)
        assert seen and not any(seen), seen
        proc = pallet("build", str(app), "-t", f"docker://{host}/app:1", "--creds", "u:secret-pw", "--cache-dir",
                      str(tmp_path / "cache"), check=False, timeout=120)
    assert proc.returncode != 0 and "Basic " + base64.b64encode(b"u:secret-pw").decode() in seen, proc.stderr
    assert "stack" in proc.stderr or "run image" in proc.stderr or "build image" in proc.stderr, proc.stderr


def _denied(body: bytes, sent: list[int]) -> Trap:
    """Manifest requests are refused (403) with ``body``; ``sent`` gets how much of it went out."""
    def trap(handler: Handler, path: str) -> bool:
        if "/manifests/" not in path:
            return False
        handler.send_response(403)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        view = memoryview(body)
        for start in range(0, len(body), 1 << 20):  # the client hanging up ends it (OSError)
            handler.wfile.write(view[start:start + (1 << 20)])
            sent.append(start + len(view[start:start + (1 << 20)]))
        return True
    return trap


ESCAPES = "\x1b]0;owned\x07\x1b[2J\nfake: line\r\x9b31m\u202e"


@pytest.mark.parametrize("body", [
    json.dumps({"errors": [{"code": "DENIED", "message": ESCAPES + "m" * 2000}] * 20}).encode(),
    b'{"errors": [' + b" " * (64 << 20),
], ids=["escapes-thousands-of-errors", "64-mb-error-body"])
def test_a_registrys_error_body_reaches_the_terminal_escaped_and_bounded(tmp_path: Path, body: bytes) -> None:
    """A registry's error messages were printed whole and raw: terminal escapes (retitle the
    window, clear the screen), a newline forging a line, thousands of them; and the body was read
    whole into memory (``resp.json()``) however long. Now a bounded prefix of it is read, a few
    of its errors are quoted, each cut short, and every control character is shown escaped."""
    sent: list[int] = []
    with hostile_registry(_denied(body, sent)) as host:
        proc = pallet("copy", f"docker://{host}/app/x:t", f"oci:{tmp_path}/out:t", check=False, timeout=120)
    err = one_line_error(proc, f"registry {host} denied anonymous access", "HTTP 403")
    assert not any(c in err[:-1] for c in "\x1b\x07\r\x9b\u202e"), err
    assert len(err) < 2500, len(err)
    with hostile_registry(_denied(body, [])) as host:  # escaped in the error itself, whoever prints it
        with pytest.raises(RegistryError) as info:
            RegistryStore(host, "app/x", retries=1).get_manifest("t")
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value), str(info.value)
    if b"DENIED" not in body:
        assert max(sent, default=0) < len(body) // 2, "the whole error body was read"
    else:
        assert "\\x1b]0;owned\\x07\\x1b[2J\\x0afake: line\\x0d\\x9b31m\\u202e" in err and "17 more errors" in err


def _trickled_manifest(handler: Handler, path: str) -> bool:
    """A manifest answer whose body comes one byte every 0.2 s: never slow enough for a read timeout."""
    if "/manifests/" not in path:
        return False
    handler.wfile.write(OK + b"Content-Length: %d\r\n\r\n" % len(MANIFEST))
    for byte in MANIFEST:  # until the client hangs up (a broken pipe ends the handler)
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("client", ["lean", "requests"])
def test_a_trickled_manifest_meets_a_deadline(monkeypatch: pytest.MonkeyPatch, client: str) -> None:
    """The read timeout is between two packets: a manifest (a tag page, a config) trickled a byte
    at a time held the request for as long as the registry liked. Each answer has a deadline."""
    monkeypatch.setattr(http1, "ANSWER_DEADLINE", 1.0)
    if client == "requests":
        monkeypatch.setenv("PALLET_HTTP_REQUESTS_ONLY", "1")
    with hostile_registry(_trickled_manifest) as host:
        with pytest.raises(RegistryError, match="took more than 1 seconds"):
            RegistryStore(host, "app/x", retries=1).get_manifest("t")
