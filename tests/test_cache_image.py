"""``--cache-image``: two ephemeral runners (each a fresh PALLET_HOME and cache directory) that
share only a cache image in a local registry. The second installs nothing and gives the first's
digest; unchanged cache layers are not uploaded again; ``--cache-image-readonly`` never writes."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.cli import pallet
from tests.samplekit import ROOT, SAMPLES

pytestmark = [pytest.mark.slow, pytest.mark.registry]


def _runner(tmp_path: Path, name: str) -> tuple[dict[str, str], Path]:
    """A fresh machine: its own PALLET_HOME and build cache."""
    return {"PALLET_HOME": str(tmp_path / name / "home")}, tmp_path / name / "cache"


def _build(src: Path, tag: str, runner: tuple[dict[str, str], Path], *extra: str):
    env, cache = runner
    return pallet("build", str(src), "-t", tag, "--stack", str(ROOT / "stacks" / "bookworm.toml"),
                  "--cache-dir", str(cache), "--json", *extra, env=env, timeout=1200)


def _cache_manifest(registry, repo: str) -> dict:
    import urllib.request

    req = urllib.request.Request(f"http://{registry.host}/v2/{repo}/manifests/cache",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return {"digest": r.headers["Docker-Content-Digest"]}


def test_two_ephemeral_runners_share_only_the_cache_image(tmp_path, registry):
    src = tmp_path / "src"
    shutil.copytree(SAMPLES / "python-flask", src)
    repo = f"apps/{uuid.uuid4().hex[:8]}"
    cache_image = f"docker://{registry.host}/{repo}-cache:cache"

    first = _build(src, f"docker://{registry.host}/{repo}:1", _runner(tmp_path, "a"), "--cache-image", cache_image)
    assert "installing from requirements.txt with pip" in first.stderr
    assert "cache image: none yet" in first.stderr and "cache layers uploaded" in first.stderr
    first_digest = json.loads(first.stdout)["digest"]

    # Runner b: the same source to another repository, so the memo cannot simply point the tag
    # at the first image: the buildpacks run from the restored cache.
    second = _build(src, f"docker://{registry.host}/{repo}-b:1", _runner(tmp_path, "b"), "--cache-image", cache_image)
    assert "cache image: restored" in second.stderr
    assert "installing" not in second.stderr
    assert "inputs unchanged: reusing its layers (bin/build not run)" in second.stderr
    assert json.loads(second.stdout)["digest"] == first_digest
    # nothing changed: the cache image is not written again (no upload line)
    assert "cache layers uploaded" not in second.stderr

    # Runner c, same destination: the restored memo reuses the image without running a phase.
    third = _build(src, f"docker://{registry.host}/{repo}:1", _runner(tmp_path, "c"), "--cache-image", cache_image)
    assert "inputs unchanged since the last build" in third.stderr
    assert json.loads(third.stdout)["digest"] == first_digest

    # An untrusted branch: a changed dependency set is built, and the cache image is left alone.
    before = _cache_manifest(registry, f"{repo}-cache")
    (src / "requirements.txt").write_text((src / "requirements.txt").read_text() + "\n# branch\n")
    branch = _build(src, f"docker://{registry.host}/{repo}-pr:1", _runner(tmp_path, "d"), "--cache-image",
                    cache_image, "--cache-image-readonly")
    assert "cache image: restored" in branch.stderr
    assert _cache_manifest(registry, f"{repo}-cache") == before


def test_readonly_without_a_cache_image_is_a_usage_error(tmp_path):
    done = pallet("build", str(SAMPLES / "static-site"), "--cache-image-readonly", check=False,
                  env={"PALLET_HOME": str(tmp_path / "home")})
    assert done.returncode != 0 and "needs --cache-image" in done.stderr and "Traceback" not in done.stderr
