"""A stack named from outside the machine (``--builder REF``, project.toml's ``[io.pallet.stack]``)
must be named by digest: a tag can move, and every build of the same source must use the same
stack wherever it runs. A reference without one is refused, and the refusal says which digest
the tag names right now, so pinning it is one copy and paste (as ``pallet stack build --publish``
prints its references).

The message is pure (``digest_required``); looking the tag up (``current_digest``) is the only I/O,
and a tag that cannot be read (no registry, no such tag) only makes the message shorter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from builder.errors import PalletError, UsageError

if TYPE_CHECKING:
    from builder.oci.reference import Reference
    from builder.oci.stores import StoreOptions


class DigestRequiredError(UsageError):
    """``--builder`` named by tag (or with no tag at all)."""


def digest_required(what: str, text: str, pinned: str | None) -> str:
    """The one-line refusal: ``what`` needs a digest; ``pinned`` is the reference at the digest
    its tag names now (None when that could not be found out)."""
    if pinned:
        return f"{what} needs a digest (a tag can move): use {pinned} (what {text} names now)"
    if text.startswith("docker-archive:"):
        return (f"{what} needs a digest (a tag can move), which a docker-archive: file cannot carry: push it to a "
                "registry (or copy it to an OCI layout) and use REF@sha256:...")
    return f"{what} needs a digest (a tag can move): use {text}@sha256:... (its digest could not be looked up)"


def current_digest(ref: "Reference", options: "StoreOptions | None") -> str | None:
    """``ref`` at the digest its tag names now; None when the store cannot say (unreachable,
    no such tag) or the reference form cannot carry a digest (docker-archive:)."""
    from builder.oci import reference as refs
    from builder.oci.stores import open_store

    if ref.transport in (refs.ARCHIVE, refs.SCRATCH):
        return None
    try:
        with open_store(ref, options) as store:
            digest = store.resolve(ref.ref).digest
    except (PalletError, OSError):
        return None
    return ref.at_digest(digest)


def pinned_reference(text: str, what: str, options: "StoreOptions | None") -> "Reference":
    """``text`` parsed; DigestRequiredError (one line, with the digest to use) without a digest."""
    from builder.oci import reference as refs

    ref = refs.parse(text)
    if not ref.digest:
        raise DigestRequiredError(digest_required(what, text, current_digest(ref, options)))
    return ref
