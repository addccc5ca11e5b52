"""A rebase with a key attaches its own SLSA provenance, and ``verify --policy`` accepts the rebased
image only through an unbroken chain to a trusted build provenance that satisfies the policy."""

from __future__ import annotations

import base64
import json

from builder.cli import main
from builder.oci.copy import copy_image
from builder.oci.stores.registry import RegistryStore
from builder.supply import provenance, rebaseprov
from builder.supply.attach import ATTESTATIONS, read_attached
from builder.supply.sign import sign_image
from tests.fixtures_registry import unique_repo
from tests.supplykit import (BUILDER_ID, PASSWORD, SOURCE, Entry, files, key_pair, os_layer, prove, push,
                             signing_key, write_policy)


def patched(version: bytes) -> list[Entry]:
    status = os_layer()[3].data.replace(b"3.0.11-1~deb12u2", version)
    return [*os_layer()[:3], Entry("var/lib/dpkg/status", status), *os_layer()[4:]]


class Fleet:
    """Run images v1, v2, v3 in one repository; apps on v1 in another."""

    def __init__(self, registry, tmp_path, monkeypatch):
        self.host = registry.host
        self.key_file, self.pub = key_pair(tmp_path)
        self.other_key_file, _ = key_pair(tmp_path, "other")
        self.key, self.other_key = signing_key(self.key_file), signing_key(self.other_key_file)
        monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
        self.base_repo, self.app_repo = unique_repo("supply/runs"), unique_repo("supply/apps")
        self.bases = RegistryStore(registry.host, self.base_repo)
        self.v1 = push(self.bases, [os_layer()], tag="v1")
        self.v2 = push(self.bases, [patched(b"3.0.13-1~deb12u1")], tag="v2")
        self.v3 = push(self.bases, [patched(b"3.0.15-1~deb12u1")], tag="v3")
        self.apps = RegistryStore(registry.host, self.app_repo)
        copy_image(self.bases, self.v1.digest, self.apps, None)
        self.policy = write_policy(tmp_path, self.pub, builder_id=BUILDER_ID,
                                   source_repositories=["https://github.com/acme/*"])

    def run_ref(self, tag: str) -> str:
        return f"docker://{self.host}/{self.base_repo}:{tag}"

    def app(self, tag: str, content: bytes = b"print('hi')\n", *, key=None, **prove_kw):
        desc = push(self.apps, [files({"workspace/app.py": content})], tag=tag, base=self.v1,
                    annotations={"org.opencontainers.image.base.digest": self.v1.digest,
                                 "org.opencontainers.image.base.name": self.run_ref("v1")})
        prove(self.apps, desc.digest, key or self.key, name=f"{self.host}/{self.app_repo}", **prove_kw)
        return desc, f"docker://{self.host}/{self.app_repo}:{tag}"

    def rebase(self, ref: str, run_tag: str, *extra: str) -> str:
        assert main(["rebase", ref, "--run-image", self.run_ref(run_tag), *extra]) == 0
        return self.apps.resolve(ref.rsplit(":", 1)[1]).digest

    def verify(self, ref: str, capsys) -> dict:
        capsys.readouterr()
        code = main(["verify", ref, "--policy", str(self.policy), "--json"])
        result = json.loads(capsys.readouterr().out)
        assert (code == 0) == result["verified"]
        return result


def _rebase_statements(store, digest):
    att = read_attached(store, digest, ATTESTATIONS)
    out = []
    for _, a in att.attachments:
        st = json.loads(base64.b64decode(json.loads(a.payload)["payload"]))
        if rebaseprov.is_rebase(st):
            out.append((st, a.payload))
    return out


def test_rebase_attests_its_provenance_and_the_chain_verifies(registry, tmp_path, monkeypatch, capsys):
    f = Fleet(registry, tmp_path, monkeypatch)
    app, ref = f.app("web")
    assert f.verify(ref, capsys)["verified"]
    original_env = read_attached(f.apps, app.digest, ATTESTATIONS).attachments[0][1].payload

    first = f.rebase(ref, "v2", "--sign-key", str(f.key_file))
    [(st, _)] = _rebase_statements(f.apps, first)
    assert st["subject"] == [{"name": f"{f.host}/{f.app_repo}", "digest": {"sha256": first[7:]}}]
    bd = st["predicate"]["buildDefinition"]
    assert bd["buildType"] == rebaseprov.REBASE_BUILD_TYPE != provenance.BUILD_TYPE
    deps = {(d["name"], d["digest"]["sha256"]) for d in bd["resolvedDependencies"]}
    from builder.oci.digest import sha256
    assert deps == {("original-image", app.digest[7:]), ("original-provenance", sha256(original_env)[7:]),
                    ("previous-run-image", f.v1.digest[7:]), ("run-image", f.v2.digest[7:])}
    uris = {d["name"]: d.get("uri") for d in bd["resolvedDependencies"]}
    assert uris["run-image"] == f"pkg:oci/{f.base_repo.rsplit('/', 1)[1]}@{f.v2.digest}" \
        f"?repository_url={f.host}/{f.base_repo}"
    assert uris["original-image"].startswith("pkg:oci/") and app.digest in uris["original-image"]

    result = f.verify(ref, capsys)
    assert result["verified"], result["reasons"]
    assert result["digest"] == first

    # a chain of two rebases
    second = f.rebase(ref, "v3", "--sign-key", str(f.key_file))
    assert second != first
    result = f.verify(ref, capsys)
    assert result["verified"], result["reasons"]
    assert [link["original"] for link in result["rebasedFrom"]] == [first]
    assert [link["original"] for link in result["rebasedFrom"][0]["evidence"]["rebasedFrom"]] == [app.digest]

    # promote carries the chain: the destination verifies as the source did
    prod = f"docker://{f.host}/{unique_repo('supply/prod')}:web"
    assert main(["promote", ref, prod, "--policy", str(f.policy)]) == 0
    result = f.verify(prod, capsys)
    assert result["verified"], result["reasons"]
    assert result["digest"] == second
    assert main(["verify", prod, "--policy", str(f.policy)]) == 0
    text = capsys.readouterr().out
    assert f"rebased from: {first}" in text and f"rebased from: {app.digest}" in text and "link holds" in text


def test_unsigned_rebase_is_refused(registry, tmp_path, monkeypatch, capsys):
    f = Fleet(registry, tmp_path, monkeypatch)
    _, ref = f.app("web")
    f.rebase(ref, "v2")
    result = f.verify(ref, capsys)
    assert not result["verified"]
    assert any("no valid signature by a trusted key" in r for r in result["reasons"])
    assert any("no SLSA provenance attestation signed by a trusted key" in r for r in result["reasons"])


def test_rebase_signed_by_an_untrusted_key_is_refused(registry, tmp_path, monkeypatch, capsys):
    f = Fleet(registry, tmp_path, monkeypatch)
    _, ref = f.app("web")
    f.rebase(ref, "v2", "--sign-key", str(f.other_key_file))
    result = f.verify(ref, capsys)
    assert not result["verified"]
    assert any("no SLSA provenance attestation signed by a trusted key" in r for r in result["reasons"])
    assert any("does not verify over its PAE with any trusted key" in r for r in result["reasons"])


def test_a_link_to_another_original_is_refused(registry, tmp_path, monkeypatch, capsys):
    f = Fleet(registry, tmp_path, monkeypatch)
    _, ref = f.app("web")
    other, _ = f.app("other", b"print('another app')\n")   # well proven, but not what "web" was built as
    rebased = f.rebase(ref, "v2")                          # unsigned: no link of its own
    # a trusted key signs a rebase statement that names the other app as the original
    sign_image(f.apps, rebased, f.key)
    st = rebaseprov.statement(rebaseprov.RebaseFacts(
        image=f"{f.host}/{f.app_repo}", digest=rebased, original=other.digest,
        new_run=(f.v2.digest, f.run_ref("v2")), old_run=(f.v1.digest, f.run_ref("v1"))))
    provenance.attest(f.apps, rebased, st, f.key)
    result = f.verify(ref, capsys)
    assert not result["verified"]
    assert any(f"names the original {other.digest}" in r or "is refused" in r for r in result["reasons"])
    assert any("was not rebased from that image" in r for r in result["reasons"]), result["reasons"]


def test_a_chain_to_an_untrusted_build_provenance_is_refused(registry, tmp_path, monkeypatch, capsys):
    f = Fleet(registry, tmp_path, monkeypatch)
    _, ref = f.app("web", key=None)
    # the build's provenance is re-made by another key only: the trusted key never vouched for the build
    _, ref2 = f.app("web2", b"x = 2\n", key=f.other_key)
    f.rebase(ref2, "v2", "--sign-key", str(f.key_file))
    result = f.verify(ref2, capsys)
    assert not result["verified"]
    assert any("which has no build provenance signed by a trusted key" in r for r in result["reasons"]), \
        result["reasons"]


def test_a_chain_must_reach_a_build_that_satisfies_the_policy(registry, tmp_path, monkeypatch, capsys):
    f = Fleet(registry, tmp_path, monkeypatch)
    _, ref = f.app("web", builder_id="https://laptop.example/someone", repository=SOURCE)
    f.rebase(ref, "v2", "--sign-key", str(f.key_file))
    result = f.verify(ref, capsys)
    assert not result["verified"]
    assert any("the provenance builder id is https://laptop.example/someone" in r for r in result["reasons"])
