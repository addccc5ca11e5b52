"""Crafted signatures and attestations (issue 11, fourth sweep). Each blob was bounded on its own,
but not how many of them an image could list: a ``.sig`` tag of thousands of layers, or an
envelope of thousands of signatures, each tried with every trusted key, was minutes of CPU and
gigabytes of memory for ``pallet verify``. Now bounded, with the rest said as a problem.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from builder.oci import mediatypes as mt
from builder.oci.stores.layout import LayoutStore
from builder.supply import attach, dsse, keys
from builder.supply.attach import SIGNATURES, Attachment, attachments_manifest, cosign_tag, read_attached
from builder.supply.verify import check_envelopes, gather
from tests.cli import pallet
from tests.supplykit import PASSWORD, files, key_pair, push, signing_key


@pytest.fixture()
def signed(tmp_path: Path) -> tuple[LayoutStore, str, Path, Path]:
    """A layout with an image signed by pallet: (store, digest, private key, public key)."""
    key, pub = key_pair(tmp_path, "alice")
    store = LayoutStore(tmp_path / "lay")
    desc = push(store, [files({"a": b"1"})], tag="v1")
    pallet("sign", f"oci:{tmp_path}/lay:v1", "--key", str(key), env={"PALLET_PASSWORD": PASSWORD})
    return store, desc.digest, key, pub


def test_a_signature_tag_of_thousands_of_layers_is_read_within_a_bound(tmp_path: Path, signed) -> None:
    """Each listed layer was fetched and kept in memory; a registry can list thousands (a
    manifest of 4 MiB lists 20,000), each up to 256 MiB."""
    store, digest, _, pub = signed
    genuine = read_attached(store, digest, SIGNATURES).attachments[0][1]
    junk = [Attachment(genuine.media_type, b"junk %d" % i, {}) for i in range(attach.MAX_ATTACHMENTS + 50)]
    layers = [genuine, *junk]
    data, config = attachments_manifest(layers)
    for a in layers:
        store.put_blob_bytes(a.payload, a.media_type)
    store.put_blob_bytes(config, mt.OCI_CONFIG)
    store.put_manifest(data, mt.OCI_MANIFEST, tag=cosign_tag(digest, SIGNATURES))

    got = read_attached(store, digest, SIGNATURES)
    assert len(got.attachments) == attach.MAX_ATTACHMENTS
    assert any("were not read" in p and f"{len(layers)} layers" in p for p in got.problems), got.problems
    evidence = gather(store, digest, [keys.read_public_key(pub)], attestations=False, sboms=False)
    assert len(evidence.signatures) == 1  # the genuine one still counts
    proc = pallet("verify", f"oci:{tmp_path}/lay:v1", "--key", str(pub), check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_a_signature_tag_declaring_gigabytes_is_not_read_past_the_bound() -> None:
    """Sizes count as declared, before a byte is fetched."""
    from builder.oci.model import Descriptor

    class Store:
        fetched: list[str] = []

        def get_manifest(self, ref: str):
            layers = [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                       "digest": "sha256:" + f"{i:064x}", "size": 200 << 20} for i in range(5)]
            data = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": layers,
                               "config": {"mediaType": mt.OCI_CONFIG, "digest": "sha256:" + "c" * 64,
                                          "size": 2}}).encode()
            return Descriptor(mt.OCI_MANIFEST, "sha256:" + "d" * 64, len(data)), data

        def get_blob(self, desc: Descriptor) -> bytes:
            self.fetched.append(desc.digest)
            return b"x"

    store = Store()
    got = read_attached(store, "sha256:" + "e" * 64, SIGNATURES)  # type: ignore[arg-type]
    assert len(store.fetched) == 1 and any("were not read" in p for p in got.problems), got.problems


def test_an_envelope_of_thousands_of_signatures_is_refused_unchecked(tmp_path: Path) -> None:
    """Every signature was tried with every trusted key (about 0.1 ms each): 256 MiB of them was
    minutes of CPU. A genuine one among them does not make the rest worth checking."""
    key = signing_key(key_pair(tmp_path, "k")[0])
    pub = keys.TrustedKey(keys.load_public_key(keys.public_pem(key)), "k.pub")
    digest = "sha256:" + "a" * 64
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": "x",
                            "subject": [{"name": "i", "digest": {"sha256": "a" * 64}}]}).encode()
    good = json.loads(dsse.sign(statement, dsse.INTOTO_PAYLOAD_TYPE, key))
    assert check_envelopes(digest, [("one", json.dumps(good).encode())], [pub])[0]
    junk = {"keyid": "", "sig": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()}
    good["signatures"] = good["signatures"] + [junk] * dsse.MAX_SIGNATURES
    valid, problems = check_envelopes(digest, [("many", json.dumps(good).encode())], [pub])
    assert not valid and problems == [f"many: the envelope has {dsse.MAX_SIGNATURES + 1} signatures, more than "
                                      f"the {dsse.MAX_SIGNATURES} pallet checks"]


# -- references an image names are not the user's: --creds stay with the user's registries ------


def _recording_registry(seen: list[tuple[str, str | None]]):
    """A registry asking for Basic credentials and recording every Authorization it gets."""
    from tests.test_hostile_registry import hostile_registry

    def trap(handler, path: str) -> bool:
        seen.append((path, handler.headers.get("Authorization")))
        if "Authorization" not in handler.headers:
            handler.answer(401, b"{}", (("WWW-Authenticate", 'Basic realm="r"'),))
            return True
        return False

    return hostile_registry(trap)


@pytest.mark.parametrize("named_by", ["label", "annotation"])
def test_a_run_image_an_image_names_on_another_host_gets_no_credentials(tmp_path: Path, named_by: str) -> None:
    """``pallet rebase IMAGE --creds U:P``: the image's lifecycle label (runImage.image) or its
    base.name annotation named docker://attacker/..., and rebase sent U:P there to read the old
    run image. The user's --creds are for the registries the user named."""
    from tests.supplykit import os_layer

    seen: list[tuple[str, str | None]] = []
    lay = LayoutStore(tmp_path / "lay")
    run = push(lay, [os_layer()], tag="run")
    run_cfg = json.loads(lay.get_blob(__import__("builder.oci.model", fromlist=["Manifest"]).Manifest.from_bytes(
        lay.get_manifest("run")[1]).config))
    with _recording_registry(seen) as attacker:
        name = f"docker://{attacker}/evil/run@{run.digest}"
        if named_by == "label":
            meta = {"runImage": {"image": name, "reference": run.digest,
                                 "topLayer": run_cfg["rootfs"]["diff_ids"][-1]}}
            push(lay, [files({"workspace/app": b"1"})], tag="app", base=run,
                 labels={"io.buildpacks.lifecycle.metadata": json.dumps(meta)})
        else:
            push(lay, [files({"workspace/app": b"1"})], tag="app", base=run,
                 annotations={"org.opencontainers.image.base.digest": run.digest,
                              "org.opencontainers.image.base.name": name})
        proc = pallet("rebase", f"oci:{tmp_path}/lay:app", "--run-image", f"oci:{tmp_path}/lay:run",
                      "--creds", "victim:s3cret", "--dry-run", check=False, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert seen, "the named run image was not even looked up: the test proves nothing"
    assert all(auth is None for _, auth in seen), seen


def test_credentials_still_go_to_a_registry_the_user_named(tmp_path: Path) -> None:
    from builder.oci import reference as refs
    from builder.oci.stores import StoreOptions, options_for_named

    options = StoreOptions(creds="u:p")
    mine = refs.parse("docker://reg.example/stacks/run@sha256:" + "a" * 64)
    theirs = refs.parse("docker://attacker.example/x@sha256:" + "a" * 64)
    given = ("docker://reg.example/apps/shop:1", "oci:/somewhere:run")
    assert options_for_named(mine, options, given).creds == "u:p"
    assert options_for_named(theirs, options, given).creds is None
    assert options_for_named(theirs, options, (), ("attacker.example",)).creds == "u:p"


# -- a Go binary's build info, read by pallet sbom and audit from any image's files -------------


def test_a_go_binary_whose_section_table_lies_is_no_go_binary_not_a_traceback() -> None:
    """An ELF header whose section table offset is 2^63: the seek raised OverflowError (not a
    ValueError), out of pallet sbom as a traceback."""
    import io
    import struct

    from builder.supply import gobuildinfo
    from tests.supplykit import go_elf

    elf = bytearray(go_elf())
    assert gobuildinfo.read_build_info(io.BytesIO(bytes(elf))) is not None
    assert elf[4] == 2 and elf[5] == 1  # 64-bit, little-endian: e_shoff at 0x28
    elf[0x28:0x30] = struct.pack("<Q", (1 << 63) + 5)
    gobuildinfo.read_build_info(io.BytesIO(bytes(elf)))  # no exception; the magic scan may still find it


def test_damaged_go_binaries_never_raise() -> None:
    """Byte flips in the headers of a real-shaped Go ELF (seeded, so a failure is reproducible)."""
    import io
    import random

    from builder.supply import gobuildinfo
    from tests.supplykit import go_elf

    base = go_elf()
    rnd = random.Random(20261206)
    for _ in range(1000):
        data = bytearray(base)
        for _ in range(rnd.randint(1, 8)):
            data[rnd.randrange(min(len(data), 256))] = rnd.randrange(256)
        gobuildinfo.read_build_info(io.BytesIO(bytes(data[:rnd.randrange(64, len(data) + 1)])))


def test_package_names_and_versions_from_an_image_reach_the_terminal_escaped(tmp_path: Path) -> None:
    """``pallet audit --package`` printed what the image's dpkg status and package.json say
    raw: a version could retitle the terminal, clear it, or forge a line of the report. Now
    each report line shows control characters and newlines escaped."""
    from tests.imagekit import push_image

    status = (b"Package: foo\nStatus: install ok installed\nArchitecture: amd64\n"
              b"Version: 1.0\x1b]0;owned\x07\x1b[31m\nDescription: x\n\n")
    manifest = b'{"name": "bar", "version": "2.0\\u001b[2J\\nlibfoo 9.9 (forged)"}'
    push_image(LayoutStore(tmp_path / "img"), [{"var/lib/dpkg/status": status,
                                                 "workspace/node_modules/bar/package.json": manifest}], tag="v1")
    for package, shown in (("foo", "foo 1.0\\x1b]0;owned\\x07\\x1b[31m"), ("bar", "bar 2.0\\x1b[2J\\x0alibfoo")):
        proc = pallet("audit", "--package", package, f"oci:{tmp_path}/img:v1")
        assert shown in proc.stdout and proc.stdout.count("\n") == 1, proc.stdout
        assert "\x1b" not in proc.stdout + proc.stderr, proc.stdout


def test_an_attached_sbom_that_is_no_document_is_passed_over(tmp_path: Path) -> None:
    """``pallet sbom`` printed whatever bytes were attached as the image's SBOM: not UTF-8 was a
    UnicodeDecodeError traceback; terminal escapes went to the terminal as they were. An
    attachment that is no document of its format is now passed over, as verify already did."""
    from builder.supply.attach import attach_referrer, subject_of
    from tests.imagekit import push_image

    store = LayoutStore(tmp_path / "img")
    desc = push_image(store, [{"a": b"1"}], tag="t")
    desc = desc[0] if isinstance(desc, tuple) else desc
    for junk in (b"\xff\xfe{}", b"\x1b]0;owned\x07\x1b[2J", b'{"spdxVersion": 2}'):
        attach_referrer(store, subject_of(store, desc.digest), "application/spdx+json", junk, "application/spdx+json")
    proc = pallet("sbom", "--format", "spdx", f"oci:{tmp_path}/img:t")
    assert json.loads(proc.stdout)["spdxVersion"].startswith("SPDX-") and "computed from its layers" in proc.stderr


@pytest.mark.parametrize("deps", [5, None, "git+https://x", {"name": "run-image"}])
def test_a_signed_statement_whose_dependencies_are_no_list_names_none(deps) -> None:
    """A statement is whatever its signer wrote: resolvedDependencies of 5 (or null) was a
    TypeError traceback in verify's policy check and rebase chain; now no dependency is named."""
    from builder.supply import provenance, rebaseprov

    st = {"predicate": {"buildDefinition": {"resolvedDependencies": deps}}}
    assert provenance.source_repository_of(st) is None
    assert rebaseprov.original_of(st) is None and rebaseprov.run_images_of(st) == (None, None)


@pytest.mark.parametrize("fmt, doc, names", [
    ("cyclonedx", {"components": 5}, []),
    ("cyclonedx", {"components": [{"name": "a", "properties": 5}, {"name": "b", "components": 7}]}, ["a", "b"]),
    ("cyclonedx", {"components": [{"name": "a", "properties": [{"name": [1], "value": "x"}]}]}, ["a"]),
    ("spdx", {"packages": 5}, []),
    ("spdx", {"packages": [{"name": "a", "externalRefs": 5}, 3]}, ["a"]),
    ("spdx", [1], []),
], ids=["components-number", "properties-number", "property-name-list", "packages-number", "refs-number",
        "document-list"])
def test_an_attached_sbom_of_the_wrong_types_lists_what_it_can(fmt: str, doc, names: list[str]) -> None:
    """An attached SBOM is anyone's who can push to the repository: a number where a list goes was
    a TypeError traceback in pallet audit; what is no object is passed over, the rest listed."""
    from builder.supply import sbom

    assert sorted(p.name for p in sbom.listed_packages(json.dumps(doc).encode(), fmt)) == names


def test_an_images_sbom_layer_of_the_wrong_types_lists_what_it_can(tmp_path: Path) -> None:
    """A rebase's fresh SBOM reads the app's packages from the image's own SBOM layer (anyone's
    image): a document that is a list, a purl or a license that is no string were AttributeError
    tracebacks; what names no package is passed over, the rest kept."""
    import hashlib

    from builder.oci.image import load_image
    from builder.supply.refresh import app_packages
    from tests.imagekit import push_image, tar_of

    good = {"name": "flask", "version": "3", "purl": "pkg:pypi/flask@3", "licenses": [5, {"license": "x"},
                                                                                         {"expression": 7}]}
    files = {"layers/sbom/launch/a/sbom.cdx.json": json.dumps([1]).encode(),
             "layers/sbom/launch/b/sbom.cdx.json": json.dumps({"components": [
                 5, {"name": "x", "purl": 7}, {"name": ["x"], "purl": "pkg:npm/x@1"}, good]}).encode(),
             "layers/sbom/launch/c/sbom.cdx.json": json.dumps({"components": 5}).encode()}
    diff_id = "sha256:" + hashlib.sha256(tar_of(files)).hexdigest()
    label = json.dumps({"sbom": {"sha": diff_id}})
    store = LayoutStore(tmp_path / "img")
    desc, _ = push_image(store, [files], tag="t",
                         config_extra={"config": {"Labels": {"io.buildpacks.lifecycle.metadata": label}}})
    assert [(p.name, p.licenses) for p in app_packages(load_image(store, desc.digest))] == [("flask", ())]
