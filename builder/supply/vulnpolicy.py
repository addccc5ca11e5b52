"""The ``[vulnerabilities]`` section of a verify policy: which advisories keep an image out.

    [vulnerabilities]
    refuse = "high"            # refuse an image with an advisory at or above this severity that has a fix
    unknown_severity = "high"  # how to rank an advisory that states no severity (default: critical)
    allow = [                  # accepted risks: an advisory id or alias, why, and until when
      { id = "CVE-2024-22365", reason = "PAM is not reachable in these apps", expires = 2027-01-31 },
    ]

An advisory with no fixed version is not refused (nothing to deploy instead); it is reported.
An allow-list entry past its expiry date no longer applies, and the refusal says it expired.
An advisory that states no severity ranks as ``unknown_severity``: by default it is refused like
a critical one, so that a record without a score (many distribution advisories) cannot slip
through. ``parse`` and ``evaluate`` are pure; today's date is an argument.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Iterable

from builder.supply.errors import PolicyError
from builder.supply.osv import SEVERITIES

FIELDS = ("refuse", "unknown_severity", "allow")
LEVELS = SEVERITIES[2:]  # low, medium, high, critical


@dataclass(frozen=True)
class Allowed:
    id: str
    reason: str
    expires: datetime.date

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason, "expires": self.expires.isoformat()}


@dataclass(frozen=True)
class VulnerabilityRule:
    refuse: str                    # a level of LEVELS
    unknown_severity: str = "critical"
    allow: tuple[Allowed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"refuse": self.refuse, "unknownSeverity": self.unknown_severity,
                "allow": [a.to_json() for a in self.allow]}


def _level(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.lower() not in LEVELS:
        raise PolicyError(f"{where} must be one of {', '.join(LEVELS)}")
    return value.lower()


def parse(section: Any, path: str) -> VulnerabilityRule:
    """The rule from the policy's ``[vulnerabilities]`` table (already TOML-decoded). Pure."""
    if not isinstance(section, dict):
        raise PolicyError(f"{path}: 'vulnerabilities' must be a table")
    unknown = [k for k in section if k not in FIELDS]
    if unknown:
        raise PolicyError(f"{path}: unknown field 'vulnerabilities.{unknown[0]}' (known: {', '.join(FIELDS)})")
    if "refuse" not in section:
        raise PolicyError(f"{path}: 'vulnerabilities.refuse' is required (one of {', '.join(LEVELS)})")
    refuse = _level(section["refuse"], f"{path}: 'vulnerabilities.refuse'")
    unknown_severity = _level(section.get("unknown_severity", "critical"), f"{path}: 'vulnerabilities.unknown_severity'")
    entries = section.get("allow", [])
    if not isinstance(entries, list):  # 'allow = 5' was a TypeError traceback, a string its characters
        raise PolicyError(f"{path}: 'vulnerabilities.allow' must be a list of tables {{ id, reason, expires }}")
    allow = []
    for i, entry in enumerate(entries, 1):
        where = f"{path}: vulnerabilities.allow entry {i}"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where} must be a table {{ id, reason, expires }}")
        extra = [k for k in entry if k not in ("id", "reason", "expires")]
        if extra:
            raise PolicyError(f"{where}: unknown field {extra[0]!r} (known: id, reason, expires)")
        if not isinstance(entry.get("id"), str) or not entry["id"]:
            raise PolicyError(f"{where} needs an 'id' (an advisory id or alias)")
        if not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
            raise PolicyError(f"{where} ({entry['id']}) needs a 'reason': an accepted risk is written down")
        expires = entry.get("expires")
        if isinstance(expires, datetime.datetime):
            expires = expires.date()
        if not isinstance(expires, datetime.date):
            raise PolicyError(f"{where} ({entry['id']}) needs an 'expires' date (a TOML date: 2027-01-31)")
        allow.append(Allowed(entry["id"], entry["reason"].strip(), expires))
    return VulnerabilityRule(refuse, unknown_severity, tuple(allow))


@dataclass
class Outcome:
    refused: list[Any]                       # advisories.Finding
    allowed: list[tuple[Any, Allowed]]
    no_fix: list[Any]
    below: list[Any]                         # under the severity bar
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"refused": [f.to_json() for f in self.refused],
                "allowed": [{**f.to_json(), "allowedBy": a.to_json()} for f, a in self.allowed],
                "noFix": [f.to_json() for f in self.no_fix], "belowSeverity": [f.to_json() for f in self.below]}


def _rank(severity: str, rule: VulnerabilityRule) -> int:
    level = rule.unknown_severity if severity == "unknown" else severity
    return SEVERITIES.index(level) if level in SEVERITIES else SEVERITIES.index(rule.unknown_severity)


def evaluate(rule: VulnerabilityRule, findings: Iterable[Any], today: datetime.date) -> Outcome:
    """Which findings refuse the image, and why; which the allow-list accepts. Pure."""
    out = Outcome([], [], [], [], [])
    bar = SEVERITIES.index(rule.refuse)
    for f in findings:
        if _rank(f.severity, rule) < bar:
            out.below.append(f)
            continue
        if not f.fixed:
            out.no_fix.append(f)
            continue
        names = {f.id, *f.aliases}
        entries = [a for a in rule.allow if a.id in names]
        current = [a for a in entries if a.expires >= today]
        if current:
            out.allowed.append((f, current[0]))
            continue
        out.refused.append(f)
        aliases = f" ({', '.join(f.aliases)})" if f.aliases else ""
        severity = f.severity if f.severity != "unknown" else f"unknown severity, ranked {rule.unknown_severity}"
        why = (f"advisory {f.id}{aliases} [{severity}] affects {f.package} {f.installed} in the {f.location or 'image'}"
               f"; fixed in {f.fixed}; the policy refuses {rule.refuse} and above")
        if entries:
            latest = max(entries, key=lambda a: a.expires)
            why += f" (its allow-list entry expired on {latest.expires.isoformat()}: {latest.reason})"
        out.reasons.append(why)
    return out
