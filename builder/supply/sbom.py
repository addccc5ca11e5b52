"""SBOMs: what is in an image, read from its layers, as CycloneDX 1.6 and SPDX 2.3 JSON.

``collect(image)`` streams each layer once (``layerfiles``) and returns an ``Inventory`` (pure
data): the OS packages dpkg recorded (``/var/lib/dpkg/status``, ``status.d/*``; licences from
DEP-5 copyright files, parsed by ``builder.stacks.inventory`` so that ``pallet stack packages``
and the SBOM agree), and the app's dependencies as installed under ``/layers`` and
``/workspace`` (Python dist-info, npm ``node_modules`` and lockfiles) plus the Go modules
compiled into Go binaries there and under ``/usr/local``, ``/opt``, ``/app``, ``/cnb``.

``cyclonedx(inv)`` and ``spdx(inv)`` are pure and deterministic: the serial number and the SPDX
namespace are derived from the image digest, the timestamps from ``SOURCE_DATE_EPOCH``
(1980-01-01T00:00:01Z when unset), lists are sorted. The same image gives the same bytes.

``attach_sbom`` stores both as OCI 1.1 referrers of the image (``artifactType``
``application/vnd.cyclonedx+json`` / ``application/spdx+json``); ``find_sbom`` reads them back.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Iterator

from builder import jsonsafe
from builder import __version__
from builder.oci import mutate
from builder.oci.image import Image, load_image
from builder.oci.layerread import LayerTar
from builder.oci.model import Descriptor
from builder.oci.stores.base import Store
from builder.oci.unpack import TarEntry
from builder.stacks import inventory as dpkg
from builder.supply import apppackages as app
from builder.supply import gobuildinfo, layerfiles, licenses, purl
from builder.supply.attach import attach_referrer, referrer_contents, subject_of
from builder.supply.errors import SupplyError

CYCLONEDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"
FORMATS = {"cyclonedx": CYCLONEDX, "spdx": SPDX}
CYCLONEDX_VERSION = "1.6"

APP_ROOTS = ("layers/", "workspace/")
GO_ROOTS = APP_ROOTS + ("usr/local/", "opt/", "app/", "cnb/", "srv/")
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
_ECOSYSTEM_ORDER = {"deb": 0, "golang": 1, "npm": 2, "pypi": 3}


@dataclass(frozen=True)
class Package:
    ecosystem: str                     # deb, pypi, npm, golang
    name: str
    version: str
    purl: str
    licenses: tuple[str, ...] = ()     # as the package states them
    expression: str | None = None      # an SPDX expression the package states itself
    arch: str | None = None
    source: str | None = None          # deb: the source package (name, version)
    source_version: str | None = None
    locations: tuple[str, ...] = ()    # where in the image it was found ("/var/lib/dpkg/status")


@dataclass(frozen=True)
class Distro:
    id: str
    version_id: str | None = None
    pretty_name: str | None = None

    @property
    def purl_distro(self) -> str | None:
        return f"{self.id}-{self.version_id}" if self.version_id else None


@dataclass(frozen=True)
class Inventory:
    digest: str
    name: str
    platform: str
    distro: Distro | None = None
    packages: tuple[Package, ...] = field(default=())


# -- reading an image --------------------------------------------------------------------------


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return path.startswith(roots)


def _wanted(entry: TarEntry) -> str | None:
    path = entry.path
    if entry.type == "symlink":
        if path in OS_RELEASE or (path.startswith(dpkg.DOC) and dpkg.is_inventory_path(path)):
            return layerfiles.LINK
        return None
    if entry.type not in ("file", "hardlink"):
        return None
    if path in OS_RELEASE or dpkg.is_inventory_path(path):
        return layerfiles.READ
    if _under(path, APP_ROOTS) and (app.is_python_metadata(path) or app.is_npm_package_json(path)
                                    or app.is_npm_lockfile(path)):
        return layerfiles.READ
    if _under(path, GO_ROOTS) and entry.mode & 0o111 and entry.size >= 64 * 1024:
        return layerfiles.ANALYSE
    return None


def _go_binary(stream: BinaryIO, entry: TarEntry) -> gobuildinfo.BuildInfo | None:
    """Build info of a candidate binary; ``stream`` is seekable (``layerfiles`` spooled it, within
    its limit, or it is a file on disk), so it is not copied a second time."""
    head = stream.read(4)
    if head != b"\x7fELF":
        return None
    stream.seek(0)
    return gobuildinfo.read_build_info(stream)


def _layer_streams(image: Image) -> Iterator[LayerTar]:
    """Each layer as the one verifying reader, named after the image in errors."""
    for desc, _ in image.layers():
        stream = image.store.open_blob(desc)
        try:
            yield LayerTar(stream, what=image.layer_name(desc))
        finally:
            stream.close()


def collect(image: Image, name: str | None = None) -> Inventory:
    """The inventory of an image (one platform's manifest), read from its layers.

    ``name`` names the image in the SBOM; by default its repository as signatures name it
    (``HOST/REPO`` for a registry).
    """
    from builder.supply.sign import identity_of  # signing's cryptography: only when it is needed

    files = layerfiles.read_files(_layer_streams(image), _wanted, _go_binary)
    return inventory_of(files, digest=image.digest, name=name or identity_of(image.store),
                        platform=str(image.config.platform))


def layer_sbom(stream: BinaryIO, *, name: str, diff_id: str) -> bytes | None:
    """A CycloneDX document of the app dependencies installed in one layer (a buildpack's launch
    layer), or None when it holds none. For the CNB SBOM layer inside an image: deterministic,
    and about the layer only (named by its path, versioned by its diffID); see ``layer_document``."""
    return _layer_sbom(layerfiles.read_files([stream], _wanted, _go_binary), name, diff_id)


def layer_dir_sbom(root: str | os.PathLike[str], *, name: str, diff_id: str) -> bytes | None:
    """``layer_sbom`` of the layer that directory ``root`` makes at ``name`` (its path in the
    image), read from the directory: the same bytes, without decompressing the layer."""
    return _layer_sbom(layerfiles.read_dir(root, name.lstrip("/"), _wanted, _go_binary), name, diff_id)


def _layer_sbom(files: dict[str, layerfiles.Found], name: str, diff_id: str) -> bytes | None:
    inv = inventory_of(files, digest=diff_id, name=name, platform="")
    return layer_document(inv) if inv.packages else None


def _os_release(files: dict[str, layerfiles.Found]) -> Distro | None:
    for path in OS_RELEASE:
        found = layerfiles.resolve_link(files, path)
        if found is None or found.data is None:
            continue
        values: dict[str, str] = {}
        for line in found.data.decode("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip('"').strip("'")
        if values.get("ID"):
            return Distro(values["ID"], values.get("VERSION_ID") or None, values.get("PRETTY_NAME") or None)
    return None


def inventory_of(files: dict[str, layerfiles.Found], *, digest: str, name: str, platform: str) -> Inventory:
    """The inventory from the files ``layerfiles.read_files`` kept. Pure."""
    distro = _os_release(files)
    found: list[Package] = []

    # OS packages: where each was recorded, then the licences (dpkg.inventory follows doc links).
    data = {p: f.data for p, f in files.items() if f.data is not None and dpkg.is_inventory_path(p)}
    links = {p: f.target for p, f in files.items() if f.kind == layerfiles.LINK and f.target}
    where: dict[tuple[str, str], str] = {}
    for path in sorted(data):
        if dpkg.is_status_path(path):
            for p in dpkg.installed_packages(data[path].decode("utf-8", "replace")):
                where[(p.name, p.arch)] = "/" + path
    distro_id = distro.id if distro else "debian"
    purl_distro = distro.purl_distro if distro else None
    for p in dpkg.inventory(data, links):
        found.append(Package(
            "deb", p.name, p.version, purl.deb(p.name, p.version, p.arch, distro_id, purl_distro),
            licenses=tuple(p.licenses), arch=p.arch or None, source=p.source, source_version=p.source_version,
            locations=(where.get((p.name, p.arch), "/" + dpkg.STATUS),)))

    for path in sorted(files):
        f = files[path]
        if f.kind == layerfiles.READ and f.data is not None and _under(path, APP_ROOTS):
            location = "/" + path
            if app.is_python_metadata(path):
                pkgs = [app.python_package(f.data, location)]
            elif app.is_npm_package_json(path):
                pkgs = [app.npm_package(f.data, location)]
            elif app.is_npm_lockfile(path):
                pkgs = list(app.npm_lockfile(f.data, location))
            else:
                pkgs = []
            for a in pkgs:
                if a is None:
                    continue
                ref = purl.pypi(a.name, a.version) if a.ecosystem == "pypi" else purl.npm(a.name, a.version)
                found.append(Package(a.ecosystem, a.name, a.version, ref, licenses=a.licenses,
                                     expression=a.expression, locations=(location,)))
        elif f.kind == layerfiles.ANALYSE and isinstance(f.result, gobuildinfo.BuildInfo):
            found.extend(_go_packages(f.result, "/" + path))
    return Inventory(digest=digest, name=name, platform=platform, distro=distro, packages=_merge(found))


def _go_packages(info: gobuildinfo.BuildInfo, location: str) -> list[Package]:
    out = []
    go = info.go_version
    out.append(Package("golang", "stdlib", go, purl.golang("stdlib", go.removeprefix("go").split(" ")[0]),
                       expression="BSD-3-Clause", licenses=("BSD-3-Clause",), locations=(location,)))
    mods = ([info.main] if info.main else []) + list(info.deps)
    for mod in mods:
        eff = mod.effective
        version = eff.version if eff.version and eff.version != "(devel)" else ""
        out.append(Package("golang", mod.path, version or "(devel)", purl.golang(mod.path, version or None),
                           locations=(location,)))
    return out


def _merge(found: list[Package]) -> tuple[Package, ...]:
    """One package per purl (the same npm package in two places is one component), sorted."""
    merged: dict[str, Package] = {}
    for p in found:
        old = merged.get(p.purl)
        if old is None:
            merged[p.purl] = p
            continue
        merged[p.purl] = replace(
            old, licenses=tuple(dict.fromkeys(old.licenses + p.licenses)),
            expression=old.expression or p.expression,
            locations=tuple(sorted(set(old.locations + p.locations))))
    return tuple(sorted(merged.values(), key=lambda p: (_ECOSYSTEM_ORDER.get(p.ecosystem, 9), p.name,
                                                        p.version, p.purl)))


# -- documents (pure) --------------------------------------------------------------------------


def _timestamp(epoch: int | None) -> str:
    return mutate.rfc3339(mutate.source_date_epoch() if epoch is None else epoch)


def serial_uuid(digest: str) -> uuid.UUID:
    """The SBOM's identity: a name-based UUID of the image digest (never random)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://pallet.dev/sbom/{digest}")


def _image_purl(inv: Inventory) -> str:
    """``pkg:oci/NAME@DIGEST?repository_url=HOST/REPO`` (the URL only for a registry image)."""
    return purl.oci_named(inv.name, inv.digest)


def cyclonedx(inv: Inventory, *, epoch: int | None = None) -> dict[str, Any]:
    """A CycloneDX 1.6 JSON document (as a dict) of the inventory."""
    components = []
    for p in inv.packages:
        comp: dict[str, Any] = {"type": "library", "bom-ref": p.purl, "name": p.name, "version": p.version,
                                "purl": p.purl}
        comp.update(_cdx_licenses(p))
        props = [{"name": "pallet:location", "value": loc} for loc in p.locations]
        if p.ecosystem == "deb":
            if p.source:
                props.append({"name": "deb:source", "value": p.source})
            if p.source_version:
                props.append({"name": "deb:source-version", "value": p.source_version})
            if p.arch:
                props.append({"name": "deb:architecture", "value": p.arch})
        props.append({"name": "pallet:ecosystem", "value": p.ecosystem})
        comp["properties"] = props
        components.append(comp)
    image_ref = "pallet:image"
    metadata: dict[str, Any] = {
        "timestamp": _timestamp(epoch),
        "tools": {"components": [{"type": "application", "name": "pallet", "version": __version__}]},
        "component": {"type": "container", "bom-ref": image_ref, "name": inv.name, "version": inv.digest,
                      "purl": _image_purl(inv),
                      "properties": [{"name": "pallet:platform", "value": inv.platform}]},
    }
    if inv.distro is not None:
        os_ref = f"pallet:os:{inv.distro.id}"
        components.insert(0, {"type": "operating-system", "bom-ref": os_ref, "name": inv.distro.id,
                              "version": inv.distro.version_id or "",
                              "description": inv.distro.pretty_name or inv.distro.id})
    return {
        "$schema": f"http://cyclonedx.org/schema/bom-{CYCLONEDX_VERSION}.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": CYCLONEDX_VERSION,
        "serialNumber": f"urn:uuid:{serial_uuid(inv.digest)}",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]}],
    }


def _cdx_licenses(p: Package) -> dict[str, Any]:
    """A component's ``licenses``: one SPDX expression when there is one, else the names."""
    expr, refs = licenses.combine(p.licenses, p.expression)
    if expr and not refs:
        return {"licenses": [{"expression": expr}]}
    if p.licenses or p.expression:
        names = p.licenses or ((p.expression,) if p.expression else ())
        return {"licenses": [{"license": {"name": n}} for n in names]}
    return {}


def layer_document(inv: Inventory) -> bytes:
    """The CycloneDX 1.6 JSON of one layer's inventory, for the CNB SBOM layer inside an image.

    It is in every image, so it is compact: no indentation; per component its type, name,
    version, purl and licences (what ``builder.supply.refresh`` reads back after a rebase); the
    layer as the described component, named by its path and versioned by its diffID. No
    timestamp, tool version, serial number, bom-refs, dependency list or properties: the
    document is a function of the layer alone, so an unchanged layer keeps the same SBOM whatever
    pallet made it, and the complete SBOMs attached to the image (``document``) have the rest.
    """
    components: list[dict[str, Any]] = []
    if inv.distro is not None:
        components.append({"type": "operating-system", "name": inv.distro.id,
                           "version": inv.distro.version_id or ""})
    for p in inv.packages:
        components.append({"type": "library", "name": p.name, "version": p.version, "purl": p.purl,
                           **_cdx_licenses(p)})
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": CYCLONEDX_VERSION,
        "metadata": {"component": {"type": "file", "name": inv.name, "version": inv.digest}},
        "components": components,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


#: Changes whenever ``layer_document`` (or what it is made of) changes: the export's cache of
#: layer SBOMs, keyed by diffID, keeps the documents of this format only.
LAYER_SBOM_FORMAT = "cdx-1.6-compact-1"


def _spdx_id(prefix: str, key: str) -> str:
    return f"SPDXRef-{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def spdx(inv: Inventory, *, epoch: int | None = None) -> dict[str, Any]:
    """An SPDX 2.3 JSON document (as a dict) of the inventory."""
    image_id = "SPDXRef-Image"
    _, hexpart = inv.digest.split(":", 1)
    packages: list[dict[str, Any]] = [{
        "SPDXID": image_id, "name": inv.name, "versionInfo": inv.digest, "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False, "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexpart}],
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": _image_purl(inv)}],
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image_id}]
    extracted: dict[str, str] = {}
    for p in inv.packages:
        pid = _spdx_id("Package", p.purl)
        expr, refs = licenses.combine(p.licenses, p.expression)
        extracted.update(refs)
        entry: dict[str, Any] = {
            "SPDXID": pid, "name": p.name, "versionInfo": p.version, "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False, "primaryPackagePurpose": "LIBRARY",
            "licenseConcluded": "NOASSERTION", "licenseDeclared": expr or "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": p.purl}],
        }
        if p.ecosystem == "deb" and p.source:
            entry["sourceInfo"] = f"built from Debian source package {p.source} {p.source_version or ''}".strip()
        if p.locations:
            entry["comment"] = "found at " + ", ".join(p.locations)
        packages.append(entry)
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": pid})
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{inv.name}@{inv.digest}",
        "documentNamespace": f"https://spdx.org/spdxdocs/pallet-{serial_uuid(inv.digest)}",
        "creationInfo": {"created": _timestamp(epoch), "creators": [f"Tool: pallet-{__version__}"]},
        "packages": packages,
        "relationships": relationships,
    }
    if extracted:
        doc["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "name": name,
             "extractedText": f"The licence named {name!r} in the package's own metadata; its text is not "
                              "included in this document."}
            for ref, name in sorted(extracted.items())]
    return doc


def document(inv: Inventory, fmt: str, *, epoch: int | None = None) -> bytes:
    """The serialised SBOM in ``fmt`` (``cyclonedx`` or ``spdx``): sorted keys, two-space indent."""
    if fmt not in FORMATS:
        raise SupplyError(f"unknown SBOM format {fmt!r} (expected cyclonedx or spdx)")
    doc = cyclonedx(inv, epoch=epoch) if fmt == "cyclonedx" else spdx(inv, epoch=epoch)
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# -- attached SBOMs ----------------------------------------------------------------------------


def attach_sbom(store: Store, digest: str, inventory: Inventory | None = None, *,
                formats: tuple[str, ...] = ("cyclonedx", "spdx"), name: str | None = None) -> dict[str, Descriptor]:
    """Compute (unless given) and attach the complete SBOM of ``digest`` in each format, as
    OCI 1.1 referrers. Deterministic: attaching twice writes nothing new."""
    if inventory is None:
        inventory = collect(load_image(store, digest), name)
    subject = subject_of(store, inventory.digest)
    out = {}
    for fmt in formats:
        data = document(inventory, fmt)
        out[fmt] = attach_referrer(store, subject, FORMATS[fmt], data, FORMATS[fmt],
                                   {"dev.pallet.sbom.format": fmt})
    return out


def is_document(data: bytes, media_type: str) -> bool:
    """Whether ``data`` is a JSON document of the SBOM format ``media_type`` names (what anyone
    may attach as a referrer is not, until checked: any bytes, of any encoding)."""
    doc = jsonsafe.object_or_none(data)
    if doc is None:
        return False
    if media_type == CYCLONEDX:
        return doc.get("bomFormat") == "CycloneDX"
    if media_type == SPDX:
        return str(doc.get("spdxVersion", "")).startswith("SPDX-")
    return False


def find_sbom(store: Store, digest: str, fmt: str) -> tuple[bytes, str] | None:
    """(document, "referrer sha256:...") of an SBOM in ``fmt`` attached to ``digest``, if any;
    an attachment that is no such document (not UTF-8, not JSON, another format) is passed over,
    as if not there: it is neither printed nor read for packages."""
    found, _ = referrer_contents(store, digest, (FORMATS[fmt],))
    for desc, layer, data in found:
        if layer.media_type == FORMATS[fmt] and is_document(data, layer.media_type):
            return data, f"referrer {desc.digest}"
    return None


# -- reading packages back out of an SBOM (for audit) ------------------------------------------


@dataclass(frozen=True)
class Listed:
    name: str
    version: str
    purl: str
    source: str | None = None            # deb: the source package (what Debian's advisories name)
    source_version: str | None = None


def listed_packages(data: bytes, fmt: str) -> list[Listed]:
    """The packages an SBOM document lists (ours or another tool's), without the image itself."""
    try:
        doc = jsonsafe.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise SupplyError(f"the attached {fmt} SBOM is not JSON") from None
    out: list[Listed] = []
    if not isinstance(doc, dict):
        return out
    if fmt == "cyclonedx":
        queue = collections.deque(_objects(doc.get("components")))  # pop(0) of a list: quadratic
        while queue:
            c = queue.popleft()
            queue.extend(_objects(c.get("components")))
            if c.get("type") in ("container", "operating-system"):
                continue
            name = str(c.get("name") or "")
            if c.get("group") and not name.startswith(str(c["group"])):
                name = f"{c['group']}/{name}"
            props = {str(p.get("name")): p.get("value") for p in _objects(c.get("properties"))}
            out.append(Listed(name, str(c.get("version") or ""), str(c.get("purl") or ""),
                              _text(props.get("deb:source")), _text(props.get("deb:source-version"))))
    else:
        for p in _objects(doc.get("packages")):
            if p.get("primaryPackagePurpose") == "CONTAINER":
                continue
            ref = next((r.get("referenceLocator") for r in _objects(p.get("externalRefs"))
                        if r.get("referenceType") == "purl"), "")
            source = _spdx_source(p.get("sourceInfo"))
            out.append(Listed(str(p.get("name") or ""), str(p.get("versionInfo") or ""), str(ref or ""),
                              *(source or (None, None))))
    return out


def _objects(value: object) -> list[dict[str, Any]]:
    """The objects of a list an SBOM document holds; none when it is no list. An attached SBOM is
    anyone's who can push to the repository: "components": 5 was a TypeError traceback in audit."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


_SOURCE_INFO = "built from Debian source package "


def _spdx_source(info: object) -> tuple[str, str | None] | None:
    """(source, version) from the ``sourceInfo`` ``spdx`` writes for a Debian package."""
    if not isinstance(info, str) or not info.startswith(_SOURCE_INFO):
        return None
    name, _, version = info[len(_SOURCE_INFO):].strip().partition(" ")
    return (name, version.strip() or None) if name else None


def inventory_listed(inv: Inventory) -> list[Listed]:
    return [Listed(p.name, p.version, p.purl, p.source, p.source_version) for p in inv.packages]

