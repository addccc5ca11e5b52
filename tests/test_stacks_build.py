"""The tiny stack, locked and built for real: reproducible, cached, inventoried, runnable in Docker.

Every test runs ``pallet`` as a user would, with its own local store (``PALLET_HOME``) and stack
cache (``PALLET_CACHE``); downloaded .deb files are shared with the machine's cache
(``~/.cache/pallet/debs``) so the suite downloads each package once. The stack is locked afresh
against the mirror, so the tests do not depend on the shipped lock still resolving.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import pallet, popen
from tests.fixtures_docker import run_cli

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "stacks" / "tiny.toml"
DEB_CACHE = Path(os.environ.get("PALLET_CACHE") or Path.home() / ".cache" / "pallet") / "debs"

needs_stack_build = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap"),
                                       reason="stack builds need root and mmdebstrap (scripts/setup.sh installs it)")
pytestmark = needs_stack_build


@dataclass
class Env:
    """A private local store and stack cache, sharing the machine's .deb cache."""

    root: Path

    def __post_init__(self) -> None:
        (self.root / "cache").mkdir(parents=True, exist_ok=True)
        DEB_CACHE.mkdir(parents=True, exist_ok=True)
        link = self.root / "cache" / "debs"
        if not link.exists():
            link.symlink_to(DEB_CACHE)
        (self.root / "work").mkdir(exist_ok=True)

    @property
    def vars(self) -> dict[str, str]:
        return {"PALLET_HOME": str(self.root / "home"), "PALLET_CACHE": str(self.root / "cache"),
                "PALLET_STACK_TMPDIR": str(self.root / "work")}

    def pallet(self, *args: str, check: bool = True, extra: dict[str, str] | None = None, timeout: float = 900):
        return pallet(*args, env={**self.vars, **(extra or {})}, check=check, timeout=timeout)

    def local_tags(self) -> list[str]:
        index = self.root / "home" / "store" / "index.json"
        if not index.exists():
            return []
        return sorted(m.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
                      for m in json.loads(index.read_text())["manifests"])


def stack_dir(where: Path, text: str | None = None, name: str = "tiny") -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{name}.toml"
    path.write_text(text if text is not None else TINY.read_text())
    return path


@dataclass
class Built:
    stack: Path
    env: Env
    result: dict

    @property
    def build_digest(self) -> str:
        return self.result["build"]["digest"]

    @property
    def run_digest(self) -> str:
        return self.result["run"]["digest"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The tiny stack, locked now and built once (from scratch) into a private store."""
    root = tmp_path_factory.mktemp("tiny")
    env = Env(root / "env")
    stack = stack_dir(root / "stacks")
    env.pallet("stack", "lock", str(stack))
    result = json.loads(env.pallet("stack", "build", str(stack), "--json").stdout)
    return Built(stack, env, result)


# -- lock -------------------------------------------------------------------------------------------


def test_lock_pins_every_package_and_relocking_changes_nothing(tiny: Built) -> None:
    lock = tiny.stack.with_suffix(".lock")
    data = lock.read_bytes()
    text = data.decode()
    assert '"bash:amd64=' in text and '"jq:amd64=' in text and '"libjq1:amd64=' in text
    again = json.loads(tiny.env.pallet("stack", "lock", str(tiny.stack), "--json").stdout)
    assert again["changed"] is False and lock.read_bytes() == data
    assert again["packages"]["amd64"]["build"] == again["packages"]["amd64"]["run"] + 3  # jq, libjq1, libonig5


# -- build ------------------------------------------------------------------------------------------


def test_tiny_images_layers_labels_and_users(tiny: Built) -> None:
    r = tiny.result
    assert r["build"]["reference"] == f"tiny-build:0.1.0@{tiny.build_digest}"
    assert r["run"]["reference"] == f"tiny-run:0.1.0@{tiny.run_digest}"
    assert tiny.env.local_tags() == ["tiny-build:0.1.0", "tiny-run:0.1.0"]
    build = json.loads(tiny.env.pallet("inspect", "tiny-build:0.1.0", "--json").stdout)
    run = json.loads(tiny.env.pallet("inspect", "tiny-run:0.1.0", "--json").stdout)
    # the essential layer is shared; jq is the build image's own layer; the run image adds nothing
    assert len(build["layers"]) == 2 and len(run["layers"]) == 1
    assert run["layers"][0]["digest"] == build["layers"][0]["digest"]
    for info, kind in ((build, "build"), (run, "run")):
        labels = info["config"]["labels"]
        assert labels["io.buildpacks.base.id"] == labels["io.buildpacks.stack.id"] == "io.pallet.stacks.tiny"
        assert labels["io.buildpacks.base.distro.name"] == "debian"
        assert labels["io.buildpacks.base.distro.version"] == "12"
        assert labels["org.opencontainers.image.title"] == f"tiny-{kind}"
        assert labels["org.opencontainers.image.version"] == "0.1.0"
        assert labels["org.opencontainers.image.source"] == "stacks/tiny.toml"
        lock_epoch = int(next(line for line in tiny.stack.with_suffix(".lock").read_text().splitlines()
                              if line.startswith("source-date-epoch")).split("=")[1].split("#")[0])
        assert labels["org.opencontainers.image.created"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lock_epoch))
        assert info["config"]["user"] == "1000:1000"
    env = dict(e.split("=", 1) for e in build["config"]["env"])
    assert (env["CNB_USER_ID"], env["CNB_GROUP_ID"]) == ("1000", "1000")


def test_same_stack_and_lock_elsewhere_later_from_scratch_gives_identical_digests(tiny: Built, tmp_path: Path) -> None:
    other = Env(tmp_path / "elsewhere")
    stack = stack_dir(tmp_path / "another" / "checkout")
    shutil.copy(tiny.stack.with_suffix(".lock"), stack.with_suffix(".lock"))
    result = json.loads(other.pallet("stack", "build", str(stack), "--no-cache", "--json").stdout)
    assert result["cached"] is False
    assert (result["build"]["digest"], result["run"]["digest"]) == (tiny.build_digest, tiny.run_digest)
    assert result["build"]["layers"] == tiny.result["build"]["layers"]


def test_unchanged_stack_rebuilds_from_cache_in_seconds_without_assembling(tiny: Built) -> None:
    # No PATH at all: mmdebstrap, apt and unshare cannot even be found, so nothing is assembled.
    started = time.monotonic()
    out = tiny.env.pallet("stack", "build", str(tiny.stack), "--json", extra={"PATH": "/nonexistent"})
    elapsed = time.monotonic() - started
    result = json.loads(out.stdout)
    assert result["cached"] is True
    assert (result["build"]["digest"], result["run"]["digest"]) == (tiny.build_digest, tiny.run_digest)
    assert elapsed < 5, f"a cached stack build took {elapsed:.1f} s"


def test_build_tags_send_the_images_to_any_store(tiny: Built, tmp_path: Path, registry) -> None:
    host = registry.host
    out = tiny.env.pallet("stack", "build", str(tiny.stack), "--build-tag", f"oci:{tmp_path}/layout:b",
                          "--run-tag", f"docker://{host}/stacks/tiny-run:t1").stdout.splitlines()
    assert out == [f"oci:{tmp_path}/layout:b@{tiny.build_digest}",
                   f"docker://{host}/stacks/tiny-run:t1@{tiny.run_digest}"]
    seen = json.loads(tiny.env.pallet("inspect", f"docker://{host}/stacks/tiny-run:t1", "--json").stdout)
    assert seen["digest"] == tiny.run_digest
    subprocess.run(["umoci", "stat", "--image", f"{tmp_path}/layout:b"], check=True, capture_output=True)


def test_tiny_images_run_in_docker(tiny: Built, docker_cli: str, image_name: str) -> None:
    tiny.env.pallet("stack", "build", str(tiny.stack), "--build-tag", f"docker-daemon:{image_name}:build",
                    "--run-tag", f"docker-daemon:{image_name}:run")
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:build", "bash", "-c",
                  'echo "$BASH_VERSION"; id -un; id -u; echo "$CNB_USER_ID:$CNB_GROUP_ID"; '
                  'echo \'{"a":[1,2]}\' | jq -c .a; echo ~')
    bash_version, user, uid, cnb, jq, home = out.splitlines()
    assert bash_version.startswith("5.") and (user, uid, cnb, jq, home) == ("cnb", "1000", "1000:1000", "[1,2]",
                                                                            "/home/cnb")
    out = run_cli(docker_cli, "run", "--rm", "--network", "none", f"{image_name}:run", "sh", "-c",
                  "id -un; command -v jq || echo no-jq; touch ~/w && echo home-writable")
    assert out.splitlines() == ["cnb", "no-jq", "home-writable"]


def test_stack_packages_lists_the_dpkg_database(tiny: Built) -> None:
    out = json.loads(tiny.env.pallet("stack", "packages", "tiny-build:0.1.0", "--json").stdout)
    assert out["digest"] == tiny.build_digest
    by_name = {p["name"]: p for p in out["packages"]}
    lock_text = tiny.stack.with_suffix(".lock").read_text()
    build_section = lock_text.split("build = [", 1)[1].split("]", 1)[0]
    locked = {line.strip().strip('",') for line in build_section.splitlines() if line.strip()}
    assert {f"{p['name']}:{p['architecture']}={p['version']}" for p in out["packages"]} == locked
    assert by_name["bash"]["source"] == "bash" and "GPL-3+" in by_name["bash"]["licenses"]
    assert by_name["libjq1"]["source"] == "jq"
    assert by_name["libc6"]["source"] == "glibc"
    assert by_name["debconf"]["architecture"] == "all"
    with_licence = [p for p in out["packages"] if p["licenses"]]
    assert len(with_licence) > len(out["packages"]) / 2
    text = tiny.env.pallet("stack", "packages", "tiny-run:0.1.0").stdout.splitlines()
    assert text[0].split() == ["NAME", "VERSION", "ARCH", "SOURCE", "LICENSE"]
    assert any(line.startswith("bash ") for line in text) and not any(line.startswith("jq ") for line in text)


def test_stack_images_api_gives_local_references(tiny: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    from builder.stacks.api import stack_images

    for key, value in tiny.env.vars.items():
        monkeypatch.setenv(key, value)
    build_ref, run_ref = stack_images(tiny.stack)
    assert (build_ref, run_ref) == (f"tiny-build:0.1.0@{tiny.build_digest}", f"tiny-run:0.1.0@{tiny.run_digest}")


def test_stack_from_existing_images_by_digest(tiny: Built, tmp_path: Path) -> None:
    lay = tmp_path / "upstream"
    tiny.env.pallet("copy", "tiny-build:0.1.0", f"oci:{lay}:b")
    tiny.env.pallet("copy", "tiny-run:0.1.0", f"oci:{lay}:r")
    text = TINY.read_text().split("[build]")[0].replace('id = "io.pallet.stacks.tiny"', 'id = "io.example.reuse"')
    text += f'[build]\nimage = "oci:{lay}@{tiny.build_digest}"\n\n[run]\nimage = "oci:{lay}@{tiny.run_digest}"\n'
    stack = stack_dir(tmp_path / "stacks", text, name="reuse")
    tiny.env.pallet("stack", "lock", str(stack))
    assert f'build-image = "{tiny.build_digest}"' in stack.with_suffix(".lock").read_text()
    result = json.loads(tiny.env.pallet("stack", "build", str(stack), "--json").stdout)
    info = json.loads(tiny.env.pallet("inspect", result["build"]["reference"], "--json").stdout)
    assert info["config"]["labels"]["io.buildpacks.base.id"] == "io.example.reuse"
    assert [x["digest"] for x in info["layers"]] == [x["digest"] for x in tiny.result["build"]["layers"]]
    assert result["build"]["digest"] != tiny.build_digest  # new labels, same layers


# -- bad input ----------------------------------------------------------------------------------------


def test_unknown_package_is_named_and_nothing_is_written(tiny: Built, tmp_path: Path) -> None:
    text = TINY.read_text().replace('packages = ["jq"]', 'packages = ["jq", "no-such-package-xyz", "nor-this-one"]')
    stack = stack_dir(tmp_path, text)
    proc = tiny.env.pallet("stack", "lock", str(stack), check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("pallet: error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "no-such-package-xyz" in proc.stderr and "nor-this-one" in proc.stderr and "build.packages" in proc.stderr
    assert not stack.with_suffix(".lock").exists()


def test_bad_stack_file_names_the_field_and_the_file(tiny: Built, tmp_path: Path) -> None:
    stack = stack_dir(tmp_path, TINY.read_text().replace("uid = 1000", 'uid = "cnb"'))
    for command in ("lock", "build"):
        proc = tiny.env.pallet("stack", command, str(stack), check=False)
        assert proc.returncode == 1
        assert proc.stderr == f"pallet: error: {stack}: field 'user.uid' must be a whole number, not a string " \
                              "(for example: uid = 1000)\n"


def test_no_network_to_the_mirror_is_a_clear_error_and_nothing_is_written(tiny: Built, tmp_path: Path) -> None:
    # A mirror nothing listens on, and a proxy nothing listens on: both refuse at once.
    text = TINY.read_text().replace('suite = "bookworm"', 'suite = "bookworm"\nmirror = "http://127.0.0.1:9/debian"')
    stack = stack_dir(tmp_path / "a", text)
    proc = tiny.env.pallet("stack", "lock", str(stack), check=False)
    assert proc.returncode == 1 and "cannot fetch the package index from http://127.0.0.1:9/debian" in proc.stderr
    assert not stack.with_suffix(".lock").exists()

    env = Env(tmp_path / "env")
    stack = stack_dir(tmp_path / "b")
    shutil.copy(tiny.stack.with_suffix(".lock"), stack.with_suffix(".lock"))
    dead = "http://127.0.0.1:9"
    proc = env.pallet("stack", "build", str(stack), "--no-cache", check=False,
                      extra={"http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead})
    assert proc.returncode == 1 and "cannot fetch the package index" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert env.local_tags() == [] and list((env.root / "work").iterdir()) == []


def test_stale_lock_and_vanished_versions_are_clear_errors(tiny: Built, tmp_path: Path) -> None:
    stack = stack_dir(tmp_path / "changed", TINY.read_text().replace('packages = ["jq"]', 'packages = ["jq", "file"]'))
    shutil.copy(tiny.stack.with_suffix(".lock"), stack.with_suffix(".lock"))
    proc = tiny.env.pallet("stack", "build", str(stack), check=False)
    assert proc.returncode == 1 and "is out of date" in proc.stderr and "pallet stack lock" in proc.stderr

    stack = stack_dir(tmp_path / "vanished")
    lock = tiny.stack.with_suffix(".lock").read_text()
    jq = next(line.strip().strip('",') for line in lock.splitlines() if '"jq:amd64=' in line)
    stack.with_suffix(".lock").write_text(lock.replace(jq, "jq:amd64=0.0.1-gone"))
    env = Env(tmp_path / "env")
    proc = env.pallet("stack", "build", str(stack), "--no-cache", check=False)
    assert proc.returncode == 1
    assert "is stale: the mirror no longer has" in proc.stderr and "jq:amd64=0.0.1-gone" in proc.stderr
    assert env.local_tags() == []


def test_interrupted_build_leaves_nothing_half_written_and_a_rerun_succeeds(tiny: Built, tmp_path: Path) -> None:
    env = Env(tmp_path / "env")
    stack = stack_dir(tmp_path / "stacks")
    shutil.copy(tiny.stack.with_suffix(".lock"), stack.with_suffix(".lock"))
    proc = popen("stack", "build", str(stack), "--no-cache", env=env.vars)
    deadline = time.monotonic() + 120
    # kill -9 in the middle of the assembly: once mmdebstrap has a tree under way
    while time.monotonic() < deadline and not list((env.root / "work").glob("pallet-stack-*/amd64/tree-*/usr")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert env.local_tags() == []
    cache_index = env.root / "cache" / "stacks" / "images" / "index.json"
    assert not cache_index.exists() or json.loads(cache_index.read_text())["manifests"] == []
    # the assembly died with it (its parent-death signal), then the re-run cleans up and succeeds
    time.sleep(1)
    result = json.loads(env.pallet("stack", "build", str(stack), "--json").stdout)
    assert (result["build"]["digest"], result["run"]["digest"]) == (tiny.build_digest, tiny.run_digest)
    assert list((env.root / "work").iterdir()) == []
    assert env.local_tags() == ["tiny-build:0.1.0", "tiny-run:0.1.0"]


def test_multi_architecture_stack_gives_an_index_per_image(tiny: Built, tmp_path: Path) -> None:
    """Existing images for two architectures (an arm64 twin of the tiny images) -> two indexes."""
    from dataclasses import replace

    from builder.oci import mediatypes as mt
    from builder.oci.model import ImageConfig, Index, Manifest, Platform
    from builder.oci.stores.layout import LayoutStore

    lay = tmp_path / "multi"
    store = LayoutStore(lay)
    indexes = {}
    for kind in ("build", "run"):
        tiny.env.pallet("copy", f"tiny-{kind}:0.1.0", f"oci:{lay}:{kind}")
        desc, data = store.get_manifest(kind)
        manifest = Manifest.from_bytes(data)
        arm = replace(ImageConfig.from_bytes(store.get_blob(manifest.config)), architecture="arm64", variant="v8")
        arm_manifest = replace(manifest, config=store.put_blob_bytes(arm.to_bytes(), mt.OCI_CONFIG))
        arm_desc = store.put_manifest(arm_manifest.to_bytes(), mt.OCI_MANIFEST)
        index = Index(manifests=(replace(desc, platform=Platform("linux", "amd64"), annotations=None),
                                 replace(arm_desc, platform=Platform("linux", "arm64", "v8"))))
        indexes[kind] = store.put_manifest(index.to_bytes(), mt.OCI_INDEX, tag=f"{kind}-multi").digest
    text = TINY.read_text().split("[build]")[0].replace('["amd64"]', '["amd64", "arm64"]')
    text += f'[build]\nimage = "oci:{lay}@{indexes["build"]}"\n\n[run]\nimage = "oci:{lay}@{indexes["run"]}"\n'
    stack = stack_dir(tmp_path / "stacks", text, name="multi")
    tiny.env.pallet("stack", "lock", str(stack))
    lock = stack.with_suffix(".lock").read_text()
    assert "[amd64]" in lock and "[arm64]" in lock and f'build-image = "{tiny.build_digest}"' in lock
    result = json.loads(tiny.env.pallet("stack", "build", str(stack), "--json").stdout)
    assert result["build"]["mediaType"] == mt.OCI_INDEX and result["run"]["mediaType"] == mt.OCI_INDEX
    for platform in ("linux/amd64", "linux/arm64"):
        info = json.loads(tiny.env.pallet("inspect", result["run"]["reference"], "--platform", platform,
                                          "--json").stdout)
        assert info["platform"].startswith(platform) and info["index"] == result["run"]["digest"]
        assert info["config"]["labels"]["io.buildpacks.base.id"] == "io.pallet.stacks.tiny"
        assert info["config"]["user"] == "1000:1000"
