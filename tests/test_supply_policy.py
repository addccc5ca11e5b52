"""``pallet verify --policy``: the deploy gate. Passes with a summary, or fails with every reason."""

from __future__ import annotations

import json

import pytest

from builder.cli import main
from builder.oci.stores.registry import RegistryStore
from builder.supply import policy as policymod
from builder.supply.errors import PolicyError
from tests.cli import pallet
from tests.fixtures_registry import unique_repo
from tests.supplykit import BUILDER_ID, files, key_pair, prove, push, signing_key, write_policy


def verify(ref: str, policy_path, capsys) -> tuple[int, dict, str]:
    code = main(["verify", ref, "--policy", str(policy_path), "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def test_policy_fields_are_checked():
    with pytest.raises(PolicyError, match="unknown field 'require_sboms'"):
        policymod.parse('keys = ["a.pub"]\nrequire_sboms = true\n', "p.toml")
    with pytest.raises(PolicyError, match="'keys' must be a non-empty list"):
        policymod.parse("require_sbom = true\n", "p.toml")
    with pytest.raises(PolicyError, match="'require_sbom' must be true or false"):
        policymod.parse('keys = ["a.pub"]\nrequire_sbom = "yes"\n', "p.toml")
    with pytest.raises(PolicyError, match="not valid TOML"):
        policymod.parse('keys = ["a.pub"\n', "p.toml")
    assert policymod.parse('keys = ["a.pub"]\nsource_repositories = ["https://github.com/acme/*"]\n')[
        "source_repositories"] == ["https://github.com/acme/*"]


def test_a_policy_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows Notepad saves UTF-8 with a BOM, which TOML parsers refuse ("Invalid statement")."""
    _, pub = key_pair(tmp_path)
    path = write_policy(tmp_path, pub, require_sbom=True)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert policymod.load(path).require_sbom is True


def test_unknown_field_fails_the_command(tmp_path, registry):
    _, pub = key_pair(tmp_path)
    path = write_policy(tmp_path, pub, requires_sbom=True)
    proc = pallet("verify", f"docker://{registry.host}/nothing/here:v1", "--policy", str(path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"pallet: error: {path}: unknown field 'requires_sbom' "
                                   "(known fields: keys, builder_id, source_repositories, require_sbom, vulnerabilities)")


@pytest.fixture
def proven(registry, tmp_path):
    key_file, pub = key_pair(tmp_path)
    repo = unique_repo("supply/policy")
    store = RegistryStore(registry.host, repo)
    desc = push(store, [files({"app.py": b"print('hi')\n"})], tag="v1")
    prove(store, desc.digest, signing_key(key_file), name=f"{registry.host}/{repo}")
    return f"docker://{registry.host}/{repo}:v1", store, desc, key_file, pub


def test_a_fully_proven_image_passes(proven, tmp_path, capsys):
    ref, _, desc, _, pub = proven
    path = write_policy(tmp_path, pub, builder_id=BUILDER_ID, source_repositories=["https://github.com/acme/*"],
                        require_sbom=True)
    code, result, err = verify(ref, path, capsys)
    assert code == 0 and result["verified"] and result["reasons"] == [], (result, err)
    assert result["digest"] == desc.digest and result["reference"] == f"{ref}@{desc.digest}"
    assert len(result["signatures"]) == 1 and len(result["attestations"]) == 2 and len(result["sboms"]) == 2
    assert result["policy"]["builderId"] == BUILDER_ID
    assert main(["verify", ref, "--policy", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{ref}@{desc.digest}: verified") and f"builder {BUILDER_ID}" in text


def test_every_reason_is_given(registry, tmp_path, capsys):
    key_file, pub = key_pair(tmp_path)
    other_key, _ = key_pair(tmp_path, "other")
    repo = unique_repo("supply/policy")
    store = RegistryStore(registry.host, repo)
    desc = push(store, [files({"a": b"a"})], tag="v1")
    # Signed by someone else, built by another builder from a directory, and no SBOM.
    prove(store, desc.digest, signing_key(key_file), builder_id="https://evil.example/builder",
          repository=None, sbom=False, sign=False)
    from builder.supply import sign_image

    sign_image(store, desc.digest, signing_key(other_key))
    path = write_policy(tmp_path, pub, builder_id=BUILDER_ID, source_repositories=["https://github.com/acme/*"],
                        require_sbom=True)
    code, result, err = verify(f"docker://{registry.host}/{repo}:v1", path, capsys)
    assert code == 1 and not result["verified"]
    reasons = "\n".join(result["reasons"])
    assert "no valid signature by a trusted key" in reasons
    assert "does not verify with any trusted key" in reasons
    assert f"the provenance builder id is https://evil.example/builder; the policy requires {BUILDER_ID}" in reasons
    assert "no repository (built from a directory)" in reasons
    assert f"no SBOM is attached to {desc.digest}, and the policy requires one" in reasons
    assert len(result["reasons"]) == 5
    assert err.startswith("pallet: error: ") and "(5 reasons)" in err


def test_missing_sbom_when_required(proven, registry, tmp_path, capsys):
    _, _, _, key_file, pub = proven
    repo = unique_repo("supply/policy")
    store = RegistryStore(registry.host, repo)
    desc = push(store, [files({"a": b"b"})], tag="v1")
    prove(store, desc.digest, signing_key(key_file), sbom=False)
    ref = f"docker://{registry.host}/{repo}:v1"
    assert verify(ref, write_policy(tmp_path, pub, require_sbom=False), capsys)[0] == 0
    code, result, _ = verify(ref, write_policy(tmp_path, pub, require_sbom=True), capsys)
    assert code == 1 and result["reasons"] == [f"no SBOM is attached to {desc.digest}, and the policy requires one"]


def test_source_glob_and_unattested_provenance(proven, tmp_path, capsys):
    ref, store, desc, _, pub = proven
    code, result, _ = verify(ref, write_policy(tmp_path, pub, source_repositories=["https://gitlab.com/*"]), capsys)
    assert code == 1 and "the policy allows only https://gitlab.com/*" in result["reasons"][0]
    # Provenance signed by an untrusted key does not count.
    stranger_key, stranger_pub = key_pair(tmp_path, "stranger")
    code, result, _ = verify(ref, write_policy(tmp_path, stranger_pub, builder_id=BUILDER_ID), capsys)
    assert code == 1
    assert any("no SLSA provenance attestation signed by a trusted key" in r for r in result["reasons"])
    assert stranger_key
