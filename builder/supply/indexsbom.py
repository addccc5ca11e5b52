"""The SBOM of a multi-platform image (an OCI index): one document naming every platform's packages.

Each platform's image is read as any image is (``sbom.collect``); the documents are made from
its single-image document (``sbom.cyclonedx`` / ``sbom.spdx``), so a package is described the
same way in both, and are pure and deterministic (serial number and namespace from the index
digest).

**CycloneDX 1.6** -- the assembly model (a component made of components), which tools that
walk nested components (cyclonedx-python-lib, Dependency-Track, ``pallet audit``) read as they
are: the index is the described component (``metadata.component``, a ``container`` versioned
by the index digest); each platform's image is a top-level ``container`` component (purl
``pkg:oci/NAME@DIGEST?arch=ARCH``, property ``pallet:platform``) whose nested ``components``
are its packages and its operating system. Every package also carries ``pallet:platform``, for
readers that flatten the tree. The same package (an ``arch=all`` deb, a PyPI wheel) is in
several platforms, and bom-refs are unique within a document, so each bom-ref is prefixed
with its platform. ``dependencies``: the index on its images, each image on its packages.

**SPDX 2.3** -- the document DESCRIBES the index (a ``CONTAINER`` package), which CONTAINS each
platform's image (a ``CONTAINER`` package), which CONTAINS its packages; SPDXIDs are keyed by
platform and purl, and each package's comment names its platform.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from builder.oci.image import Image
from builder.oci.model import Descriptor
from builder.oci.stores.base import Store
from builder.supply import purl, sbom
from builder.supply.attach import attach_referrer, subject_of
from builder.supply.errors import SupplyError

PLATFORM_PROPERTY = "pallet:platform"
INDEX_REF = "pallet:index"


@dataclass(frozen=True)
class IndexInventory:
    digest: str                              # the index's digest
    name: str
    platforms: tuple[sbom.Inventory, ...]    # one per platform image, in the index's order


def collect(index: Descriptor, images: list[Image], name: str | None = None) -> IndexInventory:
    """Each platform image's inventory (its layers read once each)."""
    from builder.supply.sign import identity_of

    name = name or identity_of(images[0].store)
    return IndexInventory(index.digest, name, tuple(sbom.collect(image, name) for image in images))


def _arch(platform: str) -> str:
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else platform


def _image_purl(idx: IndexInventory, digest: str, arch: str | None = None) -> str:
    return purl.oci_named(idx.name, digest, arch)


def cyclonedx(idx: IndexInventory, *, epoch: int | None = None) -> dict[str, Any]:
    """A CycloneDX 1.6 JSON document (as a dict) of the whole index. Pure."""
    images: list[dict[str, Any]] = []
    dependencies: list[dict[str, Any]] = []
    for inv in idx.platforms:
        one = sbom.cyclonedx(inv, epoch=epoch)
        tag = {"name": PLATFORM_PROPERTY, "value": inv.platform}
        parts = []
        for comp in one["components"]:
            parts.append({**comp, "bom-ref": f"{inv.platform}:{comp['bom-ref']}",
                          "properties": [*comp.get("properties", []), tag]})
        image_ref = f"pallet:image:{inv.platform}"
        image = {**one["metadata"]["component"], "bom-ref": image_ref,
                 "purl": _image_purl(idx, inv.digest, _arch(inv.platform)), "components": parts}
        images.append(image)
        dependencies.append({"ref": image_ref, "dependsOn": [c["bom-ref"] for c in parts]})
    first = sbom.cyclonedx(sbom.Inventory(idx.digest, idx.name, ""), epoch=epoch)
    metadata = {**first["metadata"], "component": {
        "type": "container", "bom-ref": INDEX_REF, "name": idx.name, "version": idx.digest,
        "purl": _image_purl(idx, idx.digest),
        "properties": [{"name": PLATFORM_PROPERTY, "value": inv.platform} for inv in idx.platforms]}}
    return {**first, "metadata": metadata, "components": images,
            "dependencies": [{"ref": INDEX_REF, "dependsOn": [i["bom-ref"] for i in images]}, *dependencies]}


def spdx(idx: IndexInventory, *, epoch: int | None = None) -> dict[str, Any]:
    """An SPDX 2.3 JSON document (as a dict) of the whole index. Pure."""
    index_id = "SPDXRef-Index"
    _, hexpart = idx.digest.split(":", 1)
    packages: list[dict[str, Any]] = [{
        "SPDXID": index_id, "name": idx.name, "versionInfo": idx.digest, "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False, "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexpart}],
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
        "comment": "a multi-platform image (OCI image index): " + ", ".join(i.platform for i in idx.platforms),
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": _image_purl(idx, idx.digest)}],
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": index_id}]
    extracted: dict[str, dict[str, Any]] = {}
    for inv in idx.platforms:
        one = sbom.spdx(inv, epoch=epoch)
        ids = {p["SPDXID"]: sbom._spdx_id("Image" if p["SPDXID"] == "SPDXRef-Image" else "Package",
                                          f"{inv.platform} {p['SPDXID']}") for p in one["packages"]}
        for p in one["packages"]:
            entry = {**p, "SPDXID": ids[p["SPDXID"]]}
            where = f"platform {inv.platform}"
            entry["comment"] = f"{where}; {p['comment']}" if p.get("comment") else where
            if p["SPDXID"] == "SPDXRef-Image":
                entry["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                          "referenceLocator": _image_purl(idx, inv.digest, _arch(inv.platform))}]
                relationships.append({"spdxElementId": index_id, "relationshipType": "CONTAINS",
                                      "relatedSpdxElement": entry["SPDXID"]})
            packages.append(entry)
        for rel in one["relationships"]:
            if rel["spdxElementId"] in ids:
                relationships.append({**rel, "spdxElementId": ids[rel["spdxElementId"]],
                                      "relatedSpdxElement": ids[rel["relatedSpdxElement"]]})
        for info in one.get("hasExtractedLicensingInfos", []):
            extracted[info["licenseId"]] = info
    first = sbom.spdx(sbom.Inventory(idx.digest, idx.name, ""), epoch=epoch)
    doc = {**first, "packages": packages, "relationships": relationships}
    if extracted:
        doc["hasExtractedLicensingInfos"] = [extracted[k] for k in sorted(extracted)]
    return doc


def document(idx: IndexInventory, fmt: str, *, epoch: int | None = None) -> bytes:
    """The serialised SBOM of the index in ``fmt``: as ``sbom.document`` writes one image's."""
    if fmt not in sbom.FORMATS:
        raise SupplyError(f"unknown SBOM format {fmt!r} (expected cyclonedx or spdx)")
    doc = cyclonedx(idx, epoch=epoch) if fmt == "cyclonedx" else spdx(idx, epoch=epoch)
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def attach(store: Store, idx: IndexInventory, formats: tuple[str, ...] = ("cyclonedx", "spdx")
           ) -> dict[str, Descriptor]:
    """Attach the index's SBOM in each format as OCI 1.1 referrers of the index itself (each
    platform's image keeps its own). Deterministic: attaching twice writes nothing new."""
    subject = subject_of(store, idx.digest)
    return {fmt: attach_referrer(store, subject, sbom.FORMATS[fmt], document(idx, fmt), sbom.FORMATS[fmt],
                                 {"dev.pallet.sbom.format": fmt, "dev.pallet.sbom.scope": "index"})
            for fmt in formats}
