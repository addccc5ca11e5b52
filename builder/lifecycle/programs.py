"""What a program needs from an image before ``execve`` can start it: its ``#!`` interpreter or
its ELF dynamic loader.

The kernel answers ENOENT for both when they are missing, and ``execvp`` (bubblewrap's) reports
that as the program itself missing: "No such file or directory" about a file that is there (a
``#!/usr/bin/ruby`` buildpack on a build image without Ruby, a glibc program in a musl image).
Reading them first lets the error name what is really missing.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from builder.elf import Elf
from builder.errors import shown
from builder.lifecycle.rootfs import resolve_in_root

#: The most of an ELF loader's path read.
_MAX_INTERP = 4096


def file_in_root(rootfs: Path, path: str) -> Path | None:
    """The host path of a regular file at ``path`` inside the image (symlinks resolved in it)."""
    host = resolve_in_root(rootfs, path).host_path(rootfs)
    return host if host is not None and host.is_file() else None


def missing_interpreter(rootfs: Path, program: Path) -> str | None:
    """What ``program`` (a host file) needs that the image at ``rootfs`` lacks, as the rest of a
    sentence about it ("starts with #!'/usr/bin/ruby', which is not in the image"); None when
    nothing is missing or the file cannot be read (the step's user may read it: let it try)."""
    try:
        with open(program, "rb") as f:
            head = f.read(256)
            loader = elf_interpreter(f) if head.startswith(b"\x7fELF") else None
    except OSError:
        return None
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        interpreter = words[0].decode("utf-8", "replace") if words else ""
        if interpreter.startswith("/") and file_in_root(rootfs, interpreter) is None:
            return f"starts with #!{shown(interpreter, 200)}, which is not in the image"
    if loader is not None and file_in_root(rootfs, loader) is None:
        return (f"is a program linked for the loader {shown(loader, 200)}, which is not in the image (built for "
                "another libc or distribution: build it static, or on the image's own)")
    return None


def elf_interpreter(f: BinaryIO) -> str | None:
    """The dynamic loader an ELF program names (``/lib64/ld-linux-x86-64.so.2``), or None for a
    static one or anything unreadable."""
    try:
        found = Elf(f).interp
    except (ValueError, struct.error, OverflowError):
        return None
    if found is None or not 0 < found[1] <= _MAX_INTERP:
        return None
    f.seek(found[0])
    path = f.read(found[1]).split(b"\0", 1)[0].decode("utf-8", "replace")
    return path if path.startswith("/") else None
