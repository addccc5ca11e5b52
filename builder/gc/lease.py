"""Leases on cache entries: a shared ``flock`` on ``AREA/.NAME.lock`` while an entry is used (a
build on its build cache, a stack build on the package cache), an exclusive one, not waited for,
to remove it. The kernel drops a lock when its holder dies, so a killed build never pins an
entry; and a lease file's mtime is the entry's last use.

Lock files are removed with their entries, so a lock is only held once the file locked is still
the one at its path (the check ``builder.lifecycle.rootfs`` makes for its unpack locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

#: Leases this process holds until it exits (``hold_for_process``): path -> fd.
_HELD: dict[Path, int] = {}


def lock_path(area: Path, name: str) -> Path:
    return area / f".{name}.lock"


def _open(area: Path, name: str, mode: int) -> int | None:
    area.mkdir(parents=True, exist_ok=True)
    return open_locked(lock_path(area, name), mode)


def open_locked(path: Path, mode: int) -> int | None:
    """An fd holding ``flock(mode)`` on the lock file ``path`` (made if missing), or None when
    ``mode`` has LOCK_NB and someone holds it. A lock file removed while we waited on it is no
    lock at all, so the lock is only ours once the file we locked is still the one at ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def held(area: Path, name: str) -> Iterator[None]:
    """Use the entry ``name`` of ``area``: a prune leaves it alone until the block ends."""
    fd = _open(area, name, fcntl.LOCK_SH)
    assert fd is not None
    with contextlib.suppress(OSError):
        os.utime(lock_path(area, name))
    try:
        yield
    finally:
        os.close(fd)


def hold_for_process(area: Path, name: str) -> None:
    """Use the entry until this process exits (for entries read all through a command)."""
    path = lock_path(area, name)
    if path in _HELD:
        return
    fd = _open(area, name, fcntl.LOCK_SH)
    assert fd is not None
    with contextlib.suppress(OSError):
        os.utime(path)
    _HELD[path] = fd


@contextlib.contextmanager
def exclusive(area: Path, name: str) -> Iterator[bool]:
    """For removing the entry: yields False at once when someone uses it. The lock file goes
    after the block when the entry was removed (``forget``)."""
    if not area.is_dir():  # nothing there to use or remove: nothing to make either
        yield True
        return
    with try_exclusive(lock_path(area, name)) as got:
        yield got


@contextlib.contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """The lock file ``path`` held exclusively for the block, not waited for: False when someone
    holds it (or it cannot be opened)."""
    try:
        fd = open_locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fd = None
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def forget(area: Path, name: str) -> None:
    """Remove the lease file of a removed entry (while holding it exclusively)."""
    with contextlib.suppress(OSError):
        lock_path(area, name).unlink()


def last_use(area: Path, name: str) -> float | None:
    try:
        return lock_path(area, name).stat().st_mtime
    except OSError:
        return None


def touch(area: Path, name: str) -> None:
    """Mark the entry used now (its lease file's mtime), without holding it."""
    path = lock_path(area, name)
    with contextlib.suppress(OSError):
        area.mkdir(parents=True, exist_ok=True)
        path.touch()
