"""Patch day, end to end, as a security team lives it: an advisory lands for an OS package; find
every affected image, rebase them onto the patched run image, re-sign with provenance, and deploy
only what passes the gate.

Everything is real and local: a Debian archive served on loopback (``tests.aptarchive``) with two
versions of a small package this test makes with dpkg-deb, a stack locked at the old one, apps
built and signed with provenance into a local registry, an OSV record naming the old version.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.aptarchive import AptArchive, make_deb
from tests.cli import pallet

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "stacks" / "tiny.toml"
HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"
BUILDER = "https://ci.example.com/acme/pallet-builds"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap"),
                                 reason="stack builds need root and mmdebstrap (scripts/setup.sh installs it)")]


def tool_deb(where: Path, version: str):
    return make_deb(where, "acme-tool", version,
                    files={"usr/bin/acme-tool": b"#!/bin/sh\necho acme-tool %s\n" % version.encode()})


def stack_file(where: Path, archive: AptArchive, version: str) -> Path:
    """The tiny stack with acme-tool in its run image, against the test's archive."""
    where.mkdir(parents=True, exist_ok=True)
    text = (TINY.read_text()
            .replace('version = "0.1.0"', f'version = "{version}"')
            .replace('suite = "bookworm"\n', f'suite = "bookworm"\nmirror = "{archive.url}/debian"\n'
                                             f'keyring = "{archive.keyring}"\n')
            .replace("[run]\npackages = []", '[run]\npackages = ["acme-tool"]'))
    assert 'packages = ["acme-tool"]' in text and version in text
    path = where / "tiny.toml"
    path.write_text(text)
    return path


def test_patch_day(tmp_path: Path, apt_archive: AptArchive, essential_debs, registry) -> None:
    machine = {}
    for d in ("home", "cache", "work"):
        (tmp_path / d).mkdir()
    machine = {"PALLET_HOME": str(tmp_path / "home"), "PALLET_CACHE": str(tmp_path / "cache"),
               "PALLET_STACK_TMPDIR": str(tmp_path / "work"), "PALLET_PASSWORD": "patch-day"}
    debs = tmp_path / "debs"
    debs.mkdir()
    old, new = tool_deb(debs, "1.0-1"), tool_deb(debs, "1.0-2")

    # the stack, locked while the archive had 1.0-1; the apps built on it, signed with provenance
    apt_archive.publish("debian", "bookworm", [*essential_debs, old])
    apt_archive.publish("debian", "bookworm-updates", [])
    stack_v1 = stack_file(tmp_path / "stack-v1", apt_archive, "0.1.0")
    pallet("stack", "lock", str(stack_v1), env=machine)
    assert "acme-tool:all=1.0-1" in stack_v1.with_suffix(".lock").read_text()
    pallet("stack", "build", str(stack_v1), env=machine, timeout=900)
    pallet("keygen", "--output-key-prefix", str(tmp_path / "release"), env=machine)
    refs = []
    for name in ("shop", "blog", "api"):
        app = tmp_path / "apps" / name
        app.mkdir(parents=True)
        (app / "hello.conf").write_text(f"Hi from {name}\n")
        ref = f"docker://{registry.host}/staging/{name}:1"
        pallet("build", str(app), "-t", ref, "--stack", str(stack_v1), "--buildpack", str(HELLO_BP),
               "--sign-key", str(tmp_path / "release.key"), "--builder-id", BUILDER, env=machine, timeout=900)
        refs.append(ref)

    # the advisory: acme-tool before 1.0-2, high
    advisories = tmp_path / "osv"
    advisories.mkdir()
    (advisories / "DSA-9001-1.json").write_text(json.dumps({
        "schema_version": "1.6.0", "id": "DSA-9001-1", "aliases": ["CVE-2026-9001"], "modified": "2026-12-06T00:00:00Z",
        "summary": "acme-tool: remote code execution",
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "acme-tool"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0-2"}]}]}],
        "database_specific": {"severity": "HIGH"}}))
    policy = tmp_path / "deploy.toml"
    policy.write_text(f'keys = ["release.pub"]\nbuilder_id = "{BUILDER}"\nrequire_sbom = true\n\n'
                      '[vulnerabilities]\nrefuse = "high"\n')

    # the gate already refuses them
    gate = pallet("verify", refs[0], "--policy", str(policy), "--advisories", str(advisories), env=machine,
                  check=False)
    assert gate.returncode == 1 and "advisory DSA-9001-1 (CVE-2026-9001) [high] affects acme-tool 1.0-1" in gate.stdout

    # 1. audit: every image, the package in the run image, fixed by a rebase
    audit = pallet("audit", *refs, "--advisories", str(advisories), "--json", env=machine)
    report = json.loads(audit.stdout)
    assert len(report["images"]) == 3 and report["clean"] == []
    for entry in report["images"]:
        assert entry["rebase"] is True and entry["rebuild"] is False
        [finding] = entry["findings"]
        assert (finding["id"], finding["package"], finding["installed"], finding["fixed"], finding["location"]) == \
            ("DSA-9001-1", "acme-tool", "1.0-1", "1.0-2", "run image")
    plan = tmp_path / "plan.json"
    plan.write_text(audit.stdout)

    # 2. the patched run image: the archive moves on, the stack is locked at 1.0-2
    apt_archive.publish("debian", "bookworm", [*essential_debs, new], date=1764633600)
    stack_v2 = stack_file(tmp_path / "stack-v2", apt_archive, "0.1.1")
    pallet("stack", "lock", str(stack_v2), env=machine)
    assert "acme-tool:all=1.0-2" in stack_v2.with_suffix(".lock").read_text()
    run_v2 = json.loads(pallet("stack", "build", str(stack_v2), "--json", env=machine, timeout=900).stdout)
    run_ref = f"docker://{registry.host}/stacks/tiny-run:0.1.1"
    pallet("copy", run_v2["run"]["reference"], run_ref, env=machine)

    # 3. rebase --from the audit, re-signed with the rebase's provenance
    rebased = json.loads(pallet("rebase", "--from", str(plan), "--run-image", run_ref,
                                "--sign-key", str(tmp_path / "release.key"), "--json", env=machine).stdout)
    assert [r["status"] for r in rebased["results"]] == ["rebased"] * 3

    # 4. audit again: nothing
    after = json.loads(pallet("audit", *refs, "--advisories", str(advisories), "--json", env=machine).stdout)
    assert after["images"] == [] and len(after["clean"]) == 3

    # 5. the gate (builder id through the rebase chain, SBOM, vulnerabilities) passes; promote
    for ref, result in zip(refs, rebased["results"]):
        gate = pallet("verify", ref, "--policy", str(policy), "--advisories", str(advisories), env=machine)
        assert f"{ref}@{result['digest']}: verified" in gate.stdout
        assert f"rebased from: {result['previousDigest']}" in gate.stdout
        prod = ref.replace("/staging/", "/prod/")
        promoted = pallet("promote", ref, prod, "--policy", str(policy), "--advisories", str(advisories),
                          env=machine)
        assert promoted.stdout.strip() == f"{prod}@{result['digest']}"
        pallet("verify", prod, "--policy", str(policy), "--advisories", str(advisories), env=machine)
