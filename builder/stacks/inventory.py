"""The package inventory of an image, from the dpkg database it keeps. Pure, plus one reader.

What is listed is what dpkg recorded (``/var/lib/dpkg/status``, and ``status.d/*`` as distroless
images keep it), never a guess: name, version, architecture, source package, and the licences
the package's ``/usr/share/doc/<name>/copyright`` states when it is in the machine-readable
format (DEP-5 ``License:`` fields); packages without one have no licence listed.

``read_image_files`` reads only those files out of an image's layers (whiteouts applied), so
``pallet stack packages`` works on any image in any store without unpacking it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterable


STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"
DOC = "usr/share/doc/"
_ANCESTORS = {"usr", "usr/share", "usr/share/doc", "var", "var/lib", "var/lib/dpkg", "var/lib/dpkg/status.d"}
#: A buildpack layer that holds Debian packages (an Aptfile's, ``pallet/apt``) records them as
#: distroless images do, under its own root: ``layers/BP/LAYER/var/lib/dpkg/status.d/NAME``,
#: with the copyright files at ``layers/BP/LAYER/usr/share/doc/NAME/copyright``.
_LAYER_ROOT = re.compile(r"^(layers/[^/]+/[^/]+/)(var/lib/dpkg/status\.d/[^/]+|usr/share/doc/[^/]+/copyright)$")


def is_status_path(path: str) -> bool:
    """A file of dpkg's records: the status file, or one of status.d (the image's or a layer's)."""
    if path.endswith(".md5sums"):
        return False
    if path == STATUS or path.startswith(STATUS_D):
        return True
    m = _LAYER_ROOT.match(path)
    return bool(m and m.group(2).startswith(STATUS_D))


def parse_paragraphs(text: str) -> list[dict[str, str]]:
    """Debian control-file paragraphs as dicts (keys as written; continuation lines joined by newlines)."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current, key = {}, None
            continue
        if line[0] in (" ", "\t"):
            if key is not None:
                current[key] += "\n" + line[1:]
            continue
        if line.startswith("#"):
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            key = key.strip()
            current[key] = value.strip()
    if current:
        out.append(current)
    return out


def _get(para: dict[str, str], name: str) -> str | None:
    for k, v in para.items():
        if k.lower() == name.lower():
            return v
    return None


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    arch: str
    source: str
    source_version: str
    licenses: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "architecture": self.arch, "source": self.source,
                "sourceVersion": self.source_version, "licenses": list(self.licenses)}


def installed_packages(status_text: str) -> list[InstalledPackage]:
    """Packages dpkg lists as installed (``Status: install ok installed``), sorted by name and arch."""
    out = []
    for para in parse_paragraphs(status_text):
        name = _get(para, "Package")
        status = (_get(para, "Status") or "install ok installed").split()
        if not name or status[-1:] != ["installed"]:
            continue
        version = _get(para, "Version") or ""
        source, source_version = name, version
        raw_source = _get(para, "Source")
        if raw_source:
            m = re.match(r"^(\S+)(?:\s+\((\S+)\))?", raw_source)
            if m:
                source = m.group(1)
                source_version = m.group(2) or version
        out.append(InstalledPackage(name=name, version=version, arch=_get(para, "Architecture") or "",
                                    source=source, source_version=source_version))
    return sorted(out, key=lambda p: (p.name, p.arch))


def copyright_licenses(text: str) -> tuple[str, ...]:
    """The licences a DEP-5 copyright file states (``License:`` of the header and ``Files:`` paragraphs).

    Files not in the machine-readable format state no licence we can read: ``()``. Standalone
    licence paragraphs only hold texts of licences named elsewhere, so they are not counted.
    """
    paras = parse_paragraphs(text)
    if not paras:
        return ()
    fmt = _get(paras[0], "Format") or ""
    if "copyright-format" not in fmt and "dep5" not in fmt.lower():
        return ()
    found: list[str] = []
    for i, para in enumerate(paras):
        lic = _get(para, "License")
        if lic is None or (i > 0 and _get(para, "Files") is None):
            continue
        short = lic.split("\n", 1)[0].strip()
        if short and short not in found:
            found.append(short)
    return tuple(found)


def inventory(files: dict[str, bytes], links: dict[str, str] | None = None) -> list[InstalledPackage]:
    """Every installed package of a file system given as {path: bytes} (paths without a leading /).

    ``links`` maps symlink paths to their targets: a package's doc directory is often a link
    to another package's (``libgcc-s1`` -> ``gcc-12-base``), whose copyright then applies.
    """
    links = links or {}
    status_texts = []  # (root the package's files are under, text)
    if STATUS in files:
        status_texts.append(("", files[STATUS].decode("utf-8", "replace")))
    for path in sorted(files):
        if path != STATUS and is_status_path(path):
            m = _LAYER_ROOT.match(path)
            status_texts.append((m.group(1) if m else "", files[path].decode("utf-8", "replace")))
    packages: dict[tuple[str, str], InstalledPackage] = {}
    roots: dict[tuple[str, str], str] = {}
    for root, text in status_texts:
        for p in installed_packages(text):
            packages[(p.name, p.arch)] = p
            roots[(p.name, p.arch)] = root
    out = []
    for p in sorted(packages.values(), key=lambda p: (p.name, p.arch)):
        root = roots[(p.name, p.arch)]
        data = files.get(f"{root}{DOC}{p.name}/copyright") if root else _copyright(files, links, p.name)
        licenses = copyright_licenses(data.decode("utf-8", "replace")) if data is not None else ()
        out.append(InstalledPackage(p.name, p.version, p.arch, p.source, p.source_version, licenses))
    return out


def _copyright(files: dict[str, bytes], links: dict[str, str], name: str) -> bytes | None:
    path = f"{DOC}{name}/copyright"
    for _ in range(8):
        if path in files:
            return files[path]
        if path in links:  # the copyright file itself is a link
            path = _resolve(path, links[path])
            continue
        directory = posixpath.dirname(path)
        if directory in links:
            path = _resolve(directory, links[directory]) + "/copyright"
            continue
        return None
    return None


def _resolve(link_path: str, target: str) -> str:
    base = "" if target.startswith("/") else posixpath.dirname(link_path)
    return posixpath.normpath(posixpath.join(base, target.lstrip("/"))).lstrip("/")


# -- reading the files out of an image ---------------------------------------------------------


def is_inventory_path(path: str) -> bool:
    if path == STATUS or path.startswith(STATUS_D) or _LAYER_ROOT.match(path):
        return True
    if path.startswith(DOC):
        rest = path[len(DOC):].split("/")
        return len(rest) == 1 or (len(rest) == 2 and rest[1] == "copyright")
    return False


def _strip(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _drop_under(state: dict[str, object], path: str, include_self: bool) -> None:
    prefix = path + "/" if path else ""
    for key in [k for k in state if k.startswith(prefix) or (include_self and k == path)]:
        del state[key]


#: What ``read_layer_files`` keeps in memory at most: one file, and all of them. A real dpkg status
#: is a few MB at most; a small hostile layer can declare a sparse one of any size.
MAX_FILE = 32 * 1024 * 1024
MAX_TOTAL = 256 * 1024 * 1024


def read_layer_files(streams: Iterable, wanted=is_inventory_path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Files and symlinks matching ``wanted`` in a stack of layers (bottom first), whiteouts applied.

    Each item is a layer blob (gzip, zstd or plain tar) or a ``LayerTar`` naming it; each is read
    to its end and verified (``builder.oci.layerread``) before its files count. Returns
    ({path: bytes}, {path: target}). Files over ``MAX_FILE``, or more than ``MAX_TOTAL`` in all,
    are a ``LayerLimitError``.
    """
    from builder.oci.layerread import LayerLimitError, LayerTar

    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    total = 0
    for stream in streams:
        layer = stream if isinstance(stream, LayerTar) else LayerTar(stream)
        layer_files: dict[str, bytes] = {}
        layer_links: dict[str, str] = {}
        whiteouts: list[tuple[str, bool]] = []  # (path, opaque)
        replaced: list[str] = []  # non-directories of this layer: what was under them below is gone
        for ti in layer:  # ends after the blob is verified
            path = _strip(ti.name)
            base = posixpath.basename(path)
            if base.startswith(".wh."):
                parent = posixpath.dirname(path)
                if base == ".wh..wh..opq":
                    whiteouts.append((parent, True))
                else:
                    whiteouts.append((posixpath.join(parent, base[4:]), False))
                continue
            if not ti.isdir() and (wanted(path) or path in _ANCESTORS):
                replaced.append(path)
            if not wanted(path):
                continue
            if ti.isreg():
                total += ti.size
                if total > MAX_TOTAL:
                    raise LayerLimitError(f"{layer.what}: {ti.name!r} brings the package database files "
                                          f"read to more than {MAX_TOTAL} bytes; the image is not one "
                                          "pallet can read")
                layer_files[path] = layer.read_member(ti, MAX_FILE)
            elif ti.issym():
                layer_links[path] = ti.linkname
            elif ti.islnk():
                target = _strip(ti.linkname)
                if target in layer_files:
                    layer_files[path] = layer_files[target]
        for state in (files, links):
            for path, opaque in whiteouts:
                _drop_under(state, path, include_self=not opaque)  # type: ignore[arg-type]
            for path in replaced:
                _drop_under(state, path, include_self=True)  # type: ignore[arg-type]
        files.update(layer_files)
        links.update(layer_links)
        for path in layer_files:
            links.pop(path, None)
        for path in layer_links:
            files.pop(path, None)
    return files, links
