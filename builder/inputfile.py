"""Reading a file a user names (a key, a policy, advisories, a ``--from`` plan, a stack file), or
that one of those names (a policy's keys): whole, so only a regular file, and only up to a size.

``open`` of a FIFO blocks until a writer comes, which may be never; ``/dev/zero`` never ends and
fills memory; a key "file" of gigabytes is no key. Each is refused with one line naming the file,
before anything is read. Other errors (no such file, permission) are the caller's to word.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import BinaryIO

from builder.errors import InputFileError

MiB = 1 << 20


def open_input(path: str | os.PathLike[str], what: str, *, follow_symlinks: bool = True) -> BinaryIO:
    """``open(path, "rb")`` of a regular file only (``what`` names it in errors). Without
    ``follow_symlinks``, a symlink is refused too: for files a sandboxed step wrote, where the
    link was meant inside the sandbox and would name a host file here."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO's open does not wait
    if "\0" in os.fsdecode(path):   # os.open's ValueError: no file can be named so
        raise InputFileError(f"{os.fsdecode(path)!r}: the {what}'s name has a NUL character; no file is named so")
    try:
        fd = os.open(path, flags if follow_symlinks else flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks and os.path.islink(path):
            raise InputFileError(f"{os.fspath(path)}: the {what} is a symlink (to {os.readlink(path)!r}); "
                                 "it was written in a sandbox, where the link meant something else") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
            raise InputFileError(f"{os.fspath(path)}: the {what} is {kind}, not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_input(path: str | os.PathLike[str], what: str, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file ``path`` (``what`` names it in errors), at most ``limit``."""
    with open_input(path, what, follow_symlinks=follow_symlinks) as f:
        return read_bounded(f, f"{os.fspath(path)}: the {what}", limit)


def read_bounded(f: BinaryIO, what: str, limit: int) -> bytes:
    """All of ``f``, or InputFileError once it is over ``limit`` bytes (read, not declared: a
    file may grow meanwhile, a compressed member may say anything)."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise InputFileError(f"{what} is over {limit} bytes, more than any real one; refusing to read it")
    return data


def check_in_app(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str) -> None:
    """InputFileError if ``path``, an app's file pallet reads itself, leads out of the app ``root``
    through a symlink (its own, or a directory's on the way: ``use ./mod`` of a go.work with
    ``mod -> /etc``): the source may be anyone's, and an ``Aptfile`` linked to a host file had its
    lines in pallet's errors ("no package secret-token-line"). Links inside the app are fine."""
    path = os.fspath(path)
    try:
        base = os.path.realpath(root)
        real = os.path.realpath(path, strict=False)
    except (OSError, ValueError):
        real, base = "", "/"  # a loop or an unreadable step: not the app's file
    if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
        return
    if os.path.islink(path):
        raise InputFileError(f"{what} is a symlink to {os.readlink(path)!r}, outside the app: pallet reads "
                             "only the app's own files")
    raise InputFileError(f"{what} is under a directory that links outside the app: pallet reads only the "
                         "app's own files")
