"""A TCP proxy on 127.0.0.1 that counts the bytes clients send through it (``sent``: request
lines, headers and bodies, what a command uploads to a registry) and get back (``received``),
and the HTTP/1.1 requests by method (``requests``), read from the request heads themselves: a
registry with its access log off (the cheap way to run one) still gets its requests counted."""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter

_REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r\n")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class _RequestCounter:
    """Follows one connection's request stream: a head (up to the blank line), then a body of
    Content-Length bytes (what pallet sends: it never chunks a request body), and so on."""

    def __init__(self, requests: Counter, paths: list[str] | None) -> None:
        self._requests = requests
        self._paths = paths
        self._head = b""
        self._body_left = 0

    def feed(self, data: bytes) -> None:
        while data:
            if self._body_left:
                n = min(self._body_left, len(data))
                self._body_left -= n
                data = data[n:]
                continue
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end + 2], self._head[end + 4:]
            self._head = b""
            line = _REQUEST_LINE.match(head)
            if line:
                self._requests[line.group(1).decode()] += 1
                if self._paths is not None:
                    self._paths.append(f"{line.group(1).decode()} {line.group(2).decode()}")
            length = _CONTENT_LENGTH.search(head)
            self._body_left = int(length.group(1)) if length else 0


class CountingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.sent = 0
        self.received = 0
        self.requests: Counter = Counter()
        #: "METHOD path" of every request, in order, when ``keep_paths`` (for debugging a bench).
        self.paths: list[str] | None = None
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        parser = _RequestCounter(self.requests, self.paths) if count else None
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if count:
                        self.sent += len(data)
                        assert parser is not None
                        parser.feed(data)
                    else:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def reset(self) -> None:
        with self._lock:
            self.sent = 0
            self.received = 0
            self.requests.clear()
            if self.paths is not None:
                self.paths.clear()

    def close(self) -> None:
        self._stop = True
        self._server.close()
