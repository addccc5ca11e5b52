"""Where signatures, attestations and SBOMs live next to an image, in any store.

Two conventions, both kept:

- cosign's tags: ``sha256-<hex>.sig`` (signatures) and ``sha256-<hex>.att`` (attestations) in the
  image's own repository, each an OCI image manifest whose layers are the payloads (one layer a
  signature, with its annotations) and whose config is what go-containerregistry writes for
  such an image. Adding one appends a layer; the tag moves to the new manifest. In an OCI
  layout the tag is a ``ref.name``, as for any tag.
- OCI 1.1 referrers: an artifact manifest with ``subject`` = the image and an ``artifactType``,
  config the empty descriptor, one layer the content. The store lists them
  (``Store.referrers``); a registry without the referrers API gets the ``sha256-<hex>`` index
  tag kept by the registry store itself.

The manifest shapes are pure functions here; the few functions that take a ``Store`` only move
bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from builder.errors import NotFoundError, PalletError
from builder.oci import mediatypes as mt
from builder.oci.digest import is_digest, split
from builder.oci.model import Descriptor, Manifest, ModelError
from builder.oci.stores.base import Store
from builder.supply.errors import SupplyError

SIGNATURES = ".sig"
ATTESTATIONS = ".att"
SBOMS = ".sbom"  # cosign attach sbom (deprecated there; read, copied by promote, never written)

#: What one image's attachments (a tag's layers, or its referrers) may hold, read into memory:
#: each blob is bounded on its own (MAX_DOCUMENT), but a registry can list thousands of them.
#: Real images have a few signatures and attestations; the rest are not read, and said so.
MAX_ATTACHMENTS = 256
MAX_ATTACHED_BYTES = 256 << 20

EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor.of(EMPTY_JSON, mt.OCI_EMPTY)
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as cosign's configs carry


def cosign_tag(digest: str, suffix: str) -> str:
    """``sha256-<hex>.sig`` for a signature, ``.att`` for an attestation."""
    algo, hexpart = split(digest)
    return f"{algo}-{hexpart}{suffix}"


@dataclass(frozen=True)
class Attachment:
    """One layer of a cosign ``.sig``/``.att`` manifest: its bytes and annotations."""

    media_type: str
    payload: bytes
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor.of(self.payload, self.media_type, annotations=dict(self.annotations) or None)


# -- pure shapes -------------------------------------------------------------------------------


def cosign_config(diff_ids: list[str]) -> bytes:
    """The config of a cosign signature image, byte for byte as go-containerregistry writes it."""
    history = ",".join(f'{{"created":"{_ZERO_TIME}"}}' for _ in diff_ids)
    ids = ",".join(json.dumps(d) for d in diff_ids)
    return (f'{{"architecture":"","created":"{_ZERO_TIME}","history":[{history}],"os":"",'
            f'"rootfs":{{"type":"layers","diff_ids":[{ids}]}},"config":{{}}}}').encode()


def attachments_manifest(attachments: list[Attachment]) -> tuple[bytes, bytes]:
    """(manifest bytes, config bytes) of a cosign attachment image holding ``attachments``."""
    layers = tuple(a.descriptor for a in attachments)
    config = cosign_config([d.digest for d in layers])
    manifest = Manifest(config=Descriptor.of(config, mt.OCI_CONFIG), layers=layers)
    return manifest.to_bytes(), config


def referrer_manifest(subject: Descriptor, artifact_type: str, content: Descriptor,
                      annotations: dict[str, str] | None = None) -> bytes:
    """An OCI 1.1 artifact manifest pointing at ``subject``, with ``content`` as its one layer."""
    subj = Descriptor(subject.media_type, subject.digest, subject.size)
    return Manifest(config=EMPTY_DESCRIPTOR, layers=(content,), subject=subj, artifact_type=artifact_type,
                    annotations=annotations or None).to_bytes()


# -- reading -----------------------------------------------------------------------------------


@dataclass
class Attached:
    """What a cosign tag holds: the readable attachments, and what could not be read."""

    tag: str
    manifest: Descriptor | None = None
    attachments: list[tuple[int, Attachment]] = field(default_factory=list)  # (layer number, ...)
    problems: list[str] = field(default_factory=list)


def read_attached(store: Store, digest: str, suffix: str) -> Attached:
    """The layers of ``sha256-<hex><suffix>``; a missing tag is no attachment, garbage a problem."""
    tag = cosign_tag(digest, suffix)
    out = Attached(tag)
    try:
        desc, data = store.get_manifest(tag)
    except NotFoundError:
        return out
    except PalletError as exc:
        out.problems.append(f"tag {tag} cannot be read: {exc}")
        return out
    out.manifest = desc
    try:
        manifest = Manifest.from_bytes(data, desc.media_type)
    except ModelError as exc:
        out.problems.append(f"tag {tag} is not an image manifest ({exc})")
        return out
    total = 0
    for number, layer in enumerate(manifest.layers, 1):
        total += max(layer.size, 0)
        if number > MAX_ATTACHMENTS or total > MAX_ATTACHED_BYTES:
            out.problems.append(f"{tag} has {len(manifest.layers)} layers declaring {sum(max(x.size, 0) for x in manifest.layers)} "
                                f"bytes, more than the {MAX_ATTACHMENTS} layers and {MAX_ATTACHED_BYTES} bytes read; "
                                f"layers {number} and after were not read")
            break
        try:
            payload = store.get_blob(layer)
        except PalletError as exc:
            out.problems.append(f"{tag} layer {number}: its blob cannot be read ({exc})")
            continue
        out.attachments.append((number, Attachment(layer.media_type, payload, dict(layer.annotations or {}))))
    return out


def referrer_contents(store: Store, digest: str, artifact_types: tuple[str, ...]
                      ) -> tuple[list[tuple[Descriptor, Descriptor, bytes]], list[str]]:
    """([(referrer manifest, content layer, content bytes)], problems) for these artifact types."""
    found: list[tuple[Descriptor, Descriptor, bytes]] = []
    problems: list[str] = []
    try:
        listed = store.referrers(digest)
    except PalletError as exc:
        return [], [f"the referrers of {digest} cannot be listed: {exc}"]
    count = total = 0
    too_many = (f"{digest} has more referrers of types {', '.join(artifact_types)} than the {MAX_ATTACHMENTS} "
                f"(or {MAX_ATTACHED_BYTES} bytes) pallet reads; " "{} and those after it were not read")
    for ref in listed:
        if ref.artifact_type not in artifact_types:
            continue
        count += 1
        if count > MAX_ATTACHMENTS:
            problems.append(too_many.format(ref.digest))
            break
        try:
            desc, data = store.get_manifest(ref.digest)
            manifest = Manifest.from_bytes(data, desc.media_type)
            if manifest.subject is None or manifest.subject.digest != digest:
                problems.append(f"referrer {ref.digest} does not name {digest} as its subject")
                continue
            if not manifest.layers:
                problems.append(f"referrer {ref.digest} has no content layer")
                continue
            layer = manifest.layers[0]
            total += max(layer.size, 0)
            if total > MAX_ATTACHED_BYTES:
                problems.append(too_many.format(ref.digest))
                break
            found.append((desc, layer, store.get_blob(layer)))
        except PalletError as exc:
            problems.append(f"referrer {ref.digest} cannot be read: {exc}")
    return found, problems


# -- writing -----------------------------------------------------------------------------------


def append_attached(store: Store, digest: str, suffix: str, new: Attachment,
                    *, same: Callable[[Attachment], bool] | None = None) -> tuple[Descriptor, bool]:
    """Add ``new`` as a layer of ``sha256-<hex><suffix>``; (manifest, whether anything was added).

    ``same(existing)`` says an existing attachment already is ``new`` (cosign's duplicate
    detection: the same payload signed by the same key); then nothing is written. A tag that
    holds something unreadable is not overwritten: the user decides what to do with it.
    """
    if not is_digest(digest):
        raise SupplyError(f"{digest!r} is not a digest")
    current = read_attached(store, digest, suffix)
    if current.problems:
        raise SupplyError(f"{current.problems[0]}; remove that tag to start a new one")
    existing = [a for _, a in current.attachments]
    if same is not None and current.manifest is not None and any(same(a) for a in existing):
        return current.manifest, False
    attachments = existing + [new]
    manifest, config = attachments_manifest(attachments)
    for a in attachments:
        store.put_blob_bytes(a.payload, a.media_type)
    store.put_blob_bytes(config, mt.OCI_CONFIG)
    return store.put_manifest(manifest, mt.OCI_MANIFEST, tag=current.tag), True


def attach_referrer(store: Store, subject: Descriptor, artifact_type: str, content: bytes,
                    media_type: str, annotations: dict[str, str] | None = None) -> Descriptor:
    """Store ``content`` as an OCI 1.1 referrer of ``subject``; returns the referrer's descriptor."""
    layer = store.put_blob_bytes(content, media_type)
    store.put_blob_bytes(EMPTY_JSON, mt.OCI_EMPTY)
    data = referrer_manifest(subject, artifact_type, layer, annotations)
    return store.put_manifest(data, mt.OCI_MANIFEST)


def subject_of(store: Store, digest: str) -> Descriptor:
    """The descriptor of the manifest ``digest`` names (media type and size for a ``subject``)."""
    desc = store.resolve(digest)
    return Descriptor(desc.media_type, desc.digest, desc.size)
