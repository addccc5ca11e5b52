"""Two platforms from one amd64 machine, on the tiny stack (``tests/stacks/tiny-multi.toml``:
stacks/tiny.toml with ``architectures = ["amd64", "arm64"]``); arm64 runs under QEMU through
binfmt_misc. Only the tiny stack: under emulation anything bigger is a benchmark, not a test.
The stack is built once into the shared stack cache (later runs are cache hits)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder.oci.model import Platform
from builder.platforms import EmulationError, emulation_entry, parse_platforms
from builder.errors import UsageError
from tests.cli import pallet
from tests.emulation import need_arm64

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "tests" / "stacks" / "tiny-multi.toml"
HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"
BOTH = "linux/amd64,linux/arm64"


# -- pure: platform lists and the binfmt check ------------------------------------------------


def test_platform_lists_parse_and_bad_ones_are_named() -> None:
    assert parse_platforms("linux/arm64") == [Platform("linux", "arm64", "v8")]
    assert [str(p) for p in parse_platforms("linux/amd64, linux/arm64/v8")] == ["linux/amd64", "linux/arm64/v8"]
    for bad, words in (("linux/s390x", "not supported"), ("arm64", "not OS/ARCH"),
                       ("linux/arm64,linux/arm64", "named twice"), ("windows/amd64", "not supported")):
        with pytest.raises(UsageError, match=words):
            parse_platforms(bad)


def test_binfmt_entry_needs_enabled_and_the_f_flag(tmp_path: Path) -> None:
    assert "not mounted" in emulation_entry("arm64", tmp_path)[1]
    (tmp_path / "status").write_text("enabled\n")
    assert "qemu-user-static" in emulation_entry("arm64", tmp_path)[1]
    entry = tmp_path / "qemu-aarch64"
    entry.write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: P\noffset 0\n")
    assert "F flag" in emulation_entry("arm64", tmp_path)[1]
    entry.write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n")
    assert "disabled" in emulation_entry("arm64", tmp_path)[1]
    entry.write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n")
    assert emulation_entry("arm64", tmp_path) == (True, "")


def test_missing_emulation_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from builder import platforms

    monkeypatch.setattr(platforms, "BINFMT_DIR", tmp_path)
    with pytest.raises(EmulationError, match="cannot run linux/arm64 programs on this amd64 machine: binfmt_misc"):
        platforms.require_runnable(Platform("linux", "arm64", "v8"))
    platforms.require_runnable(Platform("linux", "amd64"))  # native: nothing to check


# -- the stack ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A PALLET_HOME with tiny-multi's images (an index each), from the shared stack cache."""
    need_arm64()
    home = tmp_path_factory.mktemp("pallet-home")
    env = {"PALLET_HOME": str(home)}
    pallet("stack", "build", str(STACK), "--refresh", env=env, timeout=3600)
    return env


def inspect(ref: str, env: dict[str, str], *extra: str) -> dict:
    return json.loads(pallet("inspect", "--json", ref, *extra, env=env).stdout)


def test_stack_images_are_indexes_with_one_manifest_per_platform(home: dict[str, str]) -> None:
    for kind in ("build", "run"):
        ref = f"tiny-multi-{kind}:0.1.0"
        amd = inspect(ref, home, "--platform", "linux/amd64")
        arm = inspect(ref, home, "--platform", "linux/arm64")
        assert amd["digest"] != arm["digest"] and amd["index"] == arm["index"]
        assert (amd["platform"], arm["platform"]) == ("linux/amd64", "linux/arm64/v8")
        labels_amd, labels_arm = amd["config"]["labels"], arm["config"]["labels"]
        assert labels_amd["io.buildpacks.base.id"] == labels_arm["io.buildpacks.base.id"] == "io.pallet.stacks.tiny"
        # each platform's inventory label is its own architecture's packages (same names, own versions)
        packages_amd = json.loads(labels_amd["io.pallet.stack.packages"])
        packages_arm = json.loads(labels_arm["io.pallet.stack.packages"])
        assert set(packages_amd) == set(packages_arm) and "bash" in packages_arm


def test_stack_build_names_each_platforms_image(home: dict[str, str]) -> None:
    out = json.loads(pallet("stack", "build", str(STACK), "--json", "--refresh", env=home).stdout)
    for kind in ("build", "run"):
        listed = {p["platform"]: p["digest"] for p in out[kind]["platforms"]}
        assert listed == {p: inspect(f"tiny-multi-{kind}:0.1.0", home, "--platform", p)["digest"]
                          for p in ("linux/amd64", "linux/arm64/v8")}


def test_stack_packages_per_platform_come_from_each_dpkg_database(home: dict[str, str]) -> None:
    lock = STACK.with_suffix(".lock").read_text()
    for arch in ("amd64", "arm64"):
        out = json.loads(pallet("stack", "packages", "tiny-multi-run:0.1.0", "--platform", f"linux/{arch}",
                                "--json", env=home).stdout)
        arches = {p["architecture"] for p in out["packages"]}
        assert arches <= {arch, "all"} and arch in arches
        for p in out["packages"]:
            assert f'"{p["name"]}:{p["architecture"]}={p["version"]}"' in lock


@pytest.mark.slow
def test_stack_index_is_reproducible_per_platform(home: dict[str, str], tmp_path: Path) -> None:
    """From scratch again (--no-cache: both architectures assembled again, arm64 under QEMU)."""
    first = inspect("tiny-multi-run:0.1.0", home)["digest"]
    again = json.loads(pallet("stack", "build", str(STACK), "--no-cache", "--json",
                              "--build-tag", f"oci:{tmp_path}/l:b", "--run-tag", f"oci:{tmp_path}/l:r",
                              env=home, timeout=3600).stdout)
    index = json.loads(pallet("stack", "build", str(STACK), "--json", env=home).stdout)
    assert again["run"]["digest"] == index["run"]["digest"]
    assert again["build"]["digest"] == index["build"]["digest"]
    assert first  # the module's store had it


# -- apps ---------------------------------------------------------------------------------------


def arch_app(path: Path) -> Path:
    """The hello buildpack's app, plus a Procfile process that says which machine it runs on."""
    path.mkdir(parents=True)
    (path / "hello.conf").write_text("Hi there\n")
    (path / "Procfile").write_text("arch: uname -m\n")
    return path


def build_both(src: Path, tag: str, env: dict[str, str], *extra: str) -> dict:
    return json.loads(pallet("build", str(src), "-t", tag, "--stack", str(STACK), "--buildpack", str(HELLO_BP),
                             "--buildpack", "pallet/procfile", "--platform", BOTH, "--json", *extra,
                             env=env, timeout=3600).stdout)


@pytest.fixture(scope="module")
def built(home: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    app = arch_app(tmp_path_factory.mktemp("src") / "app")
    return build_both(app, "multi:1", home, "--cache-dir", str(tmp_path_factory.mktemp("cache")))


def test_both_platforms_build_into_one_index(built: dict, home: dict[str, str]) -> None:
    assert [p["platform"] for p in built["platforms"]] == ["linux/amd64", "linux/arm64/v8"]
    assert built["mediaType"] == "application/vnd.oci.image.index.v1+json"
    for p in built["platforms"]:
        seen = inspect(f"multi:1", home, "--platform", p["platform"])
        assert seen["digest"] == p["digest"]
        assert seen["platform"] == p["platform"] and seen["index"] == built["digest"]
        assert p["defaultProcess"] == "web" and {x["type"] for x in p["processes"]} >= {"web", "arch"}
    # the hello buildpack declares no cross-compiling: arm64 is built in its own build image, under QEMU
    ways = {p["platform"]: p["build"] for p in built["platforms"]}
    assert ways == {"linux/amd64": {"way": "native", "on": "linux/amd64", "reason": "this machine is linux/amd64"},
                    "linux/arm64/v8": {"way": "emulated", "on": "linux/arm64",
                                       "reason": "tests/hello does not cross-compile"}}
    assert len({p["buildImage"] for p in built["platforms"]}) == 2


def test_cross_forced_on_a_buildpack_that_cannot_is_one_line(home: dict[str, str], tmp_path: Path) -> None:
    app = arch_app(tmp_path / "app")
    proc = pallet("build", str(app), "-t", "nocross:1", "--stack", str(STACK), "--buildpack", str(HELLO_BP),
                  "--buildpack", "pallet/procfile", "--platform", BOTH, "--cross", "--cache-dir",
                  str(tmp_path / "c"), env=home, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "pallet: error: --cross: tests/hello does not cross-compile (no [metadata.pallet] cross in its buildpack.toml): "
        "build without --cross, it is emulated under QEMU"]
    assert pallet("inspect", "nocross:1", env=home, check=False).returncode != 0  # nothing tagged


def test_cross_and_emulate_go_with_platform_only(tmp_path: Path) -> None:
    for flag in ("--cross", "--emulate", "--no-cross"):
        proc = pallet("build", str(tmp_path), flag, check=False)
        assert proc.returncode == 2 and "goes with --platform" in proc.stderr, proc.stderr
    proc = pallet("build", str(tmp_path), "--platform", "linux/arm64", "--cross", "--emulate", check=False)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


def test_index_builds_twice_to_one_digest(built: dict, home: dict[str, str], tmp_path: Path) -> None:
    """Elsewhere, with an empty build cache, and the platforms named in the other order."""
    app = arch_app(tmp_path / "elsewhere" / "app")
    again = json.loads(pallet("build", str(app), "-t", "multi:2", "--stack", str(STACK), "--buildpack",
                              str(HELLO_BP), "--buildpack", "pallet/procfile", "--platform",
                              "linux/arm64,linux/amd64", "--json", "--cache-dir", str(tmp_path / "cache"),
                              env=home, timeout=3600).stdout)
    assert again["digest"] == built["digest"]
    assert {p["platform"]: p["digest"] for p in again["platforms"]} == \
        {p["platform"]: p["digest"] for p in built["platforms"]}


def test_arm64_image_runs_under_qemu_daemonless(built: dict, home: dict[str, str]) -> None:
    assert pallet("run", "multi:1", "arch", "--platform", "linux/arm64", env=home).stdout.strip() == "aarch64"
    assert pallet("run", "multi:1", "arch", "--platform", "linux/amd64", env=home).stdout.strip() == "x86_64"
    out = pallet("run", "multi:1", "--platform", "linux/arm64", env=home).stdout
    assert out.splitlines()[0] == "hello: Hi there from /workspace as 1000:1000"  # the arm64 launcher's env


def test_arm64_image_runs_in_docker(built: dict, home: dict[str, str], docker_cli: str, image_name: str) -> None:
    arm = next(p for p in built["platforms"] if p["platform"].startswith("linux/arm64"))
    proc = pallet("run", "multi:1", "arch", "--platform", "linux/arm64", "--docker", env=home)
    assert proc.stdout.strip() == "aarch64"
    pallet("copy", f"multi@{arm['digest']}", f"docker-daemon:{image_name}:arm64", env=home)
    out = subprocess.run([docker_cli, "run", "--rm", "--platform", "linux/arm64", "--network", "none",
                          "--entrypoint", "/cnb/process/arch", f"{image_name}:arm64"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "aarch64"


# -- rebase of an index -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(home: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run image indexes v1 (tiny-multi's) and v2 (each platform's v1 plus a patch file)."""
    from builder.lifecycle.compose import platform_index
    from builder.oci.stores.layout import LayoutStore

    pallet("copy", "tiny-multi-run:0.1.0", "tiny-multi-run:v1", env=home)
    patch = tmp_path_factory.mktemp("patch")
    (patch / "etc").mkdir()
    (patch / "etc" / "v2-marker").write_text("patched in v2\n")
    children = []
    for platform in (Platform("linux", "amd64"), Platform("linux", "arm64", "v8")):
        child = inspect("tiny-multi-run:v1", home, "--platform", str(platform))["digest"]
        tag = f"tiny-multi-run:v2-{platform.architecture}"
        pallet("append", f"tiny-multi-run@{child}", str(patch), tag, env=home)
        children.append((inspect(tag, home)["digest"], platform))
    store = LayoutStore(Path(home["PALLET_HOME"]) / "store")
    from builder.oci.model import Descriptor

    descs = []
    for digest, platform in children:
        desc, _ = store.get_manifest(digest)
        descs.append((Descriptor(desc.media_type, desc.digest, desc.size), platform))
    index = platform_index(descs)  # a fixture: how the v2 run image index is put together
    store.put_manifest(index.to_bytes(), index.media_type, tag="tiny-multi-run:v2")
    return {"v1": "tiny-multi-run:v1", "v2": "tiny-multi-run:v2"}


def build_on(src: Path, tag: str, run: str, env: dict[str, str], cache: Path) -> str:
    out = pallet("build", str(src), "-t", tag, "--stack", str(STACK), "--run-image", run, "--buildpack",
                 str(HELLO_BP), "--platform", BOTH, "--json", "--cache-dir", str(cache), env=env, timeout=3600)
    return json.loads(out.stdout)["digest"]


def test_rebase_of_an_index_gives_the_digest_of_a_build_on_the_new_run_index(
        home: dict[str, str], runs: dict[str, str], tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.conf").write_text("Hi there\n")
    cache = tmp_path / "cache"
    on_v1 = build_on(app, "inv:a", runs["v1"], home, cache)
    on_v2 = build_on(app, "inv:b", runs["v2"], home, cache)
    assert on_v1 != on_v2
    dry = json.loads(pallet("rebase", "inv:a", "--run-image", runs["v2"], "--dry-run", "--json", env=home).stdout)
    assert [(r["status"], r["digest"]) for r in dry["results"]] == [("would rebase", on_v2)]
    assert inspect("inv:a", home, "--platform", "linux/arm64")["index"] == on_v1  # nothing written
    out = pallet("rebase", "inv:a", "--run-image", runs["v2"], env=home)
    assert out.stdout.strip() == f"inv:a@{on_v2}"
    assert "already up to date" in pallet("rebase", "inv:a", "--run-image", runs["v2"], env=home).stdout
    assert inspect("inv:a", home, "--platform", "linux/arm64")["platform"] == "linux/arm64/v8"
    assert pallet("run", "inv:a", "worker", "--platform", "linux/arm64", env=home).stdout.strip() \
        == "worker tests/hello"
    # a run image with one platform only cannot rebase both: refused, the tag not moved
    proc = pallet("rebase", "inv:b", "--run-image", "tiny-multi-run:v2-arm64", env=home, check=False)
    assert proc.returncode == 1 and "linux/amd64" in proc.stderr and "not an index" in proc.stderr
    assert inspect("inv:b", home, "--platform", "linux/amd64")["index"] == on_v2


def test_rebased_index_is_signed_once_on_the_index(home: dict[str, str], runs: dict[str, str],
                                                   tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.conf").write_text("Signed\n")
    build_on(app, "signed:a", runs["v1"], home, tmp_path / "cache")
    secret = {**home, "PALLET_PASSWORD": "pw"}
    pallet("keygen", "--output-key-prefix", str(tmp_path / "k"), env=secret)
    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    out = pallet("rebase", "signed:a", "--run-image", runs["v2"], "--sign-key", str(key), env=secret)
    digest = out.stdout.strip().split("@")[1]
    verified = pallet("verify", f"signed:a@{digest}", "--key", str(pub), env=home, check=False)
    assert verified.returncode == 0, verified.stderr
    whole = pallet("sbom", f"signed:a@{digest}", env=home)  # the rebased index's own SBOM, attached
    assert f"the SBOM attached to signed:a@{digest}" in whole.stderr
    assert {c["properties"][0]["value"] for c in json.loads(whole.stdout)["components"]} == \
        {"linux/amd64", "linux/arm64/v8"}


def test_rebase_signs_each_platform_only_when_asked(home: dict[str, str], runs: dict[str, str],
                                                   tmp_path: Path) -> None:
    """The index is signed either way; --sign-each-platform signs each platform's manifest too."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.conf").write_text("Each\n")
    secret = {**home, "PALLET_PASSWORD": "pw"}
    pallet("keygen", "--output-key-prefix", str(tmp_path / "k"), env=secret)
    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    for tag, extra in (("each:once", ()), ("each:all", ("--sign-each-platform",))):
        build_on(app, tag, runs["v1"], home, tmp_path / "cache")
        out = pallet("rebase", tag, "--run-image", runs["v2"], "--sign-key", str(key), *extra, env=secret)
        digest = out.stdout.strip().split("@")[1]
        blob = Path(home["PALLET_HOME"]) / "store" / "blobs" / "sha256" / digest.split(":", 1)[1]
        children = [m["digest"] for m in json.loads(blob.read_text())["manifests"]]
        assert len(children) == 2
        assert pallet("verify", f"{tag}@{digest}", "--key", str(pub), env=home, check=False).returncode == 0
        verified = [pallet("verify", f"{tag}@{c}", "--key", str(pub), env=home, check=False).returncode == 0
                    for c in children]
        assert verified == ([True, True] if extra else [False, False]), (tag, verified)
    refused = pallet("rebase", "each:once", "--run-image", runs["v2"], "--sign-each-platform", env=home, check=False)
    assert refused.returncode == 2 and refused.stderr.strip().endswith("--sign-each-platform goes with --sign-key")


def test_one_foreign_platform_gives_its_own_image_signed_and_attested(home: dict[str, str], tmp_path: Path) -> None:
    app = arch_app(tmp_path / "app")
    secret = {**home, "PALLET_PASSWORD": "pw"}
    pallet("keygen", "--output-key-prefix", str(tmp_path / "k"), env=secret)
    out = json.loads(pallet("build", str(app), "-t", "arm:1", "--stack", str(STACK), "--buildpack", str(HELLO_BP),
                            "--buildpack", "pallet/procfile", "--platform", "linux/arm64", "--json",
                            "--cache-dir", str(tmp_path / "cache"), "--sign-key", str(tmp_path / "k.key"),
                            env=secret, timeout=3600).stdout)
    assert out["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [p["platform"] for p in out["platforms"]] == ["linux/arm64/v8"] and out["supplyChain"]
    assert inspect("arm:1", home, "--platform", "linux/arm64")["digest"] == out["digest"]
    verified = pallet("verify", out["reference"], "--key", str(tmp_path / "k.pub"), env=home, check=False)
    assert verified.returncode == 0, verified.stderr
    # no amd64 image in it: running it here is emulated, and says so
    assert pallet("run", "arm:1", "arch", env=home).stdout.strip() == "aarch64"


def test_a_stack_without_the_platform_says_how_to_add_it(home: dict[str, str], tmp_path: Path) -> None:
    app = arch_app(tmp_path / "app")
    proc = pallet("build", str(app), "-t", "nope:1", "--stack", str(ROOT / "stacks" / "tiny.toml"), "--buildpack",
                  str(HELLO_BP), "--platform", "linux/arm64", env=home, check=False, timeout=3600)
    assert proc.returncode != 0
    assert "no linux/arm64 images to build with" in proc.stderr and "architectures" in proc.stderr


def test_sbom_per_platform_names_that_platforms_packages(built: dict, home: dict[str, str]) -> None:
    for arch in ("amd64", "arm64"):
        doc = json.loads(pallet("sbom", "multi:1", "--platform", f"linux/{arch}", env=home).stdout)
        purls = [c.get("purl", "") for c in doc["components"]]
        bash = [p for p in purls if p.startswith("pkg:deb/debian/bash@")]
        assert len(bash) == 1 and f"arch={arch}" in bash[0]
        other = "amd64" if arch == "arm64" else "arm64"
        assert not any(f"arch={other}" in p for p in purls)


@pytest.mark.slow
def test_go_cross_compiles_natively_for_arm64_and_answers_under_qemu(home: dict[str, str], tmp_path: Path) -> None:
    """--cross: the Go buildpack runs in bookworm's (amd64) build image and compiles with
    GOARCH=arm64, CGO off, for tiny-multi's arm64 run image (the static binary needs no libc);
    no shipped stack has Go for arm64, so this is the only way to build Go for it here."""
    from tests.samplekit import free_port, pallet_run, wait_http

    src = ROOT / "samples" / "go-http"
    argv = ("build", str(src), "--stack", "bookworm", "--run-image", "tiny-multi-run:0.1.0", "--platform",
            BOTH, "--cross", "--json")
    first = json.loads(pallet(*argv, "-t", "go:1", "--cache-dir", str(tmp_path / "c1"), env=home,
                              timeout=3600).stdout)
    again = json.loads(pallet(*argv, "-t", "go:2", "--cache-dir", str(tmp_path / "c2"), env=home,
                              timeout=3600).stdout)
    assert again["digest"] == first["digest"]
    builds = {p["platform"]: p for p in first["platforms"]}
    assert builds["linux/arm64/v8"]["buildImage"] == builds["linux/amd64"]["buildImage"]  # native for both
    assert builds["linux/arm64/v8"]["build"] == {"way": "cross", "on": "linux/amd64", "reason": "--cross: pallet/go"}
    for platform, arch in (("linux/arm64", "arm64"), ("linux/amd64", "amd64")):
        port = free_port()
        with pallet_run(home, "go:1", port, "--platform", platform) as proc:
            info = json.loads(wait_http(port, "/api/info", timeout=120, alive=lambda: proc.poll() is None).body)
            assert info["arch"] == arch


def test_signed_multi_platform_build_signs_the_index_and_attests_each_platform(home: dict[str, str],
                                                                                tmp_path: Path) -> None:
    app = arch_app(tmp_path / "app")
    secret = {**home, "PALLET_PASSWORD": "pw"}
    pallet("keygen", "--output-key-prefix", str(tmp_path / "k"), env=secret)
    out = build_both(app, "signedmulti:1", secret, "--cache-dir", str(tmp_path / "cache"), "--sign-key",
                     str(tmp_path / "k.key"))
    pub = str(tmp_path / "k.pub")
    assert pallet("verify", out["reference"], "--key", pub, env=home, check=False).returncode == 0
    assert set(out["supplyChain"]["platforms"]) == {p["digest"] for p in out["platforms"]}
    for p in out["platforms"]:
        assert pallet("verify", f"signedmulti@{p['digest']}", "--key", pub, env=home, check=False).returncode == 0
    arm = pallet("sbom", "signedmulti:1", "--platform", "linux/arm64", env=home)
    assert "the SBOM attached" in arm.stderr and "arch=arm64" in arm.stdout
    assert "arch=amd64" not in arm.stdout
    # the index itself: its own SBOM (every platform's packages) and provenance, through a policy
    whole = pallet("sbom", "signedmulti:1", env=home)
    assert f"the SBOM attached to signedmulti:1@{out['digest']}" in whole.stderr
    images = {c["properties"][0]["value"]: c for c in json.loads(whole.stdout)["components"]}
    assert {p: images[p]["version"] for p in images} == {p["platform"]: p["digest"] for p in out["platforms"]}
    for platform, arch in (("linux/amd64", "amd64"), ("linux/arm64/v8", "arm64")):
        bash = [c["purl"] for c in images[platform]["components"] if c["name"] == "bash"]
        assert len(bash) == 1 and f"arch={arch}" in bash[0]
    (tmp_path / "policy.toml").write_text(f'keys = ["{pub}"]\nbuilder_id = "https://pallet.dev/builders/local"\n'
                                          'require_sbom = true\n')
    verified = json.loads(pallet("verify", out["reference"], "--policy", str(tmp_path / "policy.toml"), "--json",
                                 env=home).stdout)
    assert verified["verified"] and verified["digest"] == out["digest"] and len(verified["sboms"]) == 2
    assert out["supplyChain"]["provenance"] and out["supplyChain"]["sboms"]


def test_audit_of_the_index_reports_each_platform(built: dict, home: dict[str, str]) -> None:
    [entry] = json.loads(pallet("audit", "multi:1", "--package", "bash", "--json", env=home).stdout)
    assert entry["digest"] == built["digest"]
    by_platform = {m["platform"]: m["purl"] for m in entry["packages"]}
    assert set(by_platform) == {"linux/amd64", "linux/arm64/v8"}
    assert "arch=arm64" in by_platform["linux/arm64/v8"] and "arch=amd64" in by_platform["linux/amd64"]


def test_docker_executor_builds_the_same_arm64_image(built: dict, home: dict[str, str], tmp_path: Path,
                                                     docker_engine) -> None:  # noqa: ANN001 - the engine fixture
    app = arch_app(tmp_path / "app")
    out = json.loads(pallet("build", str(app), "-t", "dock:1", "--stack", str(STACK), "--buildpack", str(HELLO_BP),
                            "--buildpack", "pallet/procfile", "--platform", "linux/arm64", "--executor", "docker",
                            "--json", "--cache-dir", str(tmp_path / "cache"), env=home, timeout=3600).stdout)
    arm = next(p for p in built["platforms"] if p["platform"] == "linux/arm64/v8")
    assert out["digest"] == arm["digest"]


def test_index_built_into_a_registry_and_rebased_there(home: dict[str, str], runs: dict[str, str], registry,
                                                       tmp_path: Path) -> None:  # noqa: ANN001 - fixture
    """The same invariant where fleets live: indexes and their manifests pushed, rebased in place."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.conf").write_text("In a registry\n")
    run = {}
    for version in ("v1", "v2"):
        run[version] = f"docker://{registry.host}/stacks/run:{version}"
        pallet("copy", runs[version], run[version], env=home)

    def build(tag: str, version: str) -> str:
        out = pallet("build", str(app), "-t", f"docker://{registry.host}/apps/{tag}", "--stack", str(STACK),
                     "--run-image", run[version], "--buildpack", str(HELLO_BP), "--platform", BOTH, "--json",
                     "--cache-dir", str(tmp_path / "c"), env=home, timeout=3600)
        return json.loads(out.stdout)["digest"]

    on_v1, on_v2 = build("multi:1", "v1"), build("multi:2", "v2")
    remote = f"docker://{registry.host}/apps/multi:1"
    assert inspect(remote, home, "--platform", "linux/arm64")["index"] == on_v1 != on_v2
    rebased = pallet("rebase", remote, "--run-image", run["v2"], env=home)
    assert rebased.stdout.strip() == f"{remote}@{on_v2}"
    assert inspect(remote, home, "--platform", "linux/arm64")["index"] == on_v2
