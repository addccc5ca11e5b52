"""The app's Debian packages (Aptfile): reading the list, the lock, the SBOM's view of the
layer (pure); then built on trixie, run, and found by sbom and audit (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from builder.lifecycle import aptfile
from builder.lifecycle.aptfile import AptfileError, AptLock, AptRequest
from builder.stacks import inventory
from builder.stacks.lockfile import Package
from tests.cli import pallet
from tests.samplekit import SAMPLES, free_port, http, pallet_run, wait_http


def test_aptfile_lines():
    text = "# what the app runs\nqrencode\n\nlibpq5  # postgres client library\nffmpeg poppler-utils\nqrencode\n"
    assert aptfile.parse_aptfile(text) == ("qrencode", "libpq5", "ffmpeg", "poppler-utils")
    for bad in ("https://example.com/x.deb", "libpq5=15.1-1", "--no-install-recommends", "Qrencode"):
        with pytest.raises(AptfileError, match="line 1: .* is not a Debian package name"):
            aptfile.parse_aptfile(bad + "\n")


def test_the_list_from_aptfile_or_project_toml(tmp_path):
    assert aptfile.requested(tmp_path) is None
    (tmp_path / "project.toml").write_text('[io.pallet.apt]\npackages = ["libpq5", "libpq-dev"]\n')
    req = aptfile.requested(tmp_path)
    assert req == AptRequest(("libpq5", "libpq-dev"), "project.toml [io.pallet.apt]")
    assert req.run == ("libpq5",) and req.build == ("libpq5", "libpq-dev")  # -dev: build only
    (tmp_path / "Aptfile").write_text("libpq5\n")
    with pytest.raises(AptfileError, match="both Aptfile and project.toml"):
        aptfile.requested(tmp_path)
    (tmp_path / "project.toml").write_text('[io.pallet.apt]\npackages = "libpq5"\n')
    with pytest.raises(AptfileError, match="must be a list"):
        aptfile.requested(tmp_path)
    (tmp_path / "project.toml").unlink()
    (tmp_path / "Aptfile").write_text("# nothing yet\n")
    assert aptfile.requested(tmp_path) is None


def test_the_lock_is_a_stack_lock_and_goes_stale_like_one():
    req = AptRequest(("qrencode", "libqrencode-dev"), "Aptfile")
    run = (Package("libqrencode4", "4.1.1-2", "amd64"), Package("qrencode", "4.1.1-2", "amd64"))
    build = tuple(sorted(run + (Package("libqrencode-dev", "4.1.1-2", "amd64"),)))
    lock = AptLock("trixie", req.inputs("trixie", "amd64"), 1796356469, "amd64", run, build)
    data = aptfile.render_lock(lock, "Aptfile")
    assert aptfile.parse_lock(data, "Aptfile.lock", "amd64") == lock
    assert aptfile.render_lock(aptfile.parse_lock(data, "Aptfile.lock", "amd64"), "Aptfile") == data
    aptfile.check_current(lock, req, "trixie", "trixie", "Aptfile.lock")
    with pytest.raises(AptfileError, match="Aptfile.lock is out of date: the package list in Aptfile changed"):
        aptfile.check_current(lock, AptRequest(("qrencode",), "Aptfile"), "trixie", "trixie", "Aptfile.lock")
    with pytest.raises(AptfileError, match="resolved for stack 'trixie', and this build is on 'bookworm'"):
        aptfile.check_current(lock, req, "bookworm", "bookworm", "Aptfile.lock")
    with pytest.raises(AptfileError, match="not a usable lock"):
        aptfile.parse_lock(b"lock-version = 1\n", "Aptfile.lock", "amd64")


def test_inventory_reads_packages_recorded_in_a_layer():
    stanza = b"Package: qrencode\nVersion: 4.1.1-2\nArchitecture: amd64\nSource: qrencode (4.1.1-2)\n"
    copyright_ = b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: LGPL-2.1+\n"
    root = "layers/pallet_apt/packages/"
    files = {inventory.STATUS: b"Package: bash\nStatus: install ok installed\nVersion: 5.2\nArchitecture: amd64\n",
             f"{root}var/lib/dpkg/status.d/qrencode": stanza,
             f"{root}usr/share/doc/qrencode/copyright": copyright_,
             f"{root}var/lib/dpkg/status.d/qrencode.md5sums": b"x"}
    assert all(inventory.is_inventory_path(p) for p in files)
    assert not inventory.is_status_path(f"{root}var/lib/dpkg/status.d/qrencode.md5sums")
    assert not inventory.is_inventory_path("layers/pallet_apt/packages/usr/bin/qrencode")
    got = {p.name: p for p in inventory.inventory(files)}
    assert set(got) == {"bash", "qrencode"}
    assert got["qrencode"].version == "4.1.1-2" and got["qrencode"].licenses == ("LGPL-2.1+",)


# -- built and run -------------------------------------------------------------------------------


def _sbom_debs(home, ref: str) -> dict[str, dict]:
    doc = json.loads(pallet("sbom", ref, env=home.env).stdout)
    return {c["name"]: c for c in doc["components"] if c.get("purl", "").startswith("pkg:deb/")}


@pytest.mark.slow
def test_aptfile_sample_runs_a_program_from_a_debian_package(trixie, tmp_path):
    src = SAMPLES / "python-aptfile"
    out = json.loads(pallet("build", str(src), "-t", "qr:1", "--cache-dir", str(tmp_path / "c"), "--json",
                            env=trixie.env, timeout=900).stdout)
    assert [b["id"] for b in out["buildpacks"]] == ["pallet/apt", "pallet/python"]
    port = free_port()
    with pallet_run(trixie, "qr:1", port) as proc:
        version = json.loads(wait_http(port, "/version", alive=lambda: proc.poll() is None).body)
        assert version["qrencode"].startswith("qrencode version 4.")
        assert version["path"] == "/layers/pallet_apt/packages/usr/bin/qrencode"
        code = http(port, "/qr?text=pallet").body
        assert "█" in code and len(code.splitlines()) > 10
    debs = _sbom_debs(trixie, "qr:1")
    locked = (src / "Aptfile.lock").read_text()
    for name in ("qrencode", "libqrencode4"):
        assert f'"{name}:amd64={debs[name]["version"]}"' in locked
        locations = [p["value"] for p in debs[name].get("properties", []) if p["name"] == "pallet:location"]
        assert locations == [f"/layers/pallet_apt/packages/var/lib/dpkg/status.d/{name}"]
    audit = json.loads(pallet("audit", "qr:1", "--package", "libqrencode4", "--json", env=trixie.env).stdout)
    assert [p["name"] for p in audit[0]["packages"]] == ["libqrencode4"]


@pytest.mark.slow
def test_aptfile_lock_is_written_once_reproducibly_and_dev_packages_stay_out_of_the_image(trixie, tmp_path):
    app = shutil.copytree(SAMPLES / "python-aptfile", tmp_path / "app")
    (app / "Aptfile.lock").unlink()
    (app / "Aptfile").write_text("qrencode\nlibqrencode-dev\n")
    done = pallet("build", str(app), "-t", "qrdev:1", "--cache-dir", str(tmp_path / "c"), env=trixie.env,
                  timeout=900)
    assert "Aptfile.lock: written" in done.stderr
    lock = aptfile.parse_lock((app / "Aptfile.lock").read_bytes(), "Aptfile.lock", "amd64")
    assert "libqrencode-dev" in {p.name for p in lock.build} and "libqrencode-dev" not in {p.name for p in lock.run}
    assert "[pallet/apt] build-packages:" in done.stderr
    debs = _sbom_debs(trixie, "qrdev:1")
    assert "qrencode" in debs and "libqrencode-dev" not in debs  # build only: not in the image
    first = (app / "Aptfile.lock").read_bytes()
    again = pallet("build", str(app), "-t", "qrdev:2", "--cache-dir", str(tmp_path / "c2"), env=trixie.env,
                   timeout=900)
    assert "Aptfile.lock: written" not in again.stderr and (app / "Aptfile.lock").read_bytes() == first
    assert trixie.inspect("qrdev:1")["digest"] == trixie.inspect("qrdev:2")["digest"]

    (app / "Aptfile").write_text("qrencode\n")  # changed list, old lock: refused, nothing written
    stale = pallet("build", str(app), "-t", "qrdev:3", env=trixie.env, check=False, timeout=900)
    assert stale.returncode == 1 and "Aptfile.lock is out of date" in stale.stderr.strip().splitlines()[-1]
    assert pallet("inspect", "qrdev:3", env=trixie.env, check=False).returncode == 1


@pytest.mark.slow
def test_an_unknown_package_is_a_clear_error_naming_it(trixie, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    (app / "Aptfile").write_text("qrencode\nno-such-package-pallet\n")
    done = pallet("build", str(app), "-t", "unknown:1", env=trixie.env, check=False, timeout=900)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pallet: error: ") and "no-such-package-pallet" in last and "qrencode" not in last
    assert "Traceback" not in done.stderr
    assert not (app / "Aptfile.lock").exists()
    assert pallet("inspect", "unknown:1", env=trixie.env, check=False).returncode == 1
