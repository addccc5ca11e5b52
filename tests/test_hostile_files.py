"""Hostile files given to pallet (issue 11, third sweep): keys, policies, advisories, ``--from``
plans, stack files, and JSON an image or a registry hands over (labels, envelopes, payloads, SBOMs).

A file that is a FIFO blocked pallet for ever at ``open``; ``/dev/zero`` was read until memory ran
out; a zip of advisories inflated without a bound; JSON nested a few thousand levels deep was a
RecursionError traceback wherever it was parsed. Each is now a one-line error, quickly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from builder.errors import InputFileError
from builder.oci.stores.layout import LayoutStore
from tests.cli import ROOT, pallet
from tests.imagekit import push_image, push_layer_blobs, tar_of
from tests.test_hostile_inputs import one_line_error

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """An image (oci:img:t), a FIFO and a key pair, in ``tmp_path``."""
    os.mkfifo(tmp_path / "fifo")
    push_image(LayoutStore(tmp_path / "img"), [{"a": b"1"}], tag="t")
    pallet("keygen", "--output-key-prefix", str(tmp_path / "k"), env={"PALLET_PASSWORD": "pw"})
    return tmp_path


def _special(box: Path, kind: str) -> str:
    return {"fifo": str(box / "fifo"), "zero": "/dev/zero", "dir": str(box)}[kind]


NEEDLE = {"fifo": "a FIFO, socket or device, not a regular file", "zero": "a FIFO, socket or device",
          "dir": "a directory, not a regular file"}


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir"])
def test_a_key_that_is_not_a_regular_file_is_refused_not_waited_on(box: Path, kind: str) -> None:
    key, ref = _special(box, kind), f"oci:{box}/img:t"
    # hang guards, not speed checks: a FIFO blocked open() for ever, /dev/zero filled memory
    one_line_error(pallet("verify", "--key", key, ref, check=False, timeout=120), key, "public key", NEEDLE[kind])
    one_line_error(pallet("sign", "--key", key, ref, check=False, timeout=120, env={"PALLET_PASSWORD": "pw"}),
                   key, "private key", NEEDLE[kind])


def test_a_dsa_key_is_refused_in_one_line_without_a_warning(tmp_path: Path) -> None:
    """cryptography warns as it loads a DSA key (deprecated): the warning, two lines quoting
    pallet's source, went to stderr before pallet's own refusal."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa

    push_image(LayoutStore(tmp_path / "img"), [{"a": b"1"}], tag="t")
    with pytest.warns(Warning):   # DSA is deprecated: here too
        key = dsa.generate_private_key(1024)
    (tmp_path / "dsa.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "dsa.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ref = f"oci:{tmp_path}/img:t"
    one_line_error(pallet("verify", "--key", str(tmp_path / "dsa.pub"), ref, check=False), "unsupported key type")
    one_line_error(pallet("sign", "--key", str(tmp_path / "dsa.key"), ref, check=False), "only ECDSA")


def test_a_policy_naming_a_key_with_a_nul_character_is_a_one_line_error(tmp_path: Path) -> None:
    """os.open's ValueError (embedded null byte) was a traceback: no file can be named so."""
    push_image(LayoutStore(tmp_path / "img"), [{"a": b"1"}], tag="t")
    (tmp_path / "policy.toml").write_text('keys = ["keys/a\\u0000.pub"]\n')
    one_line_error(pallet("verify", "--policy", str(tmp_path / "policy.toml"), f"oci:{tmp_path}/img:t", check=False),
                   "public key's name has a NUL character")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_policy_or_a_key_it_names_that_is_not_a_regular_file_is_refused(box: Path, kind: str) -> None:
    special, ref = _special(box, kind), f"oci:{box}/img:t"
    (box / "policy.toml").write_text(f"keys = [{json.dumps(special)}]\n")
    one_line_error(pallet("verify", "--policy", str(box / "policy.toml"), ref, check=False, timeout=120),
                   special, "public key", NEEDLE[kind])
    one_line_error(pallet("verify", "--policy", special, ref, check=False, timeout=120), special, "policy",
                   NEEDLE[kind])


@pytest.mark.parametrize("kind", ["fifo", "zero", "fifo-in-dir"])
def test_advisories_that_are_not_regular_files_are_refused(box: Path, kind: str) -> None:
    if kind == "fifo-in-dir":
        (box / "adv").mkdir()
        os.mkfifo(box / "adv" / "DSA-1.json")
        path, named, needle = str(box / "adv"), str(box / "adv" / "DSA-1.json"), "the advisory is a FIFO"
    else:
        path = named = _special(box, kind)
        needle = f"the advisories file is {NEEDLE[kind]}"
    proc = pallet("audit", "--advisories", path, f"oci:{box}/img:t", check=False, timeout=120)
    one_line_error(proc, named, needle)


def test_a_zip_of_advisories_is_read_within_a_bound_whatever_its_members_declare(tmp_path: Path, monkeypatch) -> None:
    """A member of a few KB inflating to more than the bound is refused as it is read."""
    from builder.supply import osv

    monkeypatch.setattr(osv, "MAX_RECORD_FILE", 1 << 20)
    with zipfile.ZipFile(tmp_path / "all.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("DSA-1.json", b" " * (2 << 20) + b"{}")
    assert (tmp_path / "all.zip").stat().st_size < 16 << 10
    with pytest.raises(InputFileError, match=r"all.zip:DSA-1.json is over 1048576 bytes"):
        osv.load(tmp_path / "all.zip")


def test_a_rebase_plan_that_is_a_fifo_or_not_utf8_is_a_one_line_error(box: Path) -> None:
    run = f"oci:{box}/img:t"
    one_line_error(pallet("rebase", "--run-image", run, "--from", str(box / "fifo"), check=False, timeout=120),
                   "--from plan", NEEDLE["fifo"])
    (box / "plan.txt").write_bytes(b"oci:\xff\xfe:t\n")
    one_line_error(pallet("rebase", "--run-image", run, "--from", str(box / "plan.txt"), check=False),
                   "--from", "not UTF-8 text")


@pytest.mark.parametrize("command", ["lock", "build"])
def test_a_stack_file_that_is_a_fifo_is_refused(box: Path, command: str) -> None:
    proc = pallet("stack", command, str(box / "fifo"), check=False, timeout=120)
    one_line_error(proc, "the stack file is a FIFO")


def test_a_lock_file_that_is_a_fifo_or_huge_is_refused_not_read(box: Path) -> None:
    """A stack file's lock (beside it) and an app's Aptfile.lock were read with read_bytes: a FIFO
    blocked pallet stack build (and pallet build --stack) for ever, a huge one was read whole."""
    from builder.lifecycle import aptfile
    from builder.stacks.lockfile import MAX_LOCK

    shutil.copy(ROOT / "stacks" / "tiny.toml", box / "tiny.toml")
    os.mkfifo(box / "tiny.lock")
    one_line_error(pallet("stack", "build", str(box / "tiny.toml"), check=False, timeout=120),
                   "tiny.lock: the lock file is a FIFO")
    app = box / "app"
    app.mkdir()
    (app / "Aptfile.lock").write_bytes(b"lock-version = 1\n" + b"#" * MAX_LOCK + b"\n")
    with pytest.raises(InputFileError, match=f"the lock file is over {MAX_LOCK} bytes"):
        aptfile.read_lock(app, "amd64")


# -- JSON nested deeper than Python's parser goes ----------------------------------------------------


def test_a_lifecycle_label_nested_too_deep_is_a_refused_rebase_not_a_traceback(tmp_path: Path) -> None:
    labels = {"io.buildpacks.lifecycle.metadata": DEEP}
    push_layer_blobs(LayoutStore(tmp_path / "app"), [tar_of({"a": b"1"})], tag="t",
                     config_extra={"config": {"Labels": labels}})
    push_layer_blobs(LayoutStore(tmp_path / "run"), [tar_of({"b": b"1"})], tag="t")
    before = (tmp_path / "app" / "index.json").read_bytes()
    proc = pallet("rebase", "--run-image", f"oci:{tmp_path}/run:t", f"oci:{tmp_path}/app:t", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "io.buildpacks.lifecycle.metadata label has no runImage.topLayer" in proc.stdout + proc.stderr
    assert (tmp_path / "app" / "index.json").read_bytes() == before


def _rebase_with_lifecycle_label(tmp_path: Path, run_image: dict, section: object = None):
    """pallet rebase of an image whose lifecycle label holds ``run_image`` (topLayer added) and
    the pallet ``section``; (the process, whether the app's index.json is as it was)."""
    run_layer = tar_of({"b": b"1"})
    label = {"runImage": {"topLayer": "sha256:" + hashlib.sha256(run_layer).hexdigest(), **run_image},
             "pallet": section}
    push_layer_blobs(LayoutStore(tmp_path / "app"), [run_layer, tar_of({"a": b"1"})], tag="t",
                     config_extra={"config": {"Labels": {"io.buildpacks.lifecycle.metadata": json.dumps(label)},
                                              "User": "1000:1000"}, "history": [{}, {}]})
    push_layer_blobs(LayoutStore(tmp_path / "run"), [tar_of({"c": b"1"})], tag="t")
    before = (tmp_path / "app" / "index.json").read_bytes()
    proc = pallet("rebase", "--run-image", f"oci:{tmp_path}/run:t", f"oci:{tmp_path}/app:t", check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, (tmp_path / "app" / "index.json").read_bytes() == before


@pytest.mark.parametrize("section, said", [
    ("x", "pallet section is not an object"),
    ({"pathDirs": 5}, "pallet.pathDirs is not a list of strings"),
    ({"labels": 5}, "pallet.labels is not a list of strings"),
    ({"labels": [[1]]}, "pallet.labels is not a list of strings"),
], ids=["string", "pathdirs-number", "labels-number", "labels-of-lists"])
def test_a_lifecycle_labels_pallet_section_of_the_wrong_types_is_a_refused_rebase(tmp_path: Path, section,
                                                                                   said: str) -> None:
    """The label is the image's: its pallet section was read as compose writes it (a string was
    an AttributeError traceback, "labels": 5 a TypeError one)."""
    proc, unchanged = _rebase_with_lifecycle_label(tmp_path, {}, section)
    assert proc.returncode != 0 and said in proc.stdout + proc.stderr
    assert unchanged


@pytest.mark.parametrize("run_image", [
    {"image": 5, "reference": "sha256:" + "a" * 64},
    {"image": [[1]], "reference": "sha256:" + "a" * 64},
    {"image": "run", "reference": 5},
], ids=["image-number", "image-list", "reference-number"])
def test_a_lifecycle_labels_run_image_names_that_are_no_strings_are_not_recorded(tmp_path: Path, run_image) -> None:
    """The old run image's name and digest went to the reference parser and a cache key as they
    were (AttributeError, TypeError tracebacks): what is no string is as if not recorded."""
    proc, unchanged = _rebase_with_lifecycle_label(tmp_path, run_image)
    assert proc.returncode == 0 and not unchanged, proc.stdout + proc.stderr


@pytest.mark.parametrize("parse", ["dsse", "simplesigning", "sbom", "osv"])
def test_untrusted_json_nested_too_deep_is_each_parsers_own_error(tmp_path: Path, parse: str) -> None:
    from builder.supply import dsse, osv, sbom, simplesigning
    from builder.supply.errors import SupplyError

    data = DEEP.encode()
    if parse == "dsse":
        with pytest.raises(dsse.EnvelopeError, match="not JSON"):
            dsse.parse(data)
    elif parse == "simplesigning":
        with pytest.raises(simplesigning.PayloadError, match="not JSON"):
            simplesigning.parse(data)
    elif parse == "sbom":
        with pytest.raises(SupplyError, match="not JSON"):
            sbom.listed_packages(data, "cyclonedx")
    else:
        (tmp_path / "DSA-1.json").write_bytes(data)
        with pytest.raises(osv.AdvisoryError, match="not JSON.*nested too deeply"):
            osv.load(tmp_path / "DSA-1.json")


def test_json_of_millions_of_tiny_values_is_refused_before_it_is_parsed() -> None:
    """A signature payload, an attestation or an SBOM may be 256 MiB: ``[{},{},...]`` of that
    took ~30 times as much memory to parse. Past MAX_VALUES it is malformed JSON to each parser,
    counted in milliseconds; a document of real shape parses as before."""
    from builder import jsonsafe
    from builder.supply import sbom
    from builder.supply.errors import SupplyError

    data = b"[" + b",".join([b"{}"] * (jsonsafe.MAX_VALUES + 1)) + b"]"
    with pytest.raises(ValueError, match=f"over {jsonsafe.MAX_VALUES} values"):
        jsonsafe.loads(data)
    with pytest.raises(SupplyError, match="not JSON"):
        sbom.listed_packages(data, "cyclonedx")
    many = json.dumps({"components": [{"name": f"p{i}", "version": "1"} for i in range(100_000)]})
    assert len(jsonsafe.loads(many)["components"]) == 100_000


def test_a_signature_whose_payload_is_nested_too_deep_fails_verification_cleanly(box: Path) -> None:
    """The signature is a real one, by the trusted key, over a payload a hostile signer made."""
    from builder.oci.image import load_image
    from builder.supply import keys

    store = LayoutStore(box / "img")
    digest = load_image(store, "t").digest
    key = keys.read_private_key(box / "k.key", lambda: b"pw")
    payload = DEEP.encode()
    signature = keys.sign(key, payload)
    _attach_signature(store, digest, payload, signature)
    proc = pallet("verify", "--key", str(box / "k.pub"), f"oci:{box}/img:t", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "signed, but the payload is not JSON" in proc.stdout, proc.stdout


def _attach_signature(store: LayoutStore, digest: str, payload: bytes, signature: bytes) -> None:
    """A cosign signature manifest under ``sha256-<hex>.sig``, as cosign lays it out."""
    import base64

    from builder.oci import mediatypes as mt

    layer = store.put_blob_bytes(payload, "application/vnd.dev.cosign.simplesigning.v1+json")
    config = store.put_blob_bytes(b"{}", mt.OCI_CONFIG)
    layer_json = {**layer.to_json(), "annotations": {
        "dev.cosignproject.cosign/signature": base64.b64encode(signature).decode()}}
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config.to_json(), "layers": [layer_json]}
    store.put_manifest(json.dumps(manifest).encode(), mt.OCI_MANIFEST, tag=digest.replace(":", "-") + ".sig")


# -- buildpacks and TOML ------------------------------------------------------------------------------


def _buildpack(root: Path, toml: str | None) -> Path:
    (root / "bin").mkdir(parents=True)
    for step in ("detect", "build"):
        (root / "bin" / step).write_text("#!/bin/sh\nexit 0\n")
        (root / "bin" / step).chmod(0o755)
    if toml is None:
        os.mkfifo(root / "buildpack.toml")
    else:
        (root / "buildpack.toml").write_text(toml)
    return root


@pytest.mark.parametrize("bp_id", ["..", ".", "x/../y", "a//b"])
def test_a_buildpack_id_that_would_name_another_directory_is_refused(tmp_path: Path, bp_id: str) -> None:
    """The id names directories (/layers/<id> on the host, the plan's): '..' was the build's
    work directory itself, emptied by the plan's set-up and bound writable into the sandbox."""
    bp = _buildpack(tmp_path / "bp", f'api = "0.10"\n[buildpack]\nid = "{bp_id}"\nversion = "1"\n')
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_text("hi")
    proc = pallet("detect", "--buildpack", str(bp), str(tmp_path / "app"), check=False)
    one_line_error(proc, f"invalid id {bp_id!r}", progress=True)


def test_a_buildpack_toml_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    bp = _buildpack(tmp_path / "bp", None)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_text("hi")
    proc = pallet("detect", "--buildpack", str(bp), str(tmp_path / "app"), check=False, timeout=120)  # hang guard
    one_line_error(proc, "buildpack.toml: cannot read: the TOML file is a FIFO", progress=True)


@pytest.mark.parametrize("where", ["project.toml", "policy", "stack file"])
def test_toml_nested_too_deep_is_invalid_toml_not_a_traceback(tmp_path: Path, where: str) -> None:
    deep = "a = " + "[" * 10_000 + "]" * 10_000 + "\n"
    if where == "project.toml":
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / "index.html").write_text("hi")
        (tmp_path / "app" / "project.toml").write_text(deep)
        proc = pallet("detect", str(tmp_path / "app"), check=False)
    elif where == "policy":
        (tmp_path / "policy.toml").write_text(deep)
        proc = pallet("verify", "--policy", str(tmp_path / "policy.toml"), "oci:/nonexistent:t", check=False)
    else:
        (tmp_path / "stack.toml").write_text(deep)
        proc = pallet("stack", "lock", str(tmp_path / "stack.toml"), check=False)
    one_line_error(proc, "nested too deeply", progress=True)


# -- docker-archive paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_docker_archive_that_is_not_a_regular_file_is_refused_as_source_and_destination(box: Path, kind: str) -> None:
    """Reading one blocked on the FIFO for ever (or read /dev/zero); writing one read it first."""
    path = _special(box, kind)
    one_line_error(pallet("inspect", f"docker-archive:{path}", check=False, timeout=120), path,
                   "the docker-archive is a FIFO, socket or device")
    one_line_error(pallet("copy", f"oci:{box}/img:t", f"docker-archive:{path}:app:v1", check=False, timeout=120),
                   path, "the docker-archive is a FIFO")
    if kind == "fifo":
        assert (box / "fifo").is_fifo()  # not replaced by an archive


@pytest.mark.parametrize("record, needle", [
    ({"id": "X", "affected": 5}, "'affected' is not a list"),
    ({"id": "X", "aliases": "CVE-2024-1"}, "'aliases' is not a list"),  # was read as aliases C, V, E, ...
    ({"id": "X", "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"}, "versions": 7}]},
     "'versions' is not a list"),
    ({"id": "X", "affected": [{"package": {"ecosystem": "Debian:12", "name": "a"}, "ranges": 5}]},
     "'ranges' is not a list"),
])
def test_an_osv_record_of_the_wrong_types_is_a_one_line_error(box: Path, record: dict, needle: str) -> None:
    (box / "adv").mkdir()
    (box / "adv" / "X.json").write_text(json.dumps(record))
    proc = pallet("audit", "--advisories", str(box / "adv"), f"oci:{box}/img:t", check=False)
    one_line_error(proc, "X.json", needle)


def test_an_osv_severity_that_is_not_a_list_is_unknown_not_a_traceback(tmp_path: Path) -> None:
    from builder.supply import osv

    assert osv.parse_record({"id": "X", "severity": 5}).severity == "unknown"
