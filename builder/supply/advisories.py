"""Matching OSV advisories against the packages of an image. Pure (reading them is ``osv``).

``Index(advisories)`` files each affected package under (ecosystem, name) once, so matching an
image costs one dictionary look-up per package however many advisories there are. Versions
compare in the package's own ecosystem order (``versions``): dpkg's for Debian, PEP 440 for
PyPI, semver for npm and Go.

Debian's records name *source* packages (``pam``, not ``libpam0g``) and give source versions,
so a Debian binary package is matched by the source package and version the SBOM records for
it; the report still names the binary (what is installed) and its source.

A package is affected when its version is one the record lists, or falls in a range: OSV's
evaluation, events in version order, ``introduced`` turning it on and ``fixed`` (at or above)
or ``last_affected`` (above) turning it off. The fixed version reported is the lowest
``fixed`` above the installed version; none means the advisory has no fix yet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cmp_to_key
from typing import Any, Callable, Iterable

from builder.supply import purl as purlmod
from builder.supply import versions
from builder.supply.osv import Advisory, Affected, Range

#: OSV ecosystem (before any ":RELEASE") -> the purl type pallet's SBOM uses.
ECOSYSTEMS = {"Debian": versions.DEB, "PyPI": versions.PYPI, "npm": versions.NPM, "Go": versions.GOLANG}


@dataclass(frozen=True)
class Installed:
    """One package of an image, as the SBOM lists it."""

    name: str
    version: str
    purl: str
    source: str | None = None          # Debian: the source package it was built from
    source_version: str | None = None
    location: str = ""                 # where it lives: see ``audit`` (run image / app layers)


@dataclass(frozen=True)
class Finding:
    id: str
    aliases: tuple[str, ...]
    package: str
    source: str | None
    ecosystem: str                     # the OSV ecosystem of the record ("Debian:12")
    installed: str
    fixed: str | None
    severity: str
    purl: str
    location: str = ""
    summary: str = ""
    platform: str = ""                 # which image of a multi-platform one (an index) has it

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "aliases": list(self.aliases), "package": self.package,
                               "installed": self.installed, "fixed": self.fixed, "severity": self.severity,
                               "ecosystem": self.ecosystem, "purl": self.purl, "location": self.location}
        if self.platform:
            out["platform"] = self.platform
        if self.source and self.source != self.package:
            out["source"] = self.source
        if self.summary:
            out["summary"] = self.summary
        return out


def _norm(kind: str, name: str) -> str:
    if kind == versions.PYPI:
        return purlmod.pypi_name(name)
    if kind == versions.DEB:
        return name.lower()
    return name


def ecosystem_key(osv_ecosystem: str) -> tuple[str, str | None] | None:
    """("deb", "12") for ``Debian:12``, ("pypi", None) for ``PyPI``; None for one not matched."""
    base, _, release = osv_ecosystem.partition(":")
    kind = ECOSYSTEMS.get(base)
    return (kind, release or None) if kind else None


class Index:
    def __init__(self, advisories: Iterable[Advisory]) -> None:
        self.advisories = 0
        self.skipped_ecosystems: dict[str, int] = {}
        self._by_name: dict[tuple[str, str], list[tuple[Advisory, Affected, str | None]]] = {}
        self._memo: dict[tuple[int, str, str], tuple[bool, str | None]] = {}
        self._hits: dict[tuple[str, str, str, str | None, str | None], list[Finding]] = {}
        for adv in advisories:
            self.advisories += 1
            for aff in adv.affected:
                key = ecosystem_key(aff.ecosystem)
                if key is None:
                    self.skipped_ecosystems[aff.ecosystem] = self.skipped_ecosystems.get(aff.ecosystem, 0) + 1
                    continue
                kind, release = key
                self._by_name.setdefault((kind, _norm(kind, aff.name)), []).append((adv, aff, release))

    def match(self, packages: Iterable[Installed]) -> list[Finding]:
        """Every (advisory, package) pair where the package's version is affected, sorted."""
        out: dict[tuple[str, str], Finding] = {}
        for pkg in packages:
            # A fleet shares most packages: each is matched once, then only its location differs.
            key = (pkg.name, pkg.version, pkg.purl, pkg.source, pkg.source_version)
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = self._match_one(replace(pkg, location=""))
            for f in hits:
                out.setdefault((f.id, f.purl), replace(f, location=pkg.location) if pkg.location else f)
        return sorted(out.values(), key=lambda f: (f.package, f.id, f.purl))

    def _match_one(self, pkg: Installed) -> list[Finding]:
        try:
            kind, full_name, _, quals = purlmod.parse(pkg.purl)
        except ValueError:
            return []
        if kind == versions.DEB:
            name, version = pkg.source or pkg.name, pkg.source_version or pkg.version
            distro = quals.get("distro", "")
            release = distro.partition("-")[2] or None
        else:
            name, version, release = full_name or pkg.name, pkg.version, None
            if kind == versions.GOLANG and name == "stdlib":
                version = version.removeprefix("go").split(" ")[0]
        candidates = self._by_name.get((kind, _norm(kind, name)))
        if not candidates:
            return []
        found = []
        for adv, aff, adv_release in candidates:
            if adv_release and release and adv_release != release:
                continue  # a record for Debian 13 says nothing about a Debian 12 package
            affected, fixed = self._affected(aff, kind, version)
            if affected:
                found.append(Finding(adv.id, adv.aliases, pkg.name, name if kind == versions.DEB else None,
                                     aff.ecosystem, pkg.version, fixed, aff.severity or adv.severity, pkg.purl,
                                     pkg.location, adv.summary))
        return found

    def _affected(self, aff: Affected, kind: str, version: str) -> tuple[bool, str | None]:
        key = (id(aff), kind, version)
        if key not in self._memo:
            self._memo[key] = affected_by(aff, version, versions.comparator(kind))
        return self._memo[key]


def _sorted_events(rng: Range, cmp: Callable[[str, str], int]) -> list[tuple[str, str]]:
    def order(a: tuple[str, str], b: tuple[str, str]) -> int:
        if a[1] == b[1]:
            return 0
        if a[0] == "introduced" and a[1] == "0":
            return -1
        if b[0] == "introduced" and b[1] == "0":
            return 1
        return cmp(a[1], b[1])

    return sorted(rng.events, key=cmp_to_key(order))


def in_range(version: str, rng: Range, cmp: Callable[[str, str], int]) -> bool:
    """OSV's range evaluation for one version. Raises versions.InvalidVersion."""
    affected = False
    for kind, at in _sorted_events(rng, cmp):
        if kind == "introduced":
            if at == "0" or cmp(version, at) >= 0:
                affected = True
        elif kind == "fixed":
            if cmp(version, at) >= 0:
                affected = False
        elif kind == "last_affected":
            if cmp(version, at) > 0:
                affected = False
    return affected


def affected_by(aff: Affected, version: str, cmp: Callable[[str, str], int]) -> tuple[bool, str | None]:
    """(is ``version`` affected, the lowest fixed version above it)."""
    affected = version in aff.versions
    fixes: list[str] = []
    for rng in aff.ranges:
        if rng.type not in ("ECOSYSTEM", "SEMVER"):
            continue  # GIT ranges name commits, not package versions
        try:
            hit = in_range(version, rng, cmp)
            if hit or affected:
                fixes += [at for kind, at in rng.events if kind == "fixed" and cmp(at, version) > 0]
        except (versions.InvalidVersion, ValueError):
            continue
        affected = affected or hit
    if not affected:
        return False, None
    return True, min(fixes, key=cmp_to_key(cmp)) if fixes else None
