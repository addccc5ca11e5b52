"""``pallet rebase`` against real stores: the invariant, bytes moved, refusals, crash safety."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import pallet, popen
from tests.test_build import HELLO_BP, TINY, hello_app, home  # noqa: F401  (module fixture)


@pytest.fixture(scope="module")
def runs(home, tmp_path_factory):  # noqa: F811
    """Run images v1 (the tiny stack's) and v2 (v1 plus a patch file), and an app built on v1."""
    stack = json.loads(pallet("stack", "build", TINY, "--refresh", "--json", env=home).stdout)
    run_ref = stack["run"]["reference"] if "run" in stack else stack["images"]["run"]["reference"]
    pallet("copy", run_ref, "tiny-run:v1", env=home)
    patch = tmp_path_factory.mktemp("patch")
    (patch / "etc").mkdir()
    (patch / "etc" / "v2-marker").write_text("patched in v2\n")
    pallet("append", "tiny-run:v1", str(patch), "tiny-run:v2", env=home)
    return {"v1": "tiny-run:v1", "v2": "tiny-run:v2"}


def build_on(src: Path, tag: str, run: str, env: dict[str, str]) -> str:
    out = pallet("build", str(src), "-t", tag, "--stack", TINY, "--run-image", run, "--buildpack",
                 str(HELLO_BP), "--json", env=env)
    return json.loads(out.stdout)["digest"]


def inspect(ref: str, env: dict[str, str]) -> dict:
    return json.loads(pallet("inspect", "--json", ref, env=env).stdout)


def test_rebase_gives_the_digest_of_a_build_on_the_new_run_image(tmp_path, home, runs):  # noqa: F811
    app = hello_app(tmp_path / "app")
    on_v1 = build_on(app, "inv:a", runs["v1"], home)
    on_v2 = build_on(app, "inv:b", runs["v2"], home)
    assert on_v1 != on_v2
    out = pallet("rebase", "inv:a", "--run-image", runs["v2"], env=home)
    assert out.stdout.strip() == f"inv:a@{on_v2}"
    assert inspect("inv:a", home)["digest"] == on_v2
    again = pallet("rebase", "inv:a", "--run-image", runs["v2"], env=home)
    assert "already up to date" in again.stdout
    assert inspect(f"inv:a@{on_v1}", home)["digest"] == on_v1  # the old digest stays readable
    # and back: v2 -> v1 gives the v1 build again
    pallet("rebase", "inv:b", "--run-image", runs["v1"], env=home)
    assert inspect("inv:b", home)["digest"] == on_v1


def test_rebase_in_a_registry_moves_no_layer_bytes(tmp_path, home, runs, registry, docker_cli, image_name):  # noqa: F811
    host = registry.host
    app = hello_app(tmp_path / "app", "Registry hello")
    pallet("copy", runs["v1"], f"docker://{host}/stacks/run:v1", env=home)
    pallet("copy", runs["v2"], f"docker://{host}/stacks/run:v2", env=home)
    digest_v1 = build_on(app, f"docker://{host}/apps/hello:1", f"docker://{host}/stacks/run:v1", home)
    before = registry.log_text()
    out = pallet("rebase", f"docker://{host}/apps/hello:1", "--run-image", f"docker://{host}/stacks/run:v2",
                 env=home)
    new_digest = out.stdout.strip().rsplit("@", 1)[1]
    assert new_digest != digest_v1
    log = registry.log_text()[len(before):]
    blob_puts = re.findall(r'"(?:PUT|PATCH) /v2/apps/hello/blobs/uploads/[^"]*"', log)
    manifest_puts = re.findall(r'"PUT /v2/apps/hello/manifests/[^"]*"', log)
    config = inspect(f"docker://{host}/apps/hello:1", home)
    assert len(blob_puts) == 1  # the config blob only; run layers are mounted, app layers untouched
    # One PUT under the tag: nothing (signature, SBOM) must be attached to the new digest first.
    assert [put.split()[1] for put in manifest_puts] == ["/v2/apps/hello/manifests/1"]
    assert config["digest"] == new_digest
    direct = build_on(app, f"docker://{host}/apps/direct:1", f"docker://{host}/stacks/run:v2", home)
    assert direct == new_digest
    pallet("copy", f"docker://{host}/apps/hello:1", f"docker-daemon:{image_name}:1", env=home)
    ran = subprocess.run([docker_cli, "run", "--rm", "--network", "none", "--entrypoint", "/bin/cat",
                          f"{image_name}:1", "/etc/v2-marker"], capture_output=True, text=True, check=True)
    assert ran.stdout == "patched in v2\n"
    hello = subprocess.run([docker_cli, "run", "--rm", "--network", "none", f"{image_name}:1"],
                           capture_output=True, text=True, check=True)
    assert hello.stdout.startswith("hello: Registry hello from /workspace")


def test_a_repository_of_several_images_gets_each_new_layer_mounted_once(tmp_path, home, runs,  # noqa: F811
                                                                          registry):
    host = registry.host
    pallet("copy", runs["v1"], f"docker://{host}/shared/run:v1", env=home)
    pallet("copy", runs["v2"], f"docker://{host}/shared/run:v2", env=home)
    refs, direct = [], []
    for i in range(3):  # three different apps, three tags of one repository
        app = hello_app(tmp_path / f"app{i}", f"Fleet {i}")
        build_on(app, f"docker://{host}/fleet/many:{i}", f"docker://{host}/shared/run:v1", home)
        direct.append(build_on(app, f"docker://{host}/direct/app{i}:1", f"docker://{host}/shared/run:v2", home))
        refs.append(f"docker://{host}/fleet/many:{i}")
    before = registry.log_text()
    out = json.loads(pallet("rebase", *refs, "--run-image", f"docker://{host}/shared/run:v2", "--jobs", "1",
                            "--json", env=home).stdout)
    log = registry.log_text()[len(before):]
    assert [r["digest"] for r in out["results"]] == direct  # the invariant, for each
    mounts = re.findall(r'"POST /v2/fleet/many/blobs/uploads/\?[^"]*mount=[^"]*"', log)
    assert len(mounts) == 1  # v2's one new layer: mounted for the first image, known after


def test_rebase_in_an_oci_layout_and_dry_run(tmp_path, home, runs):  # noqa: F811
    app = hello_app(tmp_path / "app")
    lay = f"oci:{tmp_path}/lay:app"
    old = build_on(app, lay, runs["v1"], home)
    dry = pallet("rebase", lay, "--run-image", runs["v2"], "--dry-run", env=home)
    assert "would rebase" in dry.stdout and inspect(lay, home)["digest"] == old
    pallet("rebase", lay, "--run-image", runs["v2"], env=home)
    rebased = inspect(lay, home)
    assert rebased["digest"] != old
    lifecycle = json.loads(rebased["config"]["labels"]["io.buildpacks.lifecycle.metadata"])
    assert lifecycle["runImage"]["image"] == runs["v2"]
    assert rebased["annotations"]["org.opencontainers.image.base.name"] == runs["v2"]
    out = pallet("run", lay, env=home).stdout
    assert out.startswith("hello: Hi there")


def test_refusals_write_nothing(tmp_path, home, runs):  # noqa: F811
    app = hello_app(tmp_path / "app")
    digest = build_on(app, "refuse:1", runs["v1"], home)
    empty = tmp_path / "empty"
    empty.mkdir()
    pallet("append", runs["v1"], str(empty), "other-stack:1", "--label", "io.buildpacks.base.id=io.example.other",
           env=home)
    res = pallet("rebase", "refuse:1", "--run-image", "other-stack:1", env=home, check=False)
    assert res.returncode == 1 and "stack id differs" in res.stderr and "--force" in res.stderr
    assert inspect("refuse:1", home)["digest"] == digest
    pallet("append", "scratch", str(empty), "notbp:1", env=home)
    res = pallet("rebase", "notbp:1", "--run-image", runs["v2"], env=home, check=False)
    assert res.returncode == 1 and "not built by buildpacks" in res.stderr
    # package inventories: the new run image drops a package the old one had
    pallet("append", runs["v1"], str(empty), "pk:v1", "--label",
           'io.pallet.stack.packages={"bash": "5.2.15-2+b7", "jq": "1.6-2.1"}', env=home)
    pallet("append", runs["v1"], str(empty), "pk:v2", "--label",
           'io.pallet.stack.packages={"bash": "5.2.15-2+b8"}', env=home)
    pk_digest = build_on(app, "pkapp:1", "pk:v1", home)
    res = pallet("rebase", "pkapp:1", "--run-image", "pk:v2", env=home, check=False)
    assert res.returncode == 1 and "removes packages: jq" in res.stderr
    assert inspect("pkapp:1", home)["digest"] == pk_digest
    forced = pallet("rebase", "pkapp:1", "--run-image", "pk:v2", "--force", "--json", env=home)
    result = json.loads(forced.stdout)["results"][0]
    assert result["status"] == "rebased" and result["changes"]["upgraded"] == {"bash": ["5.2.15-2+b7", "5.2.15-2+b8"]}


def test_mass_rebase_keeps_going_and_survives_kill_9(tmp_path, home, runs):  # noqa: F811
    app = hello_app(tmp_path / "app")
    lay = tmp_path / "fleet"
    names = [f"oci:{lay}:app{i}" for i in range(12)]
    for name in names:
        build_on(app, name, runs["v1"], home)
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(names + [f"oci:{lay}:missing"]) + "\n")
    proc = popen("rebase", "--from", str(targets), "--run-image", runs["v2"], "--jobs", "2", env=home)
    time.sleep(0.8)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for name in names:  # every tag is on a complete image, old or new
        info = inspect(name, home)
        assert len(info["layers"]) in (5, 6)
    res = pallet("rebase", "--from", str(targets), "--run-image", runs["v2"], "--jobs", "4", "--json",
                 env=home, check=False)
    assert res.returncode == 1
    results = json.loads(res.stdout)["results"]
    statuses = {r["reference"].rsplit(":", 1)[-1]: r["status"] for r in results}
    assert statuses.pop("missing") == "failed"
    assert set(statuses.values()) <= {"rebased", "up to date"} and len(statuses) == 12
    again = json.loads(pallet("rebase", *names, "--run-image", runs["v2"], "--json", env=home).stdout)
    assert {r["status"] for r in again["results"]} == {"up to date"}
    direct = build_on(app, "direct:v2", runs["v2"], home)
    assert {inspect(n, home)["digest"] for n in names} == {direct}


def test_rebase_attaches_a_fresh_sbom_when_the_image_had_one(tmp_path, home, runs):  # noqa: F811
    from tests.test_build import _copy_bp

    bp = _copy_bp(tmp_path)
    script = (bp / "bin" / "build").read_text().replace("\nexit 0\n", "\n")
    script += ('meta="$layers/greeter/lib/python3.11/site-packages/flask-3.0.3.dist-info"\n'
               'mkdir -p "$meta"\nprintf "Metadata-Version: 2.1\\nName: Flask\\nVersion: 3.0.3\\n" > "$meta/METADATA"\n'
               'exit 0\n')
    (bp / "bin" / "build").write_text(script)
    app = hello_app(tmp_path / "app")
    lay = f"oci:{tmp_path}/lay:app"
    pallet("build", str(app), "-t", lay, "--stack", TINY, "--run-image", runs["v1"], "--buildpack", str(bp), env=home)
    pallet("sbom", lay, "--attach", env=home)
    out = pallet("rebase", lay, "--run-image", runs["v2"], "--json", env=home)
    result = json.loads(out.stdout)["results"][0]
    assert result["changes"]["sbom"] == ["cyclonedx", "spdx"]
    sbom = pallet("sbom", lay, "--format", "cyclonedx", env=home)
    assert "attached" in sbom.stderr or "referrer" in sbom.stderr
    doc = json.loads(sbom.stdout)
    assert doc["metadata"]["component"]["version"] == result["digest"]
    purls = {c.get("purl", "") for c in doc["components"]}
    assert "pkg:pypi/flask@3.0.3" in purls
    assert any(p.startswith("pkg:deb/debian/bash@") for p in purls)


def test_rebase_in_the_docker_engine(tmp_path, home, runs, docker_cli, image_name):  # noqa: F811
    app = hello_app(tmp_path / "app")
    build_on(app, "forengine:1", runs["v1"], home)
    pallet("copy", "forengine:1", f"docker-daemon:{image_name}:1", env=home)
    pallet("rebase", f"docker-daemon:{image_name}:1", "--run-image", runs["v2"], env=home)
    marker = subprocess.run([docker_cli, "run", "--rm", "--network", "none", "--entrypoint", "/bin/cat",
                             f"{image_name}:1", "/etc/v2-marker"], capture_output=True, text=True, check=True)
    assert marker.stdout == "patched in v2\n"
    hello = subprocess.run([docker_cli, "run", "--rm", "--network", "none", f"{image_name}:1"],
                           capture_output=True, text=True, check=True)
    assert hello.stdout.startswith("hello: Hi there from /workspace")


def test_rebase_by_base_annotation_for_images_not_built_by_buildpacks(tmp_path, home, runs):  # noqa: F811
    extra = tmp_path / "extra" / "srv"
    extra.mkdir(parents=True)
    (extra / "data.txt").write_text("app data\n")
    pallet("append", runs["v1"], str(extra.parent), "appended:1", env=home)
    info = inspect("appended:1", home)
    assert info["annotations"]["org.opencontainers.image.base.name"] == runs["v1"]
    pallet("rebase", "appended:1", "--run-image", runs["v2"], env=home)
    rebased = inspect("appended:1", home)
    v2 = inspect(runs["v2"], home)
    assert [x["diffID"] for x in rebased["layers"]] == [x["diffID"] for x in v2["layers"]] + [info["layers"][-1]["diffID"]]
    assert rebased["annotations"]["org.opencontainers.image.base.digest"] == v2["digest"]


def test_compatibility_rules():
    from builder import rebase
    from builder.oci.model import ImageConfig, RunConfig

    labels = {"io.buildpacks.base.id": "s", "io.buildpacks.base.distro.name": "debian",
              "io.buildpacks.base.distro.version": "12"}
    app = ImageConfig(architecture="amd64", config=RunConfig(labels=labels))
    same = ImageConfig(architecture="amd64", config=RunConfig(labels=labels))
    assert rebase.compatibility(app, same, None, None)[0] == []
    arm = ImageConfig(architecture="arm64", config=RunConfig(labels=labels))
    assert rebase.compatibility(app, arm, None, None)[0] == ["architecture differs: amd64 -> arm64"]
    other = ImageConfig(architecture="amd64", config=RunConfig(labels={**labels, "io.buildpacks.base.distro.version": "13"}))
    assert rebase.compatibility(app, other, None, None)[0] == ["version differs: 12 -> 13"]
    reasons, changes = rebase.compatibility(app, same, {"a": "1", "b": "1"}, {"a": "2", "c": "1"})
    assert reasons == ["the new run image removes packages: b"]
    assert changes == {"removed": ["b"], "added": {"c": "1"}, "upgraded": {"a": ["1", "2"]}}


@pytest.mark.parametrize("stack_name", ["bookworm", "trixie"])
def test_python_sample_rebased_equals_built_on_the_new_run_image(tmp_path, request, stack_name):
    """The invariant for a real language buildpack: samples/python-flask on each Debian stack."""
    from tests.samplekit import SAMPLES, free_port, http

    bookworm = request.getfixturevalue(stack_name)  # a Home with that stack's images
    env = bookworm.env
    stack = json.loads(pallet("stack", "build", str(Path(TINY).parent / f"{stack_name}.toml"), "--refresh",
                              "--json", env=env).stdout)
    run_ref = stack["images"]["run"]["reference"] if "images" in stack else stack["run"]["reference"]
    pallet("copy", run_ref, "bw-run:v1", env=env)
    patch = tmp_path / "patch" / "etc"
    patch.mkdir(parents=True)
    (patch / "v2-marker").write_text(f"{stack_name} v2\n")
    pallet("append", "bw-run:v1", str(patch.parent), "bw-run:v2", env=env)
    src = SAMPLES / "python-flask"
    on_v1 = bookworm.build_json(src, "flask:v1", tmp_path / "c1", "--run-image", "bw-run:v1")["digest"]
    on_v2 = bookworm.build_json(src, "flask:v2", tmp_path / "c2", "--run-image", "bw-run:v2")["digest"]
    out = pallet("rebase", "flask:v1", "--run-image", "bw-run:v2", env=env)
    assert out.stdout.strip() == f"flask:v1@{on_v2}" and on_v1 != on_v2
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "builder", "run", "flask:v1", "-p", str(port)],
                            env={**os.environ, **env, "PYTHONPATH": str(Path(TINY).parent.parent)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                body = http(port, "/healthz").body
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("the rebased app did not answer")
        assert body == "ok\n"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_stack_images_carry_the_inventory_rebase_compares(home, runs):  # noqa: F811
    labels = inspect(runs["v1"], home)["config"]["labels"]
    packages = json.loads(labels["io.pallet.stack.packages"])
    assert "bash" in packages and "base-files" in packages


def test_a_run_image_of_another_stack_is_refused():
    """Apps stay on their stack's line: a bookworm app never silently moves to trixie's run image."""
    from builder import rebase
    from builder.oci.model import ImageConfig, RunConfig

    def run_image(stack: str, version: str) -> ImageConfig:
        return ImageConfig(architecture="amd64", config=RunConfig(labels={
            "io.buildpacks.base.id": f"io.pallet.stacks.{stack}", "io.buildpacks.base.distro.name": "debian",
            "io.buildpacks.base.distro.version": version}))

    reasons, _ = rebase.compatibility(run_image("bookworm", "12"), run_image("trixie", "13"), None, None)
    assert "stack id differs: io.pallet.stacks.bookworm -> io.pallet.stacks.trixie" in reasons
    assert rebase.compatibility(run_image("trixie", "13"), run_image("trixie", "13"), None, None)[0] == []
