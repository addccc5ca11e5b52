"""A lean HTTP/1.1 client for a registry's small requests: keep-alive sockets in a pool, each
request written in one send, the response head parsed by hand, the body read whole.

Why not requests for these: a mass rebase makes about seven small requests an image, and
requests (urllib3 and http.client under it) spends about 1 ms of CPU on each one (preparing the
request, merging session settings, re-parsing the URL three times, reading headers through the
``email`` package) against about 0.05 ms here, measured on this project's 2-core machine: it
was most of pallet's CPU in a mass rebase. Everything else stays with requests, which does it
well: streams (layer uploads and downloads), TLS, proxies and redirects. ``RegistryClient``
chooses; this module knows nothing of registries.

Errors are raised as requests' exceptions (``ConnectionError``, ``Timeout``) so that the
caller's retry loop treats both transports alike. A pooled connection the server has closed
meanwhile (a keep-alive race every HTTP client meets) is retried once on a fresh one when
nothing of the response had arrived: the server never read that request.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Mapping

import requests
from requests.structures import CaseInsensitiveDict

#: Largest body read into memory; callers use this client for small things only.
MAX_BODY = 16 * 1024 * 1024
#: At most this many header lines, and interim (1xx) answers, in one response: http.client's
#: bound on header lines. A server that sends them without end never trips the read timeout.
MAX_HEADERS = 100
MAX_INTERIM = 16
#: The most seconds one answer may take in all: the read timeout is between two packets only, and
#: a registry trickling a byte a minute would hold a manifest request for weeks. This client is
#: for small answers (manifests, tag pages, configs): minutes are plenty.
ANSWER_DEADLINE = 300.0
_NO_BODY_STATUS = frozenset({204, 304})


class ResponseTooLarge(Exception):
    """The response body is larger than the small requests this client is for."""


class BrokenResponse(requests.ConnectionError):
    """What came back is not HTTP/1.1 as a server sends it (its message says how)."""


class _Conn:
    """One keep-alive socket and the bytes read past the last response."""

    __slots__ = ("sock", "buf", "reused", "deadline")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.reused = False
        self.deadline = float("inf")

    def fill(self) -> bool:
        """Read more into ``buf``; False when the peer closed the connection."""
        if time.monotonic() > self.deadline:
            raise BrokenResponse(f"the registry took more than {ANSWER_DEADLINE:.0f} seconds to answer")
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise BrokenResponse("the registry closed the connection in the middle of a response")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                data, self.buf = self.buf[:end], self.buf[end + 2:]
                return data
            if len(self.buf) > 65536:
                raise BrokenResponse("the registry sent a header line longer than 64 KiB")
            if not self.fill():
                raise BrokenResponse("the registry closed the connection in the middle of a response")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Http1Pool:
    """Keep-alive connections to one ``host:port`` over plain TCP; safe for many threads."""

    def __init__(self, host: str, port: int, *, connect_timeout: float, read_timeout: float,
                 max_idle: int = 32) -> None:
        self.host, self.port = host, port
        self.host_header = f"{host}:{port}"
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()

    def _get(self) -> _Conn:
        with self._lock:
            if self._idle:
                conn = self._idle.pop()
                conn.reused = True
                return conn
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.read_timeout)
        return _Conn(sock)

    def _put(self, conn: _Conn) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def request(self, method: str, target: str, headers: Mapping[str, str],
                body: bytes | None) -> tuple[int, str, CaseInsensitiveDict, bytes]:
        """(status, reason, headers, body) of one request; ``target`` is the path and query."""
        head = [f"{method} {target} HTTP/1.1\r\nHost: {self.host_header}\r\n"]
        for name, value in headers.items():
            if name.lower() != "content-length":  # ours, from the body, below
                head.append(f"{name}: {value}\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}\r\n")
        head.append("\r\n")
        data = "".join(head).encode("latin-1") + (body or b"")
        while True:
            try:
                conn = self._get()
            except socket.timeout as exc:
                raise requests.ConnectTimeout(exc) from None
            except OSError as exc:
                raise requests.ConnectionError(exc) from None
            try:
                conn.deadline = time.monotonic() + ANSWER_DEADLINE
                conn.sock.sendall(data)
                if not conn.buf and not conn.fill():
                    raise _Stale()
                status, reason, resp_headers, resp_body, keep = _read_response(conn, method)
            except _Stale:
                conn.close()
                if conn.reused:
                    continue  # the server had closed this idle connection: try a fresh one
                raise requests.ConnectionError("the registry closed the connection without answering") from None
            except (BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if conn.reused:
                    continue
                raise requests.ConnectionError(exc) from None
            except socket.timeout as exc:
                conn.close()
                raise requests.ReadTimeout(exc) from None
            except requests.RequestException:  # ours, from reading the response (an OSError too)
                conn.close()
                raise
            except OSError as exc:
                conn.close()
                raise requests.ConnectionError(exc) from None
            except BaseException:
                conn.close()
                raise
            if keep:
                conn.reused = False
                self._put(conn)
            else:
                conn.close()
            return status, reason, resp_headers, resp_body


class _Stale(Exception):
    """Nothing at all came back on a connection: it was closed before our request."""


def _broken(what: str) -> BrokenResponse:
    return BrokenResponse(f"the registry sent a broken HTTP response ({what})")


def _read_head(conn: _Conn) -> tuple[bytes, int, str, CaseInsensitiveDict]:
    """The status line and headers of one answer, within MAX_HEADERS lines."""
    status_line = conn.line()
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise BrokenResponse(f"not an HTTP/1.1 response: {status_line[:80]!r}")
    version, status = parts[0], int(parts[1])
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    headers: CaseInsensitiveDict = CaseInsensitiveDict()
    for _ in range(MAX_HEADERS + 1):
        line = conn.line()
        if not line:
            return version, status, reason, headers
        name, _, value = line.partition(b":")
        key, val = name.strip().decode("latin-1"), value.strip().decode("latin-1")
        if key in headers:
            headers[key] = f"{headers[key]}, {val}"
        else:
            headers[key] = val
    raise _broken(f"more than {MAX_HEADERS} header lines")


def _digits(value: bytes | str, base: int, what: str) -> int:
    """A length from the response (``int`` would take ``-5``, ``+5``, ``1_0`` and spaces)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    allowed = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
    if not text or len(text) > 20 or any(c not in allowed for c in text):
        raise _broken(f"{what} {text[:40]!r}")
    return int(text, base)


def _read_response(conn: _Conn, method: str) -> tuple[int, str, CaseInsensitiveDict, bytes, bool]:
    for _ in range(MAX_INTERIM + 1):
        version, status, reason, headers = _read_head(conn)
        if not 100 <= status < 200:
            break
        # an interim answer (100 Continue): the real one follows
    else:
        raise _broken(f"more than {MAX_INTERIM} interim answers")
    connection = headers.get("Connection", "").lower()
    keep = "close" not in connection and (version != b"HTTP/1.0" or "keep-alive" in connection)
    if method == "HEAD" or status in _NO_BODY_STATUS:
        return status, reason, headers, b"", keep
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        chunks, total = [], 0
        while True:
            size = _digits(conn.line().split(b";", 1)[0].strip(), 16, "chunk size")
            if size == 0:
                for _ in range(MAX_HEADERS + 1):  # trailers, up to the blank line
                    if not conn.line():
                        break
                else:
                    raise _broken(f"more than {MAX_HEADERS} trailer lines")
                break
            total += size
            if total > MAX_BODY:
                raise ResponseTooLarge(f"a response of more than {MAX_BODY} bytes")
            chunks.append(conn.take(size))
            conn.take(2)
        return status, reason, headers, b"".join(chunks), keep
    length = headers.get("Content-Length")
    if length is not None:
        values = {v.strip() for v in length.split(",")}  # a repeated header, joined above
        n = _digits(values.pop() if len(values) == 1 else length, 10, "Content-Length")
        if n > MAX_BODY:
            raise ResponseTooLarge(f"a response of {n} bytes")
        return status, reason, headers, conn.take(n), keep
    chunks_: list[bytes] = [conn.buf]  # no length: the body runs until the server closes
    conn.buf = b""
    total = len(chunks_[0])
    while True:
        data = conn.sock.recv(65536)
        if not data:
            break
        total += len(data)
        if total > MAX_BODY:
            raise ResponseTooLarge(f"a response of more than {MAX_BODY} bytes")
        chunks_.append(data)
    return status, reason, headers, b"".join(chunks_), False
