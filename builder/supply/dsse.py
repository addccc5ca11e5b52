"""DSSE envelopes (Dead Simple Signing Envelope v1): sign and verify. Pure.

A DSSE signature is over the *pre-authentication encoding* of the payload, never the payload
alone, so that a signature cannot be replayed as one over another type of content:

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

(LEN as ASCII decimal of the byte length). The envelope is JSON:
``{"payloadType", "payload": base64, "signatures": [{"keyid", "sig": base64}]}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from builder import jsonsafe
from builder.supply import keys as keymod
from builder.supply.keys import PrivateKey, TrustedKey

MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Signatures one envelope may carry (real ones carry one or two: a key and its rotation).
MAX_SIGNATURES = 16


class EnvelopeError(ValueError):
    """Bytes that are not a DSSE envelope."""


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature)


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(payload: bytes, payload_type: str, key: PrivateKey) -> bytes:
    """A one-signature envelope, serialised as cosign writes one for key-based signing
    (sigstore's ``dsse.WrapSigner``, go-securesystemslib's ``Envelope``): fields in the order
    payloadType, payload, signatures; standard base64; ``keyid`` empty, since cosign names no
    key (a verifier tries its trusted keys, as ``verify`` here does)."""
    sig = keymod.sign(key, pae(payload_type, payload))
    doc = {"payloadType": payload_type,
           "payload": base64.b64encode(payload).decode("ascii"),
           "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode("ascii")}]}
    return json.dumps(doc, separators=(",", ":")).encode()


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError(f"{what} is not a base64 string")
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:  # the spec allows URL-safe base64 too
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (ValueError, binascii.Error):
        raise EnvelopeError(f"{what} is not valid base64") from None


def parse(data: bytes) -> Envelope:
    try:
        doc = jsonsafe.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("the envelope is not JSON") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("the envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise EnvelopeError("the envelope has no payloadType")
    payload = _b64(doc.get("payload"), "the envelope payload")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise EnvelopeError("the envelope has no signatures")
    if len(sigs) > MAX_SIGNATURES:  # each is tried with every trusted key: minutes of CPU
        raise EnvelopeError(f"the envelope has {len(sigs)} signatures, more than the {MAX_SIGNATURES} "
                            "pallet checks")
    out = []
    for i, s in enumerate(sigs, 1):
        if not isinstance(s, dict):
            raise EnvelopeError(f"signature {i} of the envelope is not an object")
        out.append((str(s.get("keyid") or ""), _b64(s.get("sig"), f"signature {i} of the envelope")))
    return Envelope(payload_type, payload, tuple(out))


def verify(envelope: Envelope, trusted: list[TrustedKey]) -> list[TrustedKey]:
    """The trusted keys that made a valid signature over the envelope's PAE (empty: none)."""
    message = pae(envelope.payload_type, envelope.payload)
    found = []
    for key in trusted:
        if any(keymod.verify(key.key, sig, message) for _, sig in envelope.signatures):
            found.append(key)
    return found
