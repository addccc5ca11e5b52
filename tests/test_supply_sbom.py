"""SBOMs: read from real layers (whiteouts and all), deterministic, valid against the official
CycloneDX and SPDX schemas (through their maintained libraries), attached as OCI 1.1 referrers."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pytest

from builder.cli import main
from builder.oci.image import load_image
from builder.oci.stores.layout import LayoutStore
from builder.oci.stores.registry import RegistryStore, referrers_tag
from builder.supply import gobuildinfo, layerfiles, sbom
from tests.fixtures_registry import unique_repo
from tests.supplykit import Entry, app_layer, files, go_elf, os_layer, push, tar_layer

STATUS_D = b"""Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
"""


def rich_image(store, tag="v1"):
    """Debian packages, Python, npm and a Go binary; a later layer upgrades, deletes and hides."""
    go_bin = go_elf()
    upper = [
        # dpkg upgraded openssl: the status file is replaced as a whole.
        Entry("var/lib/dpkg/status", os_layer()[3].data.replace(b"3.0.11-1~deb12u2", b"3.0.13-1~deb12u1")),
        Entry("var/lib/dpkg/status.d/base-files", STATUS_D),
        Entry("var/lib/dpkg/status.d/base-files.md5sums", b"0123 /etc/debian_version\n"),
        # requests was uninstalled by a later layer (a whiteout of its dist-info directory).
        Entry("layers/pallet_python/packages/lib/python3.11/site-packages/.wh.requests-2.31.0.dist-info"),
        Entry("layers/pallet_go/bin/hello", go_bin, mode=0o755),
        Entry("layers/pallet_go/bin/not-scanned", go_bin, mode=0o644),  # not executable
        Entry("workspace/data/blob.bin", b"\x7fELF" + b"\x00" * 70000, mode=0o755),  # ELF, not Go
    ]
    return push(store, [os_layer(), app_layer(), upper], tag=tag)


def by_purl(inv):
    return {p.purl: p for p in inv.packages}


def test_collect_reads_what_is_installed(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    desc = rich_image(store)
    inv = sbom.collect(load_image(store, "v1"), "registry.example/acme/web")
    assert inv.digest == desc.digest and inv.platform == "linux/amd64"
    assert inv.distro == sbom.Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
    pkgs = by_purl(inv)

    libc = pkgs["pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"]
    assert (libc.name, libc.version, libc.arch, libc.source) == ("libc6", "2.36-9+deb12u4", "amd64", "glibc")
    assert libc.licenses == ("LGPL-2.1+", "GPL-2+") and libc.locations == ("/var/lib/dpkg/status",)
    assert "pkg:deb/debian/openssl@3.0.13-1~deb12u1?arch=amd64&distro=debian-12" in pkgs  # the upgrade
    assert not any("3.0.11" in p for p in pkgs)
    assert pkgs["pkg:deb/debian/openssl@3.0.13-1~deb12u1?arch=amd64&distro=debian-12"].licenses == ("Apache-2.0",)
    assert pkgs["pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12"].licenses == ()
    base = pkgs["pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"]
    assert base.locations == ("/var/lib/dpkg/status.d/base-files",)
    assert not any("/gone@" in p for p in pkgs)  # not installed

    flask = pkgs["pkg:pypi/flask@3.0.3"]
    assert flask.name == "Flask" and flask.expression == "BSD-3-Clause"
    assert flask.locations[0].startswith("/layers/pallet_python/python/lib/python3.11/site-packages/")
    assert not any(p.startswith("pkg:pypi/requests") for p in pkgs)  # whited out

    express = pkgs["pkg:npm/express@4.18.2"]
    assert express.locations == ("/workspace/node_modules/express/package.json", "/workspace/package-lock.json")
    assert "pkg:npm/%40types/node@20.1.0" in pkgs
    assert not any(p.startswith(("pkg:npm/jest", "pkg:npm/not-a-package")) for p in pkgs)  # dev; not a package

    go = {p: v for p, v in pkgs.items() if p.startswith("pkg:golang/")}
    assert set(go) == {"pkg:golang/stdlib@1.21.5", "pkg:golang/example.com/hello@v1.4.0",
                       "pkg:golang/github.com/gorilla/mux@v1.8.0", "pkg:golang/golang.org/x/net@v0.17.0"}
    assert all(p.locations == ("/layers/pallet_go/bin/hello",) for p in go.values())


def test_purls_agree_with_packageurl_python(tmp_path):
    packageurl = pytest.importorskip("packageurl")
    store = LayoutStore(tmp_path / "lay")
    rich_image(store)
    for p in sbom.collect(load_image(store, "v1")).packages:
        parsed = packageurl.PackageURL.from_string(p.purl)
        assert parsed.to_string() == p.purl
        assert parsed.type == p.ecosystem
        if p.name == "stdlib":  # as syft writes it: the Go version without its "go" prefix
            assert parsed.version == p.version.removeprefix("go")
        else:
            assert parsed.version == (None if p.version == "(devel)" else p.version)


def test_whiteouts_and_replacements():
    def layer(entries):
        return io.BytesIO(gzip.compress(tar_layer(entries)))

    pick = lambda e: layerfiles.LINK if e.type == "symlink" else (layerfiles.READ if e.type == "file" else None)  # noqa: E731
    got = layerfiles.read_files([
        layer([Entry("a/x", b"1"), Entry("a/y", b"2"), Entry("b/z", b"3"), Entry("c/w", b"4"), Entry("d", b"5")]),
        layer([Entry("a/.wh..wh..opq"), Entry("a/new", b"6"), Entry("b/.wh.z"), Entry("c", b"file now"),
               Entry("d", link="c")]),
    ], pick)
    assert {p: f.data for p, f in got.items() if f.kind == layerfiles.READ} == {"a/new": b"6", "c": b"file now"}
    assert got["d"].target == "c" and layerfiles.resolve_link(got, "d").data == b"file now"
    # A whiteout hides only what is below, never its own layer's entries.
    got = layerfiles.read_files([layer([Entry("k/v", b"1")]), layer([Entry("k/v", b"2"), Entry("k/.wh.v")])], pick)
    assert got["k/v"].data == b"2"


def test_go_build_info_formats():
    for inline in (True, False):
        info = gobuildinfo.read_build_info(io.BytesIO(go_elf(inline=inline)))
        assert info.go_version == "go1.21.5" and info.path == "example.com/hello/cmd/hello"
        assert info.main == gobuildinfo.Module("example.com/hello", "v1.4.0", "h1:abc=")
        assert [(d.path, d.effective.version) for d in info.deps] == [
            ("github.com/gorilla/mux", "v1.8.0"), ("golang.org/x/net", "v0.17.0")]
        assert ("CGO_ENABLED", "0") in info.settings
    assert gobuildinfo.read_build_info(io.BytesIO(b"\x7fELF" + b"\x00" * 100)) is None


@pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"), reason="no real Go binary here")
def test_go_build_info_of_a_real_binary():
    with open("/usr/bin/docker-registry", "rb") as f:
        info = gobuildinfo.read_build_info(f)
    assert info is not None and info.go_version.startswith("go1.")
    assert info.path == "github.com/docker/distribution/cmd/registry"


def test_documents_are_deterministic(tmp_path, monkeypatch):
    store = LayoutStore(tmp_path / "lay")
    desc = rich_image(store)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    one = sbom.collect(load_image(store, "v1"), "web")
    two = sbom.collect(load_image(store, desc.digest), "web")
    for fmt in ("cyclonedx", "spdx"):
        assert sbom.document(one, fmt) == sbom.document(two, fmt)
    cdx = sbom.cyclonedx(one)
    assert cdx["serialNumber"] == f"urn:uuid:{sbom.serial_uuid(desc.digest)}"
    assert cdx["metadata"]["timestamp"] == "1980-01-01T00:00:01Z"
    assert sbom.spdx(one)["creationInfo"]["created"] == "1980-01-01T00:00:01Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert sbom.cyclonedx(one)["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    other = push(store, [files({"x": b"y"})], tag="other")
    assert sbom.cyclonedx(sbom.collect(load_image(store, "other")))["serialNumber"] != cdx["serialNumber"]
    assert other


def _cyclonedx_errors(data: str):
    validation = pytest.importorskip("cyclonedx.validation.json")
    from cyclonedx.schema import SchemaVersion

    return validation.JsonStrictValidator(SchemaVersion.V1_6).validate_str(data)


def _spdx_errors(path: Path):
    pytest.importorskip("spdx_tools")
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def test_cyclonedx_is_valid_against_the_official_schema(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    rich_image(store)
    inv = sbom.collect(load_image(store, "v1"), "registry.example/acme/web")
    data = sbom.document(inv, "cyclonedx").decode()
    assert _cyclonedx_errors(data) is None
    doc = json.loads(data)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    comps = {c["purl"]: c for c in doc["components"] if "purl" in c}
    libc = comps["pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"]
    assert libc["licenses"] == [{"expression": "LGPL-2.1-or-later AND GPL-2.0-or-later"}]
    assert {"name": "deb:source", "value": "glibc"} in libc["properties"]
    assert doc["components"][0]["type"] == "operating-system"
    # The validator is real: a broken document is refused.
    broken = dict(doc, components=[dict(doc["components"][1], type="not-a-type")])
    assert _cyclonedx_errors(json.dumps(broken)) is not None


def test_spdx_is_valid_against_spdx_tools(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    rich_image(store)
    inv = sbom.collect(load_image(store, "v1"), "registry.example/acme/web")
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(sbom.document(inv, "spdx"))
    assert _spdx_errors(path) == []
    doc = json.loads(path.read_text())
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    names = {p["name"]: p for p in doc["packages"]}
    assert names["libc6"]["licenseDeclared"] == "LGPL-2.1-or-later AND GPL-2.0-or-later"
    assert names["Flask"]["licenseDeclared"] == "BSD-3-Clause"
    assert len(doc["relationships"]) == len(doc["packages"])  # DESCRIBES + one CONTAINS each
    broken = dict(doc, packages=[dict(doc["packages"][1], licenseDeclared="LicenseRef-undeclared")])
    bad = tmp_path / "broken.spdx.json"
    bad.write_text(json.dumps(broken))
    assert _spdx_errors(bad)


def test_unmapped_licences_become_declared_license_refs(tmp_path):
    store = LayoutStore(tmp_path / "lay")
    odd = (b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
           b"Files: *\nLicense: public-domain\n\nFiles: x/*\nLicense: GPL-2+ with OpenSSL exception\n")
    push(store, [os_layer() + [Entry("usr/share/doc/tzdata/copyright", odd)]], tag="odd")
    inv = sbom.collect(load_image(store, "odd"))
    path = tmp_path / "odd.spdx.json"
    path.write_bytes(sbom.document(inv, "spdx"))
    assert _spdx_errors(path) == []
    doc = json.loads(path.read_text())
    refs = {e["name"] for e in doc["hasExtractedLicensingInfos"]}
    assert refs == {"public-domain", "GPL-2+ with OpenSSL exception"}
    assert _cyclonedx_errors(sbom.document(inv, "cyclonedx").decode()) is None


def test_attach_and_print_sbom(registry, tmp_path, capsys):
    repo = unique_repo("supply/sbom")
    store = RegistryStore(registry.host, repo)
    desc = rich_image(store)
    ref = f"docker://{registry.host}/{repo}:v1"

    # Nothing attached yet: computed, and stderr says so.
    assert main(["sbom", ref]) == 0
    out = capsys.readouterr()
    assert "computed from its layers" in out.err and json.loads(out.out)["bomFormat"] == "CycloneDX"

    attached = sbom.attach_sbom(store, desc.digest, name=f"{registry.host}/{repo}")
    listed = {r.artifact_type: r.digest for r in store.referrers(desc.digest)}
    assert listed == {"application/vnd.cyclonedx+json": attached["cyclonedx"].digest,
                      "application/spdx+json": attached["spdx"].digest}
    assert referrers_tag(desc.digest) in store.list_tags()  # the fallback the registry store keeps
    again = sbom.attach_sbom(store, desc.digest, name=f"{registry.host}/{repo}")
    assert {k: v.digest for k, v in again.items()} == {k: v.digest for k, v in attached.items()}
    assert len(store.referrers(desc.digest)) == 2

    for fmt in ("cyclonedx", "spdx"):
        assert main(["sbom", ref, "--format", fmt]) == 0
        out = capsys.readouterr()
        assert f"referrer {attached[fmt].digest}" in out.err
        data, _ = sbom.find_sbom(store, desc.digest, fmt)
        assert out.out.encode() == data
    assert "pkg:golang/golang.org/x/net@v0.17.0" in data.decode()


def test_sbom_attach_command_in_a_layout(tmp_path, capsys):
    store = LayoutStore(tmp_path / "lay")
    desc = rich_image(store)
    assert main(["sbom", f"oci:{tmp_path}/lay:v1", "--attach", "--format", "spdx"]) == 0
    out = capsys.readouterr()
    assert "attached to" in out.err and json.loads(out.out)["spdxVersion"] == "SPDX-2.3"
    kinds = sorted(r.artifact_type for r in store.referrers(desc.digest))
    assert kinds == ["application/spdx+json", "application/vnd.cyclonedx+json"]
    assert main(["sbom", f"oci:{tmp_path}/lay:v1"]) == 0
    assert "the SBOM attached to" in capsys.readouterr().err


# -- the per-layer SBOM of the CNB SBOM layer ------------------------------------------------


def test_layer_document_is_compact_valid_and_names_each_component():
    layer = gzip.compress(tar_layer(app_layer()), mtime=0)
    doc = sbom.layer_sbom(io.BytesIO(layer), name="/layers/pallet_nodejs/modules", diff_id="sha256:" + "1" * 64)
    assert doc is not None and b"\n" not in doc and b": " not in doc and b", " not in doc  # no indentation
    assert _cyclonedx_errors(doc.decode()) is None
    data = json.loads(doc)
    assert data["metadata"] == {"component": {"type": "file", "name": "/layers/pallet_nodejs/modules",
                                              "version": "sha256:" + "1" * 64}}
    comps = {c["purl"]: c for c in data["components"]}
    assert comps["pkg:npm/express@4.18.2"] == {"type": "library", "name": "express", "version": "4.18.2",
                                               "purl": "pkg:npm/express@4.18.2",
                                               "licenses": [{"expression": "MIT"}]}
    assert "pkg:pypi/flask@3.0.3" in comps and "pkg:npm/jest@29.0.0" not in comps  # dev: not installed
    # About the layer alone: no time, no tool version, nothing else that would change it.
    assert set(data) == {"bomFormat", "specVersion", "metadata", "components"}
    assert sbom.layer_sbom(io.BytesIO(layer), name="/layers/pallet_nodejs/modules",
                           diff_id="sha256:" + "1" * 64) == doc
    assert sbom.layer_sbom(io.BytesIO(gzip.compress(tar_layer(files({"layers/x/README": b"hi"})))),
                           name="/layers/x", diff_id="sha256:" + "2" * 64) is None


def _venv_layer(root: Path) -> Path:
    """A venv as the Python buildpack leaves one: made by ``venv``, with the dist-info of the
    distributions this Python has (their metadata is what an SBOM reads), a Go binary, a hard
    link, symlinks in and out of the tree and a name that looks like a whiteout."""
    import importlib.metadata
    import shutil
    import venv

    venv.EnvBuilder(symlinks=True, with_pip=False).create(root)
    site = next(root.glob("lib/python3*")) / "site-packages"
    for dist in importlib.metadata.distributions():
        src = Path(str(dist._path))  # type: ignore[attr-defined]
        if src.name.endswith(".dist-info") and not (site / src.name).exists():
            shutil.copytree(src, site / src.name)
    (root / "bin" / "hello").write_bytes(go_elf())
    (root / "bin" / "hello").chmod(0o755)
    os.link(root / "bin" / "hello", root / "bin" / "hello-again")
    (root / "bin" / "os-release").symlink_to("/etc/os-release")
    (site / ".wh.removed").write_text("not a whiteout in a directory")
    return root


@pytest.mark.parametrize("kind", ["venv", "node_modules"])
def test_layer_sbom_read_from_the_directory_is_the_layers(tmp_path, kind):
    """export reads the per-layer SBOM from the layer's directory: the same map of files, the
    same bytes, as reading the layer it writes (a real venv; npm's own node_modules tree)."""
    from builder.oci.layer import write_layer

    if kind == "venv":
        tree, prefix = _venv_layer(tmp_path / "venv"), "layers/pallet_python/venv"
    else:
        tree, prefix = Path("/usr/lib/node_modules/npm"), "layers/pallet_nodejs/modules"
        if not (tree / "node_modules").is_dir():
            pytest.skip("no npm installed here to take a node_modules tree from")
    blob = tmp_path / "layer.tar.gz"
    diff_id = write_layer(tree, blob, prefix=prefix).diff_id
    with open(blob, "rb") as f:
        from_tar = layerfiles.read_files([f], sbom._wanted, sbom._go_binary)
    assert len(from_tar) > 20
    assert layerfiles.read_dir(tree, prefix, sbom._wanted, sbom._go_binary) == from_tar
    with open(blob, "rb") as f:
        doc = sbom.layer_sbom(f, name="/" + prefix, diff_id=diff_id)
    assert doc is not None and sbom.layer_dir_sbom(tree, name="/" + prefix, diff_id=diff_id) == doc
    if kind == "venv":
        assert from_tar[f"{prefix}/bin/hello"].kind == layerfiles.ANALYSE
        assert b"pkg:golang/github.com/gorilla/mux@v1.8.0" in doc and b"pkg:pypi/" in doc


def test_a_python_distributions_non_ascii_metadata_is_read_as_text():
    """METADATA is UTF-8: a License naming its authors (pyarrow's, as Streamlit installs it) is
    text, not the email.header.Header that parsing bytes gave (an AttributeError ended the build)."""
    from builder.supply.apppackages import python_package

    data = ("Metadata-Version: 2.1\nName: naïve-pkg\nVersion: 1.0\nLicense: Copyright © 2024 Jöhn Döe\n"
            "Classifier: License :: OSI Approved :: Apache Software License\n\nA description: ü\n").encode()
    pkg = python_package(data, "venv/lib/python3.13/site-packages/naive_pkg-1.0.dist-info/METADATA")
    assert pkg is not None and (pkg.name, pkg.version) == ("naïve-pkg", "1.0")
    assert pkg.licenses == ("Copyright © 2024 Jöhn Döe", "Apache Software License")
    assert python_package(b"Name: x\nVersion: 1\nLicense: \xff\xfe\n", "m").licenses == ("\ufffd\ufffd",)
