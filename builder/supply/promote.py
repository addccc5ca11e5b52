"""``pallet promote``: copy a verified image, and everything that vouches for it, by digest.

The source tag is resolved to a digest once, first; everything after works on that digest, so
a tag moved meanwhile cannot slip another image through. Order of writes: the image (blobs,
then manifest by digest), its cosign ``.sig``/``.att``/``.sbom`` tags (merged with what the
destination already has), its referrers (SBOMs, attestations; and theirs, one level down) --
for an index, also each platform manifest's --, and
the destination tag last, so a deploy watching the tag never sees an image without its proof.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from builder import jsonsafe
from builder.errors import NotFoundError
from builder.oci import mediatypes as mt
from builder.oci.copy import DEFAULT_JOBS, copy_image
from builder.oci.stores.base import Store
from builder.oci.model import Index, Manifest, ModelError
from builder.supply.attach import (ATTESTATIONS, MAX_ATTACHMENTS, SBOMS, SIGNATURES, Attachment, attachments_manifest,
                                   read_attached)
from builder.supply.errors import SupplyError, VerificationError
from builder.supply.policy import Policy, evaluate, vulnerability_outcome
from builder.supply.verify import gather

_SUFFIXES = (SIGNATURES, ATTESTATIONS, SBOMS)
_MAX_DEPTH = 2
#: Images vouching for one promoted image (its referrers, theirs, each platform's) copied at most:
#: a source listing thousands per image, each with thousands, would be copied for ever.
_MAX_PROOF = 4 * MAX_ATTACHMENTS


@dataclass
class Promoted:
    digest: str
    copied: list[str] = field(default_factory=list)  # what came along: tags and referrers


def _merge_tag(src: Store, dst: Store, digest: str, suffix: str, out: Promoted) -> None:
    """Copy the source's cosign tag ``suffix``, merged with the destination's. A source tag that
    exists but cannot be read (not JSON, wrong types, a blob missing) fails the promote, however it
    is broken: skipping it would promote the image without proof the source claims to have."""
    theirs = read_attached(src, digest, suffix)
    if theirs.problems:  # before ``manifest is None``: an unreadable tag has no manifest either
        raise SupplyError(f"source: {theirs.problems[0]}; nothing was tagged")
    if theirs.manifest is None:
        return
    mine = read_attached(dst, digest, suffix)
    if mine.manifest is None or mine.problems:
        copy_image(src, theirs.tag, dst, theirs.tag)  # the exact manifest: its digest is kept
        out.copied.append(theirs.tag)
        return
    have = {(a.media_type, a.payload, tuple(sorted(a.annotations.items()))) for _, a in mine.attachments}
    extra = [a for _, a in theirs.attachments
             if (a.media_type, a.payload, tuple(sorted(a.annotations.items()))) not in have]
    if not extra:
        return
    merged: list[Attachment] = [a for _, a in mine.attachments] + extra
    manifest, config = attachments_manifest(merged)
    for a in merged:
        dst.put_blob_bytes(a.payload, a.media_type)
    dst.put_blob_bytes(config, mt.OCI_CONFIG)
    dst.put_manifest(manifest, mt.OCI_MANIFEST, tag=mine.tag)
    out.copied.append(f"{theirs.tag} (merged)")


def _referrers(src: Store, digest: str) -> list[Any]:
    """The referrers of ``digest`` the source lists, at most MAX_ATTACHMENTS, each a manifest that
    names ``digest`` as its subject: a registry's answer is its own word, and one listing other
    images (its others, anyone's) would have them copied to the destination as this one's proof."""
    listed = src.referrers(digest)
    if len(listed) > MAX_ATTACHMENTS:
        raise SupplyError(f"source: {digest} has {len(listed)} referrers, more than the {MAX_ATTACHMENTS} "
                          "pallet copies; nothing was tagged")
    out = []
    for ref in listed:
        try:
            desc, data = src.get_manifest(ref.digest)
            kind = Index if mt.is_index(desc.media_type) else Manifest
            subject = kind.from_bytes(data, desc.media_type).subject
        except ModelError:
            continue   # no manifest naming a subject
        if subject is not None and subject.digest == digest:
            out.append(ref)
    return out


def _copy_proof(src: Store, dst: Store, digest: str, out: Promoted, depth: int, seen: set[str], jobs: int) -> None:
    if digest in seen or depth > _MAX_DEPTH:
        return
    seen.add(digest)
    if len(seen) > _MAX_PROOF:
        raise SupplyError(f"source: more than {_MAX_PROOF} images vouch for the promoted image (referrers of "
                          "referrers), more than pallet copies; nothing was tagged")
    for suffix in _SUFFIXES:
        _merge_tag(src, dst, digest, suffix, out)
    for ref in _referrers(src, digest):
        copy_image(src, ref.digest, dst, None, jobs=jobs)
        out.copied.append(f"referrer {ref.digest}" + (f" ({ref.artifact_type})" if ref.artifact_type else ""))
        _copy_proof(src, dst, ref.digest, out, depth + 1, seen, jobs)


def _platform_manifests(store: Store, digest: str) -> list[str]:
    """The manifests an index names (none for an image): a multi-platform build signs, attests
    and attaches SBOMs to each platform's image as well as to the index."""
    desc, data = store.get_manifest(digest)
    if not mt.is_index(desc.media_type):
        return []
    return [m.digest for m in Index.from_bytes(data, desc.media_type).manifests if mt.is_manifest(m.media_type)]


def _originals(store: Store, digest: str) -> list[str]:
    """The originals the rebase statements attached to ``digest`` name (read, not verified:
    only to know what to copy; the verifier checks them where they land)."""
    from builder.supply import dsse, rebaseprov
    from builder.supply.attach import referrer_contents
    from builder.supply.verify import ATTESTATION_ARTIFACT_TYPES

    payloads = [a.payload for _, a in read_attached(store, digest, ATTESTATIONS).attachments]
    found, _ = referrer_contents(store, digest, ATTESTATION_ARTIFACT_TYPES)
    payloads += [data for _, _, data in found]
    out: list[str] = []
    for data in payloads:
        try:
            st = jsonsafe.loads(dsse.parse(data).payload)
        except (dsse.EnvelopeError, ValueError, UnicodeDecodeError):
            continue
        original = rebaseprov.original_of(st) if isinstance(st, dict) and rebaseprov.is_rebase(st) else None
        if original and original not in out:
            out.append(original)
    return out


def _copy_originals(src: Store, dst: Store, digest: str, out: Promoted, jobs: int, proof: set[str]) -> None:
    """A rebased image is verified through the images it was rebased from: copy each (by
    digest, untagged) with its proof, down the chain, so the destination verifies as the source."""
    from builder.supply.verify import MAX_CHAIN

    todo, seen = _originals(src, digest), {digest}
    while todo and len(seen) <= MAX_CHAIN:
        original = todo.pop(0)
        if original in seen:
            continue
        seen.add(original)
        try:
            src.resolve(original)
        except NotFoundError:
            continue  # not there to copy: verification at the destination says so
        copy_image(src, original, dst, None, jobs=jobs)
        out.copied.append(f"rebased from {original}")
        _copy_proof(src, dst, original, out, 0, proof, jobs)
        todo += _originals(src, original)


def promote(src: Store, src_ref: str, dst: Store, dst_tag: str, *, policy: Policy | None = None,
            jobs: int = DEFAULT_JOBS, findings_of: Callable[[Store, str], list[Any]] | None = None) -> Promoted:
    """``findings_of(store, digest)``: the advisories affecting the image, for the policy's
    vulnerability rule (from ``--advisories``)."""
    if not dst.preserves_digests or not src.preserves_digests:
        raise SupplyError("promote keeps digests, so both sides must be registries or OCI layouts "
                          f"({(src if not src.preserves_digests else dst).description} rewrites manifests)")
    desc = src.resolve(src_ref)  # the one resolution of the tag
    digest = desc.digest
    if policy is not None:
        findings = findings_of(src, digest) if findings_of is not None else None
        reasons = evaluate(policy, gather(src, digest, list(policy.keys)), vulnerability_outcome(policy, findings))
        if reasons:
            raise VerificationError(f"{digest} fails the policy {policy.path}; nothing was copied", reasons)
    out = Promoted(digest)
    got, _ = copy_image(src, digest, dst, None, jobs=jobs)
    if got.digest != digest:
        raise SupplyError(f"the destination stored {got.digest} for {digest}; refusing to go on")
    seen: set[str] = set()   # one bound on the whole promote's proof
    _copy_proof(src, dst, digest, out, 0, seen, jobs)
    for child in _platform_manifests(src, digest):  # an index: each platform's own proof too
        _copy_proof(src, dst, child, out, 0, seen, jobs)
    _copy_originals(src, dst, digest, out, jobs, seen)
    dst.tag(dst_tag, dst.resolve(digest))
    try:
        final = dst.resolve(dst_tag).digest
    except NotFoundError:
        final = None
    if final != digest:
        raise SupplyError(f"{dst.description}:{dst_tag} names {final}, not {digest}; the tag moved meanwhile")
    return out
