"""``pallet builder create`` and builds inside the builder image, as a container-native CI job
or a Kubernetes Job runs them: the builder pulled by the Docker engine from a registry, run as
the unprivileged CNB user with every capability dropped, the source mounted read-only, the
image pushed to a registry. The commands are the README's (Kubernetes Job, GitLab CI job)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest

from tests.cli import pallet
from tests.samplekit import SAMPLES

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.registry]


def _docker(docker_cli: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([docker_cli, *args], capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def created(bookworm, registry) -> dict:
    """A builder image of the bookworm stack, pushed to the registry."""
    builder_ref = f"{registry.host}/builders/bookworm:{uuid.uuid4().hex[:8]}"
    return json.loads(pallet("builder", "create", "--stack", "bookworm", "-t", f"docker://{builder_ref}",
                             "--json", env=bookworm.env, timeout=900).stdout)


def test_in_place_build_in_the_builder_image_equals_the_sandboxed_build(tmp_path, bookworm, registry, docker_cli,
                                                                        created):
    assert created["stack"] == "bookworm" and created["python"] == "3.11"
    pinned = f"{registry.host}/builders/bookworm@{created['digest']}"
    labels = json.loads(pallet("inspect", "--json", f"docker://{pinned}", env=bookworm.env).stdout)["config"]["labels"]
    assert labels["io.pallet.builder.run-image.digest"] == created["runImage"]["digest"]
    assert labels["io.pallet.builder.run-image"].endswith("@" + created["runImage"]["digest"])

    _docker(docker_cli, "pull", "-q", pinned)
    try:
        src = SAMPLES / "static-site"
        app = f"docker://{registry.host}/apps/static-site:in-place"
        before = len(registry.log_text())
        # What the Kubernetes Job and the GitLab job run: the builder's own user, no privileges.
        done = _docker(docker_cli, "run", "--rm", "--network", "host", "--user", "1000:1000", "--cap-drop", "ALL",
                       "--security-opt", "no-new-privileges", "-v", f"{src}:/src:ro", pinned,
                       "pallet", "build", "/src", "-t", app, "--json")
        in_place = json.loads(done.stdout)
        assert in_place["stack"] == "bookworm"
        assert [b["id"] for b in in_place["buildpacks"]] == ["pallet/static"]
        assert in_place["layers"]["written"]  # it really built (nothing to reuse in a fresh container)
        # The run image was pushed beside the builder: its layers are mounted, only the app's go up.
        log = registry.log_text()[before:]
        uploaded = set(re.findall(r'"PUT /v2/apps/static-site/blobs/uploads/[^" ]*digest=sha256%3A([0-9a-f]{64})',
                                  log))
        mounted = set(re.findall(r'"POST /v2/apps/static-site/blobs/uploads/\?mount=sha256%3A([0-9a-f]{64})', log))
        mirror = f"docker://{registry.host}/builders/bookworm@{created['runImage']['digest']}"
        run_layers = {lay["digest"].split(":", 1)[1]
                      for lay in json.loads(pallet("inspect", "--json", mirror, env=bookworm.env).stdout)["layers"]}
        assert run_layers and run_layers <= mounted and not run_layers & uploaded and uploaded

        sandboxed = bookworm.build_json(src, f"docker://{registry.host}/apps/static-site:sandboxed",
                                        tmp_path / "cache", "--executor", "sandbox")
        assert in_place["digest"] == sandboxed["digest"]

        # bubblewrap is not what ran it: asking for the sandbox in the container fails (no
        # namespaces for an unprivileged container user), the in-place default does not.
        refused = _docker(docker_cli, "run", "--rm", "--network", "host", "--user", "1000:1000", "--cap-drop", "ALL",
                          "-v", f"{src}:/src:ro", pinned, "pallet", "build", "/src", "--executor", "sandbox",
                          "-t", "oci:/tmp/out:x", check=False)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
    finally:
        _docker(docker_cli, "rmi", pinned, check=False)


def test_a_stack_without_python_is_refused(tmp_path, registry):
    home = {"PALLET_HOME": str(tmp_path / "home")}
    from tests.samplekit import ROOT

    pallet("stack", "build", str(ROOT / "stacks" / "tiny.toml"), "--refresh", env=home, timeout=900)
    done = pallet("builder", "create", "--stack", str(ROOT / "stacks" / "tiny.toml"),
                  "-t", f"docker://{registry.host}/builders/tiny:1", env=home, check=False)
    assert done.returncode != 0
    assert "no python3" in done.stderr and "Traceback" not in done.stderr


def test_a_runner_builds_from_a_published_builder_without_a_stack_build(tmp_path, bookworm, registry, created):
    """--builder: a fresh runner (no PALLET_HOME, no cache at all) takes the stack's images from
    the builder in the registry; nothing is assembled (no stacks/ in its cache)."""
    pinned = f"docker://{registry.host}/builders/bookworm@{created['digest']}"
    cache_home = tmp_path / "xdg"
    env = {"PALLET_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(cache_home)}
    src = SAMPLES / "static-site"
    done = pallet("build", str(src), "--builder", pinned, "-t", f"oci:{tmp_path}/out:app", "--json",
                  env=env, timeout=900)
    built = json.loads(done.stdout)
    assert built["stack"] == "bookworm"
    assert not (cache_home / "pallet" / "stacks").exists()
    assert (cache_home / "pallet" / "builders" / created["digest"].split(":", 1)[1] / "builder.json").is_file()
    sandboxed = bookworm.build_json(src, f"oci:{tmp_path}/direct:app", tmp_path / "cache")
    assert built["digest"] == sandboxed["digest"]
    again = pallet("build", str(src), "--builder", pinned, "-t", f"oci:{tmp_path}/out2:app", "--json",
                   env=env, timeout=900)
    assert json.loads(again.stdout)["digest"] == built["digest"]  # from the pulled copy


def test_project_toml_names_the_builder_by_digest(tmp_path, bookworm, registry, created):
    """[io.pallet.stack] builder = REF@sha256:... in the app's project.toml: the same stack (and
    digest) as --builder, on a fresh runner; nothing assembled."""
    import shutil

    pinned = f"docker://{registry.host}/builders/bookworm@{created['digest']}"
    src = tmp_path / "app"
    shutil.copytree(SAMPLES / "static-site", src)
    (src / "project.toml").write_text(f'[io.pallet.stack]\nbuilder = "{pinned}"\n')
    env = {"PALLET_HOME": str(tmp_path / "home"), "PALLET_CACHE": str(tmp_path / "cache")}
    named = json.loads(pallet("build", str(src), "-t", f"oci:{tmp_path}/out:named", "--json", env=env,
                              timeout=900).stdout)
    assert named["stack"] == "bookworm"
    assert not (tmp_path / "cache" / "stacks").exists()
    flagged = json.loads(pallet("build", str(src), "--builder", pinned, "-t", f"oci:{tmp_path}/out:flag", "--json",
                                "--cache-dir", str(tmp_path / "other-cache"), env=env, timeout=900).stdout)
    assert named["digest"] == flagged["digest"]


def test_builder_must_be_a_pallet_builder(tmp_path, bookworm, registry):
    target = f"docker://{registry.host}/plain/run:1"
    pinned = json.loads(pallet("copy", "bookworm-run:0.1.0", target, "--json", env=bookworm.env).stdout)["reference"]
    done = pallet("build", str(SAMPLES / "static-site"), "--builder", pinned, "-t", f"oci:{tmp_path}/x:y",
                  env={"PALLET_HOME": str(tmp_path / "home")}, check=False)
    assert done.returncode != 0 and "not a pallet builder image" in done.stderr and "Traceback" not in done.stderr
