"""The lean HTTP/1.1 transport (builder.oci.stores.http1) against a real TCP server that answers
what each test scripts (the framings a registry or a proxy in front of one may use), and the
registry client's fall-back to requests when a small request turns out large."""

from __future__ import annotations

import os
import socket
import threading
from typing import Callable, Iterator

import pytest
import requests

from builder.oci import mediatypes as mt
from builder.oci.stores import http1
from builder.oci.stores.http1 import Http1Pool
from builder.oci.stores.registry import RegistryStore
from tests.fixtures_registry import RunningRegistry, unique_repo

Answer = Callable[[bytes, int], bytes | None]  # (request head, request number) -> bytes to send; None: close


class ScriptedServer:
    """Accepts connections; for each request head read, sends what ``answer`` says."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":", 1)[1])
                        while len(buf) < n:
                            buf += conn.recv(65536)
                        buf = buf[n:]
                self.requests.append(head)
                reply = self.answer(head, len(self.requests))
                if reply is None:
                    return
                conn.sendall(reply)

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], tuple[ScriptedServer, Http1Pool]]]:
    servers: list[ScriptedServer] = []

    def make(answer: Answer) -> tuple[ScriptedServer, Http1Pool]:
        server = ScriptedServer(answer)
        servers.append(server)
        return server, Http1Pool("127.0.0.1", server.port, connect_timeout=5, read_timeout=5)

    yield make
    for server in servers:
        server.close()


def test_keep_alive_reuses_one_connection_and_sends_body_and_length(serve) -> None:  # noqa: ANN001
    server, pool = serve(lambda head, n: b"HTTP/1.1 201 Created\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nok")
    for _ in range(3):
        status, reason, headers, body = pool.request("PUT", "/v2/a/manifests/t?x=1",
                                                     {"Content-Type": "a/b", "content-length": "999"}, b"{}")
        assert (status, reason, headers["location"], body) == (201, "Created", "/x", b"ok")
    assert server.connections == 1
    first = server.requests[0].split(b"\r\n")
    assert first[0] == b"PUT /v2/a/manifests/t?x=1 HTTP/1.1"
    assert b"Content-Length: 2" in first and b"content-length: 999" not in first  # the body's own length


def test_chunked_body_and_trailers(serve) -> None:  # noqa: ANN001
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n")
    server, pool = serve(lambda head, n: reply)
    assert pool.request("GET", "/", {}, None)[3] == b"hello, world"
    assert pool.request("GET", "/", {}, None)[3] == b"hello, world"  # and the connection stayed usable
    assert server.connections == 1


def test_head_has_no_body_even_with_a_length(serve) -> None:  # noqa: ANN001
    server, pool = serve(lambda head, n: b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    for _ in range(2):
        status, _, headers, body = pool.request("HEAD", "/", {}, None)
        assert (status, headers["content-length"], body) == (200, "1234", b"")
    assert server.connections == 1


def test_a_closed_idle_connection_is_retried_once_on_a_fresh_one(serve) -> None:  # noqa: ANN001
    # The server answers one request a connection and then closes it without saying so (a
    # keep-alive timeout racing our next request): the pool must not fail the next request.
    def answer(head: bytes, n: int) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + str(n).encode()

    server, pool = serve(answer)
    orig = server._serve

    def one_per_connection(conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            server.requests.append(head)
            conn.sendall(answer(head, len(server.requests)) or b"")

    server._serve = one_per_connection  # type: ignore[method-assign]
    assert pool.request("GET", "/", {}, None)[3] == b"1"
    assert pool.request("GET", "/", {}, None)[3] == b"2"
    assert len(server.requests) == 2 and server.connections == 2
    server._serve = orig  # type: ignore[method-assign]


def test_connection_close_and_body_until_eof(serve) -> None:  # noqa: ANN001
    server, pool = serve(lambda head, n: b"HTTP/1.0 200 OK\r\n\r\nall of it")
    orig = server._serve

    def then_close(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nall of it")

    server._serve = then_close  # type: ignore[method-assign]
    assert pool.request("GET", "/", {}, None)[3] == b"all of it"
    assert pool.request("GET", "/", {}, None)[3] == b"all of it"
    assert server.connections == 2  # nothing kept: the body ended with the connection
    server._serve = orig  # type: ignore[method-assign]


def test_garbage_and_refused_connections_are_connection_errors(serve) -> None:  # noqa: ANN001
    _, pool = serve(lambda head, n: b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(requests.ConnectionError, match="not an HTTP/1.1 response"):
        pool.request("GET", "/", {}, None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        closed = Http1Pool("127.0.0.1", port, connect_timeout=5, read_timeout=5)
        with pytest.raises(requests.ConnectionError):
            closed.request("GET", "/", {}, None)


@pytest.mark.registry
def test_too_large_for_the_lean_path_falls_back_to_requests(registry: RunningRegistry,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = RegistryStore(registry.host, unique_repo())
    blob = os.urandom(3000)
    desc = store.put_blob_bytes(blob, mt.OCI_LAYER)
    assert store.client._fast is not None  # a loopback registry: the lean path is in use
    monkeypatch.setattr(http1, "MAX_BODY", 1000)
    assert store.get_blob(desc) == blob  # read again by requests, whole and verified
