"""A fresh complete SBOM for a rebased image, without reading its app layers.

The complete SBOM is the run image's packages plus the app's dependencies. After a rebase the
first part comes from the new run image (read once for a whole fleet) and the second from the
image's own CNB SBOM layer (``/layers/sbom``, a few kilobytes), which rebase leaves unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from builder import jsonsafe
from builder.oci.image import Image
from builder.oci.layerread import LayerTar
from builder.supply import layerfiles
from builder.supply.sbom import Inventory, Package, _merge, _objects, collect

_ECOSYSTEMS = {"pypi": "pypi", "npm": "npm", "golang": "golang", "deb": "deb"}


def _package(component: dict[str, Any]) -> Package | None:
    """The package a CycloneDX component of the image's SBOM layer names; None when it names none
    as pallet's buildpacks write it (the layer is the image's: its values may be of any type)."""
    purl = component.get("purl")
    if not isinstance(purl, str) or not purl.startswith("pkg:"):
        return None
    ecosystem = _ECOSYSTEMS.get(purl[4:].split("/", 1)[0])
    if not ecosystem or not isinstance(component.get("name"), str) or not component["name"]:
        return None
    licenses = []
    expression = None
    for lic in _objects(component.get("licenses")):
        if isinstance(lic.get("expression"), str):
            expression = lic["expression"]
        inner = lic.get("license") if isinstance(lic.get("license"), dict) else {}
        named = inner.get("id") or inner.get("name")
        if isinstance(named, str):
            licenses.append(named)
    return Package(ecosystem, component["name"], str(component.get("version", "")), purl,
                   licenses=tuple(licenses), expression=expression)


def app_packages(image: Image) -> list[Package]:
    """The dependencies listed in the image's CNB SBOM layer (CycloneDX documents)."""
    raw = image.config.config.labels.get("io.buildpacks.lifecycle.metadata")
    try:
        sha = jsonsafe.loads(raw or "{}").get("sbom", {}).get("sha")
    except (ValueError, AttributeError):
        return []
    if not sha:
        return []
    layers = [desc for desc, diff_id in image.layers() if diff_id == sha]
    if not layers:
        return []

    def pick(entry) -> str | None:  # noqa: ANN001
        ok = entry.type == "file" and entry.path.startswith("layers/sbom/") and entry.path.endswith(".cdx.json")
        return layerfiles.READ if ok else None

    with image.store.open_blob(layers[0]) as stream:
        files = layerfiles.read_files([LayerTar(stream, what=image.layer_name(layers[0]))], pick)
    found = []
    for path in sorted(files):
        data = files[path].data
        try:
            doc = jsonsafe.loads(data or b"{}")
        except ValueError:
            continue
        for component in _objects(doc.get("components") if isinstance(doc, dict) else None):
            package = _package(component)
            if package is not None:
                found.append(replace(package, locations=("/" + path,)))
    return found


def rebased_inventory(image: Image, run_inventory: Inventory, name: str) -> Inventory:
    """The complete inventory of a rebased image: the new run image's + its own app packages."""
    os_packages = [p for p in run_inventory.packages if p.ecosystem == "deb"]
    return Inventory(digest=image.digest, name=name, platform=str(image.config.platform),
                     distro=run_inventory.distro, packages=_merge(os_packages + app_packages(image)))


__all__ = ["rebased_inventory", "app_packages", "collect"]
