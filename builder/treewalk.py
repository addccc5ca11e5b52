"""Walking and removing trees a build made: a buildpack (or an app's build script) may make a
directory thousands of levels deep, and Python's ``os.walk`` and ``shutil.rmtree`` recurse once
per level (past the interpreter's limit near 1000), and full paths that deep pass ``PATH_MAX``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from builder.errors import LayerError


def walk(root: str | os.PathLike[str]) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)`` (top-down; the caller may prune ``dirs``), refusing with a one-line
    LayerError a tree deeper than an image may hold (``MAX_DEPTH``, what unpack refuses) before
    the recursion gets anywhere near Python's limit."""
    from builder.oci.unpack import MAX_DEPTH  # not at the top: sandbox.py (through rootfs) runs without zstandard

    top = os.fspath(root)
    for dirpath, dirs, files in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        if rel != "." and rel.count(os.sep) >= MAX_DEPTH:
            raise LayerError(f"{dirpath[:120]}...: over {MAX_DEPTH} directories deep; it cannot go in a layer")
        yield dirpath, dirs, files


def rmtree(path: str | os.PathLike[str], onerror=None) -> None:  # noqa: ANN001 - shutil's callback
    """``shutil.rmtree(path, onerror=...)``, and for a tree too deep for it, coreutils' ``rm -rf``
    (fts: no recursion limit, no PATH_MAX); missing paths are fine."""
    p = os.fspath(path)
    if not os.path.lexists(p):
        return
    try:
        shutil.rmtree(p, onerror=onerror)
        return
    except RecursionError:
        pass
    except OSError as e:
        if e.errno != 36:  # ENAMETOOLONG: deeper than PATH_MAX
            raise
    subprocess.run(["rm", "-rf", "--one-file-system", "--", p], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.path.lexists(p):
        raise OSError(f"cannot remove {p[:120]}")


def rmtree_quiet(path: str | os.PathLike[str] | Path) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` that also survives a tree too deep for it."""
    try:
        rmtree(path, onerror=lambda *_: None)
    except OSError:
        pass


def du(path: str | os.PathLike[str]) -> int:
    """Bytes a tree of any depth takes on disk, below ``path`` (``du``: allocated blocks, hard
    links once); 0 when it cannot tell."""
    proc = subprocess.run(["du", "-s", "-B1", "--one-file-system", "--", os.fspath(path)],
                          capture_output=True, text=True, check=False)
    try:
        return max(0, int(proc.stdout.split()[0]) - os.lstat(path).st_blocks * 512)
    except (IndexError, ValueError, OSError):
        return 0
