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

from builder.supply.provenance import BuildFacts, Dependency, SourceFacts, attest, source_facts, statement
from builder.supply.sbom import attach_sbom, collect
from builder.supply.sign import sign_image

__all__ = ["BuildFacts", "Dependency", "SourceFacts", "attach_sbom", "attest", "collect", "sign_image",
           "source_facts", "statement"]
