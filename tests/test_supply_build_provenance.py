"""What ``pallet build --sign-key`` records in its provenance: nothing of the host (no token from a
git remote, no buildpack directory, no local store name), and one attestation however often the
same image is built again."""

from __future__ import annotations

import base64
import json
import os
import subprocess

from builder.oci.stores.registry import RegistryStore
from builder.supply import dsse
from builder.supply.attach import ATTESTATIONS, read_attached
from tests.test_build import HELLO_BP, build_json, hello_app, home  # noqa: F401 (home: the fixture)
from tests.cli import pallet


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@e"})


def test_build_provenance_holds_nothing_of_the_host(tmp_path, home, registry):  # noqa: F811
    app = hello_app(tmp_path / "app")
    _git(app, "init", "-q")
    _git(app, "remote", "add", "origin", "https://oauth2:SECRET1@git.example/acme/hello.git?private_token=SECRET2")
    _git(app, "add", ".")
    _git(app, "commit", "-qm", "first")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=app, capture_output=True, text=True).stdout.strip()
    env = {**home, "PALLET_PASSWORD": "test-password"}
    pallet("keygen", "--output-key-prefix", str(tmp_path / "cosign"), env=env)
    repo = "prov/hello"
    ref = f"docker://{registry.host}/{repo}:1"
    for n in range(2):  # the same image built twice: one attestation
        built = build_json(app, ref, env, "--buildpack", str(HELLO_BP), "--sign-key", str(tmp_path / "cosign.key"),
                           "--cache-dir", str(tmp_path / f"cache{n}"))
    store = RegistryStore(registry.host, repo)
    att = read_attached(store, built["digest"], ATTESTATIONS)
    assert len(att.attachments) == 1
    envelope = json.loads(att.attachments[0][1].payload)
    assert envelope["signatures"][0]["keyid"] == ""
    text = base64.b64decode(envelope["payload"]).decode()
    st = json.loads(text)
    for secret in ("SECRET1", "SECRET2", str(tmp_path), str(HELLO_BP), os.environ.get("HOME", "/root") + "/"):
        assert secret not in text
    bd = st["predicate"]["buildDefinition"]
    assert bd["externalParameters"]["source"]["repository"] == "https://git.example/acme/hello.git"
    assert bd["externalParameters"]["buildpacks"] == [f"{b['id']}@{b['version']}" for b in built["buildpacks"]]
    deps = {d["name"]: d for d in bd["resolvedDependencies"]}
    assert deps["source"]["uri"] == f"git+https://git.example/acme/hello.git@{commit}"
    assert deps["run-image"]["uri"] == f"pkg:oci/tiny-run@{'sha256:' + deps['run-image']['digest']['sha256']}"
    dsse.parse(att.attachments[0][1].payload)
