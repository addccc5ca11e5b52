"""Go module information from a Go binary's embedded build info, in pure Python.

Since Go 1.13 the linker writes a ``.go.buildinfo`` section that starts with a 32-byte header:
the 14-byte magic ``\\xff Go buildinf:``, the pointer size, a flags byte, then either (flag bit
1, Go >= 1.18) the Go version and the module info inline as varint-length-prefixed strings
from offset 32, or (older) two pointers to Go string headers, which need the ELF program
headers to turn addresses into file offsets. The module info is ``runtime/debug.BuildInfo``
as text, between two 16-byte sentinels::

    path  example.com/cmd/app
    mod   example.com/app  v1.2.3  h1:...
    dep   github.com/x/y   v0.4.0  h1:...
    =>    ../y             (devel)            (a replace of the line above)
    build -trimpath=true

This is the same data ``go version -m`` prints; nothing is executed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from builder.elf import Elf

MAGIC = b"\xff Go buildinf:"
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE = 0x2
_MAX_STRING = 1 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str = ""
    replace: "Module | None" = None

    @property
    def effective(self) -> "Module":
        """What was compiled: the replacement if it has a version, else this module."""
        if self.replace is not None and self.replace.version:
            return self.replace
        return self


@dataclass(frozen=True)
class BuildInfo:
    go_version: str
    path: str = ""
    main: Module | None = None
    deps: tuple[Module, ...] = ()
    settings: tuple[tuple[str, str], ...] = field(default=())


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    raise ValueError("bad varint")


def parse_modinfo(text: str) -> tuple[str, Module | None, tuple[Module, ...], tuple[tuple[str, str], ...]]:
    """(package path, main module, dependencies, build settings) of ``debug.BuildInfo`` text."""
    path, main = "", None
    deps: list[Module] = []
    settings: list[tuple[str, str]] = []
    last: str | None = None  # "mod" or "dep": what a "=>" line replaces
    for line in text.splitlines():
        cols = line.split("\t")
        kind = cols[0]
        if kind == "path" and len(cols) >= 2:
            path = cols[1]
        elif kind in ("mod", "dep") and len(cols) >= 2:
            mod = Module(cols[1], cols[2] if len(cols) > 2 else "", cols[3] if len(cols) > 3 else "")
            if kind == "mod":
                main = mod
            else:
                deps.append(mod)
            last = kind
        elif kind == "=>" and len(cols) >= 2 and last:
            rep = Module(cols[1], cols[2] if len(cols) > 2 else "", cols[3] if len(cols) > 3 else "")
            if last == "mod" and main is not None:
                main = Module(main.path, main.version, main.sum, rep)
            elif deps:
                d = deps[-1]
                deps[-1] = Module(d.path, d.version, d.sum, rep)
        elif kind == "build" and len(cols) >= 2:
            key, _, value = cols[1].partition("=")
            settings.append((key, value))
    return path, main, tuple(deps), tuple(settings)


def _strip_sentinels(mod: bytes) -> bytes:
    if len(mod) >= 33 and mod[-17] == 0x0A:
        return mod[16:-16]
    return b""


def _make(version: bytes, mod: bytes) -> BuildInfo | None:
    try:
        go_version = version.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not go_version.startswith("go") and not go_version.startswith("devel"):
        return None
    path, main, deps, settings = parse_modinfo(_strip_sentinels(mod).decode("utf-8", "replace"))
    return BuildInfo(go_version, path, main, deps, settings)


def _from_header(f: BinaryIO, offset: int, elf: Elf | None) -> BuildInfo | None:
    f.seek(offset)
    head = f.read(32)
    if len(head) < 32 or not head.startswith(MAGIC):
        return None
    ptr_size, flags = head[14], head[15]
    if flags & _FLAG_INLINE:
        data = f.read(2 * _MAX_STRING)
        try:
            n, pos = _uvarint(data, 0)
            version = data[pos:pos + n]
            pos += n
            m, pos = _uvarint(data, pos)
            mod = data[pos:pos + m]
        except ValueError:
            return None
        if n > _MAX_STRING or m > _MAX_STRING or len(mod) != m:
            return None
        return _make(version, mod)
    if ptr_size not in (4, 8) or elf is None:
        return None
    endian = ">" if flags & _FLAG_BIG_ENDIAN else "<"
    fmt = endian + ("Q" if ptr_size == 8 else "I")

    def go_string(addr: int) -> bytes:
        hdr = elf.read_at(addr, 2 * ptr_size)
        ptr, length = struct.unpack(endian + ("QQ" if ptr_size == 8 else "II"), hdr)
        if length > _MAX_STRING:
            raise ValueError("string too long")
        return elf.read_at(ptr, length) if length else b""

    try:
        version_addr = struct.unpack(fmt, head[16:16 + ptr_size])[0]
        mod_addr = struct.unpack(fmt, head[16 + ptr_size:16 + 2 * ptr_size])[0]
        return _make(go_string(version_addr), go_string(mod_addr))
    except (ValueError, struct.error):
        return None


#: What offsets and sizes from a hostile file raise: a seek past what a C ssize_t holds is an
#: OverflowError (not a ValueError), which ended ``pallet sbom`` with a traceback.
_GARBAGE = (ValueError, struct.error, OverflowError)


def _header_or_none(f: BinaryIO, offset: int, elf: Elf | None) -> BuildInfo | None:
    try:
        return _from_header(f, offset, elf)
    except _GARBAGE:
        return None


def read_build_info(f: BinaryIO) -> BuildInfo | None:
    """The build info of a Go binary (a seekable file), or None if it is not one."""
    try:
        elf: Elf | None = Elf(f)
    except _GARBAGE:
        elf = None
    if elf is not None and ".go.buildinfo" in elf.sections:
        info = _header_or_none(f, elf.sections[".go.buildinfo"][0], elf)
        if info is not None:
            return info
    # No section table (stripped, or not ELF): look for the magic; its own text in a binary
    # that links debug/buildinfo is followed by no valid header, so keep looking past it.
    f.seek(0)
    base, tail = 0, b""
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return None
        window = tail + chunk
        start = 0
        while (i := window.find(MAGIC, start)) >= 0:
            here = f.tell()
            info = _header_or_none(f, base - len(tail) + i, elf)
            f.seek(here)
            if info is not None:
                return info
            start = i + 1
        tail = window[-(len(MAGIC) - 1):]
        base += len(chunk)


def looks_like_executable(head: bytes) -> bool:
    return head.startswith(b"\x7fELF")
