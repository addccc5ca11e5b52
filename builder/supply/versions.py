"""Which version order an ecosystem uses: one place for audit, advisories, policy and SBOM.

``deb`` (Debian, dpkg's order: ``debversion``), ``pypi`` (PEP 440: ``pepversion``), ``npm`` and
``golang`` (Semantic Versioning: ``semver``). Ecosystems are named as purl types, which is how
the SBOM names them; ``ecosystem_of_purl`` maps a purl to one.
"""

from __future__ import annotations

from functools import cmp_to_key
from typing import Any, Callable

from builder.supply import debversion, pepversion, semver

DEB, PYPI, NPM, GOLANG = "deb", "pypi", "npm", "golang"


class InvalidVersion(ValueError):
    """A version the ecosystem's order cannot place."""


def _deb(a: str, b: str) -> int:
    return debversion.compare(a, b)


def _pep(a: str, b: str) -> int:
    try:
        return pepversion.compare(a, b)
    except pepversion.InvalidVersion as exc:
        raise InvalidVersion(str(exc)) from None


def _sem(a: str, b: str) -> int:
    try:
        return semver.compare(a, b)
    except semver.InvalidVersion as exc:
        raise InvalidVersion(str(exc)) from None


_COMPARE: dict[str, Callable[[str, str], int]] = {DEB: _deb, PYPI: _pep, NPM: _sem, GOLANG: _sem}


def comparator(ecosystem: str) -> Callable[[str, str], int]:
    """``compare(a, b)`` -> -1/0/1 for ``ecosystem``; dpkg's order for one we do not know (it
    orders dotted numbers sensibly and never fails)."""
    return _COMPARE.get(ecosystem, _deb)


def compare(ecosystem: str, a: str, b: str) -> int:
    return comparator(ecosystem)(a, b)


def sort_key(ecosystem: str) -> Callable[[str], Any]:
    return cmp_to_key(comparator(ecosystem))


def ecosystem_of_purl(purl: str) -> str | None:
    """``deb``, ``pypi``, ``npm``, ``golang`` (or another purl type) of ``pkg:TYPE/...``."""
    if not purl.startswith("pkg:"):
        return None
    return purl[4:].split("/", 1)[0].lower() or None
