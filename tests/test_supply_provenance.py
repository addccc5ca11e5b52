"""Provenance: the in-toto/SLSA statement, DSSE (checked by securesystemslib), attached as cosign
and OCI 1.1 do."""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess

import pytest

from builder.oci.stores.registry import RegistryStore, referrers_tag
from builder.supply import dsse, keys, provenance
from builder.supply.attach import ATTESTATIONS, Attachment, append_attached, read_attached
from builder.supply.provenance import BuildFacts, Dependency, SourceFacts
from builder.supply.verify import check_envelopes, gather
from tests.fixtures_registry import unique_repo
from tests.supplykit import files, key_pair, push, signing_key

DIGEST = "sha256:" + "ab" * 32


def facts(**kw) -> BuildFacts:
    base = dict(
        image="registry.example/acme/web", digest=DIGEST,
        source=SourceFacts(repository="https://github.com/acme/web.git", commit="c0ffee" * 6 + "beef"),
        started_on=datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc),
        finished_on=datetime.datetime(2024, 5, 1, 12, 3, 30, tzinfo=datetime.timezone.utc),
        stack="bookworm", buildpacks_requested=("pallet/python",),
        run_image=Dependency("run-image", "sha256:" + "11" * 32, "docker://registry.example/stacks/run:bookworm"),
        build_image=Dependency("build-image", "sha256:" + "22" * 32, "docker://registry.example/stacks/build:bookworm"),
        buildpacks=(Dependency("pallet/python@0.1.0", "sha256:" + "33" * 32),),
        builder_id="https://ci.example.com/pallet-builder",
    )
    base.update(kw)
    return BuildFacts(**base)


def test_statement_is_slsa_v1():
    st = provenance.statement(facts())
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["subject"] == [{"name": "registry.example/acme/web", "digest": {"sha256": "ab" * 32}}]
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    bd = st["predicate"]["buildDefinition"]
    assert bd["buildType"] == provenance.BUILD_TYPE and bd["buildType"].startswith("https://")
    assert bd["externalParameters"] == {
        "source": {"repository": "https://github.com/acme/web.git", "commit": "c0ffee" * 6 + "beef"},
        "stack": "bookworm", "buildpacks": ["pallet/python"]}
    deps = bd["resolvedDependencies"]
    assert deps[0] == {"uri": "git+https://github.com/acme/web.git@" + "c0ffee" * 6 + "beef",
                       "digest": {"gitCommit": "c0ffee" * 6 + "beef"}, "name": "source"}
    assert {"name": "run-image", "digest": {"sha256": "11" * 32},  # a purl: registry reference and digest
            "uri": "pkg:oci/run@sha256:" + "11" * 32 + "?repository_url=registry.example/stacks/run"} in deps
    assert {"name": "pallet/python@0.1.0", "digest": {"sha256": "33" * 32}} in deps
    rd = st["predicate"]["runDetails"]
    assert rd["builder"] == {"id": "https://ci.example.com/pallet-builder"}
    assert rd["metadata"] == {"startedOn": "2024-05-01T12:00:00Z", "finishedOn": "2024-05-01T12:03:30Z"}
    assert provenance.builder_id_of(st) == "https://ci.example.com/pallet-builder"
    assert provenance.source_repository_of(st) == "https://github.com/acme/web.git"
    # Pure: the same facts, the same bytes.
    assert provenance.statement_bytes(st) == provenance.statement_bytes(provenance.statement(facts()))

    tree = provenance.statement(facts(source=SourceFacts(tree_digest="sha256:" + "44" * 32)))
    assert tree["predicate"]["buildDefinition"]["externalParameters"]["source"] == {"digest": {"sha256": "44" * 32}}
    assert provenance.source_repository_of(tree) is None


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@e"})


def test_source_facts_of_a_git_checkout_and_of_a_plain_directory(tmp_path):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "main.py").write_text("print('hi')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    _git(repo, "remote", "add", "origin", "https://ci-bot:s3cr3t-token@github.com/acme/web.git")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()

    clean = provenance.source_facts(repo)
    assert clean == SourceFacts(repository="https://github.com/acme/web.git", commit=head)  # no token
    sub = provenance.source_facts(repo / "app")
    assert sub.path == "app" and sub.commit == head and sub.tree_digest is None
    (repo / "app" / "main.py").write_text("print('changed')\n")
    dirty = provenance.source_facts(repo)
    assert dirty.commit == head and dirty.tree_digest and dirty.tree_digest.startswith("sha256:")

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "main.py").write_text("print('hi')\n")
    facts_plain = provenance.source_facts(plain)
    assert facts_plain.repository is None and facts_plain.commit is None
    # Only content counts: times and the directory's own name do not.
    copy = tmp_path / "other-name"
    copy.mkdir()
    (copy / "main.py").write_text("print('hi')\n")
    os.utime(copy / "main.py", (1, 1))
    assert provenance.tree_digest(copy) == facts_plain.tree_digest
    (copy / "main.py").chmod(0o755)
    assert provenance.tree_digest(copy) != facts_plain.tree_digest


def _sslib_verify(envelope: bytes, pub_pem: bytes) -> None:
    """Verify a DSSE envelope with securesystemslib, an implementation that is not ours."""
    sslib_dsse = pytest.importorskip("securesystemslib.dsse")
    from securesystemslib.signer import SSlibKey

    env = sslib_dsse.Envelope.from_dict(json.loads(envelope))
    pub = keys.load_public_key(pub_pem)
    # securesystemslib picks the key by keyid; cosign (and so pallet) writes an empty one
    assert [s.keyid for s in env.signatures.values()] == [""]
    key = SSlibKey(keyid="", keytype="ecdsa", scheme="ecdsa-sha2-nistp256",
                   keyval={"public": pub_pem.decode()})
    assert env.pae() == dsse.pae(env.payload_type, env.payload)  # their PAE is ours
    assert env.verify([key], 1)


def test_attest_attaches_as_cosign_and_as_referrer(registry, tmp_path):
    key_file, pub_file = key_pair(tmp_path)
    key = signing_key(key_file)
    store = RegistryStore(registry.host, unique_repo("supply/att"))
    desc = push(store, [files({"a": b"a"})], tag="v1")
    st = provenance.statement(facts(digest=desc.digest, image=f"{registry.host}/app"))
    result = provenance.attest(store, desc.digest, st, key)

    # cosign's .att tag: one DSSE layer with its predicateType annotation.
    att = read_attached(store, desc.digest, ATTESTATIONS)
    assert att.tag == f"sha256-{desc.digest[7:]}.att" and len(att.attachments) == 1
    layer = att.attachments[0][1]
    assert layer.media_type == "application/vnd.dsse.envelope.v1+json"
    assert layer.annotations["predicateType"] == "https://slsa.dev/provenance/v1"
    envelope = json.loads(layer.payload)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert json.loads(base64.b64decode(envelope["payload"])) == st
    _sslib_verify(layer.payload, pub_file.read_bytes())

    # The OCI 1.1 referrer (through the tag-schema fallback: docker-registry 2.8 has no referrers API).
    listed = store.referrers(desc.digest)
    assert [r.digest for r in listed] == [result.referrer]
    assert listed[0].artifact_type == "application/vnd.dsse.envelope.v1+json"
    assert referrers_tag(desc.digest) in store.list_tags()
    _, data = store.get_manifest(result.referrer)
    manifest = json.loads(data)
    assert manifest["subject"]["digest"] == desc.digest and manifest["artifactType"] == dsse.MEDIA_TYPE
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"

    # Attesting the same statement again writes nothing new.
    again = provenance.attest(store, desc.digest, st, key)
    assert again.referrer == result.referrer and again.attestations == result.attestations
    assert len(read_attached(store, desc.digest, ATTESTATIONS).attachments) == 1

    trusted = [keys.read_public_key(pub_file)]
    ev = gather(store, desc.digest, trusted)
    assert len(ev.statements) == 2 and not ev.attestation_problems  # .att layer and referrer
    assert {s.where.split(" ")[0] for s in ev.statements} == {att.tag, "referrer"}


def test_bad_envelopes_are_refused(registry, tmp_path):
    key_file, pub_file = key_pair(tmp_path)
    key = signing_key(key_file)
    trusted = [keys.read_public_key(pub_file)]
    st = provenance.statement(facts())
    payload = provenance.statement_bytes(st)

    def envelope(sig: bytes, body: bytes = payload) -> bytes:
        return json.dumps({"payloadType": dsse.INTOTO_PAYLOAD_TYPE, "payload": base64.b64encode(body).decode(),
                           "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}).encode()

    good = dsse.sign(payload, dsse.INTOTO_PAYLOAD_TYPE, key)
    # Signed over a wrong PAE: the bare payload, a wrong length, a wrong type, no "DSSEv1" prefix.
    t = dsse.INTOTO_PAYLOAD_TYPE.encode()
    bad_paes = [payload, b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload) + 1, payload),
                dsse.pae("application/json", payload), b"%d %s %d %s" % (len(t), t, len(payload), payload)]
    cases = [("good", good)] + [(f"bad-pae-{i}", envelope(keys.sign(key, m))) for i, m in enumerate(bad_paes)]
    cases.append(("tampered", envelope(keys.sign(key, dsse.pae(dsse.INTOTO_PAYLOAD_TYPE, payload)),
                                        payload.replace(b"acme", b"evil"))))
    cases.append(("other-subject", dsse.sign(provenance.statement_bytes(provenance.statement(
        facts(digest="sha256:" + "cd" * 32))), dsse.INTOTO_PAYLOAD_TYPE, key)))
    cases.append(("not-json", b"{not json"))
    valid, problems = check_envelopes(DIGEST, cases, trusted)
    assert [v.where for v in valid] == ["good"]
    by_case = {p.split(":", 1)[0]: p for p in problems}
    for i in range(len(bad_paes)):
        assert "does not verify over its PAE" in by_case[f"bad-pae-{i}"]
    assert "does not verify" in by_case["tampered"]
    assert "about other artifacts" in by_case["other-subject"]
    assert "not JSON" in by_case["not-json"]

    # securesystemslib agrees: the good one verifies, a bad-PAE one does not.
    _sslib_verify(good, pub_file.read_bytes())
    from securesystemslib.exceptions import VerificationError as SslibVerificationError

    with pytest.raises(SslibVerificationError):
        _sslib_verify(cases[1][1], pub_file.read_bytes())

    # Stored next to an image, the bad one is reported and does not count.
    store = RegistryStore(registry.host, unique_repo("supply/att"))
    desc = push(store, [files({"a": b"a"})], tag="v1")
    bad_st = provenance.statement_bytes(provenance.statement(facts(digest=desc.digest)))
    bad = envelope(keys.sign(key, bad_st), bad_st)  # signed over the payload, not its PAE
    append_attached(store, desc.digest, ATTESTATIONS, Attachment(dsse.MEDIA_TYPE, bad, {"predicateType": "x"}))
    ev = gather(store, desc.digest, trusted)
    assert not ev.statements and "bad PAE" in ev.attestation_problems[0]


@pytest.mark.parametrize("remote, recorded", [
    ("https://gitlab.example/acme/web.git?private_token=glpat-SECRET", "https://gitlab.example/acme/web.git"),
    ("https://oauth2:SECRET@gitlab.example:8443/acme/web.git#frag", "https://gitlab.example:8443/acme/web.git"),
    ("ssh://git@github.com/acme/web.git", "ssh://github.com/acme/web.git"),
    ("git@github.com:acme/web.git", "ssh://github.com/acme/web.git"),
    ("https://github.com/acme/web.git", "https://github.com/acme/web.git"),
])
def test_repository_urls_keep_only_scheme_host_and_path(remote, recorded):
    assert provenance.strip_credentials(remote) == recorded
    commit = "c0ffee" * 6 + "beef"
    st = provenance.statement(facts(source=SourceFacts(repository=provenance.strip_credentials(remote), commit=commit)))
    uri = st["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"]
    assert uri == f"git+{recorded}@{commit}" and "SECRET" not in provenance.statement_bytes(st).decode()
    assert provenance.source_repository_of(st) == recorded


def test_images_are_named_by_purl_never_a_local_store_name_or_path():
    d = "sha256:" + "11" * 32
    assert provenance.image_uri("tiny-run:0.1.0", d) == f"pkg:oci/tiny-run@{d}"
    assert provenance.image_uri("oci:/home/me/layouts/run:v1", d) == f"pkg:oci/run@{d}"
    assert provenance.image_uri("docker://reg.example:5000/stacks/run:v2", d) == \
        f"pkg:oci/run@{d}?repository_url=reg.example:5000/stacks/run"
    st = provenance.statement(facts(run_image=Dependency("run-image", d, "tiny-run:0.1.0")))
    dep = next(x for x in st["predicate"]["buildDefinition"]["resolvedDependencies"] if x["name"] == "run-image")
    assert dep["uri"] == f"pkg:oci/tiny-run@{d}"


def test_buildpacks_asked_for_by_path_are_recorded_by_id(tmp_path):
    bp = tmp_path / "secret-home" / "bp"
    bp.mkdir(parents=True)
    resolved = (("acme/hello", "0.2.0", str(bp)), ("pallet/python", "0.1.0", "/somewhere/python"))
    assert provenance.requested_buildpacks((str(bp), "pallet/python"), resolved) == \
        ["acme/hello@0.2.0", "pallet/python@0.1.0"]


def test_dsse_envelope_is_as_cosign_writes_it(tmp_path):
    key = signing_key(key_pair(tmp_path)[0])
    env = dsse.sign(b'{"a":1}', dsse.INTOTO_PAYLOAD_TYPE, key)
    doc = json.loads(env)
    # go-securesystemslib's Envelope marshalled by encoding/json: this field order, keyid "" (cosign
    # names no key for key-based signing), standard base64 -- and no whitespace
    assert list(doc) == ["payloadType", "payload", "signatures"]
    assert doc["signatures"][0]["keyid"] == "" and list(doc["signatures"][0]) == ["keyid", "sig"]
    assert env == json.dumps(doc, separators=(",", ":")).encode()
    assert base64.b64decode(doc["payload"], validate=True) == b'{"a":1}'
    # the signature itself as in cosign's own signatures (tests/fixtures/cosign, made by cosign):
    # standard base64 of an ASN.1 DER ECDSA-P256 (r, s) pair, over SHA-256
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from tests.cli import ROOT

    fixture = json.loads((ROOT / "tests/fixtures/cosign/dir-img-cosign-valid/signature-1.json").read_text())
    theirs = base64.b64decode(fixture["annotations"]["dev.cosignproject.cosign/signature"], validate=True)
    ours = base64.b64decode(doc["signatures"][0]["sig"], validate=True)
    for sig in (theirs, ours):
        r, s_ = decode_dss_signature(sig)
        assert 0 < r < 2 ** 256 and 0 < s_ < 2 ** 256 and sig[0] == 0x30
    assert keys.verify(keys.read_public_key(ROOT / "tests/fixtures/cosign/cosign.pub").key, theirs,
                       base64.b64decode(fixture["payload_base64"]))
    assert keys.verify(key.public_key(), ours, dsse.pae(dsse.INTOTO_PAYLOAD_TYPE, b'{"a":1}'))


def test_the_same_claim_is_attested_once(registry, tmp_path):
    key = signing_key(key_pair(tmp_path)[0])
    store = RegistryStore(registry.host, unique_repo("supply/once"))
    desc = push(store, [files({"a": b"a"})], tag="v1")
    first = provenance.attest(store, desc.digest, provenance.statement(facts(digest=desc.digest)), key)
    for minute in range(1, 5):  # four rebuilds of the same digest, at other times
        later = datetime.datetime(2024, 5, 2, 12, minute, tzinfo=datetime.timezone.utc)
        again = provenance.attest(store, desc.digest, provenance.statement(
            facts(digest=desc.digest, started_on=later, finished_on=later, invocation_id=f"run-{minute}")), key)
        assert again.referrer == first.referrer
    assert len(read_attached(store, desc.digest, ATTESTATIONS).attachments) == 1
    assert len(store.referrers(desc.digest)) == 1
    # another claim (another builder) is another attestation
    provenance.attest(store, desc.digest, provenance.statement(facts(digest=desc.digest, builder_id="https://b")), key)
    assert len(read_attached(store, desc.digest, ATTESTATIONS).attachments) == 2
