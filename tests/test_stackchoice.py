"""Choosing a stack by the runtime versions an app asks for: pure, nothing is built."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from builder.errors import PalletError
from builder.lifecycle.apprequests import app_requests, go_requests, node_requests, python_requests
from builder.lifecycle.stackchoice import (NoStackError, Offer, Request, choose_stack, fit_minimum, fit_npm,
                                           fit_poetry, fit_release, Fit, shipped_offers)

ROOT = Path(__file__).resolve().parent.parent
# What the shipped locks say today would make these tests move with every re-lock: the
# offers here are written out, and one test checks the real locks only for their shape.
TRIXIE = Offer("trixie", {"python": "3.13.5", "node": "20.19.2", "go": "1.24"})
BOOKWORM = Offer("bookworm", {"python": "3.11.2", "node": "18.20.4", "go": "1.19"})
OFFERS = [TRIXIE, BOOKWORM]


def pv(version: str) -> list[Request]:
    return [Request("python", version, ".python-version")]


def test_no_request_is_the_default_stack():
    choice = choose_stack([], OFFERS, "trixie")
    assert (choice.stack, choice.notices) == ("trixie", ())
    assert "default" in choice.reason


@pytest.mark.parametrize("version,stack", [("3.13", "trixie"), ("3", "trixie"), ("3.13.5", "trixie"),
                                           ("3.11", "bookworm"), ("3.11.2", "bookworm")])
def test_a_release_lands_on_the_stack_that_has_it(version, stack):
    choice = choose_stack(pv(version), OFFERS, "trixie")
    assert choice.stack == stack and choice.notices == ()
    assert choice.reason.startswith(f"stack {stack}") and "\n" not in choice.reason
    assert f".python-version asks for Python {version}" in choice.reason


def test_leaving_the_default_says_what_the_default_has():
    choice = choose_stack(pv("3.11"), OFFERS, "trixie")
    assert choice.reason == ("stack bookworm: .python-version asks for Python 3.11; the default stack trixie has "
                             "Python 3.13.5, bookworm has Python 3.11.2")


def test_another_patch_level_of_the_same_minor_builds_with_a_notice():
    choice = choose_stack(pv("3.11.11"), OFFERS, "trixie")
    assert choice.stack == "bookworm"
    assert len(choice.notices) == 1 and "3.11.11" in choice.notices[0] and "3.11.2" in choice.notices[0]
    # an exact fit elsewhere beats a patch-level fit on the default
    choice = choose_stack(pv("3.13.5"), [Offer("old", {"python": "3.13.1"}), TRIXIE], "old")
    assert choice.stack == "trixie" and choice.notices == ()


def test_a_version_no_stack_has_lists_every_stack():
    with pytest.raises(NoStackError) as err:
        choose_stack(pv("3.8"), OFFERS, "trixie")
    msg = str(err.value)
    assert "Python 3.8" in msg and "trixie has Go 1.24, Node.js 20.19.2, Python 3.13.5" in msg
    assert "bookworm has Go 1.19, Node.js 18.20.4, Python 3.11.2" in msg
    assert "\n" not in msg


def test_a_python_pin_no_stack_has_is_told_what_to_ask_for_instead():
    """uv init writes the Python it ran on into .python-version (3.12): the error names the lines
    the app's other requests accept, in the pin's spelling, not only the stacks."""
    uv_init = [Request("python", "3.12", ".python-version"),
               Request("python", ">=3.12", "pyproject.toml requires-python", "pep440")]
    with pytest.raises(NoStackError) as err:
        choose_stack(uv_init, OFFERS, "trixie")
    assert "; .python-version could ask for 3.13 (trixie). Change the request" in str(err.value)
    with pytest.raises(NoStackError) as err:
        choose_stack([Request("python", "3.12.8", "runtime.txt")], OFFERS, "trixie")
    assert "; runtime.txt could ask for python-3.13 (trixie) or python-3.11 (bookworm). " in str(err.value)
    with pytest.raises(NoStackError) as err:  # no line the other requests accept: no hint
        choose_stack([*pv("3.12"), Request("python", "==3.12.*", "pyproject.toml requires-python", "pep440")],
                     OFFERS, "trixie")
    assert "could ask for" not in str(err.value)


def test_every_request_must_fit_the_same_stack():
    both = [Request("python", "3.11", ".python-version"),
            Request("python", ">=3.12", "pyproject.toml requires-python", "pep440")]
    with pytest.raises(NoStackError):
        choose_stack(both, OFFERS, "trixie")
    narrow = [Request("python", ">=3.9,<3.12", "pyproject.toml requires-python", "pep440")]
    assert choose_stack(narrow, OFFERS, "trixie").stack == "bookworm"
    wide = [Request("python", ">=3.9", "pyproject.toml requires-python", "pep440")]
    assert choose_stack(wide, OFFERS, "trixie").stack == "trixie"  # the default, when it fits


def test_other_runtimes_and_minimums():
    assert choose_stack([Request("go", "1.21", "go.mod", "minimum")], OFFERS, "trixie").stack == "trixie"
    assert choose_stack([Request("node", "18", "package.json engines.node")], OFFERS, "trixie").stack == "bookworm"
    with pytest.raises(NoStackError):
        choose_stack([Request("go", "1.25", "go.mod", "minimum")], OFFERS, "trixie")
    with pytest.raises(NoStackError):  # a stack without the runtime never fits
        choose_stack(pv("3.13"), [Offer("static", {})], "static")


def test_fit_rules():
    assert fit_release("3.11", "3.11.2") == Fit.EXACT
    assert fit_release("3.11.11", "3.11.2") == Fit.MINOR
    assert fit_release("3.1", "3.11.2") == Fit.NONE  # numbers, not string prefixes
    assert fit_release("3.12.1", "3.11.2") == Fit.NONE
    assert fit_minimum("1.22", "1.24") == Fit.EXACT
    assert fit_minimum("1.24.3", "1.24") == Fit.MINOR  # Debian's golang-go says 1.24, no patch
    assert fit_minimum("1.25", "1.24") == Fit.NONE


def test_unreadable_requests_are_clear_errors():
    with pytest.raises(PalletError, match="not a valid version specifier"):
        choose_stack([Request("python", ">>3", "pyproject.toml requires-python", "pep440")], OFFERS, "trixie")


def test_reading_what_a_python_app_asks_for(tmp_path):
    assert python_requests(tmp_path) == []
    (tmp_path / ".python-version").write_text("# pinned\n3.13\n")
    (tmp_path / "runtime.txt").write_text("python-3.13.1\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nrequires-python = ">=3.12"\n')
    assert app_requests(tmp_path) == [
        Request("python", "3.13", ".python-version"), Request("python", "3.13.1", "runtime.txt"),
        Request("python", ">=3.12", "pyproject.toml requires-python", "pep440")]
    (tmp_path / ".python-version").write_text("pypy3.10\n")  # the buildpack explains this one
    assert [r.source for r in python_requests(tmp_path)] == ["runtime.txt", "pyproject.toml requires-python"]


def test_a_version_file_may_hold_a_range(tmp_path):
    """`.python-version` holding `>= 3.10` (Google Cloud's buildpack-samples/sample-python) was no
    request: the default stack, then the build failed 'only CPython versions like 3.11'. It is a
    PEP 440 range, and chooses the stack as requires-python does."""
    (tmp_path / ".python-version").write_text(">= 3.10\n")
    (tmp_path / "runtime.txt").write_text("python-<3.12\n")
    assert python_requests(tmp_path) == [Request("python", ">= 3.10", ".python-version", "pep440"),
                                         Request("python", "<3.12", "runtime.txt", "pep440")]
    assert choose_stack(python_requests(tmp_path), OFFERS, "trixie").stack == "bookworm"
    (tmp_path / "runtime.txt").write_text(">=3.1x\n")  # no specifier: the buildpack explains it
    assert python_requests(tmp_path) == [Request("python", ">= 3.10", ".python-version", "pep440")]


def test_reading_what_a_pipenv_app_asks_for(tmp_path):
    """Pipenv's [requires]: the lock's copy first, the full version before the minor one (as
    Heroku reads them); one the Python buildpack checks too."""
    (tmp_path / "Pipfile").write_text('[packages]\nflask = "*"\n\n[requires]\npython_version = "3.11"\n')
    assert python_requests(tmp_path) == [Request("python", "3.11", "Pipfile [requires] python_version")]
    (tmp_path / "Pipfile.lock").write_text(json.dumps({"_meta": {"requires": {"python_version": "3.11",
                                                                               "python_full_version": "3.11.9"}}}))
    assert python_requests(tmp_path) == [Request("python", "3.11.9", "Pipfile.lock _meta.requires python_full_version")]
    choice = choose_stack(python_requests(tmp_path), OFFERS, "trixie")
    assert choice.stack == "bookworm"
    (tmp_path / "Pipfile.lock").write_text("{not json")
    assert python_requests(tmp_path) == [Request("python", "3.11", "Pipfile [requires] python_version")]
    (tmp_path / "Pipfile").write_text('[requires]\npython_version = "*"\n')
    assert python_requests(tmp_path) == []


def test_the_shipped_stacks_offer_their_locked_runtimes():
    offers = {o.stack: o for o in shipped_offers(ROOT / "stacks")}
    assert list(offers)[:3] == ["forky", "trixie", "bookworm"]  # newest Debian release first
    assert "tiny" not in offers and "bookworm-static" not in offers  # no runtime to run on
    for name in ("trixie", "bookworm"):
        assert set(offers[name].runtimes) >= {"python", "node", "go"}
    assert set(offers["forky"].runtimes) == {"python", "go"}  # testing: never chosen for a Node.js range
    lock = (ROOT / "stacks" / "trixie.lock").read_text()
    assert f'"python3:amd64={offers["trixie"].runtimes["python"]}' in lock


def test_a_python_metapackage_is_read_as_the_interpreter_it_stands_for():
    """forky's python3 is 3.14.7 while the python3.14 it depends on is 3.14.8: the offer (and the
    run image's provides label) say what runs."""
    offers = {o.stack: o for o in shipped_offers(ROOT / "stacks")}
    for name in ("forky", "trixie", "bookworm"):
        python = offers[name].runtimes["python"]
        minor = ".".join(python.split(".")[:2])
        assert f'"python{minor}:amd64={python}-' in (ROOT / "stacks" / f"{name}.lock").read_text(), name


@pytest.mark.parametrize("asked,stack", [
    ([Request("python", "3.14", ".python-version")], "forky"),
    ([Request("go", "1.26", "go.mod", "minimum")], "forky"),
    ([Request("node", ">=22", "package.json engines.node", "npm")], "trixie"),  # installed, not testing
    ([Request("node", "24.x", "package.json engines.node", "npm")], "trixie"),
    ([Request("python", ">=3.11", "pyproject.toml requires-python", "pep440"), Request("go", "1.26", "go.mod", "minimum")],
     "forky"),
])
def test_the_shipped_stacks_choose_testing_only_for_what_stable_lacks(asked, stack):
    choice = choose_stack(asked, shipped_offers(ROOT / "stacks"), "trixie")
    assert choice.stack == stack, choice.reason


# -- Node.js: engines.node, .nvmrc, .node-version, as the Node.js buildpack reads them ------------


def npm(spec: str, source: str = "package.json engines.node") -> list[Request]:
    return [Request("node", spec, source, "npm" if source.startswith("package.json") else "nvm")]


def test_reading_what_a_node_app_asks_for_in_the_buildpacks_order(tmp_path):
    assert node_requests(tmp_path) == []
    (tmp_path / ".node-version").write_text("18.20.4\n")
    assert node_requests(tmp_path) == npm("18.20.4", ".node-version")
    (tmp_path / ".nvmrc").write_text("# the team's pin\nv20\n")  # .nvmrc before .node-version
    assert node_requests(tmp_path) == npm("v20", ".nvmrc")
    (tmp_path / "package.json").write_text('{"name": "x"}')  # no engines: still .nvmrc
    assert node_requests(tmp_path) == npm("v20", ".nvmrc")
    for engines in ('{"node": 22}', '{"node": "  "}', '"22"', '{"npm": ">=10"}'):  # not a usable string: .nvmrc
        (tmp_path / "package.json").write_text(f'{{"engines": {engines}}}')
        assert node_requests(tmp_path) == npm("v20", ".nvmrc"), engines
    (tmp_path / "package.json").write_text('{"engines": {"node": " ^18.17 "}}')
    assert node_requests(tmp_path) == npm("^18.17")
    assert app_requests(tmp_path) == npm("^18.17")


def test_a_byte_order_mark_is_not_part_of_the_request(tmp_path):
    """Windows editors start files with one; the buildpacks read past it, and so does the choice."""
    (tmp_path / ".nvmrc").write_bytes("\ufeff18.20.4\n".encode())
    assert node_requests(tmp_path) == npm("18.20.4", ".nvmrc")
    (tmp_path / "package.json").write_bytes('\ufeff{"engines": {"node": "^18.17"}}'.encode())
    assert node_requests(tmp_path) == npm("^18.17")
    (tmp_path / "runtime.txt").write_bytes("python-3.13\r\n".encode("utf-16"))  # PowerShell 5's echo > file
    assert python_requests(tmp_path) == [Request("python", "3.13", "runtime.txt")]


@pytest.mark.parametrize("text", ["node", "stable", "LATEST"])
def test_nvmrc_aliases_of_the_newest_release_take_the_default_stacks(tmp_path, text):
    (tmp_path / ".nvmrc").write_text(text + "\n")
    choice = choose_stack(node_requests(tmp_path), OFFERS, "trixie")
    assert (choice.stack, choice.reason) == ("trixie", f"stack trixie (the default): .nvmrc asks for Node.js {text}; "
                                                       "it has Node.js 20.19.2")


@pytest.mark.parametrize("name,text,stack", [(".nvmrc", "lts/hydrogen", "bookworm"), (".node-version", "lts/Iron", "trixie"),
                                             ("package.json", "lts/hydrogen", "bookworm"), (".nvmrc", "lts/jod", "trixie")])
def test_an_lts_codename_is_its_line(tmp_path, name, text, stack):
    if name == "package.json":
        (tmp_path / name).write_text(json.dumps({"engines": {"node": text}}))
    else:
        (tmp_path / name).write_text(text + "\n")
    choice = choose_stack(node_requests(tmp_path), OFFERS, "trixie")
    assert choice.stack == stack  # jod (22): no stack has it, the default stays and the buildpack installs it
    assert f"asks for Node.js {text}" in choice.reason


def test_the_lts_codenames_are_the_node_buildpacks():
    from builder.lifecycle.stackchoice import LTS_CODENAMES

    js = (ROOT / "buildpacks" / "nodejs" / "lib" / "nodelts.js").read_text()
    table = re.search(r"const CODENAMES = \{([^}]*)\}", js).group(1)
    assert {k: int(v) for k, v in re.findall(r"(\w+): (\d+)", table)} == LTS_CODENAMES


@pytest.mark.parametrize("text", ["lts/*", "lts/-1", "LTS/-2"])
def test_lts_star_does_not_choose_the_stack(tmp_path, text):
    """Which line lts/* is depends on the releases the npm registry lists when the buildpack
    runs: the other requests choose, and the line says that the buildpack decides."""
    (tmp_path / ".nvmrc").write_text(text + "\n")
    choice = choose_stack(node_requests(tmp_path), OFFERS, "trixie")
    assert choice.stack == "trixie" and choice.reason.startswith(
        f"stack trixie (the default): .nvmrc asks for Node.js {text}: which LTS line that is, the Node.js buildpack "
        "reads from the npm registry's releases when it builds")
    (tmp_path / ".python-version").write_text("3.11\n")
    choice = choose_stack(app_requests(tmp_path), OFFERS, "trixie")
    assert choice.stack == "bookworm" and choice.reason.startswith("stack bookworm: .python-version asks for Python "
                                                                   "3.11; the default stack trixie has Python 3.13.5")
    assert f"; .nvmrc asks for Node.js {text}: which LTS line" in choice.reason


@pytest.mark.parametrize("package_json", [
    '{"engines": {"node": ">=20"',  # cut short
    "\xff\xfe\x00garbage",
    "[" * 100_000 + "]" * 100_000,  # deeper than Python's recursion limit
    '{"engines": {"node": ">>20"}}',  # not a range: the buildpack says so
    '{"engines": {"node": "lts/nope"}}',  # an unknown codename: nodeapp.js lists the known ones
    '{"engines": {"node": "latest"}}',  # an alias in .nvmrc only: not a range in engines.node
])
def test_a_package_json_that_cannot_be_read_asks_for_nothing(tmp_path, package_json):
    """The Node.js buildpack reads the same file and fails the build naming it (``package.json
    is not valid JSON``, ``is not a valid version range``); the stack choice neither raises nor
    falls back to .nvmrc, which the buildpack would not read either."""
    (tmp_path / "package.json").write_text(package_json, errors="surrogateescape")
    (tmp_path / ".nvmrc").write_text("18\n")
    assert node_requests(tmp_path) == []


def test_an_unreadable_nvmrc_asks_for_nothing(tmp_path):
    (tmp_path / ".nvmrc").write_bytes(b"\x00\xff not a version\n")
    (tmp_path / ".node-version").write_text("18\n")  # not consulted: .nvmrc had a line (as the buildpack)
    assert node_requests(tmp_path) == []


# Recorded from npm's own semver (the module nodeapp.js loads: /usr/lib/node_modules/npm/node_modules/
# semver, npm 10 on Node.js 20.20.2) for these versions: which of them each range takes (None: not
# a valid range). test_node_ranges_read_as_node_semver_reads_them_live checks again where node runs.
NODE_VERSIONS = ["18.20.4", "20.19.2", "22.12.0", "24.1.0"]
NODE_SEMVER = [
    (">=20", ["20.19.2", "22.12.0", "24.1.0"]), ("22.x", ["22.12.0"]), ("^18.17", ["18.20.4"]),
    ("18 || 20", ["18.20.4", "20.19.2"]), ("~18.17", []), (">=18 <21", ["18.20.4", "20.19.2"]),
    ("16.0.0 - 18.20.5", ["18.20.4"]), ("*", NODE_VERSIONS), ("x", NODE_VERSIONS), ("18.x.x", ["18.20.4"]),
    ("=18.20.4", ["18.20.4"]), ("18", ["18.20.4"]), (">= 18", NODE_VERSIONS), ("^18.17.0 || >=20.3.0", NODE_VERSIONS),
    ("20.x || >=22", ["20.19.2", "22.12.0", "24.1.0"]), (">18", ["20.19.2", "22.12.0", "24.1.0"]),
    ("<=18.20.4", ["18.20.4"]), ("~18", ["18.20.4"]), ("1.2.3 -2", None), ("garbage", None), ("18.20.4.5", None),
    (">=v18", NODE_VERSIONS), ("^20.19.0 || >=22.12.0", ["20.19.2", "22.12.0", "24.1.0"]), ("<19 >=18", ["18.20.4"]),
    ("^22", ["22.12.0"]), ("24", ["24.1.0"]), (">=18.0.0-0", NODE_VERSIONS), ("~>18", ["18.20.4"]),
]


def _ours(spec: str) -> list[str] | None:
    from builder.lifecycle.stackchoice import npm_range

    if npm_range(spec) is None:
        return None
    return [v for v in NODE_VERSIONS if fit_npm(spec, v) == Fit.EXACT]


@pytest.mark.parametrize("spec,takes", NODE_SEMVER)
def test_node_ranges_read_as_node_semver_reads_them(spec, takes):
    assert _ours(spec) == takes


def test_node_ranges_read_as_node_semver_reads_them_live(tmp_path):
    """The same table against npm's semver itself, where a node with npm is installed (the
    build images have one; this machine's set-up does not install node, so elsewhere: skipped)."""
    import shutil
    import subprocess

    module = Path("/usr/lib/node_modules/npm/node_modules/semver")
    if shutil.which("node") is None or not module.is_dir():
        pytest.skip("no node with npm's semver here")
    script = ("const s = require(process.argv[1]); const vs = JSON.parse(process.argv[3]);"
              "console.log(JSON.stringify(JSON.parse(process.argv[2]).map(r => s.validRange(r) === null ? null :"
              " vs.filter(v => s.satisfies(v, r)))))")
    specs = [s for s, _ in NODE_SEMVER] + ["^18.17.0 <18.20", "18.20", "v20.19", "v20", "20.19.x || 18.20.x", "<=20",
                                           "lts/*", "node", "^v18.17"]
    out = subprocess.run(["node", "-e", script, str(module), json.dumps(specs), json.dumps(NODE_VERSIONS)],
                         capture_output=True, text=True, check=True).stdout
    assert [_ours(s) for s in specs] == json.loads(out)


def test_node_moves_to_a_stack_that_has_it_else_stays_and_the_buildpack_installs_it():
    assert choose_stack(npm(">=20"), OFFERS, "trixie").stack == "trixie"
    choice = choose_stack(npm("18.x"), OFFERS, "trixie")
    assert choice.reason == ("stack bookworm: package.json engines.node asks for Node.js 18.x; the default stack "
                             "trixie has Node.js 20.19.2, bookworm has Node.js 18.20.4")
    choice = choose_stack(npm("22.x"), OFFERS, "trixie")  # no stack has it: no error
    assert choice.stack == "trixie" and choice.notices == ()
    assert choice.reason == ("stack trixie (the default): package.json engines.node asks for Node.js 22.x; no stack "
                             "has it (trixie has Node.js 20.19.2; bookworm has Node.js 18.20.4): the Node.js "
                             "buildpack installs an official Node.js build matching 22.x")
    # an exact release the stacks lack: installed (nodeapp.js takes no other patch level)
    assert choose_stack(npm("18.20.8", ".nvmrc"), OFFERS, "trixie").stack == "trixie"


def test_several_runtimes_take_a_stack_that_has_them_all_else_say_why():
    python311, node20 = pv("3.11")[0], npm("20.x")[0]
    both = choose_stack([python311, npm("^18.17")[0]], OFFERS, "trixie")
    assert both.stack == "bookworm" and "no stack" not in both.reason
    apart = choose_stack([python311, node20], OFFERS, "trixie")  # Python decides; Node.js is installed
    assert apart.stack == "bookworm" and "\n" not in apart.reason
    assert apart.reason == (
        "stack bookworm: .python-version asks for Python 3.11; package.json engines.node asks for Node.js 20.x; no "
        "stack has all of it (trixie has Python 3.13.5, Node.js 20.19.2; bookworm has Python 3.11.2, Node.js "
        "18.20.4): bookworm has Python 3.11.2, and when Node.js builds the app the Node.js buildpack installs an "
        "official Node.js build matching 20.x")
    with pytest.raises(NoStackError) as err:  # what cannot be installed still fails, whatever Node.js asks
        choose_stack([Request("python", "3.8", ".python-version"), node20], OFFERS, "trixie")
    assert "Python 3.8" in str(err.value) and "Node.js 20.x" in str(err.value)
    go = Request("go", "1.22", "go.mod", "minimum")
    assert choose_stack([go, npm("18.x")[0]], OFFERS, "trixie").stack == "trixie"  # Go 1.22 only on trixie


# -- Go: the go directive --------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_reading_the_go_directive(tmp_path):
    assert go_requests(tmp_path) == []
    write(tmp_path / "go.mod", "// a comment\nmodule example.com/app\n\ngo 1.22.3 // the minimum\n\n"
                               "toolchain go1.99.0\n\nrequire example.com/x v1.0.0\n")
    assert go_requests(tmp_path) == [Request("go", "1.22.3", "go.mod", "minimum")]  # toolchain: a suggestion only
    write(tmp_path / "go.mod", "module example.com/app\n")  # no go line: asks for nothing
    assert go_requests(tmp_path) == []


def test_reading_a_go_workspace_and_its_modules(tmp_path):
    write(tmp_path / "go.work", 'go 1.21\n\nuse (\n\t./api // the server\n\t"./lib"\n\t../outside\n)\nuse ./tool\n')
    write(tmp_path / "api" / "go.mod", "module api\n\ngo 1.22\n")
    write(tmp_path / "lib" / "go.mod", "module lib\n\ngo 1.20\n")
    write(tmp_path / "tool" / "go.mod", "module tool\n")
    write(tmp_path.parent / "outside" / "go.mod", "module outside\n\ngo 1.30\n")  # not the app's: not read
    assert go_requests(tmp_path) == [Request("go", "1.21", "go.work", "minimum"),
                                     Request("go", "1.22", "api/go.mod", "minimum"),
                                     Request("go", "1.20", "lib/go.mod", "minimum")]
    assert choose_stack(go_requests(tmp_path), OFFERS, "trixie").stack == "trixie"


@pytest.mark.parametrize("go_mod", ["module x\n\ngo 1.x\n", "module x\ngo\n", "go 1.22 extra\n", "\xff\x00go 1.22",
                                    "go 01.22\n", "go 1\n", "module x\n\ngo 1.22.\n"])
def test_a_go_directive_that_is_no_go_version_asks_for_nothing(tmp_path, go_mod):
    """The go command says what is wrong with it (``invalid go version``), at build time."""
    (tmp_path / "go.mod").write_text(go_mod, errors="surrogateescape")
    assert go_requests(tmp_path) == []


def test_go_directives_are_minimums_in_gos_order():
    assert fit_minimum("1.19", "1.24.4") == Fit.EXACT
    assert fit_minimum("1.24.3", "1.24.4") == Fit.EXACT
    assert fit_minimum("1.24.9", "1.24.4") == Fit.NONE  # a patch level is a minimum too
    assert fit_minimum("1.24", "1.24.0") == Fit.EXACT  # the language version is below every release of it
    assert fit_minimum("1.24rc1", "1.24.0") == Fit.EXACT and fit_minimum("1.24.0", "1.24rc2") == Fit.NONE
    assert fit_minimum("1.24beta2", "1.24rc1") == Fit.EXACT
    assert fit_minimum("1.3", "1.24.4") == Fit.EXACT  # numbers, not strings
    assert fit_minimum("1.25", "1.24.4") == Fit.NONE and fit_minimum("2.0", "1.24.4") == Fit.NONE


def test_a_go_directive_newer_than_every_stack_is_an_error_saying_why():
    with pytest.raises(NoStackError) as err:
        choose_stack([Request("go", "1.25", "go.mod", "minimum")], OFFERS, "trixie")
    msg = str(err.value)
    assert msg.startswith("no stack has what the app asks for (go.mod asks for Go 1.25 or newer): trixie has Go 1.24")
    assert "bookworm has Go 1.19" in msg and "GOTOOLCHAIN=local" in msg and "\n" not in msg
    with pytest.raises(NoStackError) as err:  # the hint is for Go only when Go is what no stack has
        choose_stack(pv("3.8") + [Request("go", "1.21", "go.mod", "minimum")], OFFERS, "trixie")
    assert "GOTOOLCHAIN" not in str(err.value)
    real = Offer("trixie", {"go": "1.24.4"})
    choice = choose_stack([Request("go", "1.24.3", "go.mod", "minimum")], [real], "trixie")
    assert choice.reason == "stack trixie (the default): go.mod asks for Go 1.24.3 or newer; it has Go 1.24.4"


def test_the_shipped_stacks_offer_gos_own_patch_level():
    offers = {o.stack: o for o in shipped_offers(ROOT / "stacks")}
    go = offers["trixie"].runtimes["go"]
    assert go.count(".") == 2  # 1.24.4, not the golang-go metapackage's 1.24
    assert f'"golang-{go.rsplit(".", 1)[0]}-go:amd64={go}-' in (ROOT / "stacks" / "trixie.lock").read_text()


# -- Python: Poetry's constraint, PDM's requires-python --------------------------------------------


def test_reading_poetrys_python_constraint(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.poetry]\nname = "x"\npackage-mode = false\n\n'
                                       '[tool.poetry.dependencies]\npython = "~3.11"\nflask = "^3"\n')
    asked = python_requests(tmp_path)
    assert asked == [Request("python", "~3.11", "pyproject.toml [tool.poetry.dependencies] python", "poetry")]
    assert choose_stack(asked, OFFERS, "trixie").stack == "bookworm"


@pytest.mark.parametrize("constraint,stack,takes_3_11_2", [
    ("^3.11", "trixie", True), ("~3.11", "bookworm", True), ("3.11.*", "bookworm", True),
    (">=3.9,<3.12", "bookworm", True), (">=3.9 <3.12", "bookworm", True), ("^3.10 || ^3.12", "trixie", True),
    ("*", "trixie", True), ("~=3.13", "trixie", False), ("3.11", None, False), ("^3.14", None, False)])
def test_poetry_constraints_as_poetry_reads_them(constraint, stack, takes_3_11_2):
    """``3.11`` is 3.11.0 only to Poetry (``poetry install`` on 3.11.7: "Current Python version
    (3.11.7) is not allowed by the project (3.11)", Poetry 2.5.1): no stack has it."""
    assert (fit_poetry(constraint, "3.11.2") == Fit.EXACT) == takes_3_11_2
    asked = [Request("python", constraint, "pyproject.toml [tool.poetry.dependencies] python", "poetry")]
    if stack is None:
        with pytest.raises(NoStackError):
            choose_stack(asked, OFFERS, "trixie")
    else:
        assert choose_stack(asked, OFFERS, "trixie").stack == stack


@pytest.mark.parametrize("pyproject", ['[tool.poetry.dependencies]\npython = "^^3"\n',
                                       '[tool.poetry.dependencies]\npython = {version = "^3.11"}\n',
                                       '[tool.poetry]\ndependencies = "python"\n', 'tool = 3\n',
                                       '[tool.poetry.dependencies\npython = "^3.11"\n'])
def test_an_unreadable_poetry_constraint_asks_for_nothing(tmp_path, pyproject):
    write(tmp_path / "pyproject.toml", pyproject)
    assert python_requests(tmp_path) == []


def test_a_pdm_project_asks_through_requires_python(tmp_path):
    """PDM writes PEP 621 metadata: its Python request is ``[project] requires-python``."""
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\nrequires-python = "==3.11.*"\ndependencies = []\n\n'
                                       '[tool.pdm]\ndistribution = false\n')
    write(tmp_path / "pdm.lock", '[metadata]\ngroups = ["default"]\n')
    assert app_requests(tmp_path) == [Request("python", "==3.11.*", "pyproject.toml requires-python", "pep440")]
    assert choose_stack(app_requests(tmp_path), OFFERS, "trixie").stack == "bookworm"


def test_every_reader_takes_hostile_files_without_a_traceback(tmp_path):
    """Whatever the app's files hold, reading them gives requests the matcher can read (or
    none), never an exception."""
    from hypothesis import given, settings, strategies as st

    names = ["package.json", ".nvmrc", ".node-version", "go.mod", "go.work", "pyproject.toml", ".python-version",
             "runtime.txt"]
    fragments = st.sampled_from(['{"engines": {"node": ', '"', ">=", "^", "lts/*", "go ", "1.22", "\n", "use ",
                                 "(", ")", "[project]\nrequires-python = ", "[tool.poetry.dependencies]\npython = ",
                                 "\x00", "\xff", "||", "rc1", " ", "}", "[", "x", ".."])
    contents = st.one_of(st.text(max_size=80), st.lists(fragments, max_size=12).map("".join))

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.sampled_from(names), contents, max_size=4))
    def run(files):
        app = tmp_path / "app"
        if app.exists():
            for f in app.rglob("*"):
                f.unlink()
        app.mkdir(exist_ok=True)
        for name, text in files.items():
            (app / name).write_text(text, errors="surrogatepass")
        for request in app_requests(app):
            try:
                choose_stack([request], OFFERS, "trixie")
            except NoStackError:
                pass
            except PalletError as exc:  # a request no version can be (a number of 19 digits): one line
                assert "is not a version" in str(exc) and "\n" not in str(exc), exc
    run()
