"""The policy's [vulnerabilities] rule: refuse advisories at or above a severity that have a fix,
with an allow-list (id, reason, expiry); applied by ``verify`` and ``promote`` from --advisories."""

from __future__ import annotations

import datetime
import json

import pytest

from builder.cli import main
from builder.oci.copy import copy_image
from builder.oci.stores.registry import RegistryStore
from builder.supply import vulnpolicy
from builder.supply.advisories import Finding
from builder.supply.errors import PolicyError
from tests.fixtures_registry import unique_repo
from tests.supplykit import BUILDER_ID, Entry, files, key_pair, os_layer, prove, push, signing_key
from tests.test_supply_advisories import PAM, PAM_STATUS, record, write_records

TODAY = datetime.date(2026, 12, 6)


def finding(id_="DSA-1", severity="high", fixed="1.1", aliases=("CVE-2026-1",)) -> Finding:
    return Finding(id_, tuple(aliases), "libpam0g", "pam", "Debian:12", "1.0", fixed, severity,
                   "pkg:deb/debian/libpam0g@1.0", "run image")


def rule(text: str) -> vulnpolicy.VulnerabilityRule:
    import tomllib

    return vulnpolicy.parse(tomllib.loads(text)["vulnerabilities"], "policy.toml")


def test_the_rule_is_checked():
    with pytest.raises(PolicyError, match="'vulnerabilities.refuse' is required"):
        rule("[vulnerabilities]\nallow = []\n")
    with pytest.raises(PolicyError, match="must be one of low, medium, high, critical"):
        rule('[vulnerabilities]\nrefuse = "severe"\n')
    with pytest.raises(PolicyError, match="unknown field 'vulnerabilities.refuse_above'"):
        rule('[vulnerabilities]\nrefuse = "high"\nrefuse_above = "low"\n')
    with pytest.raises(PolicyError, match="needs a 'reason'"):
        rule('[vulnerabilities]\nrefuse = "high"\nallow = [{ id = "CVE-1", expires = 2027-01-01 }]\n')
    with pytest.raises(PolicyError, match="needs an 'expires' date"):
        rule('[vulnerabilities]\nrefuse = "high"\nallow = [{ id = "CVE-1", reason = "r", expires = "soon" }]\n')
    for allow in ("5", '"CVE-1"', '{ id = "CVE-1" }'):  # 5 was a TypeError traceback
        with pytest.raises(PolicyError, match="'vulnerabilities.allow' must be a list of tables"):
            rule(f'[vulnerabilities]\nrefuse = "high"\nallow = {allow}\n')


def test_what_is_refused_allowed_and_let_through():
    r = rule('[vulnerabilities]\nrefuse = "high"\nallow = [\n'
             '  { id = "CVE-2026-2", reason = "not reachable", expires = 2027-01-31 },\n'
             '  { id = "DSA-3", reason = "waiting for the vendor", expires = 2026-12-05 },\n]\n')
    out = vulnpolicy.evaluate(r, [
        finding("DSA-1"),                                   # high, with a fix: refused
        finding("DSA-2", aliases=("CVE-2026-2",)),          # allow-listed by its alias, until next year
        finding("DSA-3", severity="critical"),              # its allow-list entry expired yesterday
        finding("DSA-4", fixed=None, severity="critical"),  # no fix: reported, not refused
        finding("DSA-5", severity="medium"),                # below the bar
        finding("DSA-6", severity="unknown"),               # no severity stated: ranked critical
    ], TODAY)
    assert [f.id for f in out.refused] == ["DSA-1", "DSA-3", "DSA-6"]
    assert [(f.id, a.reason) for f, a in out.allowed] == [("DSA-2", "not reachable")]
    assert [f.id for f in out.no_fix] == ["DSA-4"] and [f.id for f in out.below] == ["DSA-5"]
    assert "expired on 2026-12-05: waiting for the vendor" in out.reasons[1]
    assert "unknown severity, ranked critical" in out.reasons[2]
    lenient = rule('[vulnerabilities]\nrefuse = "high"\nunknown_severity = "low"\n')
    assert vulnpolicy.evaluate(lenient, [finding(severity="unknown")], TODAY).reasons == []


@pytest.fixture
def patched_app(registry, tmp_path):
    """A proven app on a run image with pam 1.5.2-6+deb12u1 (DSA-5999-1 fixes it in ...u2)."""
    key_file, pub = key_pair(tmp_path)
    key = signing_key(key_file)
    runs, apps_repo = unique_repo("supply/vrun"), unique_repo("supply/vapp")
    bases = RegistryStore(registry.host, runs)
    layer = [e if e.path != "var/lib/dpkg/status" else Entry(e.path, e.data + b"\n" + PAM_STATUS) for e in os_layer()]
    run = push(bases, [layer], tag="v1")
    apps = RegistryStore(registry.host, apps_repo)
    copy_image(bases, run.digest, apps, None)
    app = push(apps, [files({"workspace/app.py": b"x\n"})], tag="web", base=run,
               annotations={"org.opencontainers.image.base.digest": run.digest,
                            "org.opencontainers.image.base.name": f"docker://{registry.host}/{runs}:v1"})
    prove(apps, app.digest, key, name=f"{registry.host}/{apps_repo}")
    return f"docker://{registry.host}/{apps_repo}:web", pub, app


def policy_file(tmp_path, pub, vulns: str):
    path = tmp_path / "policy.toml"
    path.write_text(f'keys = ["{pub.name}"]\nbuilder_id = "{BUILDER_ID}"\n\n[vulnerabilities]\n{vulns}')
    return path


def verify(ref, policy, advisories, capsys):
    capsys.readouterr()
    args = ["verify", ref, "--policy", str(policy), "--json"] + (["--advisories", str(advisories)] if advisories else [])
    code = main(args)
    result = json.loads(capsys.readouterr().out)
    assert (code == 0) == result["verified"]
    return result


def test_verify_and_promote_apply_the_rule(patched_app, registry, tmp_path, capsys):
    ref, pub, app = patched_app
    adv = tmp_path / "osv"
    write_records(adv, PAM)  # critical, fixed in 1.5.2-6+deb12u2
    policy = policy_file(tmp_path, pub, 'refuse = "high"\n')

    result = verify(ref, policy, adv, capsys)
    assert not result["verified"]
    assert [r for r in result["reasons"] if "DSA-5999-1" in r] == [
        "advisory DSA-5999-1 (CVE-2024-22365) [critical] affects libpam0g 1.5.2-6+deb12u1 in the run image; "
        "fixed in 1.5.2-6+deb12u2; the policy refuses high and above"]
    assert [f["id"] for f in result["vulnerabilities"]["refused"]] == ["DSA-5999-1"]

    # the same gate, at promote: nothing copied
    prod_repo = unique_repo("supply/vprod")
    dst = f"docker://{registry.host}/{prod_repo}:web"
    assert main(["promote", ref, dst, "--policy", str(policy), "--advisories", str(adv)]) != 0
    assert "DSA-5999-1" in capsys.readouterr().err
    assert RegistryStore(registry.host, prod_repo).list_tags() == []

    # without the advisories the rule cannot be applied: refused, saying so
    result = verify(ref, policy, None, capsys)
    assert "the policy refuses images by advisories, and none were given (--advisories PATH)" in result["reasons"]

    # an allow-listed advisory passes (until its expiry), and promote goes through
    allowed = policy_file(tmp_path, pub, 'refuse = "high"\nallow = [{ id = "CVE-2024-22365", '
                                         'reason = "PAM is not reachable in this app", expires = 2999-01-01 }]\n')
    result = verify(ref, allowed, adv, capsys)
    assert result["verified"], result["reasons"]
    assert result["vulnerabilities"]["allowed"][0]["allowedBy"]["reason"] == "PAM is not reachable in this app"
    assert main(["promote", ref, dst, "--policy", str(allowed), "--advisories", str(adv)]) == 0
    assert RegistryStore(registry.host, prod_repo).resolve("web").digest == app.digest

    # an expired allow-list entry no longer applies
    expired = policy_file(tmp_path, pub, 'refuse = "high"\nallow = [{ id = "CVE-2024-22365", '
                                         'reason = "until the rebase", expires = 2020-01-01 }]\n')
    result = verify(ref, expired, adv, capsys)
    assert not result["verified"]
    assert any("its allow-list entry expired on 2020-01-01: until the rebase" in r for r in result["reasons"])


def test_an_advisory_with_no_fix_is_not_refused(patched_app, tmp_path, capsys):
    ref, pub, _ = patched_app
    adv = tmp_path / "osv"
    write_records(adv, record("DEBIAN-CVE-2026-7", "Debian:12", "pam", {"introduced": "0"},
                              database_specific={"severity": "CRITICAL"}))
    result = verify(ref, policy_file(tmp_path, pub, 'refuse = "low"\n'), adv, capsys)
    assert result["verified"], result["reasons"]
    assert [(f["id"], f["fixed"]) for f in result["vulnerabilities"]["noFix"]] == [("DEBIAN-CVE-2026-7", None)]
    capsys.readouterr()
    assert main(["verify", ref, "--policy", str(tmp_path / "policy.toml"), "--advisories", str(adv)]) == 0
    assert "no fix yet: DEBIAN-CVE-2026-7 [critical] in libpam0g 1.5.2-6+deb12u1" in capsys.readouterr().out


def test_advisories_need_a_policy(patched_app, tmp_path, capsys):
    ref, pub, _ = patched_app
    assert main(["verify", ref, "--key", str(pub), "--advisories", str(tmp_path)]) == 2
    assert "--advisories goes with --policy" in capsys.readouterr().err
