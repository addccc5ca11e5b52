"""The supply chain around ``pallet rebase``: audit finds the images to patch, rebase takes the
audit's JSON, re-signs each new digest and attaches its fresh SBOM (``supply.cli_hooks``)."""

from __future__ import annotations

import json

from builder.cli import main
from builder.oci.stores.registry import RegistryStore
from builder.supply import keys, sbom
from builder.supply.cli_hooks import signer
from builder.supply.verify import gather
from tests.fixtures_registry import unique_repo
from tests.supplykit import PASSWORD, Entry, files, key_pair, os_layer, push

PATCHED = os_layer()[3].data.replace(b"3.0.11-1~deb12u2", b"3.0.13-1~deb12u1")


def test_signer_signs_and_attaches_a_fresh_sbom(registry, tmp_path, monkeypatch):
    key_file, pub = key_pair(tmp_path)
    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    repo = unique_repo("supply/hook")
    store = RegistryStore(registry.host, repo)
    desc = push(store, [os_layer()], tag="v1")
    sign = signer(str(key_file))
    sign(store, f"docker://{registry.host}/{repo}:v1", desc.digest)
    ev = gather(store, desc.digest, [keys.read_public_key(pub)])
    assert len(ev.signatures) == 1 and len(ev.sboms) == 2


def test_audit_then_rebase_from_its_json_re_signs(registry, tmp_path, capsys, monkeypatch):
    key_file, pub = key_pair(tmp_path)
    monkeypatch.setenv("PALLET_PASSWORD", PASSWORD)
    base_repo, app_repo = unique_repo("supply/base"), unique_repo("supply/app")
    bases = RegistryStore(registry.host, base_repo)
    v1 = push(bases, [os_layer()], tag="v1")
    push(bases, [[*os_layer()[:3], Entry("var/lib/dpkg/status", PATCHED), *os_layer()[4:]]], tag="v2")
    apps = RegistryStore(registry.host, app_repo)
    from builder.oci.copy import copy_image

    copy_image(bases, v1.digest, apps, None)  # the app's lower layers are its base's
    app = push(apps, [files({"workspace/app.py": b"print('hi')\n"})], tag="latest", base=v1,
               annotations={"org.opencontainers.image.base.digest": v1.digest,
                            "org.opencontainers.image.base.name": f"docker://{registry.host}/{base_repo}:v1"})
    app_ref = f"docker://{registry.host}/{app_repo}:latest"

    assert main(["audit", app_ref, f"docker://{registry.host}/{base_repo}:v2", "--package", "openssl",
                 "--below", "3.0.13-1~deb12u1", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [e["reference"] for e in found] == [f"{app_ref}@{app.digest}"]
    todo = tmp_path / "todo.json"
    todo.write_text(json.dumps(found))

    code = main(["rebase", "--from", str(todo), "--run-image", f"docker://{registry.host}/{base_repo}:v2",
                 "--sign-key", str(key_file), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    new_digest = apps.resolve("latest").digest
    assert new_digest != app.digest
    ev = gather(apps, new_digest, [keys.read_public_key(pub)])
    assert len(ev.signatures) == 1 and len(ev.sboms) == 2
    data, _ = sbom.find_sbom(apps, new_digest, "cyclonedx")
    assert "openssl@3.0.13-1~deb12u1" in data.decode()
    assert main(["audit", app_ref, "--package", "openssl", "--below", "3.0.13-1~deb12u1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
