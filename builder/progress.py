"""Progress for long transfers: a single updating line on a terminal, silence otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Progress:
    """Counts bytes and items from many threads; redraws at most ten times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total_bytes = 0
        self.done_bytes = 0
        self.total_items = 0
        self.done_items = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._drawn = False

    def add_total(self, nbytes: int, items: int = 1) -> None:
        with self._lock:
            self.total_bytes += nbytes
            self.total_items += items
        self._draw()

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.done_bytes += nbytes
        self._draw()

    def item_done(self) -> None:
        with self._lock:
            self.done_items += 1
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < 0.1:
                return
            self._last = now
            line = (f"{self.label}: {self.done_items}/{self.total_items} blobs, "
                    f"{_mb(self.done_bytes)} / {_mb(self.total_bytes)}")
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
