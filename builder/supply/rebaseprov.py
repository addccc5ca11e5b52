"""SLSA v1 provenance for a rebase, and the link it makes to the image it was rebased from.

A rebase makes a new digest that no build made, so the build provenance of the original does
not name it. ``pallet rebase --sign-key`` therefore attests a statement of its own::

    buildDefinition:
      buildType: REBASE_BUILD_TYPE
      externalParameters: {image: ORIGINAL (purl), runImage: NEW RUN IMAGE (purl)}
      resolvedDependencies:
        - {name: original-image, uri, digest}            # the image rebased
        - {name: original-provenance, digest, mediaType} # each provenance envelope it had (by hash)
        - {name: previous-run-image, uri, digest}        # the run image swapped out
        - {name: run-image, uri, digest}                 # the run image swapped in
    runDetails: {builder: {id}, metadata: {startedOn, finishedOn}}

``verify`` follows the link: a rebase statement signed by a trusted key vouches for the new
digest only as far as the original's own provenance (a build's, or another rebase's, and so on)
does; ``check_link`` compares the two images so that a statement naming some other original
(another app, another build) is refused. ``statement`` and ``check_link`` are pure.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from builder import jsonsafe
from builder.oci.digest import is_digest
from builder.supply import dsse
from builder.supply.provenance import (DEFAULT_BUILDER_ID, PREDICATE_TYPE, _digest_set, _time, image_uri,
                                       resolved_dependencies, slsa_statement)

REBASE_BUILD_TYPE = "https://pallet.dev/buildtypes/rebase/v1"
ORIGINAL, ORIGINAL_PROVENANCE = "original-image", "original-provenance"
PREVIOUS_RUN, RUN = "previous-run-image", "run-image"


@dataclass(frozen=True)
class RebaseFacts:
    image: str                               # the subject's name (HOST/REPO)
    digest: str                              # the rebased image
    original: str                            # the image it was rebased from
    new_run: tuple[str, str]                 # (digest, name as given)
    old_run: tuple[str, str | None] | None   # (digest, name), from the original's metadata
    original_provenance: tuple[str, ...] = ()  # sha256 digests of the original's provenance envelopes
    original_name: str | None = None
    started_on: datetime.datetime | None = None
    finished_on: datetime.datetime | None = None
    builder_id: str = DEFAULT_BUILDER_ID


def statement(facts: RebaseFacts) -> dict[str, Any]:
    """The in-toto statement of a rebase. Pure."""
    for d in (facts.digest, facts.original, facts.new_run[0]):
        if not is_digest(d):
            raise ValueError(f"not a digest: {d!r}")
    original_uri = image_uri(facts.original_name or facts.image, facts.original)
    deps: list[dict[str, Any]] = [{"name": ORIGINAL, "uri": original_uri, "digest": _digest_set(facts.original)}]
    for env in sorted(set(facts.original_provenance)):
        deps.append({"name": ORIGINAL_PROVENANCE, "digest": _digest_set(env), "mediaType": dsse.MEDIA_TYPE})
    if facts.old_run is not None and is_digest(facts.old_run[0]):
        dep = {"name": PREVIOUS_RUN, "digest": _digest_set(facts.old_run[0])}
        uri = image_uri(facts.old_run[1], facts.old_run[0])
        deps.append({**dep, "uri": uri} if uri else dep)
    new_uri = image_uri(facts.new_run[1], facts.new_run[0])
    deps.append({"name": RUN, "uri": new_uri, "digest": _digest_set(facts.new_run[0])})
    now = datetime.datetime.now(datetime.timezone.utc)
    return slsa_statement(
        name=facts.image, digest=facts.digest, build_type=REBASE_BUILD_TYPE,
        external={"image": original_uri, "runImage": new_uri}, resolved=deps, builder_id=facts.builder_id,
        metadata={"startedOn": _time(facts.started_on or now), "finishedOn": _time(facts.finished_on or now)})


def is_rebase(st: dict[str, Any]) -> bool:
    pred = st.get("predicate")
    bd = pred.get("buildDefinition") if isinstance(pred, dict) else None
    return isinstance(bd, dict) and bd.get("buildType") == REBASE_BUILD_TYPE


def _deps(st: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [d for d in resolved_dependencies(st) if d.get("name") == name and isinstance(d.get("digest"), dict)]


def _sha(dep: dict[str, Any]) -> str | None:
    value = f"sha256:{dep['digest'].get('sha256')}"
    return value if is_digest(value) else None   # 64 characters but not hex would be a path: "../" * 21


def original_of(st: dict[str, Any]) -> str | None:
    """The digest of the image a rebase statement says was rebased."""
    found = [_sha(d) for d in _deps(st, ORIGINAL)]
    return found[0] if len(found) == 1 else None


def original_provenance_of(st: dict[str, Any]) -> set[str]:
    return {d for d in (_sha(x) for x in _deps(st, ORIGINAL_PROVENANCE)) if d}


def run_images_of(st: dict[str, Any]) -> tuple[str | None, str | None]:
    """(previous run image digest, new run image digest) a rebase statement names."""
    prev = [_sha(d) for d in _deps(st, PREVIOUS_RUN)]
    new = [_sha(d) for d in _deps(st, RUN)]
    return (prev[0] if prev else None), (new[0] if new else None)


# -- the link between a rebased image and its original (pure) ----------------------------------


@dataclass(frozen=True)
class ImageParts:
    """What ``check_link`` compares of an image: from its manifest and config alone."""

    digest: str
    run_image: str | None                 # the run image's digest it records (lifecycle or annotation)
    app_layers: tuple[str, ...] | None    # diff_ids above the run image (None: cannot be told apart)
    diff_ids: tuple[str, ...]


def parts_of(digest: str, manifest: Any, config: Any) -> ImageParts:
    from builder.lifecycle.compose import NotBuildpacksImage, app_part_of

    diff_ids = tuple(config.diff_ids)
    try:
        app, run = app_part_of(manifest, config)
        return ImageParts(digest, run.get("reference"), tuple(layer.diff_id for layer in app.layers), diff_ids)
    except NotBuildpacksImage:
        base = (manifest.annotations or {}).get("org.opencontainers.image.base.digest")
        return ImageParts(digest, base, None, diff_ids)


def check_link(st: dict[str, Any], rebased: ImageParts, original: ImageParts) -> list[str]:
    """Why the rebase statement ``st`` does not truthfully link ``rebased`` to ``original``
    (empty: it does): the same app layers on the run images the statement names."""
    problems = []
    prev_run, new_run = run_images_of(st)
    if new_run and rebased.run_image and new_run != rebased.run_image:
        problems.append(f"it names run image {new_run}, but {rebased.digest} is on {rebased.run_image}")
    if prev_run and original.run_image and prev_run != original.run_image:
        problems.append(f"it names the previous run image {prev_run}, but {original.digest} is on "
                        f"{original.run_image}")
    if rebased.app_layers is not None and original.app_layers is not None:
        if rebased.app_layers != original.app_layers:
            problems.append(f"the app layers of {rebased.digest} are not those of {original.digest}: "
                            "it was not rebased from that image")
    else:
        common = 0
        while common < min(len(rebased.diff_ids), len(original.diff_ids)) and \
                rebased.diff_ids[-1 - common] == original.diff_ids[-1 - common]:
            common += 1
        if common == 0:
            problems.append(f"{rebased.digest} and {original.digest} share no top layer: "
                            "it was not rebased from that image")
    return problems


def envelope_digest(envelope: bytes) -> str:
    from builder.oci.digest import sha256

    return sha256(envelope)


def provenance_envelopes(found: list[tuple[str, bytes]]) -> list[str]:
    """The digests of the envelopes (unverified: only recorded) that hold SLSA provenance."""
    out = []
    for _, data in found:
        try:
            env = dsse.parse(data)
            st = jsonsafe.loads(env.payload)
        except (dsse.EnvelopeError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(st, dict) and st.get("predicateType") in (PREDICATE_TYPE, "https://slsa.dev/provenance/v0.2"):
            out.append(envelope_digest(data))
    return out
