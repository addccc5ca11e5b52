"""Helpers for the supply-chain tests: images with the files an SBOM reads, keys, Go binaries.

Layers are written with plain ``tarfile``/``gzip`` (as ``imagekit`` does) so that symlinks,
exec bits and whiteouts can be put exactly where a test wants them.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

from builder.oci import mediatypes as mt
from builder.oci.digest import sha256
from builder.oci.model import Descriptor
from builder.oci.stores.base import Store

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Entry:
    path: str
    data: bytes = b""
    mode: int = 0o644
    link: str | None = None      # a symlink to this target
    dir: bool = False


def tar_layer(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mode = e.mode
            if e.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, e.link
                tar.addfile(info)
            elif e.dir:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buf.getvalue()


def files(mapping: dict[str, bytes]) -> list[Entry]:
    return [Entry(p, d) for p, d in sorted(mapping.items())]


def push(store: Store, layers: list[list[Entry]], tag: str | None = "latest",
         labels: dict[str, str] | None = None, *, base: Descriptor | None = None,
         annotations: dict[str, str] | None = None, architecture: str = "amd64",
         variant: str | None = None) -> Descriptor:
    """An image of these layers (bottom first, on top of ``base``'s, an image in the same store)
    in ``store``; returns its manifest descriptor."""
    descs, diff_ids = [], []
    if base is not None:
        _, data = store.get_manifest(base.digest)
        manifest = json.loads(data)
        descs = list(manifest["layers"])
        diff_ids = list(json.loads(store.get_blob(Descriptor.from_json(manifest["config"])))["rootfs"]["diff_ids"])
    for entries in layers:
        raw = tar_layer(entries)
        diff_ids.append(sha256(raw))
        descs.append(store.put_blob_bytes(gzip.compress(raw, mtime=0), mt.OCI_LAYER_GZIP).to_json())
    config = {"architecture": architecture, "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "config": {"Env": ["PATH=/bin"], "Labels": labels or {}}}
    if variant:
        config["variant"] = variant
    cdesc = store.put_blob_bytes(json.dumps(config, sort_keys=True).encode(), mt.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": cdesc.to_json(), "layers": descs}
    if annotations:
        manifest["annotations"] = annotations
    return store.put_manifest(json.dumps(manifest, sort_keys=True).encode(), mt.OCI_MANIFEST, tag=tag)


def key_pair(directory: Path, name: str = "cosign", password: str = PASSWORD) -> tuple[Path, Path]:
    from builder.supply import keys

    return keys.write_key_pair(directory / name, password.encode())


def signing_key(path: Path, password: str = PASSWORD):
    from builder.supply import keys

    return keys.read_private_key(path, lambda: password.encode())


# -- a Debian-ish image -----------------------------------------------------------------------

STATUS = b"""Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries.

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
"""

COPYRIGHT_GLIBC = b"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: GNU C Library

Files: *
Copyright: 1991-2023 Free Software Foundation, Inc.
License: LGPL-2.1+

Files: debian/*
Copyright: Debian
License: GPL-2+

License: LGPL-2.1+
 The text of the licence.
"""

COPYRIGHT_OPENSSL = b"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
License: Apache-2.0
"""

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'

METADATA = (b"Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.3\nLicense-Expression: BSD-3-Clause\n"
            b"Classifier: License :: OSI Approved :: BSD License\n\nFlask is a web framework.\n")
METADATA_REQUESTS = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\n"


def os_layer() -> list[Entry]:
    return [
        Entry("etc", dir=True),
        Entry("usr/lib/os-release", OS_RELEASE),
        Entry("etc/os-release", link="../usr/lib/os-release"),
        Entry("var/lib/dpkg/status", STATUS),
        Entry("usr/share/doc/libc6/copyright", COPYRIGHT_GLIBC),
        Entry("usr/share/doc/openssl/copyright", COPYRIGHT_OPENSSL),
        Entry("usr/share/doc/libc6-dev", link="libc6"),
    ]


def app_layer() -> list[Entry]:
    lock = {"name": "web", "lockfileVersion": 3, "packages": {
        "": {"name": "web", "version": "1.0.0"},
        "node_modules/express": {"version": "4.18.2", "license": "MIT"},
        "node_modules/@types/node": {"version": "20.1.0", "license": "MIT"},
        "node_modules/jest": {"version": "29.0.0", "dev": True},
    }}
    return [
        Entry("layers/pallet_python/python/lib/python3.11/site-packages/flask-3.0.3.dist-info/METADATA", METADATA),
        Entry("layers/pallet_python/packages/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
              METADATA_REQUESTS),
        Entry("workspace/package-lock.json", json.dumps(lock).encode()),
        Entry("workspace/node_modules/express/package.json",
              json.dumps({"name": "express", "version": "4.18.2", "license": "MIT"}).encode()),
        Entry("workspace/node_modules/@types/node/package.json",
              json.dumps({"name": "@types/node", "version": "20.1.0", "license": "MIT"}).encode()),
        Entry("workspace/node_modules/express/lib/package.json", b'{"name": "not-a-package", "version": "0"}'),
    ]


# -- Go binaries ------------------------------------------------------------------------------

SENTINEL_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
SENTINEL_END = bytes.fromhex("f932433186182072008242104116d8f2")

MODINFO = ("path\texample.com/hello/cmd/hello\n"
           "mod\texample.com/hello\tv1.4.0\th1:abc=\n"
           "dep\tgithub.com/gorilla/mux\tv1.8.0\th1:def=\n"
           "dep\tgolang.org/x/net\tv0.10.0\th1:ghi=\n"
           "=>\tgolang.org/x/net\tv0.17.0\th1:jkl=\n"
           "build\t-compiler=gc\n"
           "build\tCGO_ENABLED=0\n")


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def go_elf(modinfo: str = MODINFO, go_version: str = "go1.21.5", *, inline: bool = True,
           pad: int = 70 * 1024) -> bytes:
    """A minimal ELF64 file with a ``.go.buildinfo`` section as the Go linker writes it.

    ``inline``: Go >= 1.18 (strings after the header); else Go < 1.18 (pointers to string
    headers, resolved through a PT_LOAD program header). A decoy copy of the magic comes first,
    as in a binary that links debug/buildinfo.
    """
    mod = SENTINEL_START + modinfo.encode() + SENTINEL_END
    base = 0x400000
    decoy = b"\x00" * 64 + b"\xff Go buildinf:" + b"not a header" + b"\x00" * pad
    data_off = 64 + 56  # after the ELF header and one program header
    info_off = data_off + len(decoy)
    info_off += (-info_off) % 16
    if inline:
        info = (b"\xff Go buildinf:" + bytes([8, 2]) + b"\x00" * 16 + _uvarint(len(go_version))
                + go_version.encode() + _uvarint(len(mod)) + mod)
    else:
        strings_off = info_off + 32
        version_hdr = strings_off
        mod_hdr = strings_off + 16
        version_data = strings_off + 32
        mod_data = version_data + len(go_version)
        info = (b"\xff Go buildinf:" + bytes([8, 0]) + struct.pack("<QQ", base + version_hdr, base + mod_hdr)
                + struct.pack("<QQ", base + version_data, len(go_version))
                + struct.pack("<QQ", base + mod_data, len(mod)) + go_version.encode() + mod)
    shstrtab = b"\x00.go.buildinfo\x00.shstrtab\x00"
    strtab_off = info_off + len(info)
    sh_off = strtab_off + len(shstrtab)
    sh_off += (-sh_off) % 8
    total = sh_off + 3 * 64
    header = (b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\x00" * 8
              + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, base, 64, sh_off, 0, 64, 56, 1, 64, 3, 2))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
    body = bytearray(header + phdr + decoy)
    body += b"\x00" * (info_off - len(body)) + info + shstrtab
    body += b"\x00" * (sh_off - len(body))
    body += b"\x00" * 64  # null section
    body += struct.pack("<IIQQQQIIQQ", 1, 1, 3, base + info_off, info_off, len(info), 0, 0, 16, 0)
    body += struct.pack("<IIQQQQIIQQ", 15, 3, 0, 0, strtab_off, len(shstrtab), 0, 0, 1, 0)
    assert len(body) == total
    return bytes(body)


BUILDER_ID = "https://ci.example.com/pallet"
SOURCE = "https://github.com/acme/web.git"


def prove(store: Store, digest: str, key, *, name: str = "app", builder_id: str = BUILDER_ID,
          repository: str | None = SOURCE, sbom: bool = True, sign: bool = True) -> None:
    """Do to an image what ``pallet build --sign-key`` does: sign, attest provenance, attach SBOMs."""
    import datetime

    from builder.supply import attach_sbom, attest, sign_image
    from builder.supply.provenance import BuildFacts, SourceFacts, statement

    if sign:
        sign_image(store, digest, key)
    now = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    source = SourceFacts(repository=repository, commit="a" * 40) if repository else SourceFacts(
        tree_digest="sha256:" + "5" * 64)
    facts = BuildFacts(image=name, digest=digest, source=source, started_on=now, finished_on=now,
                       builder_id=builder_id, stack="bookworm")
    attest(store, digest, statement(facts), key)
    if sbom:
        attach_sbom(store, digest, name=name)


def write_policy(directory: Path, pub: Path, **fields) -> Path:
    lines = [f'keys = ["{pub.name}"]']
    for k, v in fields.items():
        lines.append(f"{k} = {json.dumps(v)}")
    path = directory / "policy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
