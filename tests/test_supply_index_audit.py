"""``pallet audit`` of a multi-platform image (an index): each platform's image is read on its
own (its own SBOM, never the index's whole-index one) and each finding names its platform; the
entry is the index's, so ``rebase --from`` rebases every platform. ``verify --policy`` with a
[vulnerabilities] rule refuses an index when one platform is affected."""

from __future__ import annotations

import json
from pathlib import Path

from builder.cli import main
from builder.oci.stores.layout import LayoutStore
from tests.supplykit import key_pair, write_policy
from tests.test_supply_advisories import OPENSSL_NOFIX, record, write_records
from tests.test_supply_indexsbom import AMD, ARM, index_inventory, two_platforms

ARMONLY = record("DEBIAN-CVE-2024-7", "Debian:12", "armonly", {"introduced": "0"}, {"fixed": "2.0-2"},
                 database_specific={"severity": "HIGH"})


def test_audit_of_an_index_reports_per_platform(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    ref = f"oci:{tmp_path}/lay:multi"
    adv = tmp_path / "osv"
    write_records(adv, ARMONLY, OPENSSL_NOFIX)
    platforms = {p.platform: p.digest for p in index_inventory(store).platforms}

    for attached in (False, True):  # computed from the layers; then with the index's SBOM attached
        if attached:
            assert main(["sbom", ref, "--attach"]) == 0
            capsys.readouterr()
        assert main(["audit", ref, "--advisories", str(adv), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        [entry] = report["images"]
        assert entry["reference"] == f"{ref}@{digest}" and entry["digest"] == digest
        assert [(p["platform"], p["digest"], p["findings"]) for p in entry["platforms"]] == \
            [(AMD, platforms[AMD], 1), (ARM, platforms[ARM], 2)]
        sources = [p["sbom"] for p in entry["platforms"]]
        assert all(s.startswith("attached (cyclonedx") for s in sources) if attached else sources == ["computed"] * 2
        found = sorted((f["platform"], f["id"], f["package"]) for f in entry["findings"])
        assert found == [(AMD, "DEBIAN-CVE-2024-9", "openssl"), (ARM, "DEBIAN-CVE-2024-7", "armonly"),
                         (ARM, "DEBIAN-CVE-2024-9", "openssl")]
        assert entry["rebuild"] is True

    assert main(["audit", ref, "--advisories", str(adv)]) == 0
    out = capsys.readouterr().out
    assert f"DEBIAN-CVE-2024-7 high: [{ARM}] armonly 2.0-1, fixed in 2.0-2" in out

    assert main(["audit", ref, "--package", "openssl", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert [(m["platform"], m["purl"].split("?")[1]) for m in entry["packages"]] == \
        [(AMD, "arch=amd64&distro=debian-12"), (ARM, "arch=arm64&distro=debian-12")]
    assert main(["audit", ref, "--package", "armonly"]) == 0
    assert capsys.readouterr().out == f"{ref}@{digest}\tarmonly 2.0-1 [{ARM}]\n"


def test_verify_refuses_an_index_when_one_platform_is_affected(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    from builder.supply.sign import sign_image
    from tests.supplykit import signing_key

    store = LayoutStore(tmp_path / "lay")
    digest = two_platforms(store)
    key, pub = key_pair(tmp_path)
    sign_image(store, digest, signing_key(key))
    adv = tmp_path / "osv"
    write_records(adv, ARMONLY)
    policy = write_policy(tmp_path, pub)
    with open(policy, "a") as f:
        f.write('[vulnerabilities]\nrefuse = "high"\n')
    ref = f"oci:{tmp_path}/lay:multi"
    assert main(["verify", ref, "--policy", str(policy), "--advisories", str(adv), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert any("DEBIAN-CVE-2024-7" in r for r in result["reasons"])
    write_records(tmp_path / "none", OPENSSL_NOFIX)  # no fix: reported, not refused
    assert main(["verify", ref, "--policy", str(policy), "--advisories", str(tmp_path / "none")]) == 0
