"""PEP 440 version ordering (PyPI), by the ``packaging`` library: pip's own rules (epochs,
pre-, post- and dev-releases, local versions), not a hand-written copy of them. Pure."""

from __future__ import annotations

from packaging.version import InvalidVersion as _Invalid
from packaging.version import Version


class InvalidVersion(ValueError):
    """Not a PEP 440 version."""


def parse(text: str) -> Version:
    try:
        return Version(text.strip())
    except _Invalid:
        raise InvalidVersion(f"not a PEP 440 version: {text!r}") from None


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with, or after ``b``; raises InvalidVersion."""
    va, vb = parse(a), parse(b)
    return (va > vb) - (va < vb)
