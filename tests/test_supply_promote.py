"""``pallet promote``: the exact manifest and all its proof, by digest, to another repository or registry."""

from __future__ import annotations

import json

from builder.cli import main
from builder.oci.stores.layout import LayoutStore
from builder.oci.stores.registry import RegistryStore
from builder.supply import keys
from builder.supply.attach import ATTESTATIONS, SIGNATURES, cosign_tag, read_attached
from builder.supply.promote import promote
from builder.supply.sign import sign_image
from builder.supply.verify import gather
from tests.cli import pallet
from tests.fixtures_registry import unique_repo
from tests.supplykit import BUILDER_ID, files, key_pair, prove, push, signing_key, write_policy


def test_promote_between_registries_keeps_digest_and_proof(registry, registry_factory, tmp_path, capsys):
    key_file, pub = key_pair(tmp_path)
    src_repo = unique_repo("supply/staging")
    src = RegistryStore(registry.host, src_repo)
    desc = push(src, [files({"app.py": b"print('v1')\n"})], tag="rc")
    prove(src, desc.digest, signing_key(key_file), name=f"{registry.host}/{src_repo}")
    policy = write_policy(tmp_path, pub, builder_id=BUILDER_ID, require_sbom=True)

    prod = registry_factory()  # another registry
    dst_ref = f"docker://{prod.host}/acme/web:1.0"
    proc = pallet("promote", f"docker://{registry.host}/{src_repo}:rc", dst_ref, "--policy", str(policy))
    assert proc.stdout.strip() == f"{dst_ref}@{desc.digest}"

    dst = RegistryStore(prod.host, "acme/web")
    assert dst.resolve("1.0").digest == desc.digest  # the identical manifest
    for suffix in (SIGNATURES, ATTESTATIONS):
        theirs, mine = src.get_manifest(cosign_tag(desc.digest, suffix)), dst.get_manifest(cosign_tag(desc.digest, suffix))
        assert theirs[0].digest == mine[0].digest  # copied as they were
    assert sorted(r.digest for r in dst.referrers(desc.digest)) == sorted(r.digest for r in src.referrers(desc.digest))
    assert len(dst.referrers(desc.digest)) == 3  # provenance, CycloneDX, SPDX

    # At the destination the image passes the same gate.
    assert main(["verify", dst_ref, "--policy", str(policy)]) == 0
    capsys.readouterr()


def test_promote_refuses_what_fails_the_policy_and_copies_nothing(registry, tmp_path, capsys):
    key_file, pub = key_pair(tmp_path)
    src_repo, dst_repo = unique_repo("supply/staging"), unique_repo("supply/prod")
    src = RegistryStore(registry.host, src_repo)
    push(src, [files({"a": b"unsigned"})], tag="rc")
    policy = write_policy(tmp_path, pub)
    code = main(["promote", f"docker://{registry.host}/{src_repo}:rc", f"docker://{registry.host}/{dst_repo}:1.0",
                 "--policy", str(policy)])
    err = capsys.readouterr().err
    assert code == 1 and "fails the policy" in err and "nothing was copied" in err
    assert "the image has no signatures" in err
    assert RegistryStore(registry.host, dst_repo).list_tags() == []


def test_promote_to_a_layout_merges_signatures(registry, tmp_path):
    key_file, pub = key_pair(tmp_path)
    key2_file, pub2 = key_pair(tmp_path, "prod")
    src = RegistryStore(registry.host, unique_repo("supply/staging"))
    desc = push(src, [files({"a": b"a"})], tag="rc")
    sign_image(src, desc.digest, signing_key(key_file))
    dst = LayoutStore(tmp_path / "prod")
    # The destination already holds the image with another signature: both are kept.
    promote(src, "rc", dst, "first")
    sign_image(dst, desc.digest, signing_key(key2_file))
    sign_image(src, desc.digest, signing_key(key_file), annotations={"stage": "rc"})
    result = promote(src, "rc", dst, "1.0")
    assert result.digest == desc.digest and dst.resolve("1.0").digest == desc.digest
    assert any("merged" in c for c in result.copied)
    layers = read_attached(dst, desc.digest, SIGNATURES).attachments
    assert len(layers) == 3
    for p in (pub, pub2):
        assert gather(dst, desc.digest, [keys.read_public_key(p)], attestations=False, sboms=False).signatures


def test_tag_is_resolved_once(registry, tmp_path, monkeypatch):
    """A tag moved while promote runs cannot swap the image: everything uses the first digest."""
    src = RegistryStore(registry.host, unique_repo("supply/staging"))
    first = push(src, [files({"a": b"first"})], tag="rc")
    second = push(src, [files({"a": b"second"})], tag=None)
    dst = LayoutStore(tmp_path / "dst")
    real_resolve = src.resolve
    calls = []

    def resolve(ref):
        calls.append(ref)
        out = real_resolve(ref)
        src.tag("rc", second)  # the tag moves right after promote read it
        return out

    monkeypatch.setattr(src, "resolve", resolve)
    result = promote(src, "rc", dst, "1.0")
    assert calls.count("rc") == 1
    assert result.digest == first.digest == dst.resolve("1.0").digest


def test_promote_json_output(tmp_path, capsys):
    src = LayoutStore(tmp_path / "src")
    desc = push(src, [files({"a": b"a"})], tag="v1")
    assert main(["promote", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["reference"] == f"oci:{tmp_path}/dst@{desc.digest}" and info["digest"] == desc.digest
    assert LayoutStore(tmp_path / "dst").resolve("v1").digest == desc.digest  # the source's tag by default


def test_a_broken_sig_tag_fails_promote_whatever_the_breakage(tmp_path, capsys):
    """A source ``.sig`` tag that is not JSON was skipped (the image promoted without it, to fail
    the deploy gate later, far from the cause) while one with wrong types failed promote. Both
    fail now, with the tag named and the destination untagged: promote copies the proof or nothing."""
    from builder.oci import mediatypes as mt

    for n, broken in enumerate((b"not json {", b'{"schemaVersion": 2, "layers": "x"}')):
        src = LayoutStore(tmp_path / f"src{n}")
        desc = push(src, [files({"a": str(n).encode()})], tag="rc")
        src.put_manifest(broken, mt.OCI_MANIFEST, tag=cosign_tag(desc.digest, SIGNATURES))
        code = main(["promote", f"oci:{tmp_path}/src{n}:rc", f"oci:{tmp_path}/dst{n}:1.0"])
        err = capsys.readouterr().err
        assert code != 0 and cosign_tag(desc.digest, SIGNATURES) in err and "Traceback" not in err, (broken, err)
        assert LayoutStore(tmp_path / f"dst{n}").list_tags() == []
