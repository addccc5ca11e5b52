"""``pallet rebase``: swap the run image under app images, re-digest, re-sign; one or thousands.

The transformation is pure: take the app part of the image apart (``compose.app_part_of``,
from the manifest and config alone) and compose it again on the new run image with the same
``compose`` the exporter uses — so an app built on v1 and rebased onto v2 has exactly the
digest it would have had if built on v2.

Order of writes, so that a crash leaves every tag on a complete image: new run image blobs
(skipped or mounted: within one registry no layer bytes move), config blob, manifest by
digest, signature, and only then the tag.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from builder import jsonsafe
from builder.errors import PalletError, UsageError
from builder.inputfile import read_input
from builder.lifecycle.compose import app_part_of, compose, NotBuildpacksImage, run_image_named
from builder.oci import mediatypes as mt
from builder.oci import mutate
from builder.oci import reference as refs
from builder.oci.copy import CopyStats, copy_blobs
from builder.oci.digest import sha256
from builder.oci.image import Image, load_image
from builder.oci.model import Descriptor, ImageConfig, Manifest
from builder.oci.stores import StoreOptions, open_store, options_for_named

PACKAGES_LABEL = "io.pallet.stack.packages"
REBASED, UP_TO_DATE, REFUSED, FAILED, WOULD_REBASE = "rebased", "up to date", "refused", "failed", "would rebase"
SKIPPED = "not rebased"


class RefusedError(PalletError):
    """The new run image is not a compatible replacement (and --force was not given)."""


@dataclass
class Outcome:
    reference: str
    status: str
    digest: str | None = None
    old_digest: str | None = None
    reason: str = ""
    changes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        if self.status == REBASED:
            return f"{self.reference}@{self.digest}"
        if self.status == UP_TO_DATE:
            return f"{self.reference}@{self.digest} (already up to date)"
        if self.status == WOULD_REBASE:
            return f"{self.reference}: would rebase {self.old_digest} -> {self.digest}"
        return f"{self.reference}: {self.status}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        out = {"reference": self.reference, "status": self.status, "digest": self.digest,
               "previousDigest": self.old_digest}
        if self.reason:
            out["reason"] = self.reason
        if self.changes:
            out["changes"] = self.changes
        return out


@dataclass(frozen=True)
class RebaseRecord:
    """What a signing hook is told about a rebase it signs (for its provenance)."""

    original: str                               # the digest rebased
    new_run: tuple[str, str]                    # (digest, name as given)
    old_run: tuple[str, str | None] | None      # (digest, name) the original recorded


@dataclass(frozen=True)
class RunImage:
    image: Image
    name: str  # recorded as given


def packages_of(config: ImageConfig) -> dict[str, str] | None:
    """The package inventory a run image carries (``name -> version``), if it does."""
    raw = config.config.labels.get(PACKAGES_LABEL)
    if not raw:
        return None
    try:
        data = jsonsafe.loads(raw)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def compatibility(app_config: ImageConfig, new_run: ImageConfig, old_packages: dict[str, str] | None,
                  new_packages: dict[str, str] | None) -> tuple[list[str], dict[str, Any]]:
    """Reasons the new run image cannot replace the old one (empty: compatible), and the package
    changes. The app's own labels carry the old run image's base labels."""
    reasons: list[str] = []
    old_labels, new_labels = app_config.config.labels, new_run.config.labels

    def base_id(labels: dict[str, str]) -> str | None:
        return labels.get("io.buildpacks.base.id") or labels.get("io.buildpacks.stack.id")

    if base_id(old_labels) != base_id(new_labels):
        reasons.append(f"stack id differs: {base_id(old_labels)} -> {base_id(new_labels)}")
    for field_name in ("os", "architecture", "variant"):
        old, new = getattr(app_config, field_name), getattr(new_run, field_name)
        if (old or None) != (new or None):
            reasons.append(f"{field_name} differs: {old} -> {new}")
    for key in ("io.buildpacks.base.distro.name", "io.buildpacks.base.distro.version"):
        if old_labels.get(key) != new_labels.get(key):
            reasons.append(f"{key.rsplit('.', 1)[-1]} differs: {old_labels.get(key)} -> {new_labels.get(key)}")
    changes: dict[str, Any] = {}
    if old_packages is not None and new_packages is not None:
        removed = sorted(set(old_packages) - set(new_packages))
        added = sorted(set(new_packages) - set(old_packages))
        changed = sorted(p for p in set(old_packages) & set(new_packages) if old_packages[p] != new_packages[p])
        changes = {"removed": removed, "added": {p: new_packages[p] for p in added},
                   "upgraded": {p: [old_packages[p], new_packages[p]] for p in changed}}
        if removed:
            reasons.append(f"the new run image removes packages: {', '.join(removed)}")
    return reasons, changes


def _old_run_of(config: ImageConfig) -> dict[str, Any]:
    """The runImage of an app image's lifecycle metadata label, or {} when the label is not the
    JSON object pallet writes (the image's label says anything: ``app_part_of`` refuses it then)."""
    try:
        return run_image_named(
            jsonsafe.loads(config.config.labels.get("io.buildpacks.lifecycle.metadata") or "{}")["runImage"])
    except (ValueError, TypeError, KeyError, IndexError):
        return {}


def rebased(app: Image, new_run: RunImage) -> tuple[Manifest, bytes, dict[str, Any]]:
    """The new manifest (config set) and config bytes; pure apart from reading the two configs."""
    part, old_run = app_part_of(app.manifest, app.config)
    manifest, config = compose(new_run.image.manifest, new_run.image.config, new_run.image.digest,
                               new_run.name, part)
    manifest, config_bytes = mutate.finalize(manifest, config)
    return manifest, config_bytes, old_run


def rebase_one(text: str, new_run: RunImage, *, options: StoreOptions, force: bool = False,
               dry_run: bool = False, sign: Callable[[Any, str, str], None] | None = None,
               present: set[tuple[str, str]] | None = None, sign_each: bool = False) -> Outcome:
    """``present``: (repository, digest) of run image layers made present by earlier images of
    this fleet (``rebase_many`` shares one): a repository holding several images gets each
    new layer mounted once, not once an image."""
    ref = refs.parse(text)
    if ref.transport == refs.ARCHIVE:
        raise UsageError(f"{text}: rebase writes back in place; a docker-archive holds one image, "
                         "copy it into a store first")
    store = open_store(ref, options)
    try:
        top, top_data = store.get_manifest(ref.ref)
        if mt.is_index(top.media_type):
            return rebase_index(ref, store, top, top_data, new_run, options=options, force=force,
                                dry_run=dry_run, sign=sign, sign_each=sign_each)
        app = Image(store, top, top_data)  # the manifest just read: no second GET
        try:
            old_packages = None
            part_run = _old_run_of(app.config)
            if part_run.get("reference"):
                old_packages = _old_packages(part_run, options, (text, new_run.name))
            reasons, changes = compatibility(app.config, new_run.image.config, old_packages,
                                             packages_of(new_run.image.config))
            try:
                manifest, config_bytes, old_run = rebased(app, new_run)
            except NotBuildpacksImage as exc:
                manifest, config_bytes, old_run = rebased_by_annotation(app, new_run, options, str(exc),
                                                                        given=(text,))
        except NotBuildpacksImage as exc:
            return Outcome(str(ref), REFUSED, old_digest=app.digest, reason=f"cannot rebase it: {exc}")
        if reasons and not force:
            return Outcome(str(ref), REFUSED, old_digest=app.digest,
                           reason="; ".join(reasons) + " (--force to rebase anyway)", changes=changes)
        manifest_bytes = manifest.to_bytes()  # serialised once: digest, PUT and tag all use these bytes
        new_digest = sha256(manifest_bytes)
        if new_digest == app.digest:
            return Outcome(str(ref), UP_TO_DATE, digest=app.digest, old_digest=app.digest, changes=changes)
        changes["runImage"] = {"from": old_run.get("reference"), "to": new_run.image.digest,
                               "name": new_run.name}
        if dry_run:
            old_base = len(app.manifest.layers) - (len(manifest.layers) - len(new_run.image.manifest.layers))
            changes["layers"] = {"old": [d.digest for d in app.manifest.layers[:old_base]],
                                 "new": [d.digest for d in new_run.image.manifest.layers]}
            changes["labels"] = {k: v for k, v in json.loads(config_bytes)["config"].get("Labels", {}).items()
                                 if app.config.config.labels.get(k) != v}
            return Outcome(str(ref), WOULD_REBASE, digest=new_digest, old_digest=app.digest, changes=changes)
        stats = CopyStats()
        _run_layers_into(store, app, new_run, stats, present)
        if not store.preserves_digests:
            # The Docker engine keeps no blobs to point at: a load needs every layer's data,
            # the app's included (read back from the engine itself).
            app_layers = [d for d in manifest.layers if d not in new_run.image.manifest.layers]
            copy_blobs(store, store, app_layers, stats=stats)
        tag = ref.tag or (None if ref.digest else refs.DEFAULT_TAG)
        formats = _sbom_formats(store, app, always=sign is not None)
        if tag and not formats and sign is None and _tag_is_one_put(store):
            # Nothing to attach to the new digest first: the manifest goes up under its tag in one
            # PUT (the registry checks its blobs; the tag never names a partial image).
            _put_config(store, config_bytes, manifest.config.media_type)
            desc = Descriptor(manifest.media_type, new_digest, len(manifest_bytes))
            store.tag(tag, desc, manifest_bytes)
            return Outcome(str(ref.with_tag(tag)), REBASED, digest=desc.digest, old_digest=app.digest,
                           changes=changes)
        _put_config(store, config_bytes, manifest.config.media_type)
        desc = store.put_manifest(manifest_bytes, manifest.media_type)
        refreshed, _ = _refresh_sbom(store, app, desc.digest, new_run, always=sign is not None, formats=formats)
        if refreshed:
            changes["sbom"] = refreshed
        if sign is not None:
            sign(store, str(ref), desc.digest, RebaseRecord(
                original=app.digest, new_run=(new_run.image.digest, new_run.name),
                old_run=(old_run["reference"], old_run.get("image")) if old_run.get("reference") else None))
        if tag:
            store.tag(tag, desc, manifest_bytes)
        return Outcome(str(ref.with_tag(tag) if tag else ref), REBASED, digest=desc.digest, old_digest=app.digest,
                       changes=changes)
    finally:
        store.close()


def run_for_platform(new_run: RunImage, platform) -> RunImage:  # noqa: ANN001
    """The new run image's manifest for ``platform``: from its index when it was given one; a
    single manifest serves only its own platform."""
    from builder.oci.image import platform_matches
    from builder.oci.model import Platform

    image = new_run.image
    if image.index is not None:
        return RunImage(load_image(image.store, image.index.digest, platform), new_run.name)
    cfg = image.config
    if platform_matches(platform, Platform(cfg.os or "linux", cfg.architecture or "", cfg.variant)):
        return new_run
    raise RefusedError(f"the new run image {new_run.name} is one {cfg.os}/{cfg.architecture} image, "
                       f"not an index with a {platform} one")


def rebase_index(ref: refs.Reference, store, top, top_data: bytes, new_run: RunImage, *,  # noqa: ANN001
                 options: StoreOptions, force: bool = False, dry_run: bool = False,
                 sign: Callable[..., None] | None = None, sign_each: bool = False) -> Outcome:
    """A multi-platform app image: each platform's manifest rebased onto the new run image's
    manifest for that platform, the index composed again by ``compose.platform_index`` (the
    function the build uses, so the invariant holds for the index digest), then signed once
    (the index, as cosign signs an index) and tagged last; with ``sign_each``, each platform's
    manifest is signed and attested too. All platforms or none: one refusal refuses the index."""
    from builder.errors import NotFoundError
    from builder.lifecycle.compose import platform_index
    from builder.oci.digest import sha256
    from builder.oci.image import Image
    from builder.oci.model import Index

    index = Index.from_bytes(top_data, top.media_type)
    plans = []
    reasons: list[str] = []
    changes: dict[str, Any] = {}
    for child in index.manifests:
        if child.platform is None or not mt.is_manifest(child.media_type):
            return Outcome(str(ref), REFUSED, old_digest=top.digest,
                           reason=f"cannot rebase it: index entry {child.digest} is not a platform's image")
        child_desc, child_data = store.get_manifest(child.digest)
        app = Image(store, child_desc, child_data, index=top)
        try:
            run = run_for_platform(new_run, child.platform)
        except (RefusedError, NotFoundError) as exc:
            return Outcome(str(ref), REFUSED, old_digest=top.digest, reason=f"{child.platform}: {exc}")
        part_run = _old_run_of(app.config)
        old_packages = _old_packages(part_run, options, (str(ref), new_run.name)) if part_run.get("reference") else None
        why, what = compatibility(app.config, run.image.config, old_packages, packages_of(run.image.config))
        reasons += [f"{child.platform}: {r}" for r in why]
        if what:
            changes[str(child.platform)] = what
        try:
            manifest, config_bytes, _ = rebased(app, run)
        except NotBuildpacksImage as exc:
            return Outcome(str(ref), REFUSED, old_digest=top.digest, reason=f"cannot rebase it: {exc}")
        plans.append((child.platform, app, run, manifest, config_bytes))
    if reasons and not force:
        return Outcome(str(ref), REFUSED, old_digest=top.digest,
                       reason="; ".join(reasons) + " (--force to rebase anyway)", changes=changes)
    new_index = platform_index([(mt_desc(m), p) for p, _, _, m, _ in plans])
    new_digest = sha256(new_index.to_bytes())
    if new_digest == top.digest:
        return Outcome(str(ref), UP_TO_DATE, digest=top.digest, old_digest=top.digest, changes=changes)
    changes["runImage"] = {"name": new_run.name, "to": {str(p): r.image.digest for p, _, r, _, _ in plans}}
    if dry_run:
        changes["manifests"] = {str(p): _digest(m) for p, _, _, m, _ in plans}
        return Outcome(str(ref), WOULD_REBASE, digest=new_digest, old_digest=top.digest, changes=changes)
    if not store.preserves_digests:
        raise UsageError(f"{ref}: {store.description} cannot hold an index; rebase it in a registry or layout")
    index_formats = _sbom_formats(store, Image(store, top, top_data), always=sign is not None)
    inventories = {}
    for platform, app, run, manifest, config_bytes in plans:
        copy_blobs(run.image.store, store, list(run.image.manifest.layers))
        store.put_blob_bytes(config_bytes, manifest.config.media_type)
        desc = store.put_manifest(manifest.to_bytes(), manifest.media_type)
        inventories[desc.digest] = _refresh_sbom(store, app, desc.digest, run, always=bool(index_formats))[1]
        if sign is not None and sign_each:
            sign(store, str(ref), desc.digest, RebaseRecord(original=app.digest, new_run=(run.image.digest, new_run.name),
                                                            old_run=None))
    desc = store.put_manifest(new_index.to_bytes(), new_index.media_type)
    if index_formats:  # the index's own SBOM (every platform's packages), as the old index had or a signed one gets
        from builder.supply import indexsbom
        from builder.supply.sign import identity_of

        whole = indexsbom.IndexInventory(desc.digest, identity_of(store),
                                         tuple(inventories[m.digest] for m in new_index.manifests))
        indexsbom.attach(store, whole, index_formats)
        changes["sbom"] = list(index_formats)
    if sign is not None:
        sign(store, str(ref), desc.digest, RebaseRecord(original=top.digest,
                                                       new_run=(new_run.image.index.digest if new_run.image.index
                                                                else new_run.image.digest, new_run.name),
                                                       old_run=None))
    tag = ref.tag or (None if ref.digest else refs.DEFAULT_TAG)
    if tag:
        store.tag(tag, desc, new_index.to_bytes())
    return Outcome(str(ref.with_tag(tag) if tag else ref), REBASED, digest=desc.digest, old_digest=top.digest,
                   changes=changes)


def mt_desc(manifest: Manifest):  # noqa: ANN201
    """The descriptor a manifest will have once stored."""
    from builder.oci.model import Descriptor

    data = manifest.to_bytes()
    return Descriptor(manifest.media_type, _digest(manifest), len(data))


def _run_layers_into(store, app: Image, new_run: RunImage, stats: CopyStats,
                     present: set[tuple[str, str]] | None = None) -> None:
    """Make the new run image's layers present in the app's repository, in as few requests as
    possible: layers the app's manifest already lists are there (a registry keeps a manifest's
    blobs), and so are those an earlier image of the fleet in the same repository made present
    (``present``); the others are mounted straight away (one request, no HEAD first; a
    registry that has the blob answers the mount too) and copied only when that fails."""
    have = {d.digest for d in app.manifest.layers}
    todo = []
    for layer in new_run.image.manifest.layers:
        key = (store.description, layer.digest)
        if layer.digest in have or (present is not None and key in present):
            stats.skipped += 1
        elif store.mount_blob(layer, new_run.image.store):
            stats.mounted += 1
            if present is not None:
                present.add(key)
        else:
            todo.append(layer)
    copy_blobs(new_run.image.store, store, todo, stats=stats, jobs=1)  # images run in parallel already
    if present is not None:
        present.update((store.description, layer.digest) for layer in todo)


def _put_config(store, config_bytes: bytes, media_type: str) -> None:
    """The rebased config is new content: uploaded without asking first (a registry store)."""
    import io

    if _tag_is_one_put(store):
        store.put_blob(Descriptor.of(config_bytes, media_type), io.BytesIO(config_bytes))
    else:
        store.put_blob_bytes(config_bytes, media_type)


def _tag_is_one_put(store) -> bool:
    from builder.oci.stores.registry import RegistryStore

    return isinstance(store, RegistryStore)


def rebased_by_annotation(app: Image, new_run: RunImage, options: StoreOptions,
                          why: str, given: tuple[str, ...] = ()) -> tuple[Manifest, bytes, dict[str, Any]]:
    """Images not built by buildpacks but annotated with their base (``base.digest``/``.name``):
    swap the base layers and their history, keep everything else of the config."""
    from dataclasses import replace

    annotations = app.manifest.annotations or {}
    digest, name = annotations.get("org.opencontainers.image.base.digest"), annotations.get(
        "org.opencontainers.image.base.name")
    if not digest or not name:
        raise NotBuildpacksImage(f"{why}, and no org.opencontainers.image.base.digest annotation")
    try:
        base_ref = refs.parse(name)
        with open_store(base_ref, options_for_named(base_ref, options, (*given, new_run.name))) as base_store:
            old_base = load_image(base_store, digest)
            old_layers = list(old_base.config.diff_ids)
            old_history = len(old_base.config.history)
    except PalletError as exc:
        raise NotBuildpacksImage(f"{why}; its base {name}@{digest} cannot be read: {exc}") from None
    if list(app.config.diff_ids[: len(old_layers)]) != old_layers:
        raise NotBuildpacksImage(f"{why}; its layers do not start with those of its base {name}")
    new = new_run.image
    config = replace(app.config, diff_ids=tuple(new.config.diff_ids) + tuple(app.config.diff_ids[len(old_layers):]),
                     history=tuple(new.config.history) + tuple(app.config.history[old_history:]))
    manifest = replace(mutate.to_oci(app.manifest),
                       layers=tuple(mutate.to_oci(new.manifest).layers) + tuple(
                           mutate.to_oci(app.manifest).layers[len(old_layers):]),
                       annotations={**annotations, "org.opencontainers.image.base.digest": new.digest,
                                    "org.opencontainers.image.base.name": new_run.name})
    manifest, config_bytes = mutate.finalize(manifest, config)
    return manifest, config_bytes, {"reference": digest, "image": name}


_RUN_INVENTORIES: dict[str, Any] = {}


def _sbom_formats(store, app: Image, always: bool = False) -> tuple[str, ...]:
    """The SBOM formats the old image had attached (all of them when ``always``)."""
    from builder.supply.sbom import CYCLONEDX, SPDX

    kinds = {d.artifact_type for d in store.referrers(app.digest)}
    return tuple(fmt for fmt, kind in (("cyclonedx", CYCLONEDX), ("spdx", SPDX)) if kind in kinds or always)


def _refresh_sbom(store, app: Image, new_digest: str, new_run: RunImage, always: bool = False,
                  formats: tuple[str, ...] | None = None) -> tuple[list[str], Any]:
    """When the old image had SBOMs attached (or ``always``: a signed rebase), attach fresh ones to
    the new digest: the new run image's packages (read once for the whole fleet) plus the app's
    own CNB SBOM layer — never the app's other layers. (formats attached, the inventory or None)."""
    from builder.supply.refresh import rebased_inventory
    from builder.supply.sbom import attach_sbom, collect

    if formats is None:
        formats = _sbom_formats(store, app, always)
    if not formats:
        return [], None
    run = new_run.image
    if run.digest not in _RUN_INVENTORIES:
        _RUN_INVENTORIES[run.digest] = collect(run, new_run.name)
    image = load_image(store, new_digest)
    from builder.supply.sign import identity_of

    inventory = rebased_inventory(image, _RUN_INVENTORIES[run.digest], identity_of(store))
    attach_sbom(store, new_digest, inventory, formats=formats)
    return list(formats), inventory


def _digest(manifest: Manifest) -> str:
    from builder.oci.digest import sha256

    return sha256(manifest.to_bytes())


_OLD_PACKAGES: dict[tuple[str, str], dict[str, str] | None] = {}
_OLD_PACKAGES_LOCK = threading.Lock()


def _old_packages(run_image: dict[str, Any], options: StoreOptions,
                  given: tuple[str, ...] = ()) -> dict[str, str] | None:
    """The old run image's inventory, when its reference still resolves (configs only).
    A fleet usually shares a few old run images: each is read once."""
    name, digest = run_image.get("image"), run_image.get("reference")
    if not name or not digest:
        return None
    key = (name, digest)
    with _OLD_PACKAGES_LOCK:  # --jobs threads meet the same old run image at once: read it once
        if key not in _OLD_PACKAGES:
            _OLD_PACKAGES[key] = _read_old_packages(name, digest, options, given)
        return _OLD_PACKAGES[key]


def _read_old_packages(name: str, digest: str, options: StoreOptions,
                       given: tuple[str, ...]) -> dict[str, str] | None:
    try:
        ref = refs.parse(name)
        with open_store(ref, options_for_named(ref, options, given)) as store:
            return packages_of(load_image(store, digest).config)
    except PalletError:
        return None


def read_targets(from_file: str) -> list[str]:
    """References from ``--from``: one a line, or the JSON ``pallet audit`` prints."""
    return read_plan(from_file)[0]


#: ``pallet audit --json`` of a hundred thousand images is some tens of MB.
MAX_PLAN = 256 << 20


def read_plan(from_file: str) -> tuple[list[str], list[Outcome]]:
    """(references to rebase, images left alone and why) from ``--from``. ``pallet audit
    --advisories`` marks each image with whether a rebase fixes any of its findings: the
    others (fixed only by a rebuild, or with no fix yet) are listed, not rebased."""
    path = Path(from_file)
    try:
        text = read_input(path, "--from plan", MAX_PLAN).decode("utf-8")
    except OSError as exc:
        raise UsageError(f"--from {from_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--from {from_file}: not UTF-8 text") from None
    stripped = text.strip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise UsageError(f"--from {from_file}: invalid JSON ({exc})") from None
        items = data.get("images", data.get("matches", [])) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UsageError(f"--from {from_file}: expected a list of images")
        out, skipped = [], []
        for item in items:
            ref = item.get("reference") if isinstance(item, dict) else item
            if not isinstance(ref, str):
                raise UsageError(f"--from {from_file}: each entry needs a 'reference'")
            if isinstance(item, dict) and item.get("rebase") is False:
                why = ("its advisories are in the app's own layers: rebuild it" if item.get("rebuild")
                       else "no fixed version of its affected packages is known yet")
                skipped.append(Outcome(ref, SKIPPED, old_digest=item.get("digest"), reason=why))
                continue
            out.append(ref)
        return out, skipped
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")], []


def rebase_many(targets: list[str], new_run: RunImage, *, options: StoreOptions, jobs: int = 4,
                force: bool = False, dry_run: bool = False, sign=None, sign_each: bool = False,
                report: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Rebase each target; one failure never stops the others."""
    present: set[tuple[str, str]] = set()  # set.add is atomic under the GIL: shared by the jobs

    def one(text: str) -> Outcome:
        try:
            outcome = rebase_one(text, new_run, options=options, force=force, dry_run=dry_run, sign=sign,
                                 present=present, sign_each=sign_each)
        except PalletError as exc:
            outcome = Outcome(text, FAILED, reason=str(exc))
        if report:
            report(outcome)
        return outcome

    if jobs <= 1 or len(targets) <= 1:
        return [one(t) for t in targets]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="rebase") as pool:
        return list(pool.map(one, targets))
