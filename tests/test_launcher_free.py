"""Images without a launcher: an image with one process type starts it directly, with the
environment the launcher would have set up baked into its config (BP_LAUNCHER=always keeps it)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from builder.lifecycle.compose import AppLayer, AppPart, app_part_of, compose
from builder.oci import mediatypes as mt
from builder.oci.model import Descriptor, ImageConfig, Manifest, RunConfig
from tests.cli import pallet
from tests.test_build import TINY, home  # noqa: F401  (module fixture)

ROOT = Path(__file__).resolve().parent.parent
ENVRULES_BP = ROOT / "tests" / "buildpacks" / "envrules"


# -- pure: compose and its inverse ------------------------------------------------------------


def _run_image(path: str) -> tuple[Manifest, ImageConfig]:
    layer = Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + "1" * 64, 10)
    config = ImageConfig(config=RunConfig(env=(f"PATH={path}", "LANG=C.UTF-8")), diff_ids=("sha256:" + "2" * 64,))
    return Manifest(config=Descriptor(mt.OCI_CONFIG, "sha256:" + "3" * 64, 1), layers=(layer,)), config


RULES = (("PATH", "prepend", "/layers/bp/a/bin", ":"), ("PORT", "default", "8080", None),
         ("LANG", "override", "en_GB.UTF-8", None), ("LIST", "append", "x", ","), ("LIST", "append", "y", ","))


def _app() -> AppPart:
    layer = AppLayer(Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + "4" * 64, 5), "sha256:" + "5" * 64, "app: /workspace")
    return AppPart(layers=[layer], uid=1000, gid=1000, entrypoint=("server",), path_dirs=["/layers/bp/a/bin"],
                   labels={}, lifecycle={"app": [{"sha": layer.diff_id}]}, created="2020-01-01T00:00:00Z",
                   launch_env=RULES, cmd=("--port", "8080"), working_dir="/workspace/site")


def test_the_launch_rules_are_applied_to_the_run_images_env_in_order():
    manifest, config = compose(*_run_image("/usr/bin:/bin"), "sha256:" + "6" * 64, "run:v1", _app())
    run = config.config
    assert run.entrypoint == ("server",) and run.cmd == ("--port", "8080")
    assert run.working_dir == "/workspace/site" and run.user == "1000:1000"
    assert run.env == ("PATH=/layers/bp/a/bin:/usr/bin:/bin", "LANG=en_GB.UTF-8", "CNB_LAYERS_DIR=/layers",
                       "CNB_APP_DIR=/workspace", "PORT=8080", "LIST=x,y")
    assert not any("/cnb/" in e for e in run.env)


def test_a_launcher_free_image_comes_apart_and_back_and_follows_another_run_images_env():
    """Rebase and app-only rebuilds take the app part back from the image: the rules must come
    back with it, so a run image with another PATH gives the env a build on it would."""
    run_manifest, run_config = _run_image("/usr/bin:/bin")
    manifest, config = compose(run_manifest, run_config, "sha256:" + "6" * 64, "run:v1", _app())
    manifest = replace(manifest, config=Descriptor(mt.OCI_CONFIG, "sha256:" + "7" * 64, 1))
    app, old_run = app_part_of(manifest, config)
    assert old_run["image"] == "run:v1"
    assert app.launch_env == RULES and app.cmd == ("--port", "8080") and app.working_dir == "/workspace/site"
    assert app.entrypoint == ("server",)
    again = compose(run_manifest, run_config, "sha256:" + "6" * 64, "run:v1", app)[1]
    assert again == config
    v2_manifest, v2_config = _run_image("/usr/local/bin:/usr/bin")
    on_v2 = compose(v2_manifest, v2_config, "sha256:" + "8" * 64, "run:v2", app)[1]
    assert on_v2.config.env_dict()["PATH"] == "/layers/bp/a/bin:/usr/local/bin:/usr/bin"
    built_on_v2 = compose(v2_manifest, v2_config, "sha256:" + "8" * 64, "run:v2", _app())[1]
    assert on_v2 == built_on_v2


@pytest.mark.parametrize("rules", [[["A", "sideways", "x", None]], [["A", "override"]], "not a list"])
def test_damaged_rules_are_not_taken_apart(rules):
    from builder.lifecycle.compose import NotBuildpacksImage

    manifest, config = compose(*_run_image("/bin"), "sha256:" + "6" * 64, "run:v1", _app())
    labels = dict(config.config.labels)
    lifecycle = json.loads(labels["io.buildpacks.lifecycle.metadata"])
    lifecycle["pallet"]["launchEnv"] = rules
    labels["io.buildpacks.lifecycle.metadata"] = json.dumps(lifecycle)
    config = replace(config, config=replace(config.config, labels=labels))
    with pytest.raises(NotBuildpacksImage):
        app_part_of(manifest, config)


# -- end to end: the same app with and without the launcher ------------------------------------


def _app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "envrules.conf").write_text("on\n")
    return app


def _build(app: Path, tag: str, env: dict[str, str], *extra: str) -> dict:
    out = pallet("build", str(app), "-t", tag, "--stack", TINY, "--buildpack", str(ENVRULES_BP), "--json", *extra,
                 env=env)
    return json.loads(out.stdout)


def _env_of(output: str) -> tuple[list[str], dict[str, str]]:
    """(the lines before the env, the env) of what show-env printed; PATH as the directories it
    searches, in order, once each, without the launcher's own /cnb ones."""
    lines = output.splitlines()
    head, rest = lines[:2], lines[2:]
    env: dict[str, str] = {}
    for line in rest:
        if "=" in line and line.split("=", 1)[0].isidentifier():
            key, value = line.split("=", 1)
            env[key] = value
        else:
            env[key] += "\n" + line  # a value with a newline
    seen: list[str] = []
    for d in env["PATH"].split(":"):
        if d not in seen and not d.startswith("/cnb/"):
            seen.append(d)
    env["PATH"] = ":".join(seen)
    for key in ("HOSTNAME", "PWD", "SHLVL", "_", "HOME"):
        env.pop(key, None)
    return head, env


def test_without_a_launcher_the_process_gets_the_launchers_environment(tmp_path, home, docker_cli, image_name):  # noqa: F811
    app = _app_dir(tmp_path)
    _build(app, "envrules:free", home)
    _build(app, "envrules:launcher", home, "--env", "BP_LAUNCHER=always")
    free = json.loads(pallet("inspect", "--json", "envrules:free", env=home).stdout)
    kept = json.loads(pallet("inspect", "--json", "envrules:launcher", env=home).stdout)
    assert free["config"]["entrypoint"] == ["show-env"] and free["config"]["cmd"] == ["default-arg"]
    assert kept["config"]["entrypoint"] == ["/cnb/process/web"]
    assert len(free["layers"]) == len(kept["layers"]) - 2  # no launcher, no process-types layer
    lifecycle = json.loads(free["config"]["labels"]["io.buildpacks.lifecycle.metadata"])
    assert "launcher" not in lifecycle and "config" not in lifecycle

    outputs = {tag: pallet("run", f"envrules:{tag}", env=home).stdout for tag in ("free", "launcher")}
    head_free, env_free = _env_of(outputs["free"])
    head_kept, env_kept = _env_of(outputs["launcher"])
    assert head_free == head_kept == ["args: default-arg", "cwd: /workspace"]
    assert env_free == env_kept
    assert env_free["RULE_OVERRIDE"] == "b-wins" and env_free["RULE_DEFAULT"] == "a-default"
    assert env_free["RULE_LIST"] == "zero,firstnodelim"  # files in name order: append, override, prepend
    assert env_free["RULE_TYPE"] == "web only"
    assert env_free["RULE_MULTILINE"] == "line one\nline two" and "RULE_UNKNOWN" not in env_free
    assert env_free["PATH"].startswith("/layers/tests_envrules/b/bin:/layers/tests_envrules/a/bin:")
    assert env_free["PATH"].endswith(":/opt/extra") and env_free["LD_LIBRARY_PATH"] == "/layers/tests_envrules/a/lib"

    # by its process type, and in the Docker engine with arguments that replace the defaults
    assert pallet("run", "envrules:free", "web", env=home).stdout.splitlines()[0] == "args: default-arg"
    wrong = pallet("run", "envrules:free", "worker", env=home, check=False)
    assert wrong.returncode != 0 and "it has one, web, as its entrypoint" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    pallet("copy", "envrules:free", f"docker-daemon:{image_name}:free", env=home)
    docker = subprocess.run([docker_cli, "run", "--rm", "--network", "none", f"{image_name}:free", "given"],
                            capture_output=True, text=True, check=True).stdout
    head, env = _env_of(docker)
    assert head == ["args: given", "cwd: /workspace"] and env["RULE_LIST"] == env_free["RULE_LIST"]


def test_an_unknown_launcher_choice_is_a_one_line_error(tmp_path, home):  # noqa: F811
    out = pallet("build", str(_app_dir(tmp_path)), "-t", "envrules:bad", "--stack", TINY, "--buildpack",
                 str(ENVRULES_BP), "--env", "BP_LAUNCHER=never", env=home, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("pallet: error: BP_LAUNCHER='never'")
    listed = pallet("inspect", "envrules:bad", env=home, check=False)
    assert listed.returncode != 0  # nothing was tagged


def test_the_process_working_dir_with_or_without_launcher(tmp_path, home):  # noqa: F811
    app = _app_dir(tmp_path)
    (app / "site").mkdir()
    (app / "site" / "page.txt").write_text("x\n")
    for tag, extra in (("wd-free", ()), ("wd-launcher", ("--env", "BP_LAUNCHER=always"))):
        _build(app, f"envrules:{tag}", home, "--env", "ENVRULES_WORKDIR=/workspace/site", *extra)
        assert pallet("run", f"envrules:{tag}", env=home).stdout.splitlines()[1] == "cwd: /workspace/site"
    config = json.loads(pallet("inspect", "--json", "envrules:wd-free", env=home).stdout)["config"]
    assert config["workingDir"] == "/workspace/site"


@pytest.mark.parametrize("odd", ["name", "value"])
def test_env_files_a_config_cannot_carry_keep_the_launcher(tmp_path, home, odd):  # noqa: F811
    """A variable named ODD-NAME (the launcher sets it; a config's NAME=value is not meant for it)
    or a value that is not UTF-8: the image keeps its launcher, which sets them as it always did."""
    app = _app_dir(tmp_path)
    _build(app, f"envrules:odd-{odd}", home, "--env", f"ENVRULES_ODD={odd}")
    config = json.loads(pallet("inspect", "--json", f"envrules:odd-{odd}", env=home).stdout)["config"]
    assert config["entrypoint"] == ["/cnb/process/web"]
    if odd == "name":  # (the other prints bytes that are not text)
        out = pallet("run", f"envrules:odd-{odd}", env=home).stdout
        assert out.splitlines()[:2] == ["args: default-arg", "cwd: /workspace"]  # (sh drops ODD-NAME itself)
