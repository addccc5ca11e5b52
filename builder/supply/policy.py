"""Verify policies: a TOML file that says what an image needs before it may be deployed.

    # policy.toml
    keys = ["keys/release.pub"]                    # trusted public keys (relative to this file)
    builder_id = "https://ci.example.com/pallet"   # provenance must come from this builder
    source_repositories = ["https://github.com/acme/*"]  # ... and name a matching source (globs)
    require_sbom = true                            # an SBOM must be attached
    [vulnerabilities]                              # advisories that keep it out (see ``vulnpolicy``)
    refuse = "high"
    allow = [{ id = "CVE-...", reason = "...", expires = 2027-01-31 }]

Only ``keys`` is required. A field we do not know is an error naming it: a typo must never
turn a check off. ``evaluate`` is pure: it takes the evidence ``verify.gather`` collected and
returns every reason the image fails (none: it passes).
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from builder.inputfile import read_input
from builder.supply import keys as keymod
from builder.supply import provenance, vulnpolicy
from builder.supply.vulnpolicy import VulnerabilityRule
from builder.supply.errors import PolicyError
from builder.supply.keys import TrustedKey
from builder.supply.verify import Evidence, ValidStatement, signature_reasons

FIELDS = ("keys", "builder_id", "source_repositories", "require_sbom", "vulnerabilities")
PROVENANCE_TYPES = (provenance.PREDICATE_TYPE, "https://slsa.dev/provenance/v0.2")

MAX_POLICY = 1 << 20


@dataclass(frozen=True)
class Policy:
    path: str
    keys: tuple[TrustedKey, ...]
    builder_id: str | None = None
    source_repositories: tuple[str, ...] = ()
    require_sbom: bool = False
    vulnerabilities: VulnerabilityRule | None = None

    @property
    def needs_provenance(self) -> bool:
        return bool(self.builder_id or self.source_repositories)

    def to_json(self) -> dict[str, Any]:
        out = {"path": self.path, "keys": [k.source for k in self.keys], "builderId": self.builder_id,
               "sourceRepositories": list(self.source_repositories), "requireSbom": self.require_sbom}
        if self.vulnerabilities is not None:
            out["vulnerabilities"] = self.vulnerabilities.to_json()
        return out


def parse(text: str, path: str = "policy") -> dict[str, Any]:
    """The policy's fields, checked for names and types (keys still as paths). Pure."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise PolicyError(f"{path}: not valid TOML (nested too deeply)") from None
    unknown = [k for k in doc if k not in FIELDS]
    if unknown:
        raise PolicyError(f"{path}: unknown field {unknown[0]!r} (known fields: {', '.join(FIELDS)})")
    keys = doc.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise PolicyError(f"{path}: 'keys' must be a non-empty list of public key file paths")
    builder_id = doc.get("builder_id")
    if builder_id is not None and (not isinstance(builder_id, str) or not builder_id):
        raise PolicyError(f"{path}: 'builder_id' must be a non-empty string")
    repos = doc.get("source_repositories", [])
    if not isinstance(repos, list) or not all(isinstance(r, str) and r for r in repos):
        raise PolicyError(f"{path}: 'source_repositories' must be a list of strings (globs)")
    require_sbom = doc.get("require_sbom", False)
    if not isinstance(require_sbom, bool):
        raise PolicyError(f"{path}: 'require_sbom' must be true or false")
    vulns = vulnpolicy.parse(doc["vulnerabilities"], path) if "vulnerabilities" in doc else None
    return {"keys": keys, "builder_id": builder_id, "source_repositories": repos, "require_sbom": require_sbom,
            "vulnerabilities": vulns}


def load(path: str | os.PathLike[str]) -> Policy:
    """Read a policy file and the public keys it names."""
    p = Path(path)
    try:
        text = read_input(p, "policy", MAX_POLICY).decode("utf-8-sig")   # a BOM, as Notepad saves it
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read the policy ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{p}: not UTF-8 text") from None
    fields = parse(text, str(p))
    trusted = []
    for name in fields["keys"]:
        key_path = Path(name) if os.path.isabs(name) else p.parent / name
        trusted.append(keymod.read_public_key(key_path))
    return Policy(str(p), tuple(trusted), fields["builder_id"], tuple(fields["source_repositories"]),
                  fields["require_sbom"], fields["vulnerabilities"])


def build_provenances(evidence: Evidence, _path: str = "", _allowed: set[str] | None = None
                      ) -> tuple[list[ValidStatement], list[str]]:
    """The build provenances that vouch for the image: its own, and through each trusted rebase
    statement whose link holds, its original's (recursively: a chain of rebases); and why each
    broken link was not followed. Past a rebase, only the provenance envelopes that rebase
    recorded seeing on the original count (``_allowed``), not one attached later. Pure."""
    from builder.supply import rebaseprov

    here = _path or evidence.digest
    found = [s for s in evidence.statements
             if s.predicate_type in PROVENANCE_TYPES and not rebaseprov.is_rebase(s.statement)
             and (_allowed is None or s.envelope in _allowed)]
    problems: list[str] = []
    for link in evidence.links:
        what = f"the rebase provenance of {here} ({link.statement.where})"
        if _allowed is not None and link.statement.envelope not in _allowed:
            continue  # a rebase of the original that the later rebase did not start from
        if link.problems or link.evidence is None:
            problems += [f"{what} is refused: {p}" for p in link.problems or ["its original was not read"]]
            continue
        recorded = rebaseprov.original_provenance_of(link.statement.statement) or None
        sub_found, sub_problems = build_provenances(link.evidence, f"{here} <- {link.original}", recorded)
        if not sub_found:
            problems.append(f"{what} names the original {link.original}, which has no build provenance signed by a "
                            "trusted key" + (" among those the rebase recorded" if recorded else ""))
            problems += sub_problems + [f"{link.original}: {p}" for p in link.evidence.attestation_problems]
        found += [s if s.where.startswith("rebase of ") else replace(s, where=f"rebase of {link.original}: {s.where}")
                  for s in sub_found]
    return found, problems


def evaluate(policy: Policy, evidence: Evidence, vulnerabilities: vulnpolicy.Outcome | None = None
             ) -> list[str]:
    """Every reason the image fails the policy; empty when it passes. Pure. ``vulnerabilities``:
    the policy's vulnerability rule applied to the image's advisories (``vulnerability_outcome``)."""
    reasons = signature_reasons(evidence, list(policy.keys))
    if policy.needs_provenance:
        statements, chain_problems = build_provenances(evidence)
        if not statements:
            reasons.append(f"no SLSA provenance attestation signed by a trusted key is attached to {evidence.digest}"
                           + (", nor a rebase provenance that chains to one" if evidence.links else ""))
            reasons += chain_problems
            reasons += evidence.attestation_problems
        else:
            if policy.builder_id:
                ids = [provenance.builder_id_of(s.statement) for s in statements]
                if policy.builder_id not in ids:
                    got = ", ".join(sorted({i or "(none)" for i in ids}))
                    reasons.append(f"the provenance builder id is {got}; the policy requires {policy.builder_id}")
            if policy.source_repositories:
                repos = [provenance.source_repository_of(s.statement) for s in statements]
                if not any(r and any(fnmatch.fnmatchcase(r, g) for g in policy.source_repositories) for r in repos):
                    got = ", ".join(sorted({r or "no repository (built from a directory)" for r in repos}))
                    reasons.append(f"the provenance source is {got}; the policy allows only "
                                   f"{', '.join(policy.source_repositories)}")
    if policy.require_sbom and not evidence.sboms:
        reasons.append(f"no SBOM is attached to {evidence.digest}, and the policy requires one")
        reasons += evidence.sbom_problems
    if policy.vulnerabilities is not None:
        if vulnerabilities is None:
            reasons.append("the policy refuses images by advisories, and none were given (--advisories PATH)")
        else:
            reasons += vulnerabilities.reasons
    return reasons


def vulnerability_outcome(policy: Policy, findings: list[Any] | None,
                          today: datetime.date | None = None) -> vulnpolicy.Outcome | None:
    """The policy's vulnerability rule applied to an image's findings (None: no rule, or no
    advisories given). Pure apart from reading today's date when not given."""
    if policy.vulnerabilities is None or findings is None:
        return None
    return vulnpolicy.evaluate(policy.vulnerabilities, findings,
                               today or datetime.datetime.now(datetime.timezone.utc).date())
