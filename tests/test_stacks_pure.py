"""The pure parts of stacks: apt's sources and answers, the inventory, labels and configs, the plan."""

from __future__ import annotations

import io
import os
import json
import tarfile
from pathlib import Path

import pytest

from builder.oci import compress
from builder.stacks import apt, assemble, image, inventory, spec
from builder.stacks.lockfile import ArchLock, Package

MINI = Path(__file__).resolve().parent.parent / "stacks" / "bookworm.toml"


# -- apt sources ------------------------------------------------------------------------------

HOST_FILES = {
    "sources.list": "deb http://deb.debian.org/debian bookworm main contrib\n"
                    "# deb http://deb.debian.org/debian bookworm-backports main\n"
                    "deb-src http://deb.debian.org/debian bookworm main\n"
                    "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.local/debian/ bookworm-updates main\n",
    "debian.sources": "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
                      "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                      "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\n",
    "nodesource.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n",
    "google.list": "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n",
    "disabled.sources": "Enabled: no\nTypes: deb\nURIs: http://x\nSuites: bookworm\nComponents: main\n",
}


def test_host_sources_keep_only_the_suite_its_updates_and_security() -> None:
    found = apt.host_sources(HOST_FILES, "bookworm", ("main",))
    assert [s.line() for s in found] == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://mirror.local/debian bookworm-updates main",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security "
        "bookworm-security main",
    ]


def test_stack_mirror_overrides_the_host(tmp_path: Path) -> None:
    d = spec.Distro("debian", "12", "bookworm", ("main",), "http://mirror.example/debian",
                    "http://mirror.example/debian-security")
    assert [s.line() for s in apt.sources_for(d, "x.toml", etc_apt=tmp_path)] == [
        "deb http://mirror.example/debian bookworm main", "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main"]
    with pytest.raises(apt.MirrorError, match=r"x.toml: no apt source for suite 'bookworm'.*\[distro\] mirror"):
        apt.sources_for(spec.Distro("debian", "12", "bookworm"), "x.toml", etc_apt=tmp_path)


def test_proxy_lines_from_apt_config() -> None:
    dump = ('Acquire::http::Proxy "http://proxy:3128";\nAcquire::https::Proxy "DIRECT";\n'
            'Acquire::http::Proxy::deb.example "DIRECT";\nAcquire::Retries "3";\nAPT::Proxy "x";\n')
    assert apt.proxy_lines(dump) == ['Acquire::http::Proxy "http://proxy:3128";', 'Acquire::https::Proxy "DIRECT";',
                                     'Acquire::http::Proxy::deb.example "DIRECT";']


# -- apt answers ------------------------------------------------------------------------------


def test_parse_simulation() -> None:
    out = ("NOTE: This is only a simulation!\n"
           "Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])\n"
           "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []\n"
           "Inst debconf [1.5.81] (1.5.82 Debian:12.15/oldstable [all])\n"
           "Conf gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])\n")
    assert apt.parse_simulation(out) == [Package("gcc-12-base", "12.2.0-14+deb12u1", "amd64"),
                                         Package("libc6", "2.36-9+deb12u14", "amd64"),
                                         Package("debconf", "1.5.82", "all")]


def test_parse_errors() -> None:
    errors = apt.parse_errors("Reading package lists...\nE: Unable to locate package nosuchpkg\n"
                              "E: Version '1.0' for 'tzdata' was not found\n"
                              "E: Package 'oldpkg' has no installation candidate\nE: Something else\n")
    assert errors.unknown == ("nosuchpkg", "oldpkg")
    assert errors.missing == ("tzdata=1.0",)
    assert errors.other == ("Something else",)


def test_release_date() -> None:
    assert apt.release_epoch("Origin: Debian\nDate: Sat, 10 May 2025 10:20:30 UTC\nValid-Until: x\n") == 1746872430
    assert apt.release_epoch("Origin: Debian\n") is None
    assert apt.essential_pattern("bookworm", "amd64") == \
        "?narrow(?or(?archive(^bookworm$),?codename(^bookworm$)),?architecture(amd64),?essential)"


# -- inventory --------------------------------------------------------------------------------

STATUS = """Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Description: GNU C Library
 Contains the standard libraries.
 .
 More.

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: python3.11-minimal
Status: install ok installed
Architecture: amd64
Source: python3.11 (3.11.2-6+deb12u5)
Version: 3.11.2-6+deb12u5

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b7
"""

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: thing
License: MIT

Files: *
Copyright: 2020 Someone
License: GPL-3+

Files: lib/*
Copyright: 2021 Other
License: LGPL-2.1+ or BSD-3-clause

Files: extra/*
Copyright: 2021 Other
License: GPL-3+

License: GPL-3+
 This program is free software.

License: Standalone-only
 Text of a licence that no Files paragraph names.
"""


def test_installed_packages_from_the_status_file() -> None:
    pkgs = inventory.installed_packages(STATUS)
    assert [(p.name, p.version, p.arch, p.source, p.source_version) for p in pkgs] == [
        ("bash", "5.2.15-2+b7", "amd64", "bash", "5.2.15-2+b7"),
        ("libc6", "2.36-9+deb12u10", "amd64", "glibc", "2.36-9+deb12u10"),
        ("libgcc-s1", "12.2.0-14", "amd64", "gcc-12", "12.2.0-14"),
        ("python3.11-minimal", "3.11.2-6+deb12u5", "amd64", "python3.11", "3.11.2-6+deb12u5"),
    ]


def test_licences_from_dep5_copyright_files() -> None:
    assert inventory.copyright_licenses(DEP5) == ("MIT", "GPL-3+", "LGPL-2.1+ or BSD-3-clause")
    assert inventory.copyright_licenses("This is free software, see /usr/share/common-licenses/GPL.\n") == ()
    assert inventory.copyright_licenses("") == ()


def test_inventory_follows_doc_directory_links() -> None:
    files = {"var/lib/dpkg/status": STATUS.encode(), "usr/share/doc/bash/copyright": DEP5.encode(),
             "usr/share/doc/gcc-12-base/copyright": b"Format: http://www.debian.org/doc/packaging-manuals/"
                                                     b"copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+ with GCC exception\n"}
    links = {"usr/share/doc/libgcc-s1": "gcc-12-base"}
    by_name = {p.name: p for p in inventory.inventory(files, links)}
    assert by_name["bash"].licenses == ("MIT", "GPL-3+", "LGPL-2.1+ or BSD-3-clause")
    assert by_name["libgcc-s1"].licenses == ("GPL-3+ with GCC exception",)
    assert by_name["libc6"].licenses == ()  # no copyright file: no licence claimed
    assert by_name["libc6"].to_json() == {"name": "libc6", "version": "2.36-9+deb12u10", "architecture": "amd64",
                                          "source": "glibc", "sourceVersion": "2.36-9+deb12u10", "licenses": []}


def _layer(entries: list[tuple[str, bytes | str | None]]) -> io.BytesIO:
    """A gzip layer: bytes are files, str symlinks, None directories."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for name, content in entries:
            ti = tarfile.TarInfo(name)
            if content is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif isinstance(content, str):
                ti.type, ti.linkname = tarfile.SYMTYPE, content
                tf.addfile(ti)
            else:
                ti.size = len(content)
                tf.addfile(ti, io.BytesIO(content))
    return io.BytesIO(compress.compress_bytes(raw.getvalue(), "gzip"))


def test_reading_inventory_files_across_layers_applies_whiteouts() -> None:
    lower = _layer([("var/lib/dpkg/status", b"old"), ("usr/share/doc/a/copyright", b"A"),
                    ("usr/share/doc/b/copyright", b"B"), ("usr/share/doc/c", "a"), ("usr/bin/x", b"not wanted"),
                    ("usr/share/doc/d/copyright", b"D"), ("usr/share/doc/d/changelog.gz", b"not wanted")])
    upper = _layer([("./var/lib/dpkg/status", b"new"), ("usr/share/doc/.wh.b", b""), ("usr/share/doc/e/copyright", b"E"),
                    ("usr/share/doc/d/.wh..wh..opq", b""), ("usr/share/doc/d/copyright", b"D2")])
    files, links = inventory.read_layer_files([lower, upper])
    assert files == {"var/lib/dpkg/status": b"new", "usr/share/doc/a/copyright": b"A",
                     "usr/share/doc/e/copyright": b"E", "usr/share/doc/d/copyright": b"D2"}
    assert links == {"usr/share/doc/c": "a"}


# -- image config and labels ----------------------------------------------------------------------


def test_labels_env_and_user_of_both_images() -> None:
    s = spec.load(MINI)
    provides = {"python": {"package": "python3", "version": "3.11.2-1+b1", "upstream": "3.11.2"}}
    build = image.assembled_config(s, "build", "amd64", diff_ids=["sha256:" + "1" * 64], comments=["c"], epoch=1700000000,
                                   lock_digest="sha256:" + "2" * 64, provides=provides)
    run = image.assembled_config(s, "run", "amd64", diff_ids=["sha256:" + "1" * 64], comments=["c"], epoch=1700000000,
                                 lock_digest="sha256:" + "2" * 64, provides=provides)
    labels = build.config.labels
    assert labels["io.buildpacks.base.id"] == labels["io.buildpacks.stack.id"] == "io.pallet.stacks.bookworm"
    assert (labels["io.buildpacks.base.distro.name"], labels["io.buildpacks.base.distro.version"]) == ("debian", "12")
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z" == build.created
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.title"] == "bookworm-build"
    assert labels["org.opencontainers.image.source"] == "stacks/bookworm.toml"
    assert json.loads(run.config.labels["io.pallet.stack.provides"]) == {"python": "3.11.2"}
    benv, renv = build.config.env_dict(), run.config.env_dict()
    assert (benv["CNB_USER_ID"], benv["CNB_GROUP_ID"]) == ("1000", "1000") and "CNB_USER_ID" not in renv
    assert benv["LANG"] == renv["LANG"] == "C.UTF-8" and renv["PATH"].startswith("/usr/local/sbin")
    assert build.config.user == run.config.user == "1000:1000"
    assert (build.architecture, build.os) == ("amd64", "linux")
    # the same inputs, the same bytes
    again = image.assembled_config(s, "build", "amd64", diff_ids=["sha256:" + "1" * 64], comments=["c"],
                                   epoch=1700000000, lock_digest="sha256:" + "2" * 64, provides=provides)
    assert again.to_bytes() == build.to_bytes()


def test_restamped_existing_image_keeps_its_env_and_gets_the_stack_labels() -> None:
    from builder.oci.model import ImageConfig, RunConfig

    s = spec.load(MINI)
    theirs = ImageConfig(config=RunConfig(env=("PATH=/opt/bin:/usr/bin", "FOO=1"), user="root",
                                          labels={"vendor": "them"}))
    new = image.restamped_config(s, "build", theirs, epoch=1700000000, lock_digest="sha256:" + "3" * 64)
    env = new.config.env_dict()
    assert env["FOO"] == "1" and env["CNB_USER_ID"] == "1000" and env["PATH"] == "/opt/bin:/usr/bin"
    assert new.config.user == "1000:1000"
    assert new.config.labels["vendor"] == "them" and new.config.labels["io.buildpacks.base.id"] == s.id


# -- assembly plan ---------------------------------------------------------------------------------


def _pkgs(*names: str) -> tuple[Package, ...]:
    return tuple(Package(n, "1", "amd64") for n in names)


def test_plan_layers_build_on_run_when_it_contains_it() -> None:
    base = _pkgs("base-files", "bash")
    lock = ArchLock("amd64", base=base, build=base + _pkgs("gcc", "python3"), run=base + _pkgs("python3"))
    plan = assemble.plan_runs(lock, ["build", "run"])
    assert [(r.name, r.snapshot, [p.name for p in r.include]) for r in plan.runs] == [
        ("run", True, ["python3"]), ("build", False, ["gcc", "python3"])]
    assert plan.layers("run") == ["base", "run"] and plan.layers("build") == ["base", "run", "build"]


def test_plan_layers_on_base_otherwise_and_an_image_of_only_the_base() -> None:
    base = _pkgs("base-files", "bash")
    lock = ArchLock("amd64", base=base, build=base + _pkgs("gcc"), run=base + _pkgs("tzdata"))
    plan = assemble.plan_runs(lock, ["build", "run"])
    assert plan.layers("build") == ["base", "build"] and plan.layers("run") == ["base", "run"]
    tiny = ArchLock("amd64", base=base, build=base + _pkgs("jq"), run=base)
    plan = assemble.plan_runs(tiny, ["build", "run"])
    assert [r.name for r in plan.runs] == ["build"] and plan.runs[0].snapshot
    assert plan.layers("run") == ["base"] and plan.layers("build") == ["base", "build"]
    only = assemble.plan_runs(ArchLock("amd64", base=base, build=base, run=base), ["build", "run"])
    assert [(r.name, r.snapshot) for r in only.runs] == [("base", False)]


def test_mmdebstrap_command_pins_every_package() -> None:
    base = _pkgs("base-files")
    lock = ArchLock("amd64", base=base, build=base + (Package("bsdutils", "1:2.38", "amd64"),), run=base)
    plan = assemble.plan_runs(lock, ["build", "run"])
    argv = assemble.mmdebstrap_argv(plan.runs[0], arch="amd64", suite="bookworm",
                                    sources=[apt.Source("http://deb.debian.org/debian", "bookworm", ("main",))],
                                    target=Path("/t"), snapshot_dir=Path("/snap shot"))
    assert "--include=bsdutils=1:2.38" in argv and "--variant=essential" in argv and "--mode=root" in argv
    assert argv[-3:] == ["bookworm", "/t", "deb http://deb.debian.org/debian bookworm main"]
    hook = next(a for a in argv if a.startswith("--essential-hook="))
    assert "'/snap shot'" in hook and "--exclude='./dev/*'" in hook
    assert assemble.pins(base) == "Package: base-files\nPin: version 1\nPin-Priority: 1001\n\n"


def test_stale_layer_temp_files_of_killed_stack_builds_are_removed(tmp_path: Path) -> None:
    """A stack build killed mid-layer leaves the file ``write_layer`` made for
    ``blobs/.tmp-layer-PID-...`` (its own ``.NAME.PID.N.tmp`` beside it); the sweep looked for
    ``.tmp-layer-*`` only, so it never matched and the partial layer stayed for ever. The
    temp file of a live writer (this process) stays."""
    import subprocess
    import sys

    from builder.oci.layer import _FileDest
    from builder.oci.stores.layout import LayoutStore
    from builder.stacks.build import remove_stale_layers

    cache = LayoutStore(tmp_path / "images")
    cache.put_blob_bytes(b"x", "application/octet-stream")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = _FileDest(cache.root / "blobs" / f".tmp-layer-{dead}-1-base")  # a killed build's, never committed
    live = _FileDest(cache.root / "blobs" / f".tmp-layer-{os.getpid()}-1-run")
    remove_stale_layers(cache)
    assert not Path(left.tmp).exists() and Path(live.tmp).exists()
    left.file.close()
    live.discard()
