"""A foreign platform cross-compiled or emulated (``builder.lifecycle.buildway``), and what the app's
Go source says about cgo (``builder.lifecycle.gocgo``): pure decisions on the built-in buildpacks'
own buildpack.toml files and small source trees written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.lifecycle.buildpack import Buildpack, load
from builder.lifecycle.buildway import (CROSS, EMULATED, FORCE_CROSS, FORCE_EMULATE, NATIVE, CrossCompileError,
                                        choose_way, cross_kind, needs_cgo_check)
from builder.lifecycle.gocgo import cgo_reasons, imports_c
from builder.oci.model import Platform
from builder.resources import buildpacks_dir

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
BUILTIN = buildpacks_dir()


def bp(name: str) -> Buildpack:
    return load(BUILTIN / name)


GO, PROCFILE, PYTHON, STATIC, APT, NODE = (bp(n) for n in ("go", "procfile", "python", "static", "apt", "nodejs"))


# -- what the built-in buildpacks declare --------------------------------------------------------


def test_builtin_buildpacks_declare_what_they_can_cross_compile() -> None:
    assert [cross_kind(b) for b in (GO, PROCFILE, STATIC)] == ["go", "any", "any"]
    assert [cross_kind(b) for b in (PYTHON, APT, NODE)] == [None, None, None]
    odd = Buildpack(api="0.10", id="x/odd", version="1", path=Path("/nowhere"), metadata={"pallet": {"cross": True}})
    assert cross_kind(odd) is None  # only the values pallet knows count
    assert needs_cgo_check([GO, PROCFILE]) and not needs_cgo_check([STATIC, PROCFILE])


# -- the decision ---------------------------------------------------------------------------------


def test_plain_go_is_cross_compiled() -> None:
    way = choose_way(ARM64, AMD64, [GO, PROCFILE], cgo=[])
    assert (way.way, way.on) == (CROSS, "linux/amd64")
    assert "pallet/go, pallet/procfile" in way.reason and "no cgo" in way.reason
    assert way.line(ARM64).startswith("linux/arm64/v8: cross-compiled on linux/amd64 (")


def test_go_with_cgo_is_emulated() -> None:
    way = choose_way(ARM64, AMD64, [GO], cgo=['main.go imports "C"'])
    assert (way.way, way.on) == (EMULATED, "linux/arm64")
    assert 'main.go imports "C"' in way.reason
    assert way.line(ARM64).startswith("linux/arm64/v8: emulated under QEMU as linux/arm64 (the app may need cgo")


def test_a_buildpack_that_cannot_cross_compile_means_emulation() -> None:
    way = choose_way(ARM64, AMD64, [PYTHON, PROCFILE])
    assert way.way == EMULATED and way.reason == "pallet/python does not cross-compile"
    way = choose_way(ARM64, AMD64, [APT, GO, PROCFILE], cgo=[])
    assert way.way == EMULATED and "pallet/apt" in way.reason
    assert choose_way(ARM64, AMD64, [STATIC, PROCFILE]).way == CROSS  # a static site: nothing to compile


def test_native_platform_is_native_whatever_is_forced() -> None:
    for force in (None, FORCE_CROSS, FORCE_EMULATE):
        way = choose_way(AMD64, AMD64, [PYTHON], force=force)
        assert (way.way, way.reason) == (NATIVE, "this machine is linux/amd64")


def test_emulate_forced_wins_over_a_group_that_could_cross() -> None:
    way = choose_way(ARM64, AMD64, [GO], cgo=[], force=FORCE_EMULATE)
    assert (way.way, way.reason) == (EMULATED, "--emulate")


def test_cross_forced_with_a_buildpack_that_cannot_is_one_clear_line() -> None:
    with pytest.raises(CrossCompileError, match=r"^--cross: pallet/python does not cross-compile") as err:
        choose_way(ARM64, AMD64, [PYTHON, PROCFILE], force=FORCE_CROSS)
    assert "\n" not in str(err.value)
    with pytest.raises(CrossCompileError, match="no linux/amd64 build image"):
        choose_way(ARM64, AMD64, [GO], no_host_image="the stack has no linux/amd64 build image", force=FORCE_CROSS)
    with pytest.raises(CrossCompileError, match="no buildpack group passed"):
        choose_way(ARM64, AMD64, None, force=FORCE_CROSS)


def test_cross_forced_over_cgo_says_so() -> None:
    way = choose_way(ARM64, AMD64, [GO], cgo=['db.go imports "C"'], force=FORCE_CROSS)
    assert way.way == CROSS and 'db.go imports "C"' in way.reason and "the Go build fails if" in way.reason


def test_no_build_image_for_this_machine_or_no_group_means_emulation() -> None:
    way = choose_way(ARM64, AMD64, [GO], cgo=[], no_host_image="the stack has no linux/amd64 build image")
    assert way.way == EMULATED and "no linux/amd64 build image" in way.reason
    assert choose_way(ARM64, AMD64, None).way == EMULATED


# -- imports "C" ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    'package main\n\n// #include <stdio.h>\nimport "C"\n\nfunc main() {}\n',
    'package main\nimport (\n\t"fmt"\n\t"C"\n)\n',
    '\ufeff// Copyright\n//go:build cgo\n\npackage db; import "os"; import "C"\n',
    'package main\n/*\n#cgo LDFLAGS: -lm\n#include <math.h>\n*/\nimport `C`\n',
    'package main\nimport (\n\tc "C" // odd, but the go command sees cgo\n)\n',
])
def test_files_importing_c_are_found(text: str) -> None:
    assert imports_c(text) is True


@pytest.mark.parametrize("text", [
    'package main\n\nimport (\n\t"fmt"\n\t"net/http"\n)\n\nfunc main() { fmt.Println("import \\"C\\"") }\n',
    'package main\n\nimport "fmt"\n\n// import "C" in a comment\nvar s = `import "C"`\n',
    'package main\nimport (\n\t. "strings"\n\t_ "embed"\n\t"example.com/C"\n)\n',
    'package main\n',
])
def test_files_without_c_are_plain_go(text: str) -> None:
    assert imports_c(text) is False


@pytest.mark.parametrize("text", [
    "no package clause\n",
    'package main\nimport (\n\t"fmt"\n',            # imports never end
    'package main\nimport "\\x43"\n',                 # an escaped path: not decoded, a doubt
    'package main\n/* unterminated\nimport "C"\n',
])
def test_unreadable_headers_are_doubts(text: str) -> None:
    assert imports_c(text) is None


def test_a_head_cut_inside_the_imports_is_a_doubt() -> None:
    assert imports_c('package main\nimport (\n\t"fmt"\n', complete=False) is None


# -- the source tree -------------------------------------------------------------------------------


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PLAIN = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hi") }\n'
CGO = 'package main\n\n// #include <stdlib.h>\nimport "C"\n'


def test_plain_app_needs_no_cgo_and_samples_agree(tmp_path: Path) -> None:
    app = tree(tmp_path, {"go.mod": "module x\n\ngo 1.22\n", "main.go": PLAIN,
                          "cgo_test.go": CGO,                      # tests are not built
                          "testdata/c/x.go": CGO, "_old/x.go": CGO, ".git/x.go": CGO,   # the go command skips these
                          "docs/helper.c": "int main(void) { return 0; }\n"})     # no Go files beside it
    assert cgo_reasons(app, {}) == []
    assert cgo_reasons(app, {"CGO_ENABLED": "0"}) == []
    root = Path(__file__).resolve().parent.parent
    for sample in ("go-http", ):
        assert cgo_reasons(root / "samples" / sample, {}) == []
    for app_dir in ("go-nomod", "go-work", "go-work-targets"):
        assert cgo_reasons(root / "tests" / "apps" / app_dir, {}) == []


def test_cgo_in_the_app_or_its_vendored_packages_is_found(tmp_path: Path) -> None:
    assert cgo_reasons(tree(tmp_path / "a", {"go.mod": "module a\n", "main.go": CGO}), {}) == [
        'main.go imports "C"']
    vendored = tree(tmp_path / "b", {"go.mod": "module b\n", "main.go": PLAIN, "vendor/modules.txt": "",
                                     "vendor/github.com/x/sqlite/sqlite.go": CGO.replace("main", "sqlite")})
    assert cgo_reasons(vendored, {}) == ['vendor/github.com/x/sqlite/sqlite.go imports "C"']
    helper = tree(tmp_path / "c", {"go.mod": "module c\n", "main.go": PLAIN, "native/lib.go": "package native\n",
                                   "native/lib.c": "int f(void) { return 1; }\n"})
    assert cgo_reasons(helper, {}) == ["native/lib.c is C/C++/SWIG code beside Go files"]


def test_cgo_enabled_in_the_environment_counts(tmp_path: Path) -> None:
    app = tree(tmp_path, {"go.mod": "module x\n", "main.go": PLAIN})
    assert cgo_reasons(app, {"CGO_ENABLED": "1"}) == ["CGO_ENABLED=1 in the build environment"]


def test_workspaces_and_replacements_outside_the_app_are_doubts(tmp_path: Path) -> None:
    inside = tree(tmp_path / "w1", {"go.work": "go 1.22\n\nuse (\n\t./api\n\t.\n)\n",
                                    "go.mod": "module w\n\nreplace example.com/y => ./y\n",
                                    "api/go.mod": "module api\n", "api/main.go": PLAIN, "y/go.mod": "module y\n"})
    assert cgo_reasons(inside, {}) == []
    outside = tree(tmp_path / "w2", {"go.work": "go 1.22\n\nuse ./api\nuse ../shared // elsewhere\n",
                                     "api/go.mod": "module api\n\nreplace example.com/z v1.0.0 => /src/z\n",
                                     "api/main.go": PLAIN})
    assert cgo_reasons(outside, {}) == ["go.work points outside the app (../shared)",
                                        "api/go.mod points outside the app (/src/z)"]
    versioned = tree(tmp_path / "w3", {"go.mod": "module v\n\nreplace example.com/a => example.com/b v1.2.3\n",
                                       "main.go": PLAIN})
    assert cgo_reasons(versioned, {}) == []  # a module from the proxy, not a directory


def test_unreadable_go_files_are_doubts(tmp_path: Path) -> None:
    app = tree(tmp_path, {"go.mod": "module x\n", "main.go": PLAIN})
    (app / "gone.go").symlink_to(app / "missing.go")
    assert cgo_reasons(app, {}) == ["gone.go: its imports could not be read"]



def test_a_directory_the_walk_cannot_list_is_a_doubt(tmp_path: Path) -> None:
    """(As root every directory can be listed: one that is not there stands for it.)"""
    assert cgo_reasons(tmp_path / "gone", {}) == [".: cannot be read (No such file or directory)"]
