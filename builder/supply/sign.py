"""``pallet sign``: a cosign signature for an image's exact manifest digest, stored as cosign does."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from builder.oci import reference as refs
from builder.oci.stores.base import Store
from builder.supply import keys as keymod
from builder.supply import simplesigning
from builder.supply.attach import SIGNATURES, Attachment, append_attached, cosign_tag
from builder.supply.keys import PrivateKey


@dataclass(frozen=True)
class Signed:
    digest: str               # the image's manifest digest that was signed
    tag: str                  # sha256-<hex>.sig
    signatures: str           # digest of the signature manifest now under that tag
    added: bool               # False if this key had already signed this same payload
    docker_reference: str


def identity_of(store: Store) -> str:
    """The identity cosign writes for an image in this store: its repository, without tag.

    Registry: ``HOST/REPO`` (Docker Hub as ``index.docker.io/...``, as go-containerregistry
    names it); the local store: the image name; an OCI layout: ``oci:PATH``.
    """
    host = getattr(store, "host", None)
    repository = getattr(store, "repository", None)
    if host and repository:
        return f"{'index.docker.io' if host == refs.DOCKER_HUB else host}/{repository}"
    namespace = getattr(store, "namespace", None)
    if namespace:
        return namespace
    root = getattr(store, "root", None)
    return f"oci:{root}" if root is not None else store.description


def sign_image(store: Store, ref_or_digest: str, key: PrivateKey, *, docker_reference: str | None = None,
               annotations: dict[str, str] | None = None) -> Signed:
    """Sign the manifest ``ref_or_digest`` names and add the signature to its ``.sig`` tag.

    Several signatures coexist (one layer each); signing the same payload with the same key
    again adds nothing, as cosign's duplicate detection does.
    """
    digest = store.resolve(ref_or_digest).digest  # a tag is resolved once; a digest must exist
    identity = docker_reference or identity_of(store)
    payload = simplesigning.build(identity, digest, annotations)
    signature = keymod.sign(key, payload)
    new = Attachment(simplesigning.MEDIA_TYPE, payload,
                     {simplesigning.SIGNATURE_ANNOTATION: base64.b64encode(signature).decode("ascii")})
    public = key.public_key()

    def same(existing: Attachment) -> bool:
        if existing.payload != payload or existing.media_type != simplesigning.MEDIA_TYPE:
            return False
        try:
            sig = base64.b64decode(existing.annotations.get(simplesigning.SIGNATURE_ANNOTATION, ""), validate=True)
        except ValueError:
            return False
        return keymod.verify(public, sig, payload)

    desc, added = append_attached(store, digest, SIGNATURES, new, same=same)
    return Signed(digest=digest, tag=cosign_tag(digest, SIGNATURES), signatures=desc.digest, added=added,
                  docker_reference=identity)
