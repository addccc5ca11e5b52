"""Advisories in: the version orders per ecosystem, OSV records read (directory or zip) and matched,
and ``pallet audit --advisories`` saying per image what is affected and what fixes it."""

from __future__ import annotations

import json
import zipfile

import pytest

from builder.cli import main
from builder.oci.copy import copy_image
from builder.oci.stores.layout import LayoutStore
from builder.oci.stores.registry import RegistryStore
from builder.supply import osv, pepversion, semver, versions
from builder.supply.advisories import Index, Installed, affected_by
from builder.supply.audit import APP_LAYERS, RUN_IMAGE, PackageReader
from builder.supply.errors import SupplyError
from builder.supply.osv import AdvisoryError
from tests.fixtures_registry import unique_repo
from tests.supplykit import Entry, app_layer, files, os_layer, push

# -- version orders ------------------------------------------------------------------------------


def test_semver_order_of_the_spec():
    # semver.org section 11's own example, shuffled, plus Go's v prefix and a pseudo-version
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
               "1.0.0-rc.1", "1.0.0", "v1.0.1", "1.2.0", "1.10.0", "2.0.0"]
    shuffled = ordered[::-1][3:] + ordered[::-1][:3]
    assert sorted(shuffled, key=semver.Version.parse) == ordered
    assert semver.compare("v0.0.0-20240101120000-abcdef123456", "0.0.0") < 0
    assert semver.compare("1.0.0+build.5", "1.0.0") == 0
    with pytest.raises(semver.InvalidVersion):
        semver.Version.parse("1.0.0.0")


def test_pep440_order_is_packaging_s():
    assert sorted(["1.0", "1.0.post1", "1.0a1", "1.0.dev0", "1!0.1", "1.0rc1"], key=pepversion.parse) == \
        ["1.0.dev0", "1.0a1", "1.0rc1", "1.0", "1.0.post1", "1!0.1"]
    assert versions.compare("pypi", "2.0", "10.0") < 0
    # dpkg's order would say otherwise: each ecosystem has its own
    assert versions.compare("deb", "1.0~rc1", "1.0") < 0 and versions.compare("npm", "1.0.0-rc1", "1.0.0") < 0
    assert versions.compare("pypi", "1.0rc1", "1.0") < 0 and versions.compare("deb", "1.0rc1", "1.0") > 0


# -- OSV records ---------------------------------------------------------------------------------

def record(id_: str, ecosystem: str, name: str, *events: dict, versions_: list[str] | None = None,
           **extra) -> dict:
    aff: dict = {"package": {"ecosystem": ecosystem, "name": name}, "ranges": [{"type": "ECOSYSTEM",
                                                                               "events": list(events)}]}
    if versions_ is not None:
        aff["versions"] = versions_
    return {"schema_version": "1.6.0", "id": id_, "modified": "2024-01-01T00:00:00Z", "affected": [aff], **extra}


PAM = record("DSA-5999-1", "Debian:12", "pam", {"introduced": "0"}, {"fixed": "1.5.2-6+deb12u2"},
             aliases=["CVE-2024-22365"], severity=[{"type": "CVSS_V3",
                                                    "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}])
PAM_13 = record("DEBIAN-CVE-2024-0", "Debian:13", "pam", {"introduced": "0"}, {"fixed": "9.9-1"})
FLASK = record("GHSA-m2qf-hxjv-5gpq", "PyPI", "Flask", {"introduced": "0"}, {"fixed": "3.0.4"},
               aliases=["CVE-2023-30861"], database_specific={"severity": "MODERATE"})
OPENSSL_NOFIX = record("DEBIAN-CVE-2024-9", "Debian:12", "openssl", {"introduced": "0"})


def test_records_from_a_directory_and_a_zip(tmp_path):
    d = tmp_path / "osv"
    (d / "sub").mkdir(parents=True)
    (d / "DSA-5999-1.json").write_text(json.dumps(PAM))
    (d / "sub" / "GHSA.json").write_text(json.dumps(FLASK))
    (d / "README.txt").write_text("not a record, not read")
    z = tmp_path / "all.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("DSA-5999-1.json", json.dumps(PAM))
        zf.writestr("GHSA.json", json.dumps(FLASK))
    for path in (d, z):
        got = {a.id: a for a in osv.load(path)}
        assert set(got) == {"DSA-5999-1", "GHSA-m2qf-hxjv-5gpq"}
        assert got["DSA-5999-1"].severity == "critical"   # from the CVSS 3.1 vector (9.8)
        assert got["GHSA-m2qf-hxjv-5gpq"].severity == "medium"  # GitHub's own label
        assert got["DSA-5999-1"].affected[0].ranges[0].events == (("introduced", "0"), ("fixed", "1.5.2-6+deb12u2"))


def test_unreadable_records_are_errors_that_name_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AdvisoryError, match="bad.json: not JSON"):
        osv.load(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"affected": []}))
    with pytest.raises(AdvisoryError, match="bad.json: not an OSV record"):
        osv.load(tmp_path)
    with pytest.raises(AdvisoryError, match="no such file"):
        osv.load(tmp_path / "missing")
    assert issubclass(AdvisoryError, SupplyError)


def test_range_evaluation():
    def affected(events, version, kind="deb", listed=()):
        aff = osv.Affected("x", "p", (osv.Range("ECOSYSTEM", tuple(events)),), frozenset(listed))
        return affected_by(aff, version, versions.comparator(kind))

    two_ranges = [("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.3")]
    assert affected(two_ranges, "0.9") == (False, None)
    assert affected(two_ranges, "1.1") == (True, "1.2")
    assert affected(two_ranges, "1.2") == (False, None)
    assert affected(two_ranges, "2.1") == (True, "2.3")
    assert affected([("introduced", "0"), ("last_affected", "1.5")], "1.5") == (True, None)   # no fix
    assert affected([("introduced", "0"), ("last_affected", "1.5")], "1.6") == (False, None)
    assert affected([("introduced", "0"), ("fixed", "1.0.0")], "1.0.0-rc1", "npm") == (True, "1.0.0")
    assert affected([("introduced", "0"), ("fixed", "1.0")], "1.0rc1", "pypi") == (True, "1.0")
    assert affected([], "3.1", listed=["3.1"]) == (True, None)


def test_matching_debian_by_source_package_and_release():
    index = Index([osv.parse_record(r) for r in (PAM, PAM_13, FLASK, OPENSSL_NOFIX)])
    pkgs = [
        Installed("libpam0g", "1.5.2-6+deb12u1", "pkg:deb/debian/libpam0g@1.5.2-6+deb12u1?arch=amd64&distro=debian-12",
                  source="pam", source_version="1.5.2-6+deb12u1", location=RUN_IMAGE),
        Installed("libpam-modules", "1.5.2-6+deb12u2",  # already fixed
                  "pkg:deb/debian/libpam-modules@1.5.2-6+deb12u2?arch=amd64&distro=debian-12",
                  source="pam", source_version="1.5.2-6+deb12u2", location=RUN_IMAGE),
        Installed("openssl", "3.0.11-1~deb12u2", "pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=debian-12",
                  location=RUN_IMAGE),
        Installed("Flask", "3.0.3", "pkg:pypi/flask@3.0.3", location=APP_LAYERS),
        Installed("pam", "1.5.2-6", "pkg:npm/pam@1.5.2-6", location=APP_LAYERS),  # same name, other ecosystem
    ]
    found = index.match(pkgs)
    got = [(f.id, f.package, f.source, f.installed, f.fixed, f.severity, f.location) for f in found]
    assert got == [
        ("GHSA-m2qf-hxjv-5gpq", "Flask", None, "3.0.3", "3.0.4", "medium", APP_LAYERS),
        ("DSA-5999-1", "libpam0g", "pam", "1.5.2-6+deb12u1", "1.5.2-6+deb12u2", "critical", RUN_IMAGE),
        ("DEBIAN-CVE-2024-9", "openssl", "openssl", "3.0.11-1~deb12u2", None, "unknown", RUN_IMAGE),
    ]
    assert found[1].aliases == ("CVE-2024-22365",)
    # Debian 13's record does not apply to a Debian 12 package (it would say "fixed in 9.9-1")


def test_go_and_npm_names():
    go = osv.parse_record(record("GO-2024-1", "Go", "stdlib", {"introduced": "0"}, {"fixed": "1.21.6"}))
    mux = osv.parse_record(record("GO-2024-2", "Go", "github.com/gorilla/mux", {"introduced": "0"},
                                  {"fixed": "1.8.1"}))
    types = osv.parse_record(record("GHSA-x", "npm", "@types/node", {"introduced": "20.0.0"}, {"fixed": "20.1.1"}))
    index = Index([go, mux, types])
    found = index.match([Installed("stdlib", "go1.21.5", "pkg:golang/stdlib@1.21.5"),
                         Installed("github.com/gorilla/mux", "v1.8.0", "pkg:golang/github.com/gorilla/mux@v1.8.0"),
                         Installed("@types/node", "20.1.0", "pkg:npm/%40types/node@20.1.0")])
    assert sorted((f.id, f.fixed) for f in found) == [("GHSA-x", "20.1.1"), ("GO-2024-1", "1.21.6"),
                                                     ("GO-2024-2", "1.8.1")]


# -- pallet audit --advisories -------------------------------------------------------------------

PAM_STATUS = b"""Package: libpam0g
Status: install ok installed
Architecture: amd64
Source: pam
Version: 1.5.2-6+deb12u1

"""


def run_layer(status_extra: bytes = PAM_STATUS) -> list[Entry]:
    layer = os_layer()
    return [e if e.path != "var/lib/dpkg/status" else Entry(e.path, e.data + b"\n" + status_extra) for e in layer]


def write_records(path, *records) -> None:
    path.mkdir(exist_ok=True)
    for r in records:
        (path / f"{r['id']}.json").write_text(json.dumps(r))


def test_audit_says_what_is_affected_and_what_fixes_it(registry, tmp_path, capsys):
    base_repo, app_repo = unique_repo("supply/run"), unique_repo("supply/apps")
    bases = RegistryStore(registry.host, base_repo)
    run = push(bases, [run_layer()], tag="v1")
    apps = RegistryStore(registry.host, app_repo)
    copy_image(bases, run.digest, apps, None)
    base_note = {"org.opencontainers.image.base.digest": run.digest,
                 "org.opencontainers.image.base.name": f"docker://{registry.host}/{base_repo}:v1"}
    # "web" has Flask in its own layers; "plain" only what the run image has
    web = push(apps, [app_layer()], tag="web", base=run, annotations=base_note)
    plain = push(apps, [files({"workspace/app.sh": b"echo hi\n"})], tag="plain", base=run, annotations=base_note)
    # "flaskonly": Flask on a run image without the vulnerable pam
    clean_run = push(bases, [os_layer()], tag="clean")
    copy_image(bases, clean_run.digest, apps, None)
    flaskonly = push(apps, [app_layer()], tag="flaskonly", base=clean_run,
                     annotations={**base_note, "org.opencontainers.image.base.digest": clean_run.digest})
    adv = tmp_path / "osv"
    alpine = record("ALPINE-CVE-1", "Alpine:v3.19", "pam", {"introduced": "0"}, {"fixed": "9"})
    write_records(adv, PAM, PAM_13, FLASK, OPENSSL_NOFIX, alpine)
    refs = [f"docker://{registry.host}/{app_repo}:{t}" for t in ("web", "plain", "flaskonly")]

    assert main(["audit", *refs, "--advisories", str(adv), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["advisories"]["count"] == 5 and report["clean"] == []
    assert report["advisories"]["notMatched"] == {"Alpine:v3.19": 1}  # said, never silently dropped
    by_ref = {e["reference"]: e for e in report["images"]}
    assert set(by_ref) == {f"{refs[0]}@{web.digest}", f"{refs[1]}@{plain.digest}", f"{refs[2]}@{flaskonly.digest}"}
    web_entry = by_ref[f"{refs[0]}@{web.digest}"]
    assert (web_entry["rebase"], web_entry["rebuild"]) == (True, True)
    pam = next(f for f in web_entry["findings"] if f["id"] == "DSA-5999-1")
    assert pam == {"id": "DSA-5999-1", "aliases": ["CVE-2024-22365"], "package": "libpam0g", "source": "pam",
                   "installed": "1.5.2-6+deb12u1", "fixed": "1.5.2-6+deb12u2", "severity": "critical",
                   "ecosystem": "Debian:12", "location": "run image",
                   "purl": "pkg:deb/debian/libpam0g@1.5.2-6%2Bdeb12u1?arch=amd64&distro=debian-12"}
    flask = next(f for f in web_entry["findings"] if f["id"] == "GHSA-m2qf-hxjv-5gpq")
    assert (flask["location"], flask["fixed"], flask["severity"]) == ("app layers", "3.0.4", "medium")
    nofix = next(f for f in web_entry["findings"] if f["id"] == "DEBIAN-CVE-2024-9")
    assert nofix["fixed"] is None and nofix["location"] == "run image"
    assert (by_ref[f"{refs[1]}@{plain.digest}"]["rebase"], by_ref[f"{refs[1]}@{plain.digest}"]["rebuild"]) == \
        (True, False)
    assert (by_ref[f"{refs[2]}@{flaskonly.digest}"]["rebase"], by_ref[f"{refs[2]}@{flaskonly.digest}"]["rebuild"]) \
        == (False, True)

    # the text report: one line per image, one per finding
    assert main(["audit", refs[1], "--advisories", str(adv)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{refs[1]}@{plain.digest}\tfix: rebase"
    assert "DSA-5999-1 (CVE-2024-22365) critical: libpam0g (source pam) 1.5.2-6+deb12u1, fixed in " \
           "1.5.2-6+deb12u2; in the run image" in out

    # the JSON feeds rebase --from: the image only a rebuild fixes is listed, not rebased
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(report))
    push(bases, [run_layer(PAM_STATUS.replace(b"deb12u1", b"deb12u2"))], tag="v2")
    code = main(["rebase", "--from", str(plan), "--run-image", f"docker://{registry.host}/{base_repo}:v2", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    status = {r["reference"].split("@")[0].rsplit(":", 1)[-1]: r["status"] for r in result["results"]}
    assert status == {"web": "rebased", "plain": "rebased", "flaskonly": "not rebased"}
    skipped = next(r for r in result["results"] if r["status"] == "not rebased")
    assert "rebuild it" in skipped["reason"]

    # after the rebase: pam is fixed; web still needs its rebuild for Flask
    assert main(["audit", *refs[:2], "--advisories", str(adv), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    ids = {e["reference"].split("@")[0]: sorted(f["id"] for f in e["findings"]) for e in after["images"]}
    assert ids == {refs[0]: ["DEBIAN-CVE-2024-9", "GHSA-m2qf-hxjv-5gpq"], refs[1]: ["DEBIAN-CVE-2024-9"]}


def test_layers_are_read_once_per_digest(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    run = push(store, [run_layer()], tag="run")
    note = {"org.opencontainers.image.base.digest": run.digest, "org.opencontainers.image.base.name": "x"}
    apps = [push(store, [files({f"workspace/{i}.txt": b"x"})], tag=f"a{i}", base=run, annotations=note)
            for i in range(5)]
    reader = PackageReader()
    reader._annotated[("x", run.digest)] = 1  # the base's layer count ("x" is no store to open)
    for app in apps:
        packages, where, has_run = reader.read(store, app.digest)
        assert where == "computed" and has_run
        assert {p.name: p.location for p in packages}["libpam0g"] == RUN_IMAGE
    assert reader.layers_read == 1 + 5  # the run image's layer once, each app's own layer once


def test_usage_errors(tmp_path, capsys):
    lay = LayoutStore(tmp_path / "lay")
    push(lay, [files({"etc/motd": b"hi"})], tag="v1")
    ref = f"oci:{tmp_path}/lay:v1"
    assert main(["audit", ref]) == 2
    assert "--advisories PATH" in capsys.readouterr().err
    assert main(["audit", ref, "--advisories", str(tmp_path / "nope")]) != 0
    assert "no such file" in capsys.readouterr().err
