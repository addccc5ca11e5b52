"""A source file that is mostly holes: a few blocks on disk, gigabytes to anyone who reads it.

``truncate -s 1T big.img`` in a repository costs nothing to clone or check out, but the build
reads every byte (the memo hashes it, the source copy writes it out as zeros, the layer
compresses it): hours of CPU and, for the copy, the whole disk. An image cannot hold a hole, so
such a file is refused before anything reads it, naming it and how to leave it out. A file with
fewer holes than ``MAX_HOLES`` bytes is read as any file (a database file's few holes).
"""

from __future__ import annotations

import errno
import os

from builder.errors import PalletError

#: Bytes of holes a source file may have before it is refused.
MAX_HOLES = 1 << 30


class SparseSourceError(PalletError):
    """A source file is far larger than what it takes on disk."""


def is_sparse(path: str, st: os.stat_result) -> bool:
    """Whether the regular file ``path`` (stat ``st``) has over ``MAX_HOLES`` bytes of holes."""
    if st.st_size - st.st_blocks * 512 <= MAX_HOLES:
        return False
    return _has_hole(path, st.st_size)  # not a file system storing zeros compressed, read back as data


def check(path: str, st: os.stat_result, shown: str) -> None:
    """Raise SparseSourceError when ``is_sparse``; ``shown`` names the file (relative to the app)."""
    if not is_sparse(path, st):
        return
    on_disk = st.st_blocks * 512
    raise SparseSourceError(
        f"{shown}: a sparse file of {st.st_size} bytes with {on_disk} on disk; an image holds every "
        "byte of it. Leave it out of the app (.gitignore, or project.toml's [io.buildpacks] exclude)")


def _has_hole(path: str, size: int) -> bool:
    """Whether the file has a hole before its end (``SEEK_HOLE`` finds one only at the end when
    there is none, or when the file system cannot tell)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # the reader that follows says why it cannot open it
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < size
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENXIO, errno.EOPNOTSUPP):
            return False
        raise
    finally:
        os.close(fd)
