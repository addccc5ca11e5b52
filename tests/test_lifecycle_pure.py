"""The buildpack API's pure parts: plan resolution, order expansion, env files, launch.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.errors import PalletError

from builder.lifecycle import envfiles
from builder.lifecycle.buildpack import Buildpack, BuildpackError, GroupRef, Registry, load
from builder.lifecycle.layers import merge_processes, read_launch, read_layers
from builder.lifecycle.order import expand
from builder.lifecycle.plan import Alternative, Candidate, Require, parse_plan, resolve
from builder.lifecycle.process import Process
from builder.lifecycle.project import copy_source, read_project
from builder.lifecycle.tomlio import TomlError


def cand(bp_id, *alts, optional=False):
    return Candidate(bp_id, "1.0.0", optional, tuple(alts) or (Alternative(),))


def alt(provides=(), requires=()):
    return Alternative(tuple(provides), tuple(Require(r) for r in requires))


def test_plan_requires_must_be_provided_earlier():
    ok = resolve([cand("node", alt(["node"], ["node"])), cand("npm", alt([], ["node"]))])
    assert ok and [c.id for c in ok.group] == ["node", "npm"]
    assert ok.entries[0].name == "node" and ok.entries[0].providers == [("node", "1.0.0")]
    assert len(ok.entries[0].requires) == 2
    assert resolve([cand("npm", alt([], ["node"])), cand("node", alt(["node"], []))]) is None


def test_plan_or_alternatives_tried_in_order():
    res = resolve([cand("a", alt(["x"], []), alt([], [])), cand("b")])
    assert res and res.group[0].alternative == Alternative()  # the first alternative fails: x unrequired


def test_optional_buildpack_dropped_when_plan_fails():
    res = resolve([cand("proc", alt(["p"], []), optional=True), cand("py", alt(["py"], ["py"]))])
    assert res and [c.id for c in res.group] == ["py"]
    assert resolve([cand("proc", alt(["p"], []), optional=True)]) is None


def test_parse_plan_with_or_and_deprecated_version():
    alts = parse_plan({"provides": [{"name": "a"}], "requires": [{"name": "a", "version": "1"}],
                       "or": [{"provides": [{"name": "b"}], "requires": [{"name": "b"}]}]}, "x")
    assert [a.provides for a in alts] == [("a",), ("b",)]
    assert alts[0].requires[0].metadata == {"version": "1"}
    with pytest.raises(TomlError, match="provides\\[0\\]"):
        parse_plan({"provides": [{}]}, "x")


def bp(bp_id, order=()):
    return Buildpack(api="0.10", id=bp_id, version="1.0.0", path=Path("/nonexistent"), order=order)


def test_order_expansion_composite_and_optional():
    reg = Registry([bp("a"), bp("b"), bp("c"),
                    bp("meta", order=((GroupRef("a"), GroupRef("b")), (GroupRef("c"),)))])
    groups = expand([(GroupRef("meta", optional=True), GroupRef("c"))], reg)
    names = [[m.buildpack.id for m in g] for g in groups]
    assert names == [["a", "b", "c"], ["c", "c"], ["c"]]
    assert all(m.optional for m in groups[0][:2])
    with pytest.raises(BuildpackError, match="unknown buildpack nope"):
        expand([(GroupRef("nope"),)], reg)


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_load_buildpack_and_errors_name_the_file(tmp_path):
    d = tmp_path / "bp"
    write(d / "buildpack.toml", 'api = "0.10"\n[buildpack]\nid = "test/bp"\nversion = "1.2.3"\n'
                                '[[targets]]\nos = "linux"\narch = "amd64"\n')
    write(d / "bin" / "detect", "#!/bin/sh\n", 0o755)
    write(d / "bin" / "build", "#!/bin/sh\n", 0o755)
    loaded = load(d)
    assert loaded.id == "test/bp" and loaded.layers_name == "test_bp"
    assert loaded.supports("linux", "amd64", None, None, None, None)
    assert not loaded.supports("linux", "arm64", None, None, None, None)
    write(d / "buildpack.toml", 'api = "0.10"\n[buildpack]\nversion = "1"\n')
    with pytest.raises(TomlError, match=r"buildpack.toml \[buildpack\]: missing field 'id'"):
        load(d)
    write(d / "buildpack.toml", 'api = "0.10"\n[buildpack\n')
    with pytest.raises(TomlError, match="invalid TOML"):
        load(d)
    write(d / "buildpack.toml", 'api = "0.2"\n[buildpack]\nid="x"\nversion="1"\n')
    with pytest.raises(BuildpackError, match="0.2 is not supported"):
        load(d)


def test_env_file_rules():
    ops = [envfiles.EnvOp("A", "override", "1"), envfiles.EnvOp("B", "default", "d"),
           envfiles.EnvOp("C", "default", "new"), envfiles.EnvOp("P", "prepend", "/x", ":"),
           envfiles.EnvOp("Q", "append", "tail", None)]
    env = envfiles.apply({"A": "0", "C": "old", "P": "/usr/bin", "Q": "head"}, ops)
    assert env == {"A": "1", "B": "d", "C": "old", "P": "/x:/usr/bin", "Q": "headtail"}


def test_read_env_dir_and_build_env(tmp_path):
    layer = tmp_path / "layer"
    write(layer / "env" / "GREETING", "hi")
    write(layer / "env" / "PATH.prepend", "/opt/tool")
    write(layer / "env" / "PATH.delim", ":")
    write(layer / "env.build" / "ONLY_BUILD.default", "yes")
    write(layer / "env.launch" / "ONLY_LAUNCH", "no")
    (layer / "bin").mkdir()
    env = envfiles.buildpack_build_env({"PATH": "/usr/bin"}, [(layer, "/layers/bp/layer")])
    assert env["GREETING"] == "hi" and env["ONLY_BUILD"] == "yes" and "ONLY_LAUNCH" not in env
    assert env["PATH"] == "/opt/tool:/layers/bp/layer/bin:/usr/bin"


def test_launch_toml_and_layer_metadata(tmp_path):
    d = tmp_path / "layers"
    write(d / "launch.toml", '[[processes]]\ntype = "web"\ncommand = ["python", "app.py"]\nargs = ["-v"]\n'
                             'default = true\n[[labels]]\nkey = "k"\nvalue = "v"\n')
    write(d / "deps.toml", "[types]\nlaunch = true\ncache = true\n[metadata]\nhash = \"abc\"\n")
    write(d / "build.toml", "")
    info = read_launch(d, "bp")
    assert info.processes == [Process("web", ("python", "app.py"), ("-v",), True, None, "bp")]
    assert info.labels == {"k": "v"}
    layers = read_layers(d, "bp")
    assert [(x.name, x.types.launch, x.types.cache, x.metadata) for x in layers] == [
        ("deps", True, True, {"hash": "abc"})]
    write(d / "launch.toml", '[[processes]]\ntype = "web"\ncommand = 3\n')
    with pytest.raises(TomlError, match=r"buildpack bp: .*launch.toml: processes\[0\].command"):
        read_launch(d, "bp")
    # /cnb/process/TYPE is a file: a longer name made an image no runtime could unpack
    write(d / "launch.toml", f'[[processes]]\ntype = "{"w" * 256}"\ncommand = ["x"]\n')
    with pytest.raises(TomlError, match=r"processes\[0\].type must be .*at most 255"):
        read_launch(d, "bp")
    write(d / "bad.toml", "[types]\nlaunch = 'yes'\n")
    with pytest.raises(TomlError, match="types.launch must be true or false"):
        read_layers(d, "bp")


def test_merge_processes_later_wins():
    a = [Process("web", ("a",), default=True), Process("worker", ("w",))]
    b = [Process("web", ("b",))]
    merged, default = merge_processes([a, b])
    assert [p.command for p in merged] == [("b",), ("w",)] and default is None
    merged, default = merge_processes([a])
    assert default == "web"
    assert merge_processes([[Process("worker", ("w",))]])[1] == "worker"   # the only process: the default
    assert merge_processes([[Process("worker", ("w",)), Process("clock", ("c",))]])[1] is None


def test_copy_source_filters_and_symlinks(tmp_path):
    src = tmp_path / "src"
    write(src / "app.py", "print(1)")
    write(src / ".git" / "config", "secret")
    write(src / "node_modules" / "x.js", "x")
    write(src / "sub" / "keep.txt", "k")
    os.symlink("/etc/passwd", src / "escape")
    write(src / "project.toml", '[build]\nexclude = ["node_modules/", "*.log"]\n'
                                '[[build.env]]\nname = "BP_X"\nvalue = "1"\n')
    write(src / "debug.log", "log")
    project = read_project(src)
    assert project.env == {"BP_X": "1"}
    copy_source(src, tmp_path / "dst", project)
    got = sorted(str(p.relative_to(tmp_path / "dst")) for p in (tmp_path / "dst").rglob("*"))
    assert got == ["app.py", "escape", "project.toml", "sub", "sub/keep.txt"]
    assert os.readlink(tmp_path / "dst" / "escape") == "/etc/passwd"


def test_project_descriptor_schema_0_2(tmp_path):
    """The CNB project descriptor 0.2: [io.buildpacks] with exclude, [[io.buildpacks.group]] and
    [[io.buildpacks.build.env]] (the form pack writes), read as 0.1's [build] is."""
    src = tmp_path / "src"
    write(src / "project.toml", '[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclude = ["*.log"]\n'
                                '[[io.buildpacks.group]]\nid = "pallet/nodejs"\n'
                                '[[io.buildpacks.build.env]]\nname = "BP_KEEP_SOURCE"\nvalue = "true"\n')
    project = read_project(src)
    assert project.env == {"BP_KEEP_SOURCE": "true"} and project.exclude == ["*.log"]
    assert [b.id for b in project.buildpacks] == ["pallet/nodejs"]
    write(src / "project.toml", '[io.buildpacks]\n[[io.buildpacks.build.env]]\nname = "A"\nvalue = 1\n')
    with pytest.raises(PalletError, match=r"io.buildpacks.build.env\[0\] needs string 'name' and 'value'"):
        read_project(src)
    write(src / "project.toml", '[io.buildpacks]\nbuild = 5\n')
    with pytest.raises(PalletError, match=r"\[io.buildpacks.build\] must be a table"):
        read_project(src)


def test_build_layers_lib_and_include_paths(tmp_path):
    layer = tmp_path / "layer"
    for sub in ("lib", "include", "pkgconfig"):
        (layer / sub).mkdir(parents=True)
    env = envfiles.buildpack_build_env({"LD_LIBRARY_PATH": "/usr/lib"}, [(layer, "/layers/bp/l")])
    assert env["LD_LIBRARY_PATH"] == "/layers/bp/l/lib:/usr/lib"
    assert env["LIBRARY_PATH"] == "/layers/bp/l/lib"
    assert env["CPATH"] == "/layers/bp/l/include" and env["PKG_CONFIG_PATH"] == "/layers/bp/l/pkgconfig"


# -- declared inputs: whole files, names, matching lines --------------------------------------

def _with_inputs(tmp_path: Path, meta: str) -> Buildpack:
    bp = tmp_path / "bp"
    (bp / "bin").mkdir(parents=True)
    (bp / "buildpack.toml").write_text('api = "0.10"\n[buildpack]\nid = "t/in"\nversion = "1"\n' + meta)
    for name in ("detect", "build"):
        (bp / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
        (bp / "bin" / name).chmod(0o755)
    return load(bp)


def _key(bp: Buildpack, app: Path) -> str | None:
    from builder.lifecycle.inputs import inputs_key

    return inputs_key(bp, app, build_image="sha256:x", target={}, plan=[], env={})


def test_input_lines_cover_only_the_lines_the_regex_matches(tmp_path):
    bp = _with_inputs(tmp_path, '[metadata.pallet]\ninputs = ["req.txt"]\ninput-names = ["manage.py"]\n'
                                '[metadata.pallet.input-lines]\n"app.py" = \'^app\\s*=\'\n')
    app = tmp_path / "app"
    app.mkdir()
    (app / "req.txt").write_text("flask\n")
    (app / "app.py").write_text("import flask\napp = flask.Flask(__name__)\nGREETING = 'hi'\n")
    first = _key(bp, app)
    (app / "app.py").write_text("import flask\napp = flask.Flask(__name__)\nGREETING = 'hello'\n")
    assert _key(bp, app) == first  # an unmatched line changed
    (app / "app.py").write_text("import flask\napp = flask.Flask('x')\nGREETING = 'hello'\n")
    assert _key(bp, app) != first  # the matched line changed
    base = _key(bp, app)
    (app / "manage.py").write_text("print(1)\n")
    named = _key(bp, app)
    assert named != base  # a name appeared
    (app / "manage.py").write_text("print(2)\n")
    assert _key(bp, app) == named  # a name's content is not an input
    (app / "req.txt").write_text("flask==3\n")
    assert _key(bp, app) != named  # a whole file is


def test_input_globs_reach_nested_manifests_but_not_skipped_directories(tmp_path):
    """pallet/nodejs's inputs: every package.json (workspaces' start scripts), none inside a
    developer's own node_modules (copied with the source, replaced by the install)."""
    bp = _with_inputs(tmp_path, '[metadata.pallet]\ninputs = ["**/package.json"]\ninput-skip-dirs = ["node_modules"]\n')
    app = tmp_path / "app"
    (app / "packages" / "api").mkdir(parents=True)
    (app / "package.json").write_text('{"workspaces": ["packages/*"]}\n')
    (app / "packages" / "api" / "package.json").write_text('{"scripts": {"start": "node a.js"}}\n')
    first = _key(bp, app)
    (app / "packages" / "api" / "package.json").write_text('{"scripts": {"start": "node b.js"}}\n')
    second = _key(bp, app)
    assert second != first  # a workspace's manifest is read
    for where in (app / "node_modules" / "x", app / "packages" / "api" / "node_modules" / "y"):
        where.mkdir(parents=True)
        (where / "package.json").write_text('{"name": "dep"}\n')
    assert _key(bp, app) == second  # node_modules is not looked into, at any depth
    (app / "packages" / "api" / "server.js").write_text("code\n")
    assert _key(bp, app) == second  # nor is the app's code


def test_matching_lines_takes_whole_lines_of_a_multiline_match():
    import re

    from builder.lifecycle.inputs import matching_lines

    rx = re.compile(r"^app\s*=", re.M)
    assert matching_lines("x = 1\napp\n= Flask()\ny = 2\n", rx) == ["app\n= Flask()"]
    assert matching_lines("app = 1\nb = 2\napp=3", rx) == ["app = 1", "app=3"]


def test_python_buildpacks_entry_regex_agrees_with_its_start_command_logic(tmp_path):
    """The buildpack.toml line filter must see every line pyapp.py's entry detection reads."""
    import importlib.util
    import re

    root = Path(__file__).resolve().parent.parent / "buildpacks" / "python"
    spec = importlib.util.spec_from_file_location("pyapp_under_test", root / "lib" / "pyapp.py")
    pyapp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pyapp)  # type: ignore[union-attr]
    bp = load(root)
    lines = dict(bp.metadata["pallet"]["input-lines"])
    assert {"*.py", "*/wsgi.py", "*/main.py", "*/__init__.py"} <= set(lines)
    texts = ["app = Flask(__name__)\n", "application = get_wsgi_application()\n", "app: Flask = Flask(x)\n",
             "def app():\n    pass\n", "  app = 1\n", "apps = []\n", "application=1", "x = 1\n", "",
             "from myapp import app\n", "from main import app as application\n", "from .web import (app)\n",
             "from flask import Flask\n", "from app import views\n", "def create_app(config=None):\n",
             "async def make_app():\n", "def create_apps():\n", "    def create_app():\n",
             "api = FastAPI()\n", "server: Flask = flask.Flask(__name__)\n", "router = APIRouter()\n",
             "api = falcon.asgi.App()\n", "    api = FastAPI()\n", "app = Dash(__name__)\nserver = app.server\n",
             "server = app.server  # for gunicorn\n"]
    # What decides the web process is what the line filter sees (it may see more: a rerun, no harm).
    for rx in set(lines.values()):
        compiled = re.compile(rx, re.M)
        for text in texts:
            path = tmp_path / "entry.py"
            path.write_text(text)
            if pyapp._defines_app(path) is not None:
                assert compiled.search(text), text
    for text, attr in [("from myapp import app\n", "app"), ("from main import app as application\n", "application"),
                       ("def create_app(c=None):\n", "create_app()"), ("from app import views\n", None),
                       ("def create_apps():\n", None), ("from x import app as flask_app\n", None),
                       ("api = FastAPI(title='x')\n", "api"), ("server: Flask = flask.Flask(__name__)\n", "server"),
                       ("router = APIRouter()\n", None), ("    api = FastAPI()\n", None),
                       ("api = FastAPI()\ndef create_app():\n", "api"),
                       ("app = Dash(__name__)\nserver = app.server  # gunicorn app:server\n", "server")]:
        (tmp_path / "entry.py").write_text(text)
        assert pyapp._defines_app(tmp_path / "entry.py") == attr, text


@pytest.mark.parametrize("files,first", [
    (["hugo.toml", "content/_index.md"], "the app looks like a Hugo site's source (hugo.toml), which must be built into "
                                         "HTML first: run `hugo` and build its output (pallet build ./public: a static "
                                         "site, served by pallet-static)"),
    (["config.toml", "layouts/index.html"], "a Hugo site's source (config.toml)"),
    (["_config.yml", "Gemfile", "index.md"], "a Jekyll site's source (_config.yml), which must be built into HTML first: "
                                             "run `jekyll build` and build its output (pallet build ./_site"),
    (["mkdocs.yml", "docs/index.md"], "a MkDocs site's source (mkdocs.yml)"),
    (["config.toml", "main.rs"], None),        # a config.toml alone says nothing
    (["Gemfile", "app.rb"], "a Ruby app (Gemfile)"),
    # a monorepo: the apps one directory down are named, and how to build one
    (["README.md", "api/go.mod", "api/main.go", "frontend/index.html", "worker/Dockerfile", ".git/config",
      "node_modules/x/package.json", "web/package.json"],
     "nothing to build at the top, but one directory down: api/ (Go: go.mod), frontend/ (a static site: index.html), "
     "web/ (Node.js: package.json); build each on its own (pallet build ./api)"),
])
def test_a_static_site_generators_source_is_named_with_how_to_build_it(tmp_path, files, first):
    from builder.lifecycle.otherruntimes import hint

    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    said = hint(tmp_path)
    assert (first in said) if first else said.endswith("(pallet's built-in buildpacks build Python, Node.js, Go, "
                                                       "static sites, shell scripts and Procfile apps)"), said
