"""What other commands call to sign what they write: ``pallet rebase --sign-key`` and
``pallet build --sign-key``.

The key is read (and its password asked for) once, when the hook is made, before any image is
written; the hook itself is then safe to call from several threads (rebase runs jobs at once).
"""

from __future__ import annotations

import datetime
from typing import Any, Callable

from builder.oci.stores.base import Store
from builder.supply import keys
from builder.supply.provenance import BuildFacts, attest, statement
from builder.supply.sbom import attach_sbom, collect
from builder.supply.sign import sign_image


def load_signing_key(key_path: str) -> keys.PrivateKey:
    return keys.read_private_key(key_path, lambda: keys.read_password(what=key_path))


def signer(key_path: str, *, sbom: bool = True, builder_id: str | None = None) -> Callable[..., None]:
    """``sign(store, reference_text, digest, rebased=None)``: sign ``digest``, (``sbom``) attach
    its complete SBOM, and, for a rebase (``rebased``: ``builder.rebase.RebaseRecord``), attest
    the rebase's own SLSA provenance linking it to the original and the original's provenance.
    (The SBOM reads every layer of the image once; pass ``sbom=False`` to only sign.)"""
    key = load_signing_key(key_path)
    started = datetime.datetime.now(datetime.timezone.utc)

    def sign(store: Store, reference: str, digest: str, rebased: Any = None) -> None:  # noqa: ARG001
        sign_image(store, digest, key)
        if sbom:
            attach_sbom(store, digest)
        if rebased is not None:
            attest(store, digest, rebase_statement(store, digest, rebased, started, builder_id), key)

    return sign


def rebase_statement(store: Store, digest: str, rebased: Any, started: datetime.datetime,
                     builder_id: str | None = None) -> dict[str, Any]:
    """The rebase's provenance: the original's provenance envelopes are read (not verified: the
    verifier does that) and recorded by digest, so the chain is pinned to what was there."""
    from builder.supply import rebaseprov
    from builder.supply.attach import ATTESTATIONS, read_attached, referrer_contents
    from builder.supply.sign import identity_of
    from builder.supply.verify import ATTESTATION_ARTIFACT_TYPES

    att = read_attached(store, rebased.original, ATTESTATIONS)
    envelopes = [(att.tag, a.payload) for _, a in att.attachments]
    found, _ = referrer_contents(store, rebased.original, ATTESTATION_ARTIFACT_TYPES)
    envelopes += [(d.digest, data) for d, _, data in found]
    name = identity_of(store)
    facts = rebaseprov.RebaseFacts(
        image=name, digest=digest, original=rebased.original, new_run=rebased.new_run, old_run=rebased.old_run,
        original_provenance=tuple(rebaseprov.provenance_envelopes(envelopes)), original_name=_registry_name(store),
        started_on=started, finished_on=datetime.datetime.now(datetime.timezone.utc),
        **({"builder_id": builder_id} if builder_id else {}))
    return rebaseprov.statement(facts)


def _registry_name(store: Store) -> str | None:
    host, repository = getattr(store, "host", None), getattr(store, "repository", None)
    return f"docker://{host}/{repository}" if host and repository else None


def build_finisher(key_path: str) -> Callable[[Store, BuildFacts], dict[str, Any]]:
    """``finish(store, facts)`` for ``pallet build --sign-key``: sign the image, attest its SLSA
    provenance, attach its SBOMs. None of it changes the image: its digest is the unsigned one."""
    key = load_signing_key(key_path)

    def finish(store: Store, facts: BuildFacts) -> dict[str, Any]:
        signed = sign_image(store, facts.digest, key)
        attested = attest(store, facts.digest, statement(facts), key)
        sboms = attach_sbom(store, facts.digest, name=facts.image)
        return {"signatureTag": signed.tag, "attestationTag": attested.tag, "provenance": attested.referrer,
                "sboms": {fmt: d.digest for fmt, d in sboms.items()}}

    return finish


def index_build_finisher(key_path: str) -> Callable[[Store, str, list[BuildFacts]], dict[str, Any]]:
    """``finish(store, index_digest, facts)`` for ``pallet build --platform A,B --sign-key``: each
    platform's image signed, attested (its own provenance: its build and run images) and given
    its SBOMs, as one build's; then the index itself: signed once (as cosign signs a
    multi-platform image), attested (``provenance.index_statement``: the subject is the index,
    the byproducts its platform manifests) and given the SBOM that names every platform's
    packages (``indexsbom``). None of it changes a digest."""
    from builder.oci.image import load_image, platform_images
    from builder.supply import indexsbom
    from builder.supply.provenance import index_statement

    key = load_signing_key(key_path)

    def finish(store: Store, index_digest: str, facts: list[BuildFacts]) -> dict[str, Any]:
        by_digest = {f.digest: f for f in facts}
        found = platform_images(store, index_digest)
        if found is None or {i.digest for i in found[1]} != set(by_digest):
            raise ValueError(f"{index_digest} is not the index of the platform images built")
        index, images = found
        platforms: dict[str, Any] = {}
        inventories = []
        for image in images:
            f = by_digest[image.digest]
            signed = sign_image(store, f.digest, key)
            attested = attest(store, f.digest, statement(f), key)
            inventory = collect(load_image(store, f.digest), f.image)
            inventories.append(inventory)
            sboms = attach_sbom(store, f.digest, inventory)
            platforms[f.digest] = {"signatureTag": signed.tag, "attestationTag": attested.tag,
                                   "provenance": attested.referrer, "sboms": {k: d.digest for k, d in sboms.items()}}
        name = facts[0].image
        described = [(str(i.config.platform), i.descriptor.media_type, by_digest[i.digest]) for i in images]
        attested = attest(store, index_digest, index_statement(name, index_digest, described), key)
        sboms = indexsbom.attach(store, indexsbom.IndexInventory(index.digest, name, tuple(inventories)))
        return {"signatureTag": sign_image(store, index_digest, key).tag, "attestationTag": attested.tag,
                "provenance": attested.referrer, "sboms": {k: d.digest for k, d in sboms.items()},
                "platforms": platforms}

    return finish
