"""OSV records (https://ossf.github.io/osv-schema/): reading them, apart from matching them.

``parse_record(doc)`` is pure: one record (a JSON object) to an ``Advisory``, keeping only what
matching and reporting need: id, aliases, summary, severity, and per affected package its
ecosystem, name, version ranges and listed versions. ``load(path)`` reads a directory of
``.json`` files (searched recursively) or a ``.zip`` of them, as osv.dev publishes one per
ecosystem (``Debian/all.zip``); a file that is not an OSV record is an error naming it, since a
silently skipped advisory is a missed vulnerability.

Severity: the record's own label when it has one (``database_specific.severity``, as GitHub's
records carry ``HIGH``/``MODERATE``; or the affected package's ``ecosystem_specific`` /
``database_specific`` ``severity`` or Debian's ``urgency``), else the rating of the highest CVSS
score among ``severity`` vectors (computed by the ``cvss`` library, the Red Hat product-security
team's implementation of the FIRST specifications), else unknown.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from builder import jsonsafe
from builder.inputfile import open_input, read_bounded, read_input
from builder.supply.errors import SupplyError

#: Severity levels, lowest first; ``unknown`` is a record that states none.
SEVERITIES = ("unknown", "none", "low", "medium", "high", "critical")
_SEVERITY_WORDS = {"none": "none", "negligible": "low", "unimportant": "low", "low": "low", "moderate": "medium",
                   "medium": "medium", "important": "high", "high": "high", "critical": "critical"}


class AdvisoryError(SupplyError):
    """Advisories that cannot be read."""


@dataclass(frozen=True)
class Range:
    type: str                                  # ECOSYSTEM, SEMVER (GIT ranges are not matched)
    events: tuple[tuple[str, str], ...]        # ("introduced"|"fixed"|"last_affected"|"limit", version)


@dataclass(frozen=True)
class Affected:
    ecosystem: str                             # as OSV writes it: "Debian:12", "PyPI", "npm", "Go"
    name: str
    ranges: tuple[Range, ...] = ()
    versions: frozenset[str] = frozenset()
    severity: str | None = None                # a per-package label, if the record gives one


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    severity: str = "unknown"                  # one of SEVERITIES
    affected: tuple[Affected, ...] = field(default=())
    withdrawn: bool = False


def severity_rank(level: str) -> int:
    try:
        return SEVERITIES.index(level)
    except ValueError:
        raise AdvisoryError(f"unknown severity {level!r} (one of: {', '.join(SEVERITIES[1:])})") from None


def _word(value: object) -> str | None:
    if isinstance(value, str):
        return _SEVERITY_WORDS.get(value.strip().lower())
    return None


def _cvss_rating(vector: str) -> str | None:
    try:
        import cvss
    except ImportError:  # pragma: no cover - a dependency; without it, unknown
        return None
    try:
        if vector.startswith("CVSS:4"):
            return _word(cvss.CVSS4(vector).severity)
        if vector.startswith("CVSS:3"):
            return _word(cvss.CVSS3(vector).severities()[0])
        score = float(cvss.CVSS2(vector).base_score)
    except Exception:  # the library raises its own error types for a bad vector
        return None
    return "high" if score >= 7.0 else "medium" if score >= 4.0 else "low" if score > 0 else "none"


def _severity(doc: dict[str, Any]) -> str:
    own = _word((doc.get("database_specific") or {}).get("severity")) if isinstance(
        doc.get("database_specific"), dict) else None
    if own:
        return own
    best: str | None = None
    for item in doc.get("severity") if isinstance(doc.get("severity"), list) else ():
        if isinstance(item, dict) and isinstance(item.get("score"), str):
            rating = _cvss_rating(item["score"].strip())
            if rating and (best is None or SEVERITIES.index(rating) > SEVERITIES.index(best)):
                best = rating
    return best or "unknown"


def _affected_severity(item: dict[str, Any]) -> str | None:
    for key in ("ecosystem_specific", "database_specific"):
        extra = item.get(key)
        if isinstance(extra, dict):
            found = _word(extra.get("severity")) or _word(extra.get("urgency"))
            if found:
                return found
    return None


def _ranges(item: dict[str, Any], where: str) -> tuple[Range, ...]:
    out = []
    for r in _list(item, "ranges", where):
        if not isinstance(r, dict) or not isinstance(r.get("events"), list):
            raise AdvisoryError(f"{where}: a range without events")
        events = []
        for ev in r["events"]:
            if not isinstance(ev, dict) or len(ev) != 1:
                raise AdvisoryError(f"{where}: a range event must have exactly one of introduced, fixed, "
                                    "last_affected, limit")
            (kind, version), = ev.items()
            if kind not in ("introduced", "fixed", "last_affected", "limit") or not isinstance(version, str):
                raise AdvisoryError(f"{where}: unknown range event {kind!r}")
            events.append((kind, version))
        out.append(Range(str(r.get("type") or ""), tuple(events)))
    return tuple(out)


def _list(doc: dict[str, Any], key: str, where: str) -> list[Any]:
    """``doc[key]``, a list (none: empty); a record giving another type is refused, not iterated
    (a string's characters as aliases, an int as a TypeError traceback)."""
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise AdvisoryError(f"{where}: {key!r} is not a list")
    return value


def parse_record(doc: Any, where: str = "record") -> Advisory:
    """An ``Advisory`` from one OSV record (already parsed JSON). Pure."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
        raise AdvisoryError(f"{where}: not an OSV record (no 'id')")
    where = f"{where} ({doc['id']})" if doc["id"] not in where else where
    affected = []
    for item in _list(doc, "affected", where):
        if not isinstance(item, dict):
            raise AdvisoryError(f"{where}: an 'affected' entry is not an object")
        package = item.get("package")
        if not isinstance(package, dict):
            continue  # affects a git repository only (no package): nothing in an image to match
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if not isinstance(ecosystem, str) or not isinstance(name, str):
            raise AdvisoryError(f"{where}: an affected package needs an ecosystem and a name")
        versions = _list(item, "versions", where)
        affected.append(Affected(ecosystem, name, _ranges(item, where),
                                 frozenset(v for v in versions if isinstance(v, str)), _affected_severity(item)))
    aliases = tuple(a for a in _list(doc, "aliases", where) if isinstance(a, str))
    return Advisory(doc["id"], aliases, str(doc.get("summary") or ""), _severity(doc), tuple(affected),
                    withdrawn=bool(doc.get("withdrawn")))


def _decode(data: bytes, where: str) -> Any:
    try:
        return jsonsafe.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdvisoryError(f"{where}: not JSON ({exc})") from None


#: The most one advisories file (or zip member) may hold: OSV records are KBs; one .json of a
#: whole ecosystem's records, tens of MB.
MAX_RECORD_FILE = 512 << 20


def _records(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(".json"):
                    full = Path(dirpath) / name
                    yield str(full), read_input(full, "advisory", MAX_RECORD_FILE)
        return
    with open_input(path, "advisories file") as f:  # a FIFO or /dev/zero: refused, not read
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as z:
                for info in sorted(z.infolist(), key=lambda i: i.filename):
                    if not info.is_dir() and info.filename.endswith(".json"):
                        with z.open(info) as member:  # a zip bomb declares a small size: what is read counts
                            yield f"{path}:{info.filename}", read_bounded(
                                member, f"{path}:{info.filename}", MAX_RECORD_FILE)
            return
        if path.suffix == ".json":
            f.seek(0)
            yield str(path), read_bounded(f, str(path), MAX_RECORD_FILE)
            return
    raise AdvisoryError(f"{path}: advisories are a directory of OSV .json files, a .zip of them, or one .json")


def load(path: str | os.PathLike[str]) -> list[Advisory]:
    """Every advisory under ``path`` (withdrawn ones left out)."""
    p = Path(path)
    if not p.exists():
        raise AdvisoryError(f"{p}: no such file or directory")
    out = []
    try:
        for where, data in _records(p):
            doc = _decode(data, where)
            for i, record in enumerate(doc if isinstance(doc, list) else [doc]):
                adv = parse_record(record, where if not isinstance(doc, list) else f"{where}[{i}]")
                if not adv.withdrawn:
                    out.append(adv)
    except OSError as exc:
        raise AdvisoryError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except zipfile.BadZipFile as exc:
        raise AdvisoryError(f"{p}: a damaged zip ({exc})") from None
    return out
