"""A hostile buildpack (issue 11, third sweep): it runs in a sandbox, but pallet reads what it
leaves in the layers directory on the host, where a symlink it made names a host path.

Each attack here worked: a host file (mode 0600, root's) came back as the next buildpack's
environment; a layer directory linked to a host directory was exported into the image, whole;
a link in place of the next buildpack's directory made pallet read (and, with a chowning
executor, chown) a host directory. Now each is a one-line error and no image is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import pallet
from tests.test_hostile_inputs import one_line_error

SECRET = "HOST-SECRET-not-for-images"


def _buildpack(root: Path, bp_id: str, build: str) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "buildpack.toml").write_text(f'api = "0.10"\n[buildpack]\nid = "{bp_id}"\nversion = "1"\n'
                                         '[[stacks]]\nid = "*"\n')
    (root / "bin" / "detect").write_text("#!/bin/sh\nexit 0\n")
    (root / "bin" / "build").write_text("#!/bin/sh\nset -e\nL=\"$1\"\n" + build)
    for step in ("detect", "build"):
        (root / "bin" / step).chmod(0o755)
    return root


def _build(tmp_path: Path, first: str, second: str = "") -> tuple[object, Path]:
    secret = tmp_path / "host" / "secret"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    secret.chmod(0o600)
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("hi")
    bp1 = _buildpack(tmp_path / "bp1", "evil/one", first.replace("HOST", str(secret.parent)))
    bp2 = _buildpack(tmp_path / "bp2", "evil/two", (second or 'echo "two sees [$SECRET]"\n')
                     .replace("HOST", str(secret.parent)))
    proc = pallet("build", str(app), "--buildpack", str(bp1), "--buildpack", str(bp2), "-t",
                  f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "cache"), check=False)
    return proc, tmp_path / "out"


def _no_image(out: Path) -> bool:
    return not (out / "index.json").exists() or json.loads((out / "index.json").read_text())["manifests"] == []


def test_an_env_file_linked_to_a_host_file_is_refused(tmp_path: Path) -> None:
    proc, out = _build(tmp_path, 'printf "[types]\\nbuild = true\\n" > "$L/e.toml"\nmkdir -p "$L/e/env"\n'
                                 'ln -s HOST/secret "$L/e/env/SECRET.override"\n')
    assert SECRET not in proc.stdout + proc.stderr
    one_line_error(proc, "SECRET.override is a symlink", "an env file a buildpack writes must be a regular file",
                   progress=True)
    assert _no_image(out)


def test_an_env_directory_linked_to_a_host_directory_is_refused(tmp_path: Path) -> None:
    proc, out = _build(tmp_path, 'printf "[types]\\nbuild = true\\n" > "$L/e.toml"\nmkdir -p "$L/e"\n'
                                 'ln -s HOST "$L/e/env"\n')
    assert SECRET not in proc.stdout + proc.stderr
    one_line_error(proc, "e/env is a symlink", progress=True)
    assert _no_image(out)


def test_a_layer_linked_to_a_host_directory_is_not_exported(tmp_path: Path) -> None:
    proc, out = _build(tmp_path, 'printf "[types]\\nlaunch = true\\n" > "$L/leak.toml"\nln -s HOST "$L/leak"\n')
    one_line_error(proc, "buildpack evil/one", "leak is a symlink", progress=True)
    assert _no_image(out)


def test_a_layer_toml_linked_to_a_host_file_is_refused(tmp_path: Path) -> None:
    proc, out = _build(tmp_path, 'ln -s HOST/secret "$L/meta.toml"\n')
    assert SECRET not in proc.stdout + proc.stderr
    one_line_error(proc, "meta.toml is a symlink", progress=True)


def test_a_link_in_place_of_the_next_buildpacks_directory_is_refused(tmp_path: Path) -> None:
    proc, out = _build(tmp_path, 'ln -s HOST "$L/../evil_two"\n')
    one_line_error(proc, "buildpack evil/two", "evil_two is a symlink", progress=True)
    assert _no_image(out)


def test_a_later_buildpack_relinking_an_earlier_ones_layer_is_caught_before_export(tmp_path: Path) -> None:
    """evil/one's layer was read as a real directory; evil/two then swaps it for a link."""
    proc, out = _build(tmp_path, 'printf "[types]\\nlaunch = true\\n" > "$L/x.toml"\nmkdir "$L/x"\n',
                       'rm -rf "$L/../evil_one/x"\nln -s HOST "$L/../evil_one/x"\n')
    one_line_error(proc, "buildpack evil/one", "evil_one/x is a symlink", progress=True)
    assert _no_image(out)


@pytest.mark.parametrize("content", ["plain", "not-utf8"])
def test_genuine_env_files_still_reach_the_next_buildpack(tmp_path: Path, content: str) -> None:
    value = "from-one" if content == "plain" else "\\377bytes"
    proc, out = _build(tmp_path, 'printf "[types]\\nbuild = true\\n" > "$L/e.toml"\nmkdir -p "$L/e/env"\n'
                                 f'printf "{value}" > "$L/e/env/SECRET.override"\n')
    assert proc.returncode == 0, proc.stderr
    assert "two sees [from-one]" in proc.stdout + proc.stderr if content == "plain" else "two sees [" in proc.stdout + proc.stderr


def test_a_build_plan_linked_to_a_host_file_is_refused(tmp_path: Path) -> None:
    """bin/detect writes its plan in the sandbox; a link there to a host TOML file was read on
    the host and its tables handed to the buildpacks that build."""
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "creds.toml").write_text('[[provides]]\nname = "token-from-the-host"\n')
    app = tmp_path / "app"
    app.mkdir()
    (app / "index.html").write_text("hi")
    bp = _buildpack(tmp_path / "bp", "evil/plan", "")
    (bp / "bin" / "detect").write_text(f'#!/bin/sh\nln -sf {tmp_path}/host/creds.toml "$2"\nexit 0\n')
    proc = pallet("detect", "--buildpack", str(bp), str(app), check=False)
    assert "token-from-the-host" not in proc.stdout + proc.stderr
    one_line_error(proc, "plan.toml", "is a symlink", progress=True)
