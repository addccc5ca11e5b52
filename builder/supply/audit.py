"""``pallet audit``: which images contain a package (below a version), read from their SBOMs.

Each image's attached SBOM is read (CycloneDX, else SPDX); an image without one has its SBOM
computed from its layers. Versions compare in each package's ecosystem order (``versions``:
dpkg's, PEP 440, semver). A multi-platform image (an index) is audited platform by platform:
each platform's image is read as any image is (its own SBOM, its own run image), and each
match or finding names its platform; the entry is the index's (what ``pallet rebase --from``
takes: a rebase of the index rebases every platform).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

from builder import jsonsafe
from builder.oci.image import load_image, platform_images
from builder.oci.reference import Reference
from builder.oci.stores.base import Store
from builder.stacks import inventory as dpkg
from builder.supply import purl as purlmod, sbom


@dataclass(frozen=True)
class Match:
    name: str
    version: str
    purl: str
    platform: str = ""         # set for an image of an index


@dataclass
class AuditEntry:
    reference: str             # REF@sha256:... (what ``pallet rebase --from`` takes)
    digest: str
    sbom: str                  # "attached (referrer sha256:...)" or "computed"
    matches: list[Match] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "sbom": self.sbom,
                "packages": [{"name": m.name, "version": m.version, "purl": m.purl,
                              **({"platform": m.platform} if m.platform else {})} for m in self.matches]}


def _same_name(listed: sbom.Listed, wanted: str) -> bool:
    want = wanted.strip()
    if listed.name == want or listed.name.lower() == want.lower():
        return True
    if listed.purl.startswith("pkg:pypi/") and purlmod.pypi_name(listed.name) == purlmod.pypi_name(want):
        return True
    return False


def _below(p: sbom.Listed, version: str) -> bool:
    """Whether the package is older than ``version`` in its ecosystem's order (``versions``);
    a version that order cannot place counts as older, so that it is listed, not hidden."""
    from builder.supply import versions

    try:
        return versions.compare(versions.ecosystem_of_purl(p.purl) or "deb", p.version, version) < 0
    except versions.InvalidVersion:
        return True


def matching(listed: list[sbom.Listed], name: str, below: str | None = None) -> list[Match]:
    """The packages called ``name`` (older than ``below``, if given), deduplicated. Pure."""
    out: dict[tuple[str, str, str], Match] = {}
    for p in listed:
        if not _same_name(p, name):
            continue
        if below is not None and _below(p, below) is False:
            continue
        out[(p.name, p.version, p.purl)] = Match(p.name, p.version, p.purl)
    return sorted(out.values(), key=lambda m: (m.name, m.purl))


def packages_of(store: Store, digest: str) -> tuple[list[sbom.Listed], str]:
    """(packages, where the list came from) for the image ``digest`` names (one platform's
    image: its own SBOM, not an index's, which names every platform's packages)."""
    return image_packages(load_image(store, digest))


def image_packages(image: Any) -> tuple[list[sbom.Listed], str]:
    for fmt in ("cyclonedx", "spdx"):
        found = sbom.find_sbom(image.store, image.digest, fmt)
        if found is not None:
            data, where = found
            return sbom.listed_packages(data, fmt), f"attached ({fmt}, {where})"
    return sbom.inventory_listed(sbom.collect(image)), "computed"


def audit_image(store: Store, ref: Reference, package: str, below: str | None = None) -> AuditEntry:
    digest = store.resolve(ref.ref).digest
    whole = platform_images(store, digest)
    if whole is None:
        listed, where = packages_of(store, digest)
        return AuditEntry(ref.at_digest(digest), digest, where, matching(listed, package, below))
    matches, wheres = [], []
    for image in whole[1]:
        platform = str(image.config.platform)
        listed, where = image_packages(image)
        wheres.append(f"{platform}: {where}")
        matches += [replace(m, platform=platform) for m in matching(listed, package, below)]
    return AuditEntry(ref.at_digest(digest), digest, "; ".join(wheres), matches)


# -- advisories --------------------------------------------------------------------------------

#: Where a package lives, which says what fixes it.
RUN_IMAGE = "run image"        # in the run image's layers: a rebase onto a patched run image fixes it
APP_LAYERS = "app layers"      # in the app's own layers: a rebuild fixes it
WHOLE_IMAGE = "image"          # an image with no run image recorded: only a rebuild changes it

_APP_PICK = sbom._wanted


def _key(kind: str | None, name: str, version: str) -> tuple[str, str, str]:
    return (kind or "", name, version)


def _listed_key(p: sbom.Listed) -> tuple[str, str, str]:
    from builder.supply import versions

    return _key(versions.ecosystem_of_purl(p.purl), p.name, p.version)


class PackageReader:
    """The packages of images, and which of them came with the run image.

    Reads each layer at most once per audit: the run image's layers (shared by a fleet) are
    read once and their file state kept, each image's own layers on top of it only when it has
    no SBOM attached. An attached SBOM is used as it is (the packages) and the run image's
    layers say which of them are the run image's.
    """

    def __init__(self, options: Any = None) -> None:
        self.options = options
        self._states: dict[tuple[str, ...], dict[str, Any]] = {}
        self._base_keys: dict[tuple[str, ...], frozenset[tuple[str, str, str]]] = {}
        self._annotated: dict[tuple[str, str], int | None] = {}
        self._inventories: dict[tuple[str, ...], sbom.Inventory] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._guard = threading.Lock()
        self.layers_read = 0

    def _base_count(self, image: Any) -> int | None:
        """How many of the image's bottom layers are its run image's (None: not recorded)."""
        import json

        raw = image.config.config.labels.get("io.buildpacks.lifecycle.metadata")
        if raw:
            try:
                top = jsonsafe.loads(raw)["runImage"]["topLayer"]
                return list(image.config.diff_ids).index(top) + 1
            except (ValueError, KeyError, TypeError):
                pass
        notes = image.manifest.annotations or {}
        digest, name = notes.get("org.opencontainers.image.base.digest"), notes.get("org.opencontainers.image.base.name")
        if not digest or not name:
            return None
        key = (name, digest)
        if key not in self._annotated:
            host = getattr(image.store, "host", None)  # the audited image's registry, if it is in one
            self._annotated[key] = self._annotated_count(name, digest, (host,) if host else ())
        count = self._annotated[key]
        return count if count is not None and count <= len(image.manifest.layers) else None

    def _annotated_count(self, name: str, digest: str, hosts: tuple[str, ...] = ()) -> int | None:
        from builder.errors import PalletError
        from builder.oci import reference as refs
        from builder.oci.stores import open_store, options_for_named

        try:
            ref = refs.parse(name)  # the image names it: --creds only for the image's own registry
            with open_store(ref, options_for_named(ref, self.options, (), hosts)) as base_store:
                return len(load_image(base_store, digest).manifest.layers)
        except PalletError:
            return None

    def _state(self, image: Any, upto: int) -> dict[str, Any]:
        """The file state the bottom ``upto`` layers make (cached by their digests)."""
        layers = image.layers()[:upto]
        key = tuple(d.digest for d, _ in layers)
        with self._lock_for(key):  # two images on one run image: the second waits, then reuses
            if key not in self._states:
                self._states[key] = self._read_state(image, layers, key)
            return self._states[key]

    def _read_state(self, image: Any, layers: list[Any], key: tuple[str, ...]) -> dict[str, Any]:
        from builder.oci.layerread import LayerTar
        from builder.supply import layerfiles

        # Start from the longest cached prefix (the run image's, for an app image).
        start, below = 0, {}
        for n in range(len(key) - 1, 0, -1):
            if self._states.get(key[:n]) is not None:
                start, below = n, self._states[key[:n]]
                break
        def counted():
            for desc, _ in layers[start:]:
                self.layers_read += 1
                stream = image.store.open_blob(desc)
                try:
                    yield LayerTar(stream, what=image.layer_name(desc))
                finally:
                    stream.close()

        return layerfiles.read_files(counted(), _APP_PICK, sbom._go_binary, below=below)

    def _inventory(self, image: Any, upto: int, base: int | None = None) -> sbom.Inventory:
        """The inventory of the bottom ``upto`` layers. When the layers above ``base`` left the
        OS files alone (as app layers do), the OS part is the run image's, parsed once."""
        state = self._state(image, upto)
        platform = str(image.config.platform)
        if base is None or base >= upto:
            return sbom.inventory_of(state, digest=image.digest, name="", platform=platform)
        below = self._state(image, base)
        os_paths = {p for p in (*state, *below) if dpkg.is_inventory_path(p) or p in sbom.OS_RELEASE}
        if any(state.get(p) is not below.get(p) for p in os_paths):
            return sbom.inventory_of(state, digest=image.digest, name="", platform=platform)
        with self._lock_for(("inventory",) + tuple(d.digest for d, _ in image.layers()[:base])):
            key = ("inventory",) + tuple(d.digest for d, _ in image.layers()[:base])
            if key not in self._inventories:
                self._inventories[key] = sbom.inventory_of(below, digest=image.digest, name="", platform=platform)
            os_part = self._inventories[key]
        app_files = {p: f for p, f in state.items() if p not in os_paths}
        app_part = sbom.inventory_of(app_files, digest=image.digest, name="", platform=platform)
        packages = [p for p in os_part.packages if p.ecosystem == "deb"] + \
            [p for p in app_part.packages if p.ecosystem != "deb"]
        return sbom.Inventory(image.digest, "", platform, os_part.distro, tuple(packages))

    def _lock_for(self, key: tuple[str, ...]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def read(self, store: Store, digest: str) -> tuple[list[Any], str, bool]:
        """(packages as ``advisories.Installed``, where the list came from, has a run image)."""
        return self.read_image(load_image(store, digest))

    def read_image(self, image: Any) -> tuple[list[Any], str, bool]:
        from builder.supply.advisories import Installed

        store = image.store
        base = self._base_count(image)
        listed: list[sbom.Listed] | None = None
        where = "computed"
        # The image's own SBOM (an index's names every platform's packages: not this image's list).
        found = _attached_sbom(store, image.digest)
        if found is not None:
            data, fmt, ref = found
            listed, where = sbom.listed_packages(data, fmt), f"attached ({fmt}, {ref})"
        if base is not None:
            base_key = tuple(d.digest for d, _ in image.layers()[:base])
            with self._lock_for(("keys",) + base_key):
                if base_key not in self._base_keys:
                    inv = self._inventory(image, base)
                    self._base_keys[base_key] = frozenset(_listed_key(p) for p in sbom.inventory_listed(inv))
            in_base = self._base_keys[base_key]
        else:
            in_base = frozenset()
        if listed is None:
            listed = sbom.inventory_listed(self._inventory(image, len(image.manifest.layers), base))
        out = []
        for p in listed:
            location = WHOLE_IMAGE if base is None else RUN_IMAGE if _listed_key(p) in in_base else APP_LAYERS
            out.append(Installed(p.name, p.version, p.purl, p.source, p.source_version, location))
        return out, where, base is not None


@dataclass
class AdvisoryEntry:
    reference: str             # REF@sha256:... (what ``pallet rebase --from`` takes)
    digest: str
    sbom: str
    has_run_image: bool
    findings: list[Any] = field(default_factory=list)   # advisories.Finding
    platforms: list[dict[str, Any]] = field(default_factory=list)  # an index's: each platform image read

    @property
    def rebase(self) -> bool:
        """A rebase onto a patched run image fixes some of it (a fixed version exists)."""
        return any(f.location == RUN_IMAGE and f.fixed for f in self.findings)

    @property
    def rebuild(self) -> bool:
        """Only a rebuild fixes some of it."""
        return any(f.location != RUN_IMAGE and f.fixed for f in self.findings)

    @property
    def fix(self) -> str:
        parts = [w for w, need in (("rebase", self.rebase), ("rebuild", self.rebuild)) if need]
        return " and ".join(parts) if parts else "none available yet"

    def to_json(self) -> dict[str, Any]:
        out = {"reference": self.reference, "digest": self.digest, "sbom": self.sbom,
               "rebase": self.rebase, "rebuild": self.rebuild,
               "findings": [f.to_json() for f in self.findings]}
        if self.platforms:
            out["platforms"] = self.platforms
        return out


def _attached_sbom(store: Store, digest: str) -> tuple[bytes, str, str] | None:
    """(document, format, "referrer sha256:...") of the SBOM attached to ``digest``, CycloneDX
    first: the referrers are listed once and only the chosen document is fetched."""
    from builder.errors import PalletError
    from builder.oci.model import Manifest

    from builder.supply.attach import MAX_ATTACHMENTS

    try:
        listed = store.referrers(digest)
    except PalletError:
        return None
    tried = 0   # a registry listing thousands that are not this image's: each would be fetched
    for fmt in ("cyclonedx", "spdx"):
        for ref in listed:
            if ref.artifact_type != sbom.FORMATS[fmt]:
                continue
            tried += 1
            if tried > MAX_ATTACHMENTS:
                return None   # the SBOM is computed from the layers instead
            try:
                desc, data = store.get_manifest(ref.digest)
                manifest = Manifest.from_bytes(data, desc.media_type)
                if manifest.subject is None or manifest.subject.digest != digest or not manifest.layers:
                    continue
                return store.get_blob(manifest.layers[0]), fmt, f"referrer {ref.digest}"
            except PalletError:
                continue
    return None


def audit_advisories(store: Store, ref: Reference, index: Any, reader: PackageReader) -> AdvisoryEntry:
    """The advisories of ``index`` that affect the image ``ref`` names (resolved once); for a
    multi-platform image, those of each platform's image, each finding naming its platform."""
    digest = store.resolve(ref.ref).digest
    whole = platform_images(store, digest)
    if whole is None:
        packages, where, has_run = reader.read_image(load_image(store, digest))
        return AdvisoryEntry(ref.at_digest(digest), digest, where, has_run, index.match(packages))
    findings, platforms, wheres, runs = [], [], [], []
    for image in whole[1]:
        platform = str(image.config.platform)
        packages, where, has_run = reader.read_image(image)
        found = [replace(f, platform=platform) for f in index.match(packages)]
        findings += found
        wheres.append(f"{platform}: {where}")
        runs.append(has_run)
        platforms.append({"platform": platform, "digest": image.digest, "sbom": where, "findings": len(found)})
    return AdvisoryEntry(ref.at_digest(digest), digest, "; ".join(wheres), all(runs), findings, platforms)
