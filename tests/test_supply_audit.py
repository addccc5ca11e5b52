"""``pallet audit`` and the Debian version order it compares with (checked against dpkg itself)."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from builder.cli import main
from builder.oci.stores.layout import LayoutStore
from builder.oci.stores.registry import RegistryStore
from builder.supply import sbom
from builder.supply.audit import matching
from builder.supply.debversion import Version, compare
from tests.fixtures_registry import unique_repo
from tests.supplykit import Entry, files, os_layer, push

VERSIONS = [
    "1.0", "1.0~rc1", "1.0~rc1~git1", "1.0+b1", "1.0a", "1:0.1", "2.0", "1.0-1", "1.0-1~bpo12+1", "1.00", "0.9",
    "2.36-9+deb12u4", "2.36-9+deb12u10", "2.36-9", "2.36-10", "1.2.3~~", "1.2.3~", "1.2.3~a", "1.2.3a~",
    "1.2.3-0", "7.88.1-10+deb12u5", "1:7.88.1-10", "9.2p1-2+deb12u3", "1.0.0+dfsg-1", "1.0.0+dfsg1-1",
    "1.0.0-1.1", "1.0.0-1+b1", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "0~git20200101-1", "0.0.0~20200101",
    "10", "9", "1.a", "1.+", "1.~", "1..", "2:1", "1:2", "1.0-a", "1.0-0a", "1.0-rc1", "1.0-1-1", "1.0.", "1.0-",
    "4.18.2", "4.18.10", "v1.8.0", "0:1.0", "1.0-0", "1.0+", "1.0.0", "1.0.0.0", "1-2-3",
]


def test_known_orderings():
    assert compare("1.0~rc1", "1.0") < 0 < compare("1.0+b1", "1.0")
    assert compare("1:0.1", "2.0") > 0 and compare("1.00", "1.0") == 0 and compare("0:1.0", "1.0") == 0
    assert sorted(["1.0a", "1.0", "1.0~rc1", "1.0+b1"], key=Version.parse) == ["1.0~rc1", "1.0", "1.0a", "1.0+b1"]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_against_dpkg_compare_versions():
    rng = random.Random(7)
    alphabet = "0123456789ab~+.:"
    made = set()
    while len(made) < 40:  # odd but valid versions: digit first, at most one epoch
        body = "".join(rng.choice(alphabet.replace(":", "")) for _ in range(rng.randint(1, 6)))
        rev = "".join(rng.choice("0123456789a~+.") for _ in range(rng.randint(0, 3)))
        epoch = f"{rng.randint(0, 2)}:" if rng.random() < 0.2 else ""
        made.add(f"{epoch}{rng.randint(0, 3)}{body}" + (f"-{rev}" if rev else ""))

    def valid(v: str) -> bool:  # dpkg refuses to compare what it cannot parse ("1.0-": empty revision)
        return subprocess.run(["dpkg", "--validate-version", v], capture_output=True).returncode == 0

    ours = [v for v in VERSIONS if valid(v)]
    assert "1.0-" not in ours and len(ours) > 50
    pairs = list(itertools.combinations(ours, 2)) + list(itertools.combinations(sorted(filter(valid, made)), 2))[:500]

    def dpkg_agrees(pair: tuple[str, str]) -> tuple[str, str, str] | None:
        a, b = pair
        rel = {-1: "lt", 0: "eq", 1: "gt"}[compare(a, b)]
        ok = subprocess.run(["dpkg", "--compare-versions", a, rel, b], capture_output=True).returncode == 0
        return None if ok else (a, rel, b)

    with ThreadPoolExecutor(max_workers=8) as pool:
        wrong = [r for r in pool.map(dpkg_agrees, pairs) if r]
    assert len(pairs) > 1500 and wrong == []


def test_matching_is_pure():
    listed = [sbom.Listed("openssl", "3.0.11-1~deb12u2", "pkg:deb/debian/openssl@3.0.11-1~deb12u2"),
              sbom.Listed("libssl3", "3.0.11-1~deb12u2", "pkg:deb/debian/libssl3@3.0.11-1~deb12u2"),
              sbom.Listed("Flask", "3.0.3", "pkg:pypi/flask@3.0.3")]
    assert [m.name for m in matching(listed, "openssl")] == ["openssl"]
    assert matching(listed, "openssl", below="3.0.11-1~deb12u2") == []
    assert [m.version for m in matching(listed, "openssl", below="3.0.13-1~deb12u1")] == ["3.0.11-1~deb12u2"]
    assert [m.name for m in matching(listed, "flask")] == ["Flask"]
    # each ecosystem in its own order: PEP 440 puts 3.0.3 after 3.0.3rc1, dpkg's order would not
    assert matching(listed, "flask", below="3.0.3rc1") == []
    assert [m.version for m in matching(listed, "flask", below="3.0.10")] == ["3.0.3"]


def test_audit_across_images(registry, tmp_path, capsys):
    repo = unique_repo("supply/audit")
    store = RegistryStore(registry.host, repo)
    old = push(store, [os_layer()], tag="old")  # openssl 3.0.11-1~deb12u2
    patched_status = os_layer()[3].data.replace(b"3.0.11-1~deb12u2", b"3.0.13-1~deb12u1")
    new = push(store, [os_layer(), [Entry("var/lib/dpkg/status", patched_status)]], tag="new")
    sbom.attach_sbom(store, new.digest)  # one image has its SBOM attached, the other not
    lay = LayoutStore(tmp_path / "lay")
    push(lay, [files({"etc/motd": b"no packages here"})], tag="v1")
    refs = [f"docker://{registry.host}/{repo}:old", f"docker://{registry.host}/{repo}:new", f"oci:{tmp_path}/lay:v1"]

    assert main(["audit", *refs, "--package", "openssl", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [e["reference"] for e in found] == [f"{refs[0]}@{old.digest}", f"{refs[1]}@{new.digest}"]
    assert found[0]["sbom"] == "computed" and found[1]["sbom"].startswith("attached (cyclonedx, referrer sha256:")
    assert found[0]["packages"] == [{"name": "openssl", "version": "3.0.11-1~deb12u2",
                                     "purl": "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"}]

    assert main(["audit", *refs, "--package", "openssl", "--below", "3.0.13-1~deb12u1", "--json"]) == 0
    below = json.loads(capsys.readouterr().out)
    assert [e["digest"] for e in below] == [old.digest]

    assert main(["audit", *refs, "--package", "openssl", "--below", "3.0.13-1~deb12u1"]) == 0
    assert capsys.readouterr().out == f"{refs[0]}@{old.digest}\topenssl 3.0.11-1~deb12u2\n"
    assert main(["audit", refs[2], "--package", "openssl"]) == 0
    assert "none of the 1 image(s) contains openssl" in capsys.readouterr().err
