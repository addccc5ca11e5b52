"""Supply chain: SBOMs, cosign-compatible signatures, SLSA provenance, verify, promote, audit.

Every step takes an image from a store (any store: registry or OCI layout) and gives one
back; nothing here changes an image, so its digest stays what the build made. One module a job:

    keys          key pairs (cosign's encrypted format), sign/verify bytes
    secretbox     NaCl secretbox, for cosign's key files
    simplesigning cosign's signature payload
    dsse          DSSE envelopes (PAE)
    attach        where proof lives: cosign .sig/.att tags, OCI 1.1 referrers
    sign          sign_image
    provenance    in-toto + SLSA v1 statements (pure), attest
    layerfiles, gobuildinfo, apppackages, licenses, purl
                  reading what an image holds
    sbom          collect -> Inventory; cyclonedx, spdx; attach_sbom, find_sbom
    verify        evidence: which signatures/attestations trusted keys vouch for
    policy        verify policies (TOML), evaluate
    promote       copy by digest with signatures, attestations and SBOMs
    audit         which images contain a package
    debversion    dpkg's version order

For the build pipeline (``pallet build --sign-key``), after the image is pushed::

    key = keys.read_private_key(path, lambda: keys.read_password())
    sign_image(store, digest, key)
    attest(store, digest, provenance.statement(facts), key)
    attach_sbom(store, digest)
"""

from __future__ import annotations

import importlib
from typing import Any

#: The package's names, each from its module, imported when first used (PEP 562): the build
#: imports ``builder.supply.layerfiles`` and ``sbom`` for the SBOM layer, and should not pay for
#: signing's cryptography (0.1 s) unless it signs.
_FROM = {"BuildFacts": "provenance", "Dependency": "provenance", "SourceFacts": "provenance",
         "attest": "provenance", "source_facts": "provenance", "statement": "provenance",
         "attach_sbom": "sbom", "collect": "sbom", "sign_image": "sign"}

__all__ = ["BuildFacts", "Dependency", "SourceFacts", "attach_sbom", "attest", "collect", "sign_image",
           "source_facts", "statement"]


def __getattr__(name: str) -> Any:
    if name in _FROM:
        return getattr(importlib.import_module(f"builder.supply.{_FROM[name]}"), name)
    raise AttributeError(f"module 'builder.supply' has no attribute {name!r}")
