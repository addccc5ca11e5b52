"""Signatures: cosign's own (known-answer data), pallet's, and everything that must be refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from builder.cli import main
from builder.oci import mediatypes as mt
from builder.oci.digest import sha256
from builder.oci.model import Manifest
from builder.oci.stores.layout import LayoutStore
from builder.oci.stores.registry import RegistryStore
from builder.supply import keys, simplesigning
from builder.supply.attach import SIGNATURES, Attachment, attachments_manifest, cosign_tag, read_attached
from builder.supply.sign import sign_image
from builder.supply.verify import check_signatures, gather, signature_reasons
from tests.cli import ROOT, pallet
from tests.fixtures_registry import unique_repo
from tests.supplykit import PASSWORD, files, key_pair, push, signing_key

COSIGN = ROOT / "tests" / "fixtures" / "cosign"  # real cosign signatures; tests/fixtures/cosign/README.md
CASES = {  # as the fixtures' README says, with cosign.pub
    "dir-img-cosign-valid": True,
    "dir-img-cosign-valid-2": True,
    "dir-img-cosign-valid-with-tag": True,
    "dir-img-cosign-mixed": True,
    "dir-img-cosign-modified-manifest": False,
    "dir-img-cosign-manifest-digest-error": False,
    "dir-img-cosign-other-attachment": False,
}


def run(*argv: str, capsys) -> tuple[int, str, str]:
    """``pallet ARGV`` in this process (quick); the subprocess form is used where it matters."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def load_case(name: str) -> tuple[bytes, list[tuple[str, Attachment]]]:
    case = COSIGN / name
    layers = []
    for sig in sorted(case.glob("signature-*.json")):
        d = json.loads(sig.read_text())
        layers.append((sig.stem, Attachment(d["mediaType"], base64.b64decode(d["payload_base64"]),
                                            d.get("annotations") or {})))
    return (case / "manifest.json").read_bytes(), layers


def trusted(name: str) -> list[keys.TrustedKey]:
    return [keys.read_public_key(COSIGN / name)]


def layout_of_case(root: Path, name: str) -> str:
    """The case as a registry would hold it, in an OCI layout: the image tagged 'signed', and its
    signatures as cosign stores them under sha256-<hex>.sig."""
    manifest, layers = load_case(name)
    store = LayoutStore(root)
    desc = store.put_manifest(manifest, json.loads(manifest).get("mediaType", mt.OCI_MANIFEST), tag="signed")
    data, config = attachments_manifest([a for _, a in layers])
    for _, a in layers:
        store.put_blob_bytes(a.payload, a.media_type)
    store.put_blob_bytes(config, mt.OCI_CONFIG)
    store.put_manifest(data, mt.OCI_MANIFEST, tag=cosign_tag(desc.digest, SIGNATURES))
    return f"oci:{root}:signed"


# -- cosign's signatures -----------------------------------------------------------------------


@pytest.mark.parametrize("name,accepted", sorted(CASES.items()))
def test_cosign_known_answers_pure(name, accepted):
    manifest, layers = load_case(name)
    valid, problems = check_signatures(sha256(manifest), layers, trusted("cosign.pub"))
    assert bool(valid) == accepted, problems
    valid2, problems2 = check_signatures(sha256(manifest), layers, trusted("cosign2.pub"))
    assert not valid2 and len(problems2) == len(layers)
    if name == "dir-img-cosign-mixed":
        assert len(valid) == 1 and len(problems) == 1 and "does not verify" in problems[0]
    if name == "dir-img-cosign-valid-2":
        assert len(valid) == 2
    if name == "dir-img-cosign-valid-with-tag":
        assert valid[0].docker_reference.endswith("/skopeo-signed:tag") and valid[0].optional["creator"]
    if name in ("dir-img-cosign-modified-manifest", "dir-img-cosign-manifest-digest-error"):
        assert "not this image's" in problems[0]
    if name == "dir-img-cosign-other-attachment":
        assert "not a simple-signing signature" in problems[0]


@pytest.mark.parametrize("name,accepted", sorted(CASES.items()))
def test_cosign_known_answers_through_verify_command(tmp_path, capsys, name, accepted):
    ref = layout_of_case(tmp_path / "lay", name)
    code, out, err = run("verify", ref, "--key", str(COSIGN / "cosign.pub"), "--json", capsys=capsys)
    result = json.loads(out)
    assert (code == 0) == accepted == result["verified"], (out, err)
    if not accepted:
        assert result["reasons"] and err.startswith("pallet: error: ")
    code2, out2, _ = run("verify", ref, "--key", str(COSIGN / "cosign2.pub"), capsys=capsys)
    assert code2 == 1 and "verification FAILED" in out2


# -- pallet's signatures -----------------------------------------------------------------------


@pytest.fixture
def two_keys(tmp_path):
    a = key_pair(tmp_path, "alice")
    b = key_pair(tmp_path, "bob")
    return a, b


def test_sign_and_verify_in_registry(registry, two_keys, capsys):
    (alice_key, alice_pub), (bob_key, bob_pub) = two_keys
    repo = unique_repo("supply/sign")
    store = RegistryStore(registry.host, repo)
    desc = push(store, [files({"hello.txt": b"hello"})], tag="v1")
    ref = f"docker://{registry.host}/{repo}:v1"

    # Through the real command: a tag is resolved to the digest that gets signed.
    out = pallet("sign", ref, "--key", str(alice_key), "--json", env={"PALLET_PASSWORD": PASSWORD})
    info = json.loads(out.stdout)
    assert info["digest"] == desc.digest and info["reference"] == f"{ref}@{desc.digest}"
    assert info["signatureTag"] == f"sha256-{desc.digest[7:]}.sig" and info["added"]
    assert PASSWORD not in out.stdout + out.stderr

    # Stored as cosign stores it.
    _, data = store.get_manifest(info["signatureTag"])
    manifest = Manifest.from_bytes(data)
    assert manifest.media_type == mt.OCI_MANIFEST and len(manifest.layers) == 1
    layer = manifest.layers[0]
    assert layer.media_type == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = store.get_blob(layer)
    assert json.loads(payload) == {"critical": {"identity": {"docker-reference": f"{registry.host}/{repo}"},
                                                "image": {"docker-manifest-digest": desc.digest},
                                                "type": "cosign container image signature"}, "optional": None}
    sig = base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"])
    assert keys.verify(keys.read_public_key(alice_pub).key, sig, payload)
    config = store.get_blob(manifest.config)
    assert config == (b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],'
                      b'"os":"","rootfs":{"type":"layers","diff_ids":["' + layer.digest.encode() + b'"]},"config":{}}')

    assert run("verify", ref, "--key", str(alice_pub), capsys=capsys)[0] == 0
    code, out_text, err = run("verify", ref, "--key", str(bob_pub), capsys=capsys)
    assert code == 1 and "does not verify with any trusted key" in out_text

    # A second signer's signature coexists; the same key and payload again adds nothing.
    bob = signing_key(bob_key)
    assert sign_image(store, "v1", bob).added
    again = sign_image(store, desc.digest, signing_key(alice_key))
    assert not again.added
    annotated = sign_image(store, desc.digest, bob, annotations={"env": "prod"})
    assert annotated.added
    attached = read_attached(store, desc.digest, SIGNATURES)
    assert len(attached.attachments) == 3
    assert json.loads(attached.attachments[2][1].payload)["optional"] == {"env": "prod"}
    for pub in (alice_pub, bob_pub):
        assert run("verify", f"docker://{registry.host}/{repo}@{desc.digest}", "--key", str(pub), capsys=capsys)[0] == 0


def test_sign_in_oci_layout_and_local_store(tmp_path, two_keys, capsys, monkeypatch):
    (alice_key, alice_pub), _ = two_keys
    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    monkeypatch.setenv("PALLET_HOME", str(tmp_path / "home"))
    lay = LayoutStore(tmp_path / "lay")
    desc = push(lay, [files({"a": b"1"})], tag="v1")
    code, out, _ = run("sign", f"oci:{tmp_path}/lay:v1", "--key", str(alice_key), capsys=capsys)
    assert code == 0 and out.strip() == f"oci:{tmp_path}/lay:v1@{desc.digest}"
    assert cosign_tag(desc.digest, SIGNATURES) in lay.list_tags()  # a ref.name in index.json
    payload = read_attached(lay, desc.digest, SIGNATURES).attachments[0][1].payload
    assert simplesigning.parse(payload).docker_reference == f"oci:{tmp_path}/lay"
    assert run("verify", f"oci:{tmp_path}/lay:v1", "--key", str(alice_pub), capsys=capsys)[0] == 0

    from builder.oci.stores import local_store_path

    local = LayoutStore(local_store_path(), namespace="myapp")
    ldesc = push(local, [files({"b": b"2"})], tag="latest")
    assert run("sign", "myapp", "--key", str(alice_key), capsys=capsys)[0] == 0
    assert run("verify", "myapp:latest", "--key", str(alice_pub), capsys=capsys)[0] == 0
    payload = read_attached(local, ldesc.digest, SIGNATURES).attachments[0][1].payload
    assert simplesigning.parse(payload).docker_reference == "myapp"


# -- what must be refused ----------------------------------------------------------------------


def _copy_sig(store, from_digest: str, to_digest: str, mutate=None) -> None:
    attached = read_attached(store, from_digest, SIGNATURES)
    layers = [a for _, a in attached.attachments]
    if mutate:
        layers = [mutate(a) for a in layers]
    data, config = attachments_manifest(layers)
    for a in layers:
        store.put_blob_bytes(a.payload, a.media_type)
    store.put_blob_bytes(config, mt.OCI_CONFIG)
    store.put_manifest(data, mt.OCI_MANIFEST, tag=cosign_tag(to_digest, SIGNATURES))


def test_signature_over_another_digest_is_refused(registry, two_keys):
    (alice_key, alice_pub), _ = two_keys
    store = RegistryStore(registry.host, unique_repo("supply/bad"))
    a = push(store, [files({"a": b"a"})], tag="a")
    b = push(store, [files({"b": b"b"})], tag="b")
    sign_image(store, "a", signing_key(alice_key))
    _copy_sig(store, a.digest, b.digest)  # a's valid signature, put where b's would be
    trusted = [keys.read_public_key(alice_pub)]
    ev = gather(store, b.digest, trusted, attestations=False, sboms=False)
    reasons = signature_reasons(ev, trusted)
    assert not ev.signatures and f"signs manifest {a.digest}, not this image's {b.digest}" in "\n".join(reasons)


def test_tampered_payload_is_refused(registry, two_keys):
    (alice_key, alice_pub), _ = two_keys
    store = RegistryStore(registry.host, unique_repo("supply/bad"))
    a = push(store, [files({"a": b"a"})], tag="a")
    sign_image(store, "a", signing_key(alice_key))

    def tamper(att: Attachment) -> Attachment:
        doc = json.loads(att.payload)
        doc["critical"]["identity"]["docker-reference"] = "evil.example/app"
        return Attachment(att.media_type, json.dumps(doc).encode(), att.annotations)

    _copy_sig(store, a.digest, a.digest, tamper)
    trusted = [keys.read_public_key(alice_pub)]
    ev = gather(store, a.digest, trusted, attestations=False, sboms=False)
    assert not ev.signatures and "the payload was changed" in ev.signature_problems[0]


def test_wrong_key_is_refused(registry, two_keys, capsys):
    (alice_key, _), (_, bob_pub) = two_keys
    repo = unique_repo("supply/bad")
    store = RegistryStore(registry.host, repo)
    push(store, [files({"a": b"a"})], tag="a")
    sign_image(store, "a", signing_key(alice_key))
    proc = pallet("verify", f"docker://{registry.host}/{repo}:a", "--key", str(bob_pub), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("pallet: error: ") and "failed verification" in proc.stderr
    assert "does not verify with any trusted key" in proc.stdout and str(bob_pub) in proc.stdout


def test_unsigned_image_is_refused(registry, two_keys, capsys):
    (_, alice_pub), _ = two_keys
    repo = unique_repo("supply/bad")
    push(RegistryStore(registry.host, repo), [files({"a": b"a"})], tag="a")
    code, out, _ = run("verify", f"docker://{registry.host}/{repo}:a", "--key", str(alice_pub), "--json",
                       capsys=capsys)
    assert code == 1 and "the image has no signatures" in json.loads(out)["reasons"][0]


def test_signature_tag_pointing_at_garbage(tmp_path, registry, two_keys, capsys, monkeypatch):
    (alice_key, alice_pub), _ = two_keys
    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    # An OCI layout can hold anything under a tag: bytes that are not a manifest at all.
    lay = LayoutStore(tmp_path / "lay")
    desc = push(lay, [files({"a": b"a"})], tag="v1")
    lay.put_manifest(b"\x00garbage, not JSON", mt.OCI_MANIFEST, tag=cosign_tag(desc.digest, SIGNATURES))
    code, out, _ = run("verify", f"oci:{tmp_path}/lay:v1", "--key", str(alice_pub), "--json", capsys=capsys)
    reasons = json.loads(out)["reasons"]
    assert code == 1 and any(f"{cosign_tag(desc.digest, SIGNATURES)} cannot be read" in r and "not valid JSON" in r
                             for r in reasons)
    # Signing refuses to build on it rather than silently replacing it.
    code, _, err = run("sign", f"oci:{tmp_path}/lay:v1", "--key", str(alice_key), capsys=capsys)
    assert code == 1 and "remove that tag" in err

    # A registry: the .sig tag names an ordinary image, and a signature blob whose bytes were replaced.
    repo = unique_repo("supply/bad")
    store = RegistryStore(registry.host, repo)
    a = push(store, [files({"a": b"a"})], tag="a")
    other = push(store, [files({"x": b"x"})], tag=None)
    store.tag(cosign_tag(a.digest, SIGNATURES), other)
    trusted = [keys.read_public_key(alice_pub)]
    ev = gather(store, a.digest, trusted, attestations=False, sboms=False)
    assert not ev.signatures and "is not a simple-signing signature" in ev.signature_problems[0]

    b = push(store, [files({"b": b"b"})], tag="b")
    sign_image(store, "b", signing_key(alice_key))
    layer = read_attached(store, b.digest, SIGNATURES)
    _, data = store.get_manifest(layer.tag)
    blob = Manifest.from_bytes(data).layers[0]
    registry.blob_path(blob.digest).write_bytes(b'{"critical":{"forged":true}}')
    ev = gather(store, b.digest, trusted, attestations=False, sboms=False)
    assert not ev.signatures and "cannot be read" in ev.signature_problems[0]


def test_sign_verify_and_sbom_behind_registry_auth(auth_registry, two_keys, capsys, monkeypatch):
    (alice_key, alice_pub), _ = two_keys
    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    repo = unique_repo("supply/auth")
    store = RegistryStore(auth_registry.host, repo, creds=auth_registry.creds)
    desc = push(store, [files({"a": b"a"})], tag="v1")
    ref = f"docker://{auth_registry.host}/{repo}:v1"
    creds = ["--creds", auth_registry.creds]
    assert run("sign", ref, "--key", str(alice_key), *creds, capsys=capsys)[0] == 0
    assert run("sbom", ref, "--attach", *creds, capsys=capsys)[0] == 0
    code, out, _ = run("verify", ref, "--key", str(alice_pub), "--json", *creds, capsys=capsys)
    assert code == 0 and json.loads(out)["digest"] == desc.digest
    assert len(store.referrers(desc.digest)) == 2
    code, _, err = run("verify", ref, "--key", str(alice_pub), capsys=capsys)  # no credentials
    assert code == 1 and err.startswith("pallet: error: ") and auth_registry.password not in err
