"""Every sample in samples/, as the README promises: built on the bookworm stack twice (from two
places, with clean caches) to the same digest, then run in Docker and with ``pallet run``, and
asked something over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.supply import layerfiles
from tests.cli import pallet
from tests.samplekit import (SAMPLES, container_alive, docker_run, free_port, http, pallet_run,
                             wait_http)

pytestmark = [pytest.mark.slow, pytest.mark.docker]

#: sample -> (buildpacks expected, path to GET, text the body must contain)
EXPECTED = {
    "python-flask": (["pallet/python"], "/", "<h1>Hello from python-flask</h1>"),
    "python-fastapi-uv": (["pallet/python"], "/", '"message":"Hello from python-fastapi-uv"'),
    "python-poetry": (["pallet/python"], "/", "Hello from python-poetry (Falcon 4.4.0, Python 3.11.2)"),
    "node-express": (["pallet/nodejs"], "/", "Hello from node-express (Node v18.20.4, Express 4.22.3)"),
    "go-http": (["pallet/go"], "/", "Hello from go-http (go1.19.8)"),
    "static-site": (["pallet/static"], "/", "<h1>Hello from static-site</h1>"),
    "procfile-worker": (["pallet/python", "pallet/procfile"], "/", '"service": "procfile-worker web"'),
}


#: sample -> (files its buildpack leaves out of the image: nothing reads them at run time; a file
#: kept beside them; its document in the CNB SBOM layer; a package that document lists)
LEFT_OUT = {
    "python-flask": (["layers/pallet_python/venv/bin/activate", "layers/pallet_python/venv/bin/Activate.ps1",
                      "layers/pallet_python/venv/bin/activate.fish", "layers/pallet_python/venv/bin/activate.csh"],
                     "layers/pallet_python/venv/bin/gunicorn",
                     "layers/sbom/launch/pallet_python/venv/sbom.cdx.json", "pkg:pypi/flask@3.1.3"),
    "node-express": (["layers/pallet_nodejs/modules/node_modules/.package-lock.json",
                      # a devDependency: production dependencies only
                      "layers/pallet_nodejs/modules/node_modules/eslint/package.json"],
                     "layers/pallet_nodejs/modules/node_modules/express/package.json",
                     "layers/sbom/launch/pallet_nodejs/modules/sbom.cdx.json", "pkg:npm/express@4.22.3"),
}


def _check_layers(sample: str, home, ref: str) -> None:  # noqa: ANN001
    """What the image holds of LEFT_OUT: not the files left out, and a compact SBOM document."""
    if sample not in LEFT_OUT:
        return
    gone, kept, sbom_path, purl = LEFT_OUT[sample]
    wanted = {*gone, kept, sbom_path}
    blobs = Path(home.env["PALLET_HOME"]) / "store" / "blobs" / "sha256"
    streams = [open(blobs / layer["digest"].split(":", 1)[1], "rb") for layer in home.inspect(ref)["layers"]]
    try:
        found = layerfiles.read_files(streams, lambda e: layerfiles.READ if e.path in wanted else None)
    finally:
        for stream in streams:
            stream.close()
    assert kept in found and not set(gone) & set(found), sorted(found)
    document = found[sbom_path].data or b""
    assert b"\n" not in document and purl in [c["purl"] for c in json.loads(document)["components"]]


#: samples whose tests live elsewhere (they need another stack than bookworm, or the stack choice)
COVERED_ELSEWHERE = {"python-bot": "test_python_apps", "python-313": "test_python_apps",
                     "python-poetry-scripts": "test_python_apps", "python-aptfile": "test_aptfile"}


def test_every_sample_is_covered():
    assert sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()) == sorted([*EXPECTED, *COVERED_ELSEWHERE])


def _more_checks(sample: str, port: int) -> None:
    """What else each sample answers (same checks in Docker and with pallet run)."""
    if sample == "python-flask":
        data = json.loads(http(port, "/api/greet?name=pallet").body)
        assert data == {"greeting": "Hello, pallet!", "runtime": "Python 3.11.2"}
    elif sample == "python-fastapi-uv":
        resp = http(port, "/items", method="POST", data=b'{"name": "crate", "quantity": 3}',
                    headers={"Content-Type": "application/json"})
        assert json.loads(resp.body) == {"created": "crate", "quantity": 3}
    elif sample == "python-poetry":
        assert http(port, "/notes", method="POST", data=b'{"text": "hi"}').status == 201
        assert json.loads(http(port, "/notes").body) == {"notes": ["hi"]}
    elif sample == "node-express":
        assert json.loads(http(port, "/api/time").body)["env"] == "production"
    elif sample == "go-http":
        assert json.loads(http(port, "/api/info").body)["go"] == "go1.19.8"
    elif sample == "static-site":
        assert http(port, "/assets/style.css").headers["content-type"] == "text/css; charset=utf-8"
        assert http(port, "/missing").status == 404
    elif sample == "procfile-worker":
        assert http(port, "/jobs", method="POST", data=b"x").status == 201


def _check_port_default(home, ref: str) -> None:  # noqa: ANN001
    """Web processes listen on $PORT, 8080 unless it is set: a launch layer says so
    (``env.launch/PORT.default``, applied by the launcher when PORT is unset)."""
    blobs = Path(home.env["PALLET_HOME"]) / "store" / "blobs" / "sha256"
    streams = [open(blobs / layer["digest"].split(":", 1)[1], "rb") for layer in home.inspect(ref)["layers"]]
    try:
        found = layerfiles.read_files(streams, lambda e: layerfiles.READ if e.path.endswith(
            "/env.launch/PORT.default") and e.path.startswith("layers/") else None)
    finally:
        for stream in streams:
            stream.close()
    assert [f.data for f in found.values()] == [b"8080"], sorted(found)


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_sample_builds_reproducibly_and_answers_http(sample, bookworm, tmp_path, docker_cli, image_name):
    buildpacks, path, expected = EXPECTED[sample]
    first = bookworm.build_json(SAMPLES / sample, f"{sample}:a", tmp_path / "cache-a")
    assert [b["id"] for b in first["buildpacks"]] == buildpacks
    assert first["defaultProcess"] == "web"
    # The same source from another place, with a clean cache: the same image, bit for bit.
    elsewhere = tmp_path / "elsewhere" / sample
    shutil.copytree(SAMPLES / sample, elsewhere, ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
    second = bookworm.build_json(elsewhere, f"{sample}:b", tmp_path / "cache-b")
    assert second["digest"] == first["digest"]
    _check_layers(sample, bookworm, f"{sample}:a")
    _check_port_default(bookworm, f"{sample}:a")

    port = free_port()
    with pallet_run(bookworm, f"{sample}:a", port) as proc:
        resp = wait_http(port, path, alive=lambda: proc.poll() is None)
        assert resp.status == 200 and expected in resp.body, resp.body
        _more_checks(sample, port)

    pallet("copy", f"{sample}:a", f"docker-daemon:{image_name}:1", env=bookworm.env)
    port = free_port()
    with docker_run(docker_cli, f"{image_name}:1", port) as cid:
        resp = wait_http(port, path, alive=container_alive(docker_cli, cid))
        assert resp.status == 200 and expected in resp.body, resp.body
        _more_checks(sample, port)


def test_procfile_worker_processes_what_web_queued(bookworm, tmp_path, docker_cli, image_name):
    """The two process types of one image, as two containers sharing a queue directory."""
    bookworm.build(SAMPLES / "procfile-worker", "worker:1", tmp_path / "cache")
    md = json.loads(bookworm.inspect("worker:1")["config"]["labels"]["io.buildpacks.build.metadata"])
    assert {p["type"]: p["command"] for p in md["processes"]} == {
        "web": ["python", "web.py"], "worker": ["python", "worker.py"]}
    image = f"{image_name}:1"
    pallet("copy", "worker:1", f"docker-daemon:{image}", env=bookworm.env)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    os.chmod(jobs, 0o777)
    volume = ["-v", f"{jobs}:/jobs", "-e", "JOBS_DIR=/jobs"]
    port = free_port()
    with docker_run(docker_cli, image, port, *volume) as cid:
        wait_http(port, alive=container_alive(docker_cli, cid))
        assert json.loads(http(port, "/jobs", method="POST", data=b"pack this").body) == {"id": "000001"}
        worker = subprocess.run([docker_cli, "run", "--rm", "--network", "none", *volume, "-e", "WORKER_ITERATIONS=1",
                                 "--entrypoint", "/cnb/process/worker", image],
                                capture_output=True, text=True, timeout=120)
        assert worker.returncode == 0, worker.stderr
        assert worker.stdout.splitlines() == ["procfile-worker worker started", "processed job 000001: PACK THIS"]
        assert json.loads(http(port, "/").body) == {"service": "procfile-worker web", "queued": 0, "done": 1}
    daemonless = pallet("run", "worker:1", "worker", "--env", "WORKER_ITERATIONS=1", "--env", "WORKER_POLL_SECONDS=0",
                        env=bookworm.env, timeout=120)
    assert daemonless.stdout.splitlines() == ["procfile-worker worker started", "idle, {'queued': 0, 'done': 0}"]
