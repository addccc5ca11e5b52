"""The few parts of an ELF file pallet reads: program headers (loadable segments, the dynamic
loader's path) and the section table. Used for a Go binary's build info (the SBOM) and for the
loader a program needs before it can start (``pallet run``, buildpack steps)."""

from __future__ import annotations

import struct
from typing import BinaryIO

#: The most of the section-name table read.
_MAX_STRING = 1 << 20


class Elf:
    """Just enough ELF to map virtual addresses to file offsets, find a section (a Go binary's build
    info) and the dynamic loader a program names (PT_INTERP). struct.error or ValueError on what
    is not ELF or is cut short."""

    def __init__(self, f: BinaryIO) -> None:
        f.seek(0)
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            raise ValueError("not ELF")
        self.f = f
        self.is64 = ident[4] == 2
        self.endian = "<" if ident[5] == 1 else ">"
        e = self.endian
        if self.is64:
            hdr = f.read(48)
            (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack(
                e + "HHIQQQIHHHHHH", hdr)
        else:
            hdr = f.read(36)
            (_, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = struct.unpack(
                e + "HHIIIIIHHHHHH", hdr)
        self.loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        self.interp: tuple[int, int] | None = None  # (offset, filesz) of the loader's path
        for i in range(min(phnum, 512)):
            f.seek(phoff + i * phentsize)
            if self.is64:
                ptype, _, offset, vaddr, _, filesz = struct.unpack(e + "IIQQQQ", f.read(40))
            else:
                ptype, offset, vaddr, _, filesz = struct.unpack(e + "IIIII", f.read(20))
            if ptype == 1:  # PT_LOAD
                self.loads.append((vaddr, offset, filesz))
            elif ptype == 3 and self.interp is None:  # PT_INTERP
                self.interp = (offset, filesz)
        self.sections: dict[str, tuple[int, int]] = {}
        if shoff and shnum and shstrndx < shnum:
            headers = []
            for i in range(min(shnum, 4096)):
                f.seek(shoff + i * shentsize)
                if self.is64:
                    name, stype, _, _, offset, size = struct.unpack(e + "IIQQQQ", f.read(40))
                else:
                    name, stype, _, _, offset, size = struct.unpack(e + "IIIIII", f.read(24))
                headers.append((name, stype, offset, size))
            strtab = headers[shstrndx]
            f.seek(strtab[2])
            names = f.read(min(strtab[3], _MAX_STRING))
            for name, stype, offset, size in headers:
                end = names.find(b"\0", name)
                label = names[name:end if end >= 0 else None].decode("ascii", "replace")
                if stype != 8:  # SHT_NOBITS has no bytes in the file
                    self.sections[label] = (offset, size)

    def read_at(self, vaddr: int, size: int) -> bytes:
        for start, offset, filesz in self.loads:
            if start <= vaddr < start + filesz:
                self.f.seek(offset + vaddr - start)
                return self.f.read(min(size, start + filesz - vaddr))
        raise ValueError("address outside the file")
