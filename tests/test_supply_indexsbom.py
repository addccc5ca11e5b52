"""The SBOM of a multi-platform image (an OCI index): one document naming each platform's
packages, valid against the official CycloneDX and SPDX schemas, read back per platform by the
tools that read nested components; attached to the index; ``--platform`` still gives one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.lifecycle.compose import platform_index
from builder.oci.image import platform_images
from builder.oci.model import Descriptor, Platform
from builder.oci.stores.layout import LayoutStore
from builder.supply import indexsbom, sbom
from tests.supplykit import STATUS, Entry, app_layer, os_layer, push
from tests.test_supply_sbom import _cyclonedx_errors, _spdx_errors

AMD, ARM = "linux/amd64", "linux/arm64/v8"


def two_platforms(store: LayoutStore, tag: str = "multi") -> str:
    """An index of an amd64 and an arm64 image: the same packages, each its own architecture's
    (arch=all tzdata and the PyPI/npm packages are in both), and a package only arm64 has."""
    amd = push(store, [os_layer(), app_layer()], tag=None)
    arm_status = STATUS.replace(b"Architecture: amd64", b"Architecture: arm64") + \
        b"\nPackage: armonly\nStatus: install ok installed\nArchitecture: arm64\nVersion: 2.0-1\n"
    arm_os = [e if e.path != "var/lib/dpkg/status" else Entry(e.path, arm_status) for e in os_layer()]
    arm = push(store, [arm_os, app_layer()], tag=None, architecture="arm64", variant="v8")
    index = platform_index([(Descriptor(d.media_type, d.digest, d.size), p) for d, p in
                            ((arm, Platform("linux", "arm64", "v8")), (amd, Platform("linux", "amd64")))])
    return store.put_manifest(index.to_bytes(), index.media_type, tag=tag).digest


def index_inventory(store: LayoutStore, ref: str = "multi") -> indexsbom.IndexInventory:
    found = platform_images(store, ref)
    assert found is not None
    return indexsbom.collect(*found, "registry.example/acme/web")


def test_cyclonedx_of_an_index_nests_each_platforms_packages(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    inv = index_inventory(store)
    assert inv.digest == digest and [p.platform for p in inv.platforms] == [AMD, ARM]
    data = indexsbom.document(inv, "cyclonedx").decode()
    assert _cyclonedx_errors(data) is None
    doc = json.loads(data)
    assert doc["metadata"]["component"]["version"] == digest
    assert doc["serialNumber"] == f"urn:uuid:{sbom.serial_uuid(digest)}"
    images = {c["properties"][0]["value"]: c for c in doc["components"]}
    assert set(images) == {AMD, ARM} and all(c["type"] == "container" for c in images.values())
    assert images[ARM]["version"] == inv.platforms[1].digest and "arch=arm64" in images[ARM]["purl"]
    for platform, arch, other in ((AMD, "amd64", "arm64"), (ARM, "arm64", "amd64")):
        parts = images[platform]["components"]
        purls = [c.get("purl", "") for c in parts]
        assert any(p.startswith("pkg:deb/debian/libc6@") and f"arch={arch}" in p for p in purls)
        assert not any(f"arch={other}" in p for p in purls)
        assert "pkg:pypi/flask@3.0.3" in purls and any("tzdata" in p for p in purls)  # in both
        assert all({"name": "pallet:platform", "value": platform} in c["properties"] for c in parts)
    assert any("armonly" in c.get("purl", "") for c in images[ARM]["components"])
    assert not any("armonly" in c.get("purl", "") for c in images[AMD]["components"])
    refs = [c["bom-ref"] for i in images.values() for c in i["components"]] + [i["bom-ref"] for i in images.values()]
    assert len(refs) == len(set(refs))  # unique, though flask is in both platforms
    # what audit reads from an attached SBOM: every platform's packages, the images themselves not
    listed = sbom.listed_packages(data.encode(), "cyclonedx")
    assert {p.name for p in listed} >= {"libc6", "armonly", "Flask"}
    assert len([p for p in listed if p.name == "libc6"]) == 2


def test_cyclonedx_of_an_index_reads_back_with_cyclonedx_python_lib(tmp_path: Path) -> None:
    """Another implementation's reading: each platform a component of the index, its packages within."""
    model = pytest.importorskip("cyclonedx.model.bom")
    store = LayoutStore(tmp_path / "lay")
    two_platforms(store)
    bom = model.Bom.from_json(json.loads(indexsbom.document(index_inventory(store), "cyclonedx")))
    by_platform = {next(p.value for p in c.properties if p.name == "pallet:platform"): c for c in bom.components}
    assert set(by_platform) == {AMD, ARM}
    assert "armonly" in {c.name for c in by_platform[ARM].components}
    assert "armonly" not in {c.name for c in by_platform[AMD].components}


def test_spdx_of_an_index_is_valid_and_contains_each_platform(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    inv = index_inventory(store)
    path = tmp_path / "index.spdx.json"
    path.write_bytes(indexsbom.document(inv, "spdx"))
    assert _spdx_errors(path) == []
    doc = json.loads(path.read_text())
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    described = [r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "DESCRIBES"]
    assert [by_id[d]["versionInfo"] for d in described] == [digest]
    contains: dict[str, list[str]] = {}
    for r in doc["relationships"]:
        if r["relationshipType"] == "CONTAINS":
            contains.setdefault(r["spdxElementId"], []).append(r["relatedSpdxElement"])
    images = contains[described[0]]
    assert sorted(by_id[i]["versionInfo"] for i in images) == sorted(p.digest for p in inv.platforms)
    for image in images:
        platform = by_id[image]["comment"].split(";")[0].removeprefix("platform ")
        names = {by_id[c]["name"] for c in contains[image]}
        assert ("armonly" in names) == (platform == ARM)
        assert all(by_id[c]["comment"].startswith(f"platform {platform}") for c in contains[image])


def test_index_documents_are_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    store = LayoutStore(tmp_path / "lay")
    two_platforms(store)
    for fmt in ("cyclonedx", "spdx"):
        assert indexsbom.document(index_inventory(store), fmt) == indexsbom.document(index_inventory(store), fmt)


def test_sbom_command_on_an_index_gives_the_whole_index_and_platform_gives_one(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    ref = f"oci:{tmp_path}/lay:multi"
    assert main(["sbom", ref]) == 0
    out = capsys.readouterr()
    assert "computed from the layers of its 2 platform images" in out.err
    assert {c["version"] for c in json.loads(out.out)["components"]} == {p.digest for p in index_inventory(store).platforms}
    assert main(["sbom", ref, "--attach"]) == 0
    assert "and to each of its 2 platform images" in capsys.readouterr().err
    assert sorted(r.artifact_type for r in store.referrers(digest)) == ["application/spdx+json",
                                                                        "application/vnd.cyclonedx+json"]
    assert main(["sbom", ref, "--format", "spdx"]) == 0
    out = capsys.readouterr()
    assert "the SBOM attached to" in out.err and json.loads(out.out)["packages"][0]["versionInfo"] == digest
    # one platform: its own SBOM (attached to its image), not the index's
    assert main(["sbom", ref, "--platform", "linux/arm64"]) == 0
    out = capsys.readouterr()
    arm = index_inventory(store).platforms[1].digest
    assert f"@{arm}" in out.err and "the SBOM attached" in out.err
    doc = json.loads(out.out)
    assert doc["metadata"]["component"]["version"] == arm and "armonly" in out.out
