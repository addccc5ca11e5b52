"""What other commands call to sign what they write: ``pallet rebase --sign-key`` and
``pallet build --sign-key``.

The key is read (and its password asked for) once, when the hook is made, before any image is
written; the hook itself is then safe to call from several threads (rebase runs jobs at once).
"""

from __future__ import annotations

from typing import Any, Callable

from builder.oci.stores.base import Store
from builder.supply import keys
from builder.supply.provenance import BuildFacts, attest, statement
from builder.supply.sbom import attach_sbom
from builder.supply.sign import sign_image


def load_signing_key(key_path: str) -> keys.PrivateKey:
    return keys.read_private_key(key_path, lambda: keys.read_password(what=key_path))


def signer(key_path: str, *, sbom: bool = True) -> Callable[[Store, str, str], None]:
    """``sign(store, reference_text, digest)``: sign ``digest`` and (``sbom``) attach its complete
    SBOM, as ``rebase`` must for each new digest it makes. (The SBOM reads every layer of the
    image once; pass ``sbom=False`` to only sign.)"""
    key = load_signing_key(key_path)

    def sign(store: Store, reference: str, digest: str) -> None:  # noqa: ARG001 (the rebase hook's shape)
        sign_image(store, digest, key)
        if sbom:
            attach_sbom(store, digest)

    return sign


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
