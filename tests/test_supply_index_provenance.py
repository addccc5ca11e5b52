"""Provenance and SBOM on a multi-platform image's index, as ``pallet build --platform A,B
--sign-key`` attaches them (``cli_hooks.index_build_finisher``): the index is the subject, its
platform manifests the byproducts; ``pallet verify --policy`` on the index reads them. Images
made in a layout (no build, no QEMU); the build itself is tests/test_multiarch.py's."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.oci.stores.layout import LayoutStore
from builder.supply.provenance import (INDEX_BUILD_TYPE, BuildFacts, Dependency, SourceFacts, index_statement,
                                       source_repository_of, builder_id_of)
from tests.supplykit import BUILDER_ID, PASSWORD, SOURCE, key_pair, write_policy
from tests.test_supply_indexsbom import two_platforms

T0 = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def facts(digest: str, run: str, *, minutes: int = 0, name: str = "registry.example/acme/web") -> BuildFacts:
    return BuildFacts(image=name, digest=digest, source=SourceFacts(repository=SOURCE, commit="a" * 40),
                      started_on=T0 + datetime.timedelta(minutes=minutes),
                      finished_on=T0 + datetime.timedelta(minutes=minutes + 1), builder_id=BUILDER_ID,
                      stack="tiny-multi", run_image=Dependency("run-image", run, "registry.example/stacks/run"),
                      buildpacks=(Dependency("pallet/procfile@0.1.0", "sha256:" + "b" * 64,
                                             "pkg:generic/pallet/procfile@0.1.0"),))


def test_index_statement_names_the_index_and_each_platform_manifest() -> None:
    amd, arm, index = ("sha256:" + c * 64 for c in "123")
    st = index_statement("registry.example/acme/web", index, [
        ("linux/amd64", "application/vnd.oci.image.manifest.v1+json", facts(amd, "sha256:" + "4" * 64)),
        ("linux/arm64/v8", "application/vnd.oci.image.manifest.v1+json", facts(arm, "sha256:" + "5" * 64, minutes=3)),
    ])
    assert st["subject"] == [{"name": "registry.example/acme/web", "digest": {"sha256": "3" * 64}}]
    pred = st["predicate"]
    assert pred["buildDefinition"]["buildType"] == INDEX_BUILD_TYPE
    assert pred["buildDefinition"]["externalParameters"]["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert source_repository_of(st) == SOURCE and builder_id_of(st) == BUILDER_ID
    by = {b["name"]: b for b in pred["runDetails"]["byproducts"]}
    assert by["linux/amd64"]["digest"] == {"sha256": "1" * 64} and by["linux/arm64/v8"]["digest"] == {"sha256": "2" * 64}
    assert "arch=arm64" in by["linux/arm64/v8"]["uri"] and "repository_url=registry.example" in by["linux/amd64"]["uri"]
    deps = {d["name"]: d for d in pred["buildDefinition"]["resolvedDependencies"]}
    assert deps["run-image linux/amd64"]["digest"] == {"sha256": "4" * 64}
    assert deps["run-image linux/arm64/v8"]["digest"] == {"sha256": "5" * 64}
    assert "pallet/procfile@0.1.0 linux/arm64/v8" in deps and list(deps).count("source") == 1
    times = pred["runDetails"]["metadata"]
    assert (times["startedOn"], times["finishedOn"]) == ("2024-05-01T12:00:00Z", "2024-05-01T12:04:00Z")
    with pytest.raises(ValueError):
        index_statement("x", index, [])


def test_signed_index_verifies_with_a_policy_through_its_own_provenance_and_sbom(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    from builder.oci.image import platform_images
    from builder.supply.cli_hooks import index_build_finisher

    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    _, images = platform_images(store, digest)
    key, pub = key_pair(tmp_path)
    finish = index_build_finisher(str(key))
    built = [facts(i.digest, "sha256:" + "4" * 64) for i in reversed(images)]  # in the order built
    proof = finish(store, digest, built)
    assert set(proof["platforms"]) == {i.digest for i in images} and proof["provenance"] and proof["sboms"]
    again = finish(store, digest, built)  # the same claim again: nothing new attached
    assert again["provenance"] == proof["provenance"] and again["sboms"] == proof["sboms"]

    ref = f"oci:{tmp_path}/lay:multi"
    policy = write_policy(tmp_path, pub, builder_id=BUILDER_ID, source_repositories=["https://github.com/acme/*"],
                          require_sbom=True)
    assert main(["verify", ref, "--policy", str(policy), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["digest"] == digest and result["verified"]
    kinds = {a["predicateType"] for a in result["attestations"]}
    assert kinds == {"https://slsa.dev/provenance/v1"} and len(result["sboms"]) == 2
    # the index's SBOM is the whole index's: both platforms' packages
    assert main(["sbom", ref]) == 0
    out = capsys.readouterr()
    assert "the SBOM attached to" in out.err
    assert {c["version"] for c in json.loads(out.out)["components"]} == {i.digest for i in images}
    # another builder id: refused on the index's own provenance
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / pub.name).write_bytes(pub.read_bytes())
    other = write_policy(tmp_path / "other", pub, builder_id="https://ci.example.com/other")
    assert main(["verify", ref, "--policy", str(other)]) == 1
    assert "verification FAILED" in capsys.readouterr().out
    # each platform verifies as its own build
    for image in images:
        assert main(["verify", f"oci:{tmp_path}/lay@{image.digest}", "--policy", str(policy)]) == 0
    capsys.readouterr()


def test_index_statement_refuses_facts_of_other_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.supply.cli_hooks import index_build_finisher

    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    key, _ = key_pair(tmp_path)
    with pytest.raises(ValueError, match="not the index of the platform images built"):
        index_build_finisher(str(key))(store, digest, [facts("sha256:" + "9" * 64, "sha256:" + "4" * 64)])


def test_promoted_index_verifies_at_the_destination_with_each_platforms_proof(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    from builder.oci.image import platform_images
    from builder.supply.cli_hooks import index_build_finisher

    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    _, images = platform_images(store, digest)
    key, pub = key_pair(tmp_path)
    index_build_finisher(str(key))(store, digest, [facts(i.digest, "sha256:" + "4" * 64) for i in images])
    policy = write_policy(tmp_path, pub, builder_id=BUILDER_ID, require_sbom=True)
    dst = f"oci:{tmp_path}/prod:1"
    assert main(["promote", f"oci:{tmp_path}/lay:multi", dst, "--policy", str(policy)]) == 0
    assert capsys.readouterr().out.strip() == f"{dst}@{digest}"
    assert main(["verify", dst, "--policy", str(policy)]) == 0
    for image in images:
        assert main(["verify", f"oci:{tmp_path}/prod@{image.digest}", "--policy", str(policy)]) == 0
    assert main(["sbom", dst]) == 0
    assert "the SBOM attached to" in capsys.readouterr().err
