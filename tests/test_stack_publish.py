"""Stacks from a registry: ``pallet stack build --publish`` pushes both images by digest, and an
app's ``project.toml`` naming them (``[io.pallet.stack]``) builds on them on a fresh machine
without assembling anything, to the digest of a build on the local stack."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli import pallet

ROOT = Path(__file__).resolve().parent.parent
HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"
TINY = str(ROOT / "stacks" / "tiny.toml")

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def published(tmp_path_factory, registry) -> dict:
    """The tiny stack (from the machine's stack cache: a hit) published to the test registry."""
    home = tmp_path_factory.mktemp("publisher")
    done = pallet("stack", "build", TINY, "--refresh", "--publish", f"docker://{registry.host}/stacks", "--json",
                  env={"PALLET_HOME": str(home)}, timeout=900)
    data = json.loads(done.stdout)
    text = pallet("stack", "build", TINY, "--refresh", "--publish", f"docker://{registry.host}/stacks",
                  env={"PALLET_HOME": str(home)}, timeout=900).stdout
    data["text"] = text
    data["home"] = str(home)
    return data


def app_with(path: Path, stack_table: str) -> Path:
    path.mkdir(parents=True)
    (path / "hello.conf").write_text("from the registry\n")
    (path / "project.toml").write_text(stack_table)
    return path


def table(published: dict) -> str:
    refs = published["published"]
    return f'[io.pallet.stack]\nbuild-image = "{refs["build-image"]}"\nrun-image = "{refs["run-image"]}"\n'


def fresh_machine(root: Path) -> dict[str, str]:
    """No PALLET_HOME, no cache, and an mmdebstrap that only records that it was run."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "mmdebstrap").write_text(f"#!/bin/sh\ntouch {root}/mmdebstrap-ran\nexit 1\n")
    (bin_dir / "mmdebstrap").chmod(0o755)
    return {"PALLET_HOME": str(root / "home"), "PALLET_CACHE": str(root / "cache"), "XDG_CACHE_HOME": str(root / "xdg"),
            "PATH": f"{bin_dir}:{os.environ['PATH']}", "PALLET_SERVER": "0"}


def test_publish_pushes_both_images_by_digest(published, registry):
    refs = published["published"]
    for kind in ("build", "run"):
        ref = refs[f"{kind}-image"]
        assert ref == f"docker://{registry.host}/stacks/tiny-{kind}:0.1.0@{published[kind]['digest']}"
        assert ref == published[kind]["reference"]
        info = json.loads(pallet("inspect", "--json", ref).stdout)
        assert info["digest"] == published[kind]["digest"]
        assert info["config"]["labels"]["io.pallet.stack.image"] == kind
    assert published["text"].splitlines() == [refs["build-image"], refs["run-image"]]


def test_project_toml_stack_builds_without_assembling_with_the_local_stacks_digest(tmp_path, published,
                                                                                    registry_factory):
    # the stack copied (by digest) to a registry of this test's own, stopped after the first build
    own = registry_factory()
    refs = {}
    for kind in ("build", "run"):
        pallet("copy", published["published"][f"{kind}-image"], f"docker://{own.host}/stacks/tiny-{kind}:mirror")
        refs[f"{kind}-image"] = f"docker://{own.host}/stacks/tiny-{kind}@{published[kind]['digest']}"
    app = app_with(tmp_path / "app", table({"published": refs}))
    local = pallet("build", str(app), "--stack", TINY, "--buildpack", str(HELLO_BP), "-t", f"oci:{tmp_path}/local:app",
                   "--json", "--cache-dir", str(tmp_path / "local-cache"), env={"PALLET_HOME": published["home"]},
                   timeout=900)
    machine = fresh_machine(tmp_path / "runner")
    remote = pallet("build", str(app), "--buildpack", str(HELLO_BP), "-t", f"oci:{tmp_path}/remote:app", "--json",
                    env=machine, timeout=900)
    built = json.loads(remote.stdout)
    assert built["digest"] == json.loads(local.stdout)["digest"]
    assert built["stack"] == "tiny"
    cache = Path(machine["PALLET_CACHE"])
    assert not (tmp_path / "runner" / "mmdebstrap-ran").exists()
    assert not (cache / "stacks").exists() and not (cache / "debs").exists()  # nothing assembled
    (pulled,) = [p for p in (cache / "builders").iterdir() if not p.name.startswith(".")]
    assert (pulled / "images.json").is_file()
    own.stop()  # pulled once: the next build does not need the registry
    shutil.copytree(app, tmp_path / "app2")
    (tmp_path / "app2" / "hello.conf").write_text("again\n")
    again = pallet("build", str(tmp_path / "app2"), "--buildpack", str(HELLO_BP), "-t", f"oci:{tmp_path}/again:app",
                   "--json", env=machine, timeout=900)
    assert json.loads(again.stdout)["digest"] != built["digest"]  # another app, on the same pulled stack
    assert not (tmp_path / "runner" / "mmdebstrap-ran").exists()
    # and pallet prune sees the pulled stack (a builders/ entry), freed once no build holds it
    report = json.loads(pallet("prune", "--json", env=machine).stdout)
    assert f"sha256:{pulled.name}" in [e["name"] for e in report["removed"] if e["area"] == "builders"]
    assert not pulled.exists()


@pytest.mark.parametrize("stack_table, message", [
    ('[io.pallet.stack]\nbuild-image = "docker://{host}/stacks/tiny-build:0.1.0"\nrun-image = "{run}"\n',
     "[io.pallet.stack] build-image needs a digest (a tag can move): use "
     "docker://{host}/stacks/tiny-build:0.1.0@{build_digest} (what docker://{host}/stacks/tiny-build:0.1.0 names now)"),
    ('[io.pallet.stack]\nrun-image = "{run}"\n', "needs both build-image and run-image (or a builder)"),
    ('[io.pallet.stack]\nbuilder = "docker://{host}/builders/x:latest"\n',
     "[io.pallet.stack] builder needs a digest (a tag can move): use docker://{host}/builders/x:latest@sha256:... "
     "(its digest could not be looked up)"),
    ('[io.pallet.stack]\nbuilder = "{run}"\nrun-image = "{run}"\n', "builder names the stack's images"),
    ('[io.pallet.stack]\nimage = "{run}"\n', "unknown keys image"),
    # the source naming this machine's files (a probe, or a layout of someone else's): the command line's to name
    ('[io.pallet.stack]\nbuild-image = "oci:/etc@sha256:' + "a" * 64 + '"\nrun-image = "{run}"\n',
     "[io.pallet.stack] build-image must name a registry (docker://HOST/REPO@sha256:...), not 'oci:/etc@sha256:"),
])
def test_project_stack_reference_errors_are_one_line(tmp_path, published, registry, stack_table, message):
    run = published["published"]["run-image"]
    app = app_with(tmp_path / "app", stack_table.format(host=registry.host, run=run))
    machine = fresh_machine(tmp_path / "runner")
    done = pallet("build", str(app), "--buildpack", str(HELLO_BP), "-t", f"oci:{tmp_path}/x:app", env=machine,
                  check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pallet: error: ") and str(app / "project.toml") in lines[0]
    assert message.format(host=registry.host, build_digest=published["build"]["digest"]) in lines[0]
    assert not (tmp_path / "runner" / "cache" / "builders").exists()


@pytest.mark.parametrize("how", ["--builder", "project.toml"])
def test_a_stack_named_by_tag_is_refused_with_the_digest_it_names_now(tmp_path, published, registry, how):
    """One rule for --builder and [io.pallet.stack]: a digest, and the refusal quotes the one the tag
    names now (the published run image's here: the check comes before anything is pulled)."""
    tagged = f"docker://{registry.host}/stacks/tiny-run:0.1.0"
    app = app_with(tmp_path / "app", f'[io.pallet.stack]\nbuilder = "{tagged}"\n' if how == "project.toml" else "")
    machine = fresh_machine(tmp_path / "runner")
    flags = ["--builder", tagged] if how == "--builder" else []
    done = pallet("build", str(app), *flags, "-t", f"oci:{tmp_path}/x:app", env=machine, check=False)
    assert done.returncode == (2 if how == "--builder" else 1)  # a flag's usage error; a file's error
    (line,) = done.stderr.strip().splitlines()
    what = "--builder" if how == "--builder" else f"{app / 'project.toml'}: [io.pallet.stack] builder"
    assert line == (f"pallet: error: {what} needs a digest (a tag can move): use "
                    f"{published['published']['run-image']} (what {tagged} names now)")
    assert not (tmp_path / "runner" / "cache" / "builders").exists()


def test_builder_by_tag_that_cannot_be_looked_up_still_says_it_needs_a_digest(tmp_path):
    machine = fresh_machine(tmp_path / "runner")
    cases = (("docker://127.0.0.1:1/builders/x:v1", "use docker://127.0.0.1:1/builders/x:v1@sha256:... "
                                                    "(its digest could not be looked up)"),
             (f"docker-archive:{tmp_path}/b.tar", "which a docker-archive: file cannot carry"))
    for i, (ref, tail) in enumerate(cases):
        done = pallet("build", str(app_with(tmp_path / f"app{i}", "")), "--builder", ref,
                      "-t", f"oci:{tmp_path}/x:app", env=machine, check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("pallet: error: --builder needs a digest (a tag can move)") and tail in line


def test_publish_bad_input_is_one_line(tmp_path):
    for repo, message in ((f"oci:{tmp_path}/x", "name a registry repository prefix"),
                          ("docker://127.0.0.1:1/stacks:v1", "without a tag or digest")):
        done = pallet("stack", "build", TINY, "--publish", repo, env={"PALLET_HOME": str(tmp_path / "h")}, check=False)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = pallet("stack", "build", TINY, "--publish", "docker://127.0.0.1:1/s", "--run-tag", "x:y", check=False)
    assert done.returncode == 2 and "drop --build-tag and --run-tag" in done.stderr


def test_platform_builds_refuse_a_project_stack_reference_rather_than_ignore_it(tmp_path, published):
    app = app_with(tmp_path / "app", table(published))
    done = pallet("build", str(app), "--platform", "linux/amd64", "-t", f"oci:{tmp_path}/x:app",
                  env=fresh_machine(tmp_path / "runner"), check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "[io.pallet.stack] does not work with --platform yet" in done.stderr
