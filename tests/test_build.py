"""``pallet build`` end to end on the tiny stack: real buildpacks, the real sandbox, real images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import pallet

ROOT = Path(__file__).resolve().parent.parent
HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"
TINY = str(ROOT / "stacks" / "tiny.toml")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    """A PALLET_HOME with the tiny stack's images in it (built once for the module)."""
    home = tmp_path_factory.mktemp("pallet-home")
    env = {"PALLET_HOME": str(home)}
    pallet("stack", "build", TINY, "--refresh", env=env, timeout=900)
    return env


def hello_app(path: Path, greeting: str = "Hi there") -> Path:
    path.mkdir(parents=True)
    (path / "hello.conf").write_text(greeting + "\n")
    (path / "index.txt").write_text("app file\n")
    return path


def build(src: Path, tag: str, env: dict[str, str], *extra: str, check: bool = True):
    return pallet("build", str(src), "-t", tag, "--stack", TINY, *extra, env=env, check=check)


def build_json(src: Path, tag: str, env: dict[str, str], *extra: str) -> dict:
    return json.loads(build(src, tag, env, "--json", *extra).stdout)


def inspect(ref: str, env: dict[str, str]) -> dict:
    return json.loads(pallet("inspect", "--json", ref, env=env).stdout)


def test_spec_buildpack_runs_in_docker_and_daemonless(tmp_path, home, docker_cli, image_name):
    app = hello_app(tmp_path / "app")
    result = build_json(app, "hello:1", home, "--buildpack", str(HELLO_BP))
    assert result["defaultProcess"] == "web"
    out = pallet("run", "hello:1", env=home).stdout
    assert out.splitlines()[0] == "hello: Hi there from /workspace as 1000:1000"
    assert "args: default-arg" in out
    pallet("copy", "hello:1", f"docker-daemon:{image_name}:1", env=home)
    docker_out = subprocess.run([docker_cli, "run", "--rm", "--network", "none", f"{image_name}:1", "x"],
                                capture_output=True, text=True, check=True).stdout
    assert docker_out.splitlines()[:2] == ["hello: Hi there from /workspace as 1000:1000", "args: x"]
    worker = subprocess.run([docker_cli, "run", "--rm", "--network", "none", "--entrypoint",
                             "/cnb/process/worker", f"{image_name}:1"], capture_output=True, text=True,
                            check=True).stdout
    assert worker == "worker tests/hello\n"


def test_labels_and_config_follow_the_cnb_spec(tmp_path, home):
    app = hello_app(tmp_path / "app")
    build(app, "labels:1", home, "--buildpack", str(HELLO_BP))
    info = inspect("labels:1", home)
    run = inspect(info["annotations"]["org.opencontainers.image.base.name"], home)
    cfg = info["config"]
    assert cfg["entrypoint"] == ["/cnb/process/web"] and cfg["cmd"] is None
    assert cfg["user"] == "1000:1000" and cfg["workingDir"] == "/workspace"
    env = dict(e.split("=", 1) for e in cfg["env"])
    assert env["CNB_LAYERS_DIR"] == "/layers" and env["CNB_APP_DIR"] == "/workspace"
    assert env["PATH"].startswith("/cnb/process:/cnb/lifecycle:/layers/tests_hello/greeter/bin:")
    labels = cfg["labels"]
    lifecycle = json.loads(labels["io.buildpacks.lifecycle.metadata"])
    assert lifecycle["runImage"]["topLayer"] == run["layers"][-1]["diffID"]
    assert lifecycle["runImage"]["reference"] == run["digest"]
    assert info["annotations"]["org.opencontainers.image.base.digest"] == run["digest"]
    diff_ids = [layer["diffID"] for layer in info["layers"]]
    assert diff_ids[: len(run["layers"])] == [layer["diffID"] for layer in run["layers"]]
    greeter = lifecycle["buildpacks"][0]["layers"]["greeter"]
    assert lifecycle["buildpacks"][0]["key"] == "tests/hello"
    assert greeter["launch"] and greeter["cache"] and greeter["sha"] in diff_ids
    assert greeter["data"] == {"key": "greeter-v1-Hi there"}
    assert lifecycle["app"][0]["sha"] in diff_ids
    assert diff_ids[-2:] == [lifecycle["launcher"]["sha"], lifecycle["config"]["sha"]]
    build_md = json.loads(labels["io.buildpacks.build.metadata"])
    assert build_md["buildpacks"] == [{"id": "tests/hello", "version": "1.0.0"}]
    assert {p["type"] for p in build_md["processes"]} == {"web", "worker"}
    assert labels["org.example.greeting"] == "Hi there"
    for key, value in run["config"]["labels"].items():
        assert labels[key] == value  # io.buildpacks.base.* copied from the run image
    assert "io.buildpacks.base.id" in labels
    skopeo = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{home['PALLET_HOME']}/store:labels:1"],
                                       capture_output=True, text=True, check=True).stdout)
    assert skopeo["Labels"]["io.buildpacks.lifecycle.metadata"] == labels["io.buildpacks.lifecycle.metadata"]


def test_same_source_elsewhere_gives_same_digest(tmp_path, home):
    a = hello_app(tmp_path / "a")
    b = tmp_path / "deep" / "copy" / "b"
    shutil.copytree(a, b)
    for i, p in enumerate(sorted(b.rglob("*"))):
        os.utime(p, (1_000_000 + i, 2_000_000 + i))
        os.chown(p, 4242, 4242)
    first = build_json(a, "same:a", home, "--buildpack", str(HELLO_BP), "--cache-dir", str(tmp_path / "c1"))
    second = build_json(b, "same:b", home, "--buildpack", str(HELLO_BP), "--cache-dir", str(tmp_path / "c2"))
    assert first["digest"] == second["digest"]


def test_rebuild_after_app_change_reuses_dependency_layers(tmp_path, home):
    app = hello_app(tmp_path / "app")
    cache = str(tmp_path / "cache")
    first = build(app, "cached:1", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache)
    assert "installing greeter" in first.stderr and "build number 1" in first.stderr
    before = inspect("cached:1", home)
    (app / "index.txt").write_text("changed app file\n")
    second = build(app, "cached:1", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache, "--json")
    assert "installing greeter" not in second.stderr and "reusing greeter layer" in second.stderr
    assert "build number 2" in second.stderr
    result = json.loads(second.stdout)
    assert "tests/hello:greeter" in result["layers"]["reused"] and result["layers"]["written"] == ["app"]
    after = inspect("cached:1", home)
    changed = [i for i, (x, y) in enumerate(zip(before["layers"], after["layers"])) if x["digest"] != y["digest"]]
    app_index = len(before["layers"]) - 3
    assert changed == [app_index]


def test_procfile_buildpack_alone(tmp_path, home):
    app = tmp_path / "procapp"
    app.mkdir()
    (app / "server.sh").write_text('#!/bin/sh\necho "web listening on $PORT"\n')
    (app / "server.sh").chmod(0o755)
    # `last`: a line in bash's syntax (as Heroku runs it), whose last command replaces the shell
    # (the same pid as the shell's $$): so an app started after `cd` gets docker stop's signal.
    (app / "Procfile").write_text("web: ./server.sh\nworker: echo working; echo done\n"
                                  "last: echo $$ && cd / && [[ -d proc ]] && cat /proc/self/stat\n")
    detected = pallet("detect", str(app), "--stack", TINY, env=home)
    assert "pallet/procfile: found Procfile" in detected.stdout
    build(app, "proc:1", home)
    assert pallet("run", "proc:1", "-p", "9099", env=home).stdout == "web listening on 9099\n"
    assert pallet("run", "proc:1", "worker", env=home).stdout == "working\ndone\n"
    shell, stat = pallet("run", "proc:1", "last", env=home).stdout.splitlines()
    assert stat.split()[:2] == [shell, "(cat)"], (shell, stat)
    md = json.loads(inspect("proc:1", home)["config"]["labels"]["io.buildpacks.build.metadata"])
    commands = {p["type"]: p["command"] for p in md["processes"]}
    assert commands == {"web": ["./server.sh"], "worker": ["/bin/bash", "-c", "echo working; echo done"],
                        "last": ["/bin/bash", "-c", "echo $$ && cd / && [[ -d proc ]] && cat /proc/self/stat"]}


def test_docker_executor_gives_the_same_image(tmp_path, home, docker_engine):
    app = hello_app(tmp_path / "app")
    sandboxed = build_json(app, "exec:bwrap", home, "--buildpack", str(HELLO_BP), "--cache-dir", str(tmp_path / "c1"))
    docker = build_json(app, "exec:docker", home, "--buildpack", str(HELLO_BP), "--executor", "docker",
                        "--cache-dir", str(tmp_path / "c2"))
    assert docker["digest"] == sandboxed["digest"]


def test_no_buildpack_detects(tmp_path, home):
    app = tmp_path / "empty"
    app.mkdir()
    (app / "README").write_text("nothing to build\n")
    detected = pallet("detect", str(app), "--stack", TINY, env=home, check=False)
    assert detected.returncode == 1 and "no Procfile" in detected.stderr
    built = build(app, "none:1", home, check=False)
    assert built.returncode == 1 and "no buildpack group passed detection" in built.stderr
    assert "no Procfile" in built.stderr and "Traceback" not in built.stderr
    as_json = json.loads(pallet("detect", str(app), "--stack", TINY, "--json", env=home, check=False).stdout)
    # The last group of the built-in order is the Procfile buildpack (after the optional Aptfile one).
    last = {b["id"]: b["output"] for b in as_json["trials"][-1]["buildpacks"]}
    assert as_json["passed"] is False and last == {"pallet/apt": ["no Aptfile"], "pallet/procfile": ["no Procfile"]}


@pytest.mark.parametrize("files, looks", [
    ({"Gemfile": "source 'https://rubygems.org'\ngem 'sinatra'\n", "app.rb": "get('/') { 'hi' }\n"},
     "a Ruby app (Gemfile)"),
    ({"pom.xml": "<project/>\n", "src/main/java/App.java": "class App {}\n"}, "a Java (JVM) app (pom.xml)"),
    ({"Cargo.toml": "[package]\nname = 'x'\n", "src/main.rs": "fn main() {}\n"}, "a Rust app (Cargo.toml)"),
    ({"composer.json": "{}\n", "index.php": "<?php echo 1;\n"}, "a PHP app (composer.json, index.php)"),
])
def test_an_app_in_another_language_is_named_in_the_error(tmp_path, home, files, looks):
    """A stranger's app in a language pallet does not build: the first line says so, and what to do."""
    app = tmp_path / "app"
    for name, text in files.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    built = build(app, "other:1", home, check=False)
    first = built.stderr.strip().splitlines()[0]
    assert built.returncode == 1 and "Traceback" not in built.stderr
    assert first.startswith(f"pallet: error: no buildpack group passed detection: the app looks like {looks}, "), first
    assert "--buildpack DIR" in first and "group 1 [" in built.stderr  # the groups' reasons follow
    detected = pallet("detect", str(app), "--stack", TINY, env=home, check=False)
    assert detected.returncode == 1 and detected.stderr.splitlines()[0].startswith(
        f"no buildpack group passed detection: the app looks like {looks}")


def _copy_bp(tmp_path: Path) -> Path:
    bp = tmp_path / "bp"
    shutil.copytree(HELLO_BP, bp)
    return bp


def test_failing_build_writes_nothing(tmp_path, home):
    app = hello_app(tmp_path / "app")
    bp = _copy_bp(tmp_path)
    (bp / "bin" / "build").write_text("#!/usr/bin/env bash\necho 'compiling...'\necho 'boom' >&2\nexit 3\n")
    result = build(app, "failing:1", home, "--buildpack", str(bp), check=False)
    assert result.returncode == 1
    assert "[tests/hello] compiling..." in result.stderr and "[tests/hello] boom" in result.stderr
    assert "failed (exit 3)" in result.stderr
    assert pallet("inspect", "failing:1", env=home, check=False).returncode == 1


@pytest.mark.parametrize("file,content,message", [
    ("buildpack.toml", 'api = "0.10"\n[buildpack]\nid = "tests/hello"\n', "missing field 'version'"),
    ("launch-toml", '[[processes]]\ntype = "web"\ncommand = "x"\nargs = "notalist"\n', "launch.toml: processes[0].args"),
    ("layer-toml", "[types]\nlaunch = 1\n", "greeter.toml: types.launch must be true or false"),
])
def test_malformed_buildpack_files_name_file_and_buildpack(tmp_path, home, file, content, message):
    app = hello_app(tmp_path / "app")
    bp = _copy_bp(tmp_path)
    if file == "buildpack.toml":
        (bp / "buildpack.toml").write_text(content)
    else:
        script = (bp / "bin" / "build").read_text().replace("\nexit 0\n", "\n")
        target = '"$layers/launch.toml"' if file == "launch-toml" else '"$layers/greeter.toml"'
        script += f"cat > {target} <<'X'\n{content}X\nexit 0\n"
        (bp / "bin" / "build").write_text(script)
    result = build(app, "malformed:1", home, "--buildpack", str(bp), check=False)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert result.stderr.count("pallet: error:") == 1 and "Traceback" not in result.stderr
    if file != "buildpack.toml":
        assert "buildpack tests/hello" in result.stderr


@pytest.mark.parametrize("program,interpreter", [("detect", "/usr/bin/ruby"), ("build", "/opt/nothing/python3")])
def test_a_buildpack_program_whose_interpreter_the_build_image_lacks_is_named(tmp_path, home, program, interpreter):
    """bubblewrap said 'execvp .../bin/detect: No such file or directory' about a file that is
    there (its #! interpreter is not), and detect called it a buildpack that did not pass."""
    app = hello_app(tmp_path / "app")
    bp = _copy_bp(tmp_path)
    script = bp / "bin" / program
    script.write_text(f"#!{interpreter}\n" + script.read_text().split("\n", 1)[1])
    result = build(app, "interp:1", home, "--buildpack", str(bp), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (f"pallet: error: buildpack tests/hello: bin/{program} starts with "
                                              f"#!'{interpreter}', which is not in the image (the build image)")


def test_symlink_outside_source_is_not_followed(tmp_path, home):
    app = hello_app(tmp_path / "app")
    (tmp_path / "outside.txt").write_text("host secret\n")
    os.symlink(str(tmp_path / "outside.txt"), app / "link.txt")
    build(app, "links:1", home, "--buildpack", str(HELLO_BP))
    rootfs = tmp_path / "unpacked"
    store = home["PALLET_HOME"] + "/store"
    subprocess.run(["umoci", "raw", "unpack", "--image", f"{store}:links:1", str(rootfs)], check=True,
                   capture_output=True)
    link = rootfs / "workspace" / "link.txt"
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "outside.txt")
    assert b"host secret" not in b"".join(p.read_bytes() for p in rootfs.rglob("*") if p.is_file() and not p.is_symlink())


def test_env_secrets_never_land_in_a_layer(tmp_path, home):
    app = hello_app(tmp_path / "app")
    secret = "s3cr3t-" + os.urandom(6).hex()
    result = build(app, "secret:1", home, "--buildpack", str(HELLO_BP), "--env", f"BUILD_SECRET={secret}")
    assert "build saw a secret of" in result.stderr
    store = Path(home["PALLET_HOME"]) / "store"
    manifest = inspect("secret:1", home)
    import gzip

    for layer in manifest["layers"]:
        blob = (store / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
        assert secret.encode() not in gzip.decompress(blob)
    assert "unset" in pallet("run", "secret:1", env=home).stdout


def test_missing_source_dir(tmp_path, home):
    result = pallet("build", str(tmp_path / "nope"), "--stack", TINY, env=home, check=False)
    assert result.returncode == 1 and "source directory not found" in result.stderr
    assert result.stderr.count("\n") == 1


def test_buildpack_with_unchanged_declared_inputs_is_not_run(tmp_path, home):
    bp = _copy_bp(tmp_path)
    (bp / "buildpack.toml").write_text((bp / "buildpack.toml").read_text()
                                       + '\n[metadata.pallet]\ninputs = ["hello.conf"]\n')
    app = hello_app(tmp_path / "app")
    cache = str(tmp_path / "cache")
    first = build_json(app, "skip:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    (app / "index.txt").write_text("only the app changed\n")
    (app / "new.txt").write_text("a new file: the app's shape changed, so the phases run\n")
    second = build(app, "skip:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    assert "inputs unchanged: reusing its layers" in second.stderr
    assert "build number" not in second.stderr
    out = pallet("run", "skip:1", env=home).stdout
    assert out.startswith("hello: Hi there from /workspace")
    (app / "index.txt").write_text("app file\n")
    (app / "new.txt").unlink()
    third = build_json(app, "skip:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    assert third["digest"] == first["digest"]  # skipping changes nothing in the image
    (app / "hello.conf").write_text("Bonjour\n")
    fourth = build(app, "skip:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    assert "inputs unchanged" not in fourth.stderr and "installing greeter" in fourth.stderr
    assert pallet("run", "skip:1", env=home).stdout.startswith("hello: Bonjour")


def test_only_app_files_changed_gives_the_full_builds_image(tmp_path, home):
    """An edit no buildpack reads (declared inputs) rebuilds only the app layer, without running
    a phase, and gives the image a clean full build of the same source gives."""
    bp = _copy_bp(tmp_path)
    (bp / "buildpack.toml").write_text((bp / "buildpack.toml").read_text()
                                       + '\n[metadata.pallet]\ninputs = ["hello.conf"]\n'
                                       + '[metadata.pallet.input-lines]\n"index.txt" = "^title:"\n')
    app = hello_app(tmp_path / "app")
    cache = str(tmp_path / "cache")
    first = build_json(app, "inc:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    (app / "index.txt").write_text("app file, edited\n")
    edited = build(app, "inc:1", home, "--buildpack", str(bp), "--cache-dir", cache, "--json")
    assert "only app files no buildpack reads changed" in edited.stderr
    assert "[tests/hello]" not in edited.stderr  # neither detect nor build ran
    clean = build_json(app, "inc:clean", home, "--buildpack", str(bp), "--cache-dir", str(tmp_path / "c2"))
    assert json.loads(edited.stdout)["digest"] == clean["digest"]
    assert clean["digest"] != first["digest"]
    # a line the buildpack reads: the phases run (and the buildpack, its inputs changed)
    (app / "index.txt").write_text("title: x\napp file, edited\n")
    titled = build(app, "inc:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    assert "only app files" not in titled.stderr and "[tests/hello] build number" in titled.stderr
    # a buildpack that declares no inputs: pallet cannot know what it reads; the phases run
    app2 = hello_app(tmp_path / "app2")
    build(app2, "inc:2", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache)
    (app2 / "index.txt").write_text("edited\n")
    second = build(app2, "inc:2", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache)
    assert "only app files" not in second.stderr and "[tests/hello]" in second.stderr


def test_a_builds_scratch_directory_is_gone_from_view_when_it_returns(tmp_path, home):
    """The scratch directory is renamed to prune's trash name before the build returns, and
    removed behind it; nothing a later build or prune would take for a live build stays."""
    app = hello_app(tmp_path / "app")
    cache = tmp_path / "cache"
    build(app, "scratch:1", home, "--buildpack", str(HELLO_BP), "--cache-dir", str(cache))
    assert [p.name for p in (cache / "work").iterdir() if not p.name.startswith(".trash-")] == []


def _nonce(stderr: str) -> str:
    said = [line for line in stderr.splitlines() if "detect's nonce:" in line]
    assert len(said) == 1, stderr
    return said[0].rsplit(":", 1)[1].strip()


def test_detect_is_remembered_while_what_it_reads_is_unchanged(tmp_path, home):
    """A buildpack's detect (declared ``detect-inputs``) is not run again when only files it does
    not read changed; a change to what it reads, or a new file, runs it. The image is the one a
    clean build of the same source gives."""
    bp = _copy_bp(tmp_path)
    detect = bp / "bin" / "detect"
    # Each run of detect puts a fresh nonce in its build plan; bin/build shows the one it got.
    detect.write_text(detect.read_text().replace(
        'greeting = "$(head -n1 hello.conf)"', 'greeting = "$(head -n1 hello.conf)"\nnonce = "$(cat /proc/sys/kernel/random/uuid)"'))
    build_sh = bp / "bin" / "build"
    lines = build_sh.read_text().split("\n", 1)
    build_sh.write_text(lines[0] + "\n" + 'echo "detect\'s nonce: $(sed -n \'s/^nonce = "\\(.*\\)"$/\\1/p\' "$3")"\n' + lines[1])
    (bp / "buildpack.toml").write_text((bp / "buildpack.toml").read_text()
                                       + '\n[metadata.pallet]\ninputs = ["**"]\ndetect-inputs = ["hello.conf"]\n')
    app = hello_app(tmp_path / "app")
    cache = str(tmp_path / "cache")
    first = build(app, "dm:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    (app / "index.txt").write_text("edited: the build reads it, detect does not\n")
    edited = build(app, "dm:1", home, "--buildpack", str(bp), "--cache-dir", cache, "--json")
    assert _nonce(edited.stderr) == _nonce(first.stderr)  # detect was not run again
    clean = build_json(app, "dm:clean", home, "--buildpack", str(bp), "--cache-dir", str(tmp_path / "c2"))
    assert json.loads(edited.stdout)["digest"] == clean["digest"]
    (app / "hello.conf").write_text("Bonjour\n")
    conf = build(app, "dm:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    assert _nonce(conf.stderr) != _nonce(edited.stderr)
    assert pallet("run", "dm:1", env=home).stdout.startswith("hello: Bonjour")
    (app / "new.txt").write_text("a file detect could look for by name\n")
    named = build(app, "dm:1", home, "--buildpack", str(bp), "--cache-dir", cache)
    assert _nonce(named.stderr) != _nonce(conf.stderr)
    again = build(app, "dm:1", home, "--buildpack", str(bp), "--cache-dir", cache, "--env", "GREETING_STYLE=loud")
    assert _nonce(again.stderr) != _nonce(named.stderr)  # the environment detect sees changed


def test_build_with_sign_key_signs_attests_and_attaches_sbom(tmp_path, home, registry):
    app = hello_app(tmp_path / "app")
    env = {**home, "PALLET_PASSWORD": "test-password"}
    pallet("keygen", "--output-key-prefix", str(tmp_path / "cosign"), env=env)
    ref = f"docker://{registry.host}/signed/hello:1"
    plain = build_json(app, f"docker://{registry.host}/plain/hello:1", home, "--buildpack", str(HELLO_BP),
                       "--cache-dir", str(tmp_path / "c1"))
    signed = build_json(app, ref, env, "--buildpack", str(HELLO_BP), "--sign-key", str(tmp_path / "cosign.key"),
                        "--cache-dir", str(tmp_path / "c2"))
    assert signed["digest"] == plain["digest"]  # signing does not change the image
    assert signed["supplyChain"]["sboms"].keys() == {"cyclonedx", "spdx"}
    verified = pallet("verify", ref, "--key", str(tmp_path / "cosign.pub"), env=home)
    assert verified.returncode == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(f'keys = ["{tmp_path / "cosign.pub"}"]\nrequire_sbom = true\n')
    assert pallet("verify", ref, "--policy", str(policy), env=home).returncode == 0
    unsigned = pallet("verify", f"docker://{registry.host}/plain/hello:1", "--key", str(tmp_path / "cosign.pub"),
                      env=home, check=False)
    assert unsigned.returncode == 1
    assert "test-password" not in json.dumps(signed)


def test_sbom_layer_holds_what_buildpacks_installed(tmp_path, home):
    bp = _copy_bp(tmp_path)
    script = (bp / "bin" / "build").read_text().replace("\nexit 0\n", "\n")
    script += ('meta="$layers/greeter/lib/python3.11/site-packages/flask-3.0.3.dist-info"\n'
               'mkdir -p "$meta"\nprintf "Metadata-Version: 2.1\\nName: Flask\\nVersion: 3.0.3\\nLicense: BSD-3-Clause\\n"'
               ' > "$meta/METADATA"\nexit 0\n')
    (bp / "bin" / "build").write_text(script)
    app = hello_app(tmp_path / "app")
    build(app, "sbomlayer:1", home, "--buildpack", str(bp))
    rootfs = tmp_path / "unpacked"
    subprocess.run(["umoci", "raw", "unpack", "--image", f"{home['PALLET_HOME']}/store:sbomlayer:1", str(rootfs)],
                   check=True, capture_output=True)
    doc = json.loads((rootfs / "layers/sbom/launch/tests_hello/greeter/sbom.cdx.json").read_text())
    assert [(c["name"], c["version"], c["purl"]) for c in doc["components"]] == [
        ("Flask", "3.0.3", "pkg:pypi/flask@3.0.3")]
    lifecycle = json.loads(inspect("sbomlayer:1", home)["config"]["labels"]["io.buildpacks.lifecycle.metadata"])
    assert lifecycle["sbom"]["sha"] in [x["diffID"] for x in inspect("sbomlayer:1", home)["layers"]]


def test_unchanged_build_is_answered_from_the_memo(tmp_path, home):
    app = hello_app(tmp_path / "app")
    cache = str(tmp_path / "cache")
    first = build_json(app, f"oci:{tmp_path}/lay:one", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache)
    again = build(app, f"oci:{tmp_path}/lay:two", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache, "--json")
    assert "inputs unchanged since the last build" in again.stderr and "[tests/hello]" not in again.stderr
    assert json.loads(again.stdout)["digest"] == first["digest"]
    assert inspect(f"oci:{tmp_path}/lay:two", home)["digest"] == first["digest"]
    (app / "index.txt").write_text("changed\n")
    changed = build(app, f"oci:{tmp_path}/lay:two", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache)
    assert "inputs unchanged since the last build" not in changed.stderr
    shutil.rmtree(tmp_path / "lay")  # the remembered image is gone: a full build again
    (app / "index.txt").write_text("app file\n")
    rebuilt = build(app, f"oci:{tmp_path}/lay:one", home, "--buildpack", str(HELLO_BP), "--cache-dir", cache,
                    "--json")
    assert "inputs unchanged since the last build" not in rebuilt.stderr
    assert json.loads(rebuilt.stdout)["digest"] == first["digest"]


def test_project_toml_buildpacks_uri_and_include(tmp_path, home):
    app = hello_app(tmp_path / "app")
    (app / "notes.md").write_text("not for the image\n")
    shutil.copytree(HELLO_BP, app / "bp")
    (app / "project.toml").write_text('[build]\ninclude = ["hello.conf", "index.txt", "bp/", "project.toml"]\n'
                                      '[[build.buildpacks]]\nuri = "bp"\n')
    out = build(app, "proj:1", home, "--cache-dir", str(tmp_path / "cache"))
    assert "[tests/hello] installing greeter" in out.stderr
    rootfs = tmp_path / "unpacked"
    subprocess.run(["umoci", "raw", "unpack", "--image", f"{home['PALLET_HOME']}/store:proj:1", str(rootfs)],
                   check=True, capture_output=True)
    assert (rootfs / "workspace" / "hello.conf").is_file()
    assert not (rootfs / "workspace" / "notes.md").exists()


def test_ca_certs_flag_reaches_build_steps(tmp_path, home):
    bp = _copy_bp(tmp_path)
    script = (bp / "bin" / "build").read_text().replace(
        "\nexit 0\n", '\necho "ca: $(head -n1 "$SSL_CERT_FILE") / pip: $PIP_CERT"\nexit 0\n')
    (bp / "bin" / "build").write_text(script)
    ca = tmp_path / "corp-ca.pem"
    ca.write_text("# corporate test CA\n")
    app = hello_app(tmp_path / "app")
    out = build(app, "ca:1", home, "--buildpack", str(bp), "--ca-certs", str(ca), "--cache-dir", str(tmp_path / "c"))
    line = next(x for x in out.stderr.splitlines() if "ca: " in x)
    assert "ca: # corporate test CA" in line
    pip_cert = line.split("pip: ", 1)[1]
    assert pip_cert and not pip_cert.startswith("/workspace") and not pip_cert.startswith("/layers")


DEEP_BP = ROOT / "tests" / "buildpacks" / "deeptree"


def test_a_launch_layer_deeper_than_any_image_is_a_one_line_error_and_leaves_no_work(tmp_path, home):
    """1500 levels in a launch layer died of RecursionError (a traceback) in the export's walk."""
    app = hello_app(tmp_path / "app")
    cache = tmp_path / "cache"
    try:
        proc = build(app, "deep:1", home, "--buildpack", str(DEEP_BP), "--env", "DEEP_LAYER=launch",
                     "--cache-dir", str(cache), check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        last = proc.stderr.splitlines()[-1]
        assert last.startswith("pallet: error: ") and "over 256 directories deep" in last, proc.stderr
        from builder.gc.areas import TRASH  # the scratch directory goes to the trash, emptied in the background

        work = cache / "work"
        assert not [p.name for p in work.iterdir() if not p.name.startswith(TRASH)] if work.exists() else True
    finally:  # pytest's own clean-up of old tmp dirs dies on a tree this deep
        subprocess.run(["rm", "-rf", str(cache)], check=False)


def test_a_deep_cache_layer_is_kept_restored_and_pruned(tmp_path, home):
    """A cache layer never goes into an image, so its depth is the buildpack's business; the
    cache's walks (restore, sizes, prune) must cope with it."""
    app = hello_app(tmp_path / "app")
    cache = tmp_path / "cache"
    try:
        args = ("--buildpack", str(DEEP_BP), "--env", "DEEP_LAYER=cache", "--cache-dir", str(cache))
        first = build(app, "deep:2", home, *args)
        assert "made a tree 1500 deep" in first.stderr + first.stdout
        (app / "index.txt").write_text("changed\n")
        second = build(app, "deep:2", home, *args)
        assert "deep tree restored from the cache" in second.stderr + second.stdout
        kept = subprocess.run(["find", str(cache / "builds"), "-name", "d", "-type", "d"], capture_output=True, text=True)
        assert kept.stdout.count("\n") == 1500, "the cache layer was not kept for the next build"
        listed = pallet("prune", "--dry-run", "--cache-dir", str(cache), env=home, check=False)
        assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
        pruned = pallet("prune", "--all", "--cache-dir", str(cache), env=home, check=False)
        assert pruned.returncode == 0 and "Traceback" not in pruned.stderr, pruned.stderr
        left = subprocess.run(["find", str(cache), "-name", "d", "-type", "d"], capture_output=True, text=True)
        assert left.stdout == "", left.stdout[:200]
    finally:  # pytest's own clean-up of old tmp dirs dies on a tree this deep
        subprocess.run(["rm", "-rf", str(cache)], check=False)


def test_one_commit_gives_one_digest_whatever_git_ignores_around_it(tmp_path, home):
    """A developer's checkout (a virtualenv, node_modules, .env, byte-code) and a clean clone of
    the same commit build to one image: what git ignores and does not track stays out."""
    clean = hello_app(tmp_path / "clean")
    (clean / ".gitignore").write_text(".env\n__pycache__/\nnode_modules/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C"]
    subprocess.run([*git, str(clean), "init", "-q"], check=True)
    subprocess.run([*git, str(clean), "add", "-A"], check=True)
    subprocess.run([*git, str(clean), "commit", "-qm", "app"], check=True)
    used = tmp_path / "used"
    subprocess.run(["git", "clone", "-q", str(clean), str(used)], check=True)
    (used / ".env").write_text("SECRET=hunter2\n")
    (used / "__pycache__").mkdir()
    (used / "__pycache__" / "x.pyc").write_bytes(b"\0" * 10)
    (used / "node_modules" / "left").mkdir(parents=True)
    (used / ".venv").mkdir()
    (used / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    a = build(clean, "same:clean", home, "--buildpack", str(HELLO_BP), "--json", "--cache-dir", str(tmp_path / "c1"))
    b = build(used, "same:used", home, "--buildpack", str(HELLO_BP), "--json", "--cache-dir", str(tmp_path / "c2"))
    assert json.loads(a.stdout)["digest"] == json.loads(b.stdout)["digest"]
    assert "left out of the app (git ignores them, or a virtualenv): .env, .venv/, __pycache__/, node_modules/" \
        in b.stderr, b.stderr
