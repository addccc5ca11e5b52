"""Cosign's "simple signing" payload: what a signature says about an image. Pure.

    {"critical": {"identity": {"docker-reference": REPOSITORY},
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "type": "cosign container image signature"},
     "optional": {ANNOTATIONS} | null}

The signature is over these exact bytes; a verifier reads the digest out of them and compares
it with the digest of the manifest it holds. That comparison, not the identity, is what binds
a signature to an image (cosign does not check the identity by default either).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from builder import jsonsafe
from builder.oci.digest import is_digest

MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPE = "cosign container image signature"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


class PayloadError(ValueError):
    """Bytes that are not a simple-signing payload."""


@dataclass(frozen=True)
class Payload:
    docker_reference: str
    manifest_digest: str
    optional: dict[str, Any] | None = None


def build(docker_reference: str, manifest_digest: str, annotations: dict[str, str] | None = None) -> bytes:
    """The payload bytes, as cosign marshals them (Go's field order, no spaces)."""
    if not is_digest(manifest_digest):
        raise ValueError(f"not a manifest digest: {manifest_digest!r}")
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": dict(sorted(annotations.items())) if annotations else None,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse(data: bytes) -> Payload:
    """Read a payload; PayloadError says what is wrong with it."""
    try:
        doc = jsonsafe.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the payload is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("critical"), dict):
        raise PayloadError("the payload has no 'critical' object")
    critical = doc["critical"]
    if critical.get("type") != SIGNATURE_TYPE:
        raise PayloadError(f"the payload type is {critical.get('type')!r}, not {SIGNATURE_TYPE!r}")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str) or not is_digest(digest):
        raise PayloadError("the payload names no valid docker-manifest-digest")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    optional = doc.get("optional")
    return Payload(docker_reference=reference if isinstance(reference, str) else "",
                   manifest_digest=digest, optional=optional if isinstance(optional, dict) else None)
