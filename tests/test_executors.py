"""Executors: one interface, chosen once. The in-place one (what runs inside a builder image)
runs real steps here as child processes; the full in-place build is in test_builder_image."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from builder.builders.create import BuilderError, builder_labels, python_version
from builder.builders.info import BuilderInfo, find_builder
from builder.lifecycle import executors
from builder.lifecycle.executors import ExecutorError, InPlaceSandbox, choose, translate
from builder.lifecycle.sandbox import Bind, Step


def _step(tmp_path: Path, *binds: Bind, argv=("/bin/sh", "-c", "true"), env=None, cwd="/") -> Step:
    return Step(argv=tuple(argv), env=dict(env or {"PATH": "/usr/bin:/bin"}), cwd=cwd, uid=os.getuid(),
                gid=os.getgid(), binds=binds)


def test_translate_moves_only_binds_that_are_not_in_place(tmp_path):
    bp = tmp_path / "bp"
    bp.mkdir()
    plan = tmp_path / "plan"
    plan.mkdir()
    here = tmp_path / "here"
    here.mkdir()
    step = _step(tmp_path, Bind(bp, "/cnb/buildpacks/x/1.0"), Bind(plan, "/tmp/cnb-plan", writable=True),
                 Bind(here, str(here)),
                 argv=("/cnb/buildpacks/x/1.0/bin/build", "/layers/x", "/tmp/cnb-plan/plan.toml"),
                 env={"CNB_BUILDPACK_DIR": "/cnb/buildpacks/x/1.0", "PATH": "/cnb/buildpacks/x/1.0/bin:/usr/bin",
                      "CNB_LAYERS_DIR": "/layers/x", "OTHER": "/cnb/buildpacks/x/1.00"},
                 cwd="/tmp/cnb-plan")
    moved = translate(step)
    assert moved.argv == (f"{bp}/bin/build", "/layers/x", f"{plan}/plan.toml")
    assert moved.env["CNB_BUILDPACK_DIR"] == str(bp)
    assert moved.env["PATH"] == f"{bp}/bin:/usr/bin"
    assert moved.env["CNB_LAYERS_DIR"] == "/layers/x"  # not bound here: left as it is
    assert moved.env["OTHER"] == "/cnb/buildpacks/x/1.00"  # a longer name is not under the target
    assert moved.cwd == str(plan) and moved.binds == ()
    assert translate(_step(tmp_path, Bind(here, str(here)))).binds  # nothing to move: the step as given


def test_in_place_runs_the_step_with_its_env_cwd_and_output(tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("LEAKED", "from pallet's own environment")
    bp = tmp_path / "bp"
    (bp / "bin").mkdir(parents=True)
    script = bp / "bin" / "build"
    script.write_text('#!/bin/sh\necho "dir=$CNB_BUILDPACK_DIR cwd=$(pwd) arg=$1 proxy=$HTTPS_PROXY '
                      'leaked=${LEAKED:-none} ca=$SSL_CERT_FILE"\necho "$1" > "$1.out"\nexit 7\n')
    script.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here\n")
    lines: list[str] = []
    code = InPlaceSandbox(ca_certs=ca).run(_step(
        tmp_path, Bind(bp, "/cnb/buildpacks/bp/1"), Bind(out, "/tmp/cnb-out", writable=True),
        argv=("/cnb/buildpacks/bp/1/bin/build", "/tmp/cnb-out/x"),
        env={"PATH": "/usr/bin:/bin", "CNB_BUILDPACK_DIR": "/cnb/buildpacks/bp/1"}, cwd="/tmp/cnb-out"), lines.append)
    assert code == 7
    assert lines == [f"dir={bp} cwd={out} arg={out}/x proxy=http://proxy.example:3128 leaked=none ca={ca}"]
    assert (out / "x.out").read_text() == f"{out}/x\n"


def test_in_place_reports_what_it_cannot_run(tmp_path):
    from builder.lifecycle.sandbox import SandboxError

    sandbox = InPlaceSandbox(ca_certs=None)
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.run(_step(tmp_path, Bind(tmp_path / "missing", "/x")))
    with pytest.raises(SandboxError, match="cannot run"):
        sandbox.run(_step(tmp_path, argv=(str(tmp_path / "no-such-program"),)), lambda line: None)


def test_chosen_once_in_place_only_inside_a_builder(tmp_path, monkeypatch):
    marker = tmp_path / "builder.json"
    monkeypatch.setenv("PALLET_BUILDER_FILE", str(marker))
    assert find_builder() is None and choose(None) == "sandbox"
    with pytest.raises(ExecutorError, match="only inside a pallet builder image"):
        executors._in_place(os.getuid(), None)  # it empties /workspace: never outside a builder
    info = BuilderInfo(stack="bookworm", build_image="sha256:" + "1" * 64, run_image="sha256:" + "2" * 64,
                       run_name="bookworm-run:0.1.0@sha256:" + "2" * 64,
                       run_mirror="docker://127.0.0.1:1/builders/b@sha256:" + "2" * 64)
    marker.write_text(info.to_json())
    assert find_builder() == info
    assert choose(None) == "in-place" and choose("sandbox") == "sandbox"
    with pytest.raises(ExecutorError, match="unknown executor"):
        choose("chroot")
    marker.write_text("{not json")
    from builder.builders.info import BuilderFileError

    with pytest.raises(BuilderFileError, match="not a pallet builder description"):
        find_builder()


def test_empty_dir_keeps_the_directory_and_drops_its_contents(tmp_path):
    d = tmp_path / "layers"
    (d / "a" / "b").mkdir(parents=True)
    (d / "f").write_text("x")
    os.symlink("/etc", d / "link")
    executors.empty_dir(d)
    assert d.is_dir() and not list(d.iterdir())
    assert Path("/etc").is_dir()


def test_python_version_comes_from_the_images_interpreter(tmp_path):
    bin_dir = tmp_path / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    with pytest.raises(BuilderError, match="no python3"):
        python_version(tmp_path)
    os.symlink("python3.13", bin_dir / "python3")
    assert python_version(tmp_path) == "3.13"


def test_labels_name_the_run_image_by_digest():
    info = BuilderInfo(stack="trixie", build_image="sha256:" + "1" * 64, run_image="sha256:" + "2" * 64,
                       run_name="trixie-run:0.1.0@sha256:" + "2" * 64)
    labels = builder_labels(info, [("pallet/python", "0.1.0")])
    assert labels["io.pallet.builder.run-image.digest"] == info.run_image
    assert labels["io.pallet.builder.run-image"].endswith("@" + info.run_image)
    meta = json.loads(labels["io.buildpacks.builder.metadata"])
    assert meta["buildpacks"] == [{"id": "pallet/python", "version": "0.1.0"}]
