"""A hostile app source (issue 11, third sweep): building someone's repository must not write
on the host. project.toml's build env names became file names under the build's platform
directory: ``name = "../../../../tmp/x"`` wrote ``/tmp/x`` on the host, as root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import pallet
from tests.test_hostile_inputs import one_line_error, write_app


@pytest.mark.parametrize("name", ["{outside}", "A\\u0000B", "..", "a/b"])
def test_a_project_toml_env_name_that_is_not_a_variable_name_is_refused(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside" / "ESCAPED"
    outside.parent.mkdir()
    name = name.replace("{outside}", "../" * 30 + str(outside).lstrip("/"))
    app = write_app(tmp_path / "app", {"index.html": "hi",
                                       "project.toml": f'[[build.env]]\nname = "{name}"\nvalue = "v"\n'})
    proc = pallet("build", str(app), "-t", f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    one_line_error(proc, "project.toml", "is not a variable name", progress=True)
    assert not outside.exists()
    assert not (tmp_path / "out" / "index.json").exists()


def test_an_env_flag_whose_name_climbs_out_is_a_usage_error(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "ESCAPED"
    outside.parent.mkdir()
    app = write_app(tmp_path / "app", {"index.html": "hi"})
    proc = pallet("build", str(app), "--env", "../" * 30 + str(outside).lstrip("/") + "=v", "-t",
                  f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    assert proc.returncode == 2
    one_line_error(proc, "is not a variable name")
    assert not outside.exists()


def test_an_aptfile_lock_nested_too_deep_is_a_one_line_error(tmp_path: Path) -> None:
    """tomllib recurses per level: the app's Aptfile.lock was a RecursionError traceback."""
    app = write_app(tmp_path / "app", {"index.html": "hi", "Aptfile": "curl\n",
                                       "Aptfile.lock": "a = " + "[" * 10_000 + "]" * 10_000 + "\n"})
    proc = pallet("build", str(app), "-t", f"oci:{tmp_path}/out:t", "--cache-dir", str(tmp_path / "c"), check=False)
    one_line_error(proc, "Aptfile.lock", "nested too deeply", progress=True)
