"""Sizes (``10G``, ``500MB``, ``1.5GiB``) and durations (``90m``, ``72h``, ``7d``) as flags and
environment variables give them; binary units, as ``du -h`` and Docker's ``--keep-storage``."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """Bytes; ValueError (saying what is expected) for anything else."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size: give a number with an optional unit K, M, G or T (e.g. 10G)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def parse_duration(text: str) -> float:
    """Seconds, from one or more NUMBER+UNIT parts (``1d12h``); ValueError for anything else."""
    stripped = text.strip()
    parts = _DURATION.findall(stripped)
    if not parts or _DURATION.sub("", stripped).strip():
        raise ValueError(f"{text!r} is not a duration: give a number and a unit s, m, h, d or w (e.g. 72h, 7d)")
    return sum(float(n) * _SECONDS[u.lower()] for n, u in parts)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
