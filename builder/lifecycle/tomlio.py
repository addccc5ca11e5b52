"""TOML in and out, with errors that name the file (and the buildpack) a user must fix."""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any


from builder.errors import PalletError


class TomlError(PalletError):
    """A TOML file that cannot be read or does not say what it must."""


#: The most a TOML file pallet reads may hold: descriptors and metadata are KBs.
MAX_TOML = 16 << 20


def read(path: Path, owner: str | None = None, *, follow_symlinks: bool = True) -> dict[str, Any]:
    """Parse ``path``; TomlError ("<owner>: <path>: ...") if it is missing or malformed.
    ``follow_symlinks=False`` for files a buildpack wrote in its sandbox (a link there would
    name a host file here)."""
    import tomllib  # here: its import is most of a memo hit's start-up otherwise

    from builder.errors import InputFileError
    from builder.inputfile import read_input

    where = f"{owner}: {path}" if owner else str(path)
    try:
        # a regular file only, bounded: buildpacks write some of these files (launch.toml, a
        # layer's toml) and an app brings project.toml: a FIFO there blocked pallet for ever
        return tomllib.loads(read_input(path, "TOML file", MAX_TOML, follow_symlinks=follow_symlinks).decode("utf-8"))
    except FileNotFoundError:
        raise TomlError(f"{where}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise TomlError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per level of nested arrays and tables
        raise TomlError(f"{where}: invalid TOML: nested too deeply") from None
    except InputFileError as exc:
        raise TomlError(f"{where}: cannot read: {str(exc).removeprefix(f'{path}: ')}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TomlError(f"{where}: cannot read: {exc}") from None


def read_optional(path: Path, owner: str | None = None, *, follow_symlinks: bool = True) -> dict[str, Any] | None:
    present = path.exists() if follow_symlinks else os.path.lexists(path)
    return read(path, owner, follow_symlinks=follow_symlinks) if present else None


def value_at(data: dict[str, Any], dotted: str, where: str) -> Any:
    """The value at ``dotted`` (``io.pallet.stack``) of a parsed TOML document, None when a table
    on the way is missing; TomlError when one is no table (``[io] pallet = 5`` was an
    AttributeError traceback where a reader walked it with ``.get``)."""
    value: Any = data
    walked: list[str] = []
    for key in dotted.split("."):
        if not isinstance(value, dict):
            raise TomlError(f"{where}: [{'.'.join(walked)}] must be a table")
        walked.append(key)
        value = value.get(key)
        if value is None:
            return None
    return value


def dumps(data: dict[str, Any]) -> str:
    """TOML with arrays of tables as ``[[name]]`` sections, as the CNB lifecycle writes them.

    tomlkit rather than tomli-w: tomli-w writes arrays of tables inline, and buildpacks written
    in shell read plan files line by line (``greeting = "..."``), expecting the section form.
    """
    import tomlkit  # only writers need it; start-up time matters for a no-change build

    return tomlkit.dumps(data)


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(dumps(data))


def expect(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
           required: bool = True, default: Any = None) -> Any:
    """``table[key]`` if it has the right type; TomlError naming the field otherwise."""
    if key not in table:
        if required:
            raise TomlError(f"{where}: missing field '{key}'")
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,))):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise TomlError(f"{where}: field '{key}' must be {names}, not {type(value).__name__}")
    return value
