"""Verification: which signatures and attestations of an image a set of keys vouches for.

The checks on bytes are pure functions (``check_signatures``, ``check_envelopes``), so they run
on cosign's own signatures loaded as data as well as on what a store holds; ``gather`` reads a
store and hands everything to them. Nothing here decides pass or fail for a policy: it
collects evidence, and every reason something did not count (``problems``), in order.

A signature counts only if (1) it is a simple-signing layer, (2) its signature verifies over the
exact payload bytes with a trusted key, and (3) that payload names this exact manifest digest.
The payload is read only after its signature checked out.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from builder import jsonsafe
from builder.oci.digest import sha256, split
from builder.oci.stores.base import Store
from builder.supply import dsse, keys as keymod, simplesigning
from builder.supply.attach import ATTESTATIONS, SBOMS, SIGNATURES, Attachment, read_attached, referrer_contents
from builder.supply.keys import TrustedKey

STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
ATTESTATION_ARTIFACT_TYPES = (dsse.MEDIA_TYPE, dsse.INTOTO_PAYLOAD_TYPE)
CYCLONEDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"
SBOM_ARTIFACT_TYPES = (CYCLONEDX, SPDX)


@dataclass(frozen=True)
class ValidSignature:
    key: str                  # where the trusted key came from
    where: str                # e.g. "sha256-....sig layer 2"
    docker_reference: str
    optional: dict[str, Any] | None


@dataclass(frozen=True)
class ValidStatement:
    key: str
    where: str
    predicate_type: str
    statement: dict[str, Any]
    envelope: str = ""        # sha256 of the DSSE envelope bytes (what a rebase statement records)


@dataclass
class Link:
    """A rebase statement on an image, and what was found at the original it names."""

    statement: ValidStatement
    original: str | None
    evidence: "Evidence | None" = None       # the original's (signatures aside)
    problems: list[str] = field(default_factory=list)   # why the link does not hold


@dataclass
class Evidence:
    """What a store holds about one image digest that the trusted keys vouch for."""

    digest: str
    signatures: list[ValidSignature] = field(default_factory=list)
    statements: list[ValidStatement] = field(default_factory=list)
    sboms: list[str] = field(default_factory=list)        # "referrer sha256:... (type)"
    # What was found and did not count, and why, by kind.
    signature_problems: list[str] = field(default_factory=list)
    attestation_problems: list[str] = field(default_factory=list)
    sbom_problems: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)   # rebase statements, followed to their originals

    @property
    def problems(self) -> list[str]:
        return self.signature_problems + self.attestation_problems + self.sbom_problems

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "signatures": [{"key": s.key, "where": s.where, "dockerReference": s.docker_reference,
                            "optional": s.optional} for s in self.signatures],
            "attestations": [{"key": s.key, "where": s.where, "predicateType": s.predicate_type}
                             for s in self.statements],
            "sboms": list(self.sboms),
            "problems": list(self.problems),
            "rebasedFrom": [{"original": link.original, "where": link.statement.where, "problems": link.problems,
                             **({"evidence": link.evidence.to_json()} if link.evidence else {})}
                            for link in self.links],
        }


def _key_names(trusted: list[TrustedKey]) -> str:
    return ", ".join(k.source for k in trusted) or "none"


def check_signatures(digest: str, layers: list[tuple[str, Attachment]], trusted: list[TrustedKey]
                     ) -> tuple[list[ValidSignature], list[str]]:
    """(valid signatures, problems) of simple-signing layers, each named by where it was found."""
    valid: list[ValidSignature] = []
    problems: list[str] = []
    for where, layer in layers:
        if layer.media_type != simplesigning.MEDIA_TYPE:
            problems.append(f"{where}: media type {layer.media_type!r} is not a simple-signing signature")
            continue
        encoded = layer.annotations.get(simplesigning.SIGNATURE_ANNOTATION)
        if not encoded:
            problems.append(f"{where}: no {simplesigning.SIGNATURE_ANNOTATION} annotation")
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            problems.append(f"{where}: the signature annotation is not base64")
            continue
        signers = [k for k in trusted if keymod.verify(k.key, signature, layer.payload)]
        if not signers:
            problems.append(f"{where}: the signature does not verify with any trusted key ({_key_names(trusted)}): "
                            "made by another key, or the payload was changed")
            continue
        try:
            payload = simplesigning.parse(layer.payload)
        except simplesigning.PayloadError as exc:
            problems.append(f"{where}: signed, but {exc}")
            continue
        if payload.manifest_digest != digest:
            problems.append(f"{where}: signs manifest {payload.manifest_digest}, not this image's {digest}")
            continue
        valid.append(ValidSignature(signers[0].source, where, payload.docker_reference, payload.optional))
    return valid, problems


def check_envelopes(digest: str, envelopes: list[tuple[str, bytes]], trusted: list[TrustedKey]
                    ) -> tuple[list[ValidStatement], list[str]]:
    """(valid in-toto statements about ``digest``, problems) of DSSE envelopes."""
    _, hexpart = split(digest)
    valid: list[ValidStatement] = []
    problems: list[str] = []
    for where, data in envelopes:
        try:
            envelope = dsse.parse(data)
        except dsse.EnvelopeError as exc:
            problems.append(f"{where}: {exc}")
            continue
        signers = dsse.verify(envelope, trusted)
        if not signers:
            problems.append(f"{where}: the envelope signature does not verify over its PAE with any trusted key "
                            f"({_key_names(trusted)}): another key, a changed payload, or a bad PAE")
            continue
        if envelope.payload_type != dsse.INTOTO_PAYLOAD_TYPE:
            problems.append(f"{where}: payload type {envelope.payload_type!r} is not {dsse.INTOTO_PAYLOAD_TYPE}")
            continue
        try:
            statement = jsonsafe.loads(envelope.payload)
        except (ValueError, UnicodeDecodeError):
            problems.append(f"{where}: the signed statement is not JSON")
            continue
        if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
            problems.append(f"{where}: not an in-toto statement")
            continue
        subjects = statement["subject"] if isinstance(statement.get("subject"), list) else []
        if not any(isinstance(s, dict) and isinstance(s.get("digest"), dict)
                   and s["digest"].get("sha256") == hexpart for s in subjects):
            problems.append(f"{where}: the statement is about other artifacts, not {digest}")
            continue
        valid.append(ValidStatement(signers[0].source, where, str(statement.get("predicateType") or ""), statement,
                                    sha256(data)))
    return valid, problems


#: How many rebases a chain may hold before verification stops following it.
MAX_CHAIN = 16


def gather(store: Store, digest: str, trusted: list[TrustedKey], *, attestations: bool = True,
           sboms: bool = True, _seen: tuple[str, ...] = ()) -> Evidence:
    """Everything the store holds about ``digest``, checked against ``trusted``; with
    ``attestations``, each trusted rebase statement is followed to its original (``links``)."""
    evidence = Evidence(digest)
    sigs = read_attached(store, digest, SIGNATURES)
    evidence.signature_problems += sigs.problems
    layers = [(f"{sigs.tag} layer {n}", a) for n, a in sigs.attachments]
    valid, problems = check_signatures(digest, layers, trusted)
    evidence.signatures += valid
    evidence.signature_problems += problems
    if attestations:
        att = read_attached(store, digest, ATTESTATIONS)
        evidence.attestation_problems += att.problems
        envelopes = [(f"{att.tag} layer {n}", a.payload) for n, a in att.attachments if a.media_type == dsse.MEDIA_TYPE]
        found, problems = referrer_contents(store, digest, ATTESTATION_ARTIFACT_TYPES)
        evidence.attestation_problems += problems
        envelopes += [(f"referrer {desc.digest}", data) for desc, _, data in found]
        valid_st, problems = check_envelopes(digest, envelopes, trusted)
        evidence.statements += valid_st
        evidence.attestation_problems += problems
        _follow_rebases(store, evidence, trusted, _seen + (digest,))
    if sboms:
        found, problems = referrer_contents(store, digest, SBOM_ARTIFACT_TYPES)
        evidence.sbom_problems += problems
        for desc, layer, data in found:
            if _is_sbom(data, layer.media_type):
                evidence.sboms.append(f"referrer {desc.digest} ({layer.media_type})")
            else:
                evidence.sbom_problems.append(f"referrer {desc.digest}: not a {layer.media_type} document")
        legacy = read_attached(store, digest, SBOMS)
        for n, a in legacy.attachments:
            if _is_sbom(a.payload, a.media_type):
                evidence.sboms.append(f"{legacy.tag} layer {n} ({a.media_type})")
    return evidence


def _parts(store: Store, digest: str):
    from builder.oci.image import load_image
    from builder.supply.rebaseprov import parts_of

    image = load_image(store, digest)
    return parts_of(image.digest, image.manifest, image.config)


def _follow_rebases(store: Store, evidence: Evidence, trusted: list[TrustedKey], seen: tuple[str, ...]) -> None:
    """For each trusted rebase statement: the original's evidence, and whether the link holds."""
    from builder.errors import PalletError
    from builder.supply import rebaseprov

    done: set[str] = set()
    for st in evidence.statements:
        if not rebaseprov.is_rebase(st.statement) or st.envelope in done:
            continue
        done.add(st.envelope)  # the same envelope is found as an .att layer and as a referrer
        original = rebaseprov.original_of(st.statement)
        link = Link(st, original)
        evidence.links.append(link)
        if original is None:
            link.problems.append("it names no single original image")
            continue
        if original in seen or len(seen) > MAX_CHAIN:
            link.problems.append(f"the chain of rebases loops or is longer than {MAX_CHAIN} (at {original})")
            continue
        try:
            link.problems += rebaseprov.check_link(st.statement, _parts(store, evidence.digest),
                                                   _parts(store, original))
        except PalletError as exc:
            link.problems.append(f"the original image {original} cannot be read here: {exc}")
            continue
        link.evidence = gather(store, original, trusted, sboms=False, _seen=seen)


def _is_sbom(data: bytes, media_type: str) -> bool:
    from builder.supply.sbom import is_document

    return is_document(data, media_type)


def signature_reasons(evidence: Evidence, trusted: list[TrustedKey]) -> list[str]:
    """Why the image is not signed by a trusted key (empty when it is)."""
    if evidence.signatures:
        return []
    head = f"no valid signature by a trusted key ({_key_names(trusted)}) covers {evidence.digest}"
    if not evidence.signature_problems:
        head += " (the image has no signatures)"
    return [head, *evidence.signature_problems]
