"""The command a Python project tool's named script runs: `pipenv run NAME` (Pipfile's [scripts])
and `pdm run NAME` ([tool.pdm.scripts]), for a Procfile line such as `web: pipenv run start`.

The run image has neither tool, so pallet/procfile writes the script's own command instead (the
project's environment is on the PATH). Usage: toolscript.py TOOL NAME [ARGS]; prints the command
(the Procfile's ARGS appended, as both tools append them) and exits 0, or exits 1 when NAME is no
script of the tool (it is a command: `pipenv run gunicorn`) and 4 when it is one whose running only
the tool knows (pdm's composite scripts, env_file, working_dir, a shared `_` table); any other
status (no tomllib: Python before 3.11) is a failure to read them.
"""
from __future__ import annotations

import re
import shlex
import sys
import tomllib

NOT_A_SCRIPT, ONLY_THE_TOOL = 3, 4
# pdm's `{args}` / `{args:default}` placeholder: where the arguments go instead of the end
ARGS_PLACEHOLDER = re.compile(r"\{args(?::([^}]*))?\}")


class OnlyTheTool(Exception):
    """A script the command line cannot stand in for."""


def read_toml(path: str) -> dict:
    """The file's TOML, or {} when it is missing or not TOML (the other buildpacks say so)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}


def call_command(target: str) -> str:
    """`pkg.mod:func` or `pkg.mod:func('x')` (a `call` script): python calling it, its result the
    exit status, as pdm and pipenv run it."""
    module, sep, expr = target.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", module) or not re.match(r"[A-Za-z_]\w*", expr):
        raise OnlyTheTool(target)
    if "(" not in expr:
        expr += "()"
    name = re.match(r"[A-Za-z_]\w*", expr).group(0)
    return shlex.join(["python", "-c", f"import sys; from {module} import {name}; sys.exit({expr})"])


def with_args(command: str, args: str) -> str:
    """ARGS put where pdm puts them: at `{args}` (its default when there are none), else the end."""
    if ARGS_PLACEHOLDER.search(command):
        return ARGS_PLACEHOLDER.sub(lambda m: args or (m.group(1) or ""), command).strip()
    return f"{command} {args}".strip()


def quote_around_args(word: str) -> str:
    """WORD quoted for a shell, its `{args}` placeholders left as they are (with_args fills them)."""
    pieces = re.split(f"({ARGS_PLACEHOLDER.pattern})", word)
    out, i = [], 0
    while i < len(pieces):
        if pieces[i]:
            out.append(shlex.quote(pieces[i]))
        if i + 1 < len(pieces):
            out.append(pieces[i + 1])
        i += 3  # text, placeholder, its default group
    return "".join(out) or "''"


def script_command(script: object) -> str:
    """The command line of one script's definition (a string is a `cmd` script)."""
    if isinstance(script, str):
        return script
    if not isinstance(script, dict) or set(script) - {"cmd", "shell", "call", "env", "help", "keep_going"}:
        raise OnlyTheTool(script)
    kinds = [k for k in ("cmd", "shell", "call") if k in script]
    if len(kinds) != 1:
        raise OnlyTheTool(script)
    value = script[kinds[0]]
    if kinds[0] == "call" and isinstance(value, str):
        command = call_command(value)
    elif kinds[0] == "cmd" and isinstance(value, list) and all(isinstance(w, str) for w in value):
        command = " ".join(quote_around_args(w) for w in value)
    elif isinstance(value, str):
        command = value
    else:
        raise OnlyTheTool(script)
    env = script.get("env", {})
    if not isinstance(env, dict) or not all(re.fullmatch(r"[A-Za-z_]\w*", k) for k in env):
        raise OnlyTheTool(script)
    return " ".join([*(f"{k}={shlex.quote(str(v))}" for k, v in env.items()), command])


def scripts_of(tool: str) -> dict:
    """The tool's table of scripts in this app."""
    if tool == "pipenv":
        scripts = read_toml("Pipfile").get("scripts", {})
    else:
        scripts = read_toml("pyproject.toml").get("tool", {}).get("pdm", {}).get("scripts", {})
    return scripts if isinstance(scripts, dict) else {}


def main(argv: list[str]) -> int:
    tool, name, args = argv[0], argv[1], " ".join(argv[2:])
    try:
        scripts = scripts_of(tool)
        if name not in scripts:
            return NOT_A_SCRIPT
        if tool == "pdm" and "_" in scripts:  # options every script shares: the tool's to apply
            raise OnlyTheTool("_")
        print(with_args(script_command(scripts[name]), args))
    except OnlyTheTool:
        return ONLY_THE_TOOL
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
