"""``pallet audit``: which images contain a package (below a version), read from their SBOMs.

Each image's attached SBOM is read (CycloneDX, else SPDX); an image without one has its SBOM
computed from its layers. Versions compare in Debian order (``debversion``), which also orders
the dotted versions of the other ecosystems sensibly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from builder.oci.image import load_image
from builder.oci.reference import Reference
from builder.oci.stores.base import Store
from builder.supply import debversion, purl as purlmod, sbom


@dataclass(frozen=True)
class Match:
    name: str
    version: str
    purl: str


@dataclass
class AuditEntry:
    reference: str             # REF@sha256:... (what ``pallet rebase --from`` takes)
    digest: str
    sbom: str                  # "attached (referrer sha256:...)" or "computed"
    matches: list[Match] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "sbom": self.sbom,
                "packages": [{"name": m.name, "version": m.version, "purl": m.purl} for m in self.matches]}


def _same_name(listed: sbom.Listed, wanted: str) -> bool:
    want = wanted.strip()
    if listed.name == want or listed.name.lower() == want.lower():
        return True
    if listed.purl.startswith("pkg:pypi/") and purlmod.pypi_name(listed.name) == purlmod.pypi_name(want):
        return True
    return False


def matching(listed: list[sbom.Listed], name: str, below: str | None = None) -> list[Match]:
    """The packages called ``name`` (older than ``below``, if given), deduplicated. Pure."""
    out: dict[tuple[str, str, str], Match] = {}
    for p in listed:
        if not _same_name(p, name):
            continue
        if below is not None and debversion.compare(p.version, below) >= 0:
            continue
        out[(p.name, p.version, p.purl)] = Match(p.name, p.version, p.purl)
    return sorted(out.values(), key=lambda m: (m.name, m.purl))


def packages_of(store: Store, digest: str) -> tuple[list[sbom.Listed], str]:
    """(packages, where the list came from) for the image ``digest`` names."""
    image = load_image(store, digest)
    for candidate in dict.fromkeys([digest, image.digest]):
        for fmt in ("cyclonedx", "spdx"):
            found = sbom.find_sbom(store, candidate, fmt)
            if found is not None:
                data, where = found
                return sbom.listed_packages(data, fmt), f"attached ({fmt}, {where})"
    return sbom.inventory_listed(sbom.collect(image)), "computed"


def audit_image(store: Store, ref: Reference, package: str, below: str | None = None) -> AuditEntry:
    digest = store.resolve(ref.ref).digest
    listed, where = packages_of(store, digest)
    return AuditEntry(ref.at_digest(digest), digest, where, matching(listed, package, below))
