"""App dependencies as installed: Python distributions and npm packages, from their own files. Pure.

- Python: ``*.dist-info/METADATA`` (and ``*.egg-info/PKG-INFO``) wherever buildpacks installed
  them: name, version, licence (``License-Expression``, else ``License``, else the licence
  classifiers).
- npm: each ``node_modules/[@scope/]name/package.json`` (what is really there), plus
  ``package-lock.json`` / ``node_modules/.package-lock.json`` (lockfile v1, v2 and v3) for
  packages not found on disk (dev-only entries of a lockfile are left out: ``npm ci
  --omit=dev`` does not install them).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from email.parser import HeaderParser
from email.policy import compat32


from builder import jsonsafe
_NODE_PKG = re.compile(r"(?:^|/)node_modules/((?:@[^/.][^/]*/)?[^/.@][^/]*)/package\.json$")
_DIST_INFO = re.compile(r"(?:^|/)[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO)$")


@dataclass(frozen=True)
class AppPackage:
    ecosystem: str                 # "pypi" or "npm"
    name: str
    version: str
    licenses: tuple[str, ...] = ()
    expression: str | None = None  # an SPDX expression, when the package states one
    location: str = ""


def is_python_metadata(path: str) -> bool:
    return bool(_DIST_INFO.search(path))


def is_npm_package_json(path: str) -> bool:
    return bool(_NODE_PKG.search(path))


def is_npm_lockfile(path: str) -> bool:
    base = posixpath.basename(path)
    if base == ".package-lock.json":
        return posixpath.basename(posixpath.dirname(path)) == "node_modules"
    return base == "package-lock.json" and "/node_modules/" not in f"/{path}"


def python_package(data: bytes, location: str) -> AppPackage | None:
    # METADATA is UTF-8 (core metadata spec): read as text, so a header with non-ASCII text (a
    # licence naming its authors) is a str, not the email.header.Header bytes parsing gives.
    msg = HeaderParser(policy=compat32).parsestr(data.decode("utf-8", "replace"))
    name, version = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
    if not name or not version:
        return None
    expression = (msg.get("License-Expression") or "").strip() or None
    licenses: list[str] = []
    lic = (msg.get("License") or "").strip()
    if lic and "\n" not in lic and len(lic) <= 80 and lic.upper() != "UNKNOWN":
        licenses.append(lic)
    for classifier in msg.get_all("Classifier") or []:
        parts = [p.strip() for p in str(classifier).split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] not in ("OSI Approved", "Other/Proprietary License"):
            if parts[-1] not in licenses:
                licenses.append(parts[-1])
    return AppPackage("pypi", name, version, tuple(licenses), expression, location)


def _npm_license(doc: dict) -> tuple[tuple[str, ...], str | None]:
    lic = doc.get("license")
    if isinstance(lic, dict):
        lic = lic.get("type")
    if isinstance(lic, str) and lic.strip():
        return (lic.strip(),), lic.strip()
    old = doc.get("licenses")  # the deprecated array form
    if isinstance(old, list):
        names = tuple(str(x.get("type")) for x in old if isinstance(x, dict) and x.get("type"))
        return names, None
    return (), None


def npm_package(data: bytes, location: str) -> AppPackage | None:
    doc = jsonsafe.object_or_none(data)
    if doc is None:
        return None
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    licenses, expression = _npm_license(doc)
    return AppPackage("npm", name, version, licenses, expression, location)


def npm_lockfile(data: bytes, location: str) -> list[AppPackage]:
    doc = jsonsafe.object_or_none(data)
    if doc is None:
        return []
    out: list[AppPackage] = []
    packages = doc.get("packages")
    if isinstance(packages, dict):  # lockfile v2 and v3
        for key, entry in sorted(packages.items()):
            if not key or not isinstance(entry, dict) or entry.get("link") or entry.get("dev"):
                continue
            if "node_modules/" not in key:
                continue  # a workspace member, not an installed dependency
            name = entry.get("name") or key.rsplit("node_modules/", 1)[1]
            version = entry.get("version")
            if isinstance(name, str) and isinstance(version, str) and version:
                licenses, expression = _npm_license(entry)
                out.append(AppPackage("npm", name, version, licenses, expression, location))
        return out
    deps = doc.get("dependencies")  # lockfile v1: a tree
    stack = [deps] if isinstance(deps, dict) else []
    while stack:
        level = stack.pop()
        for name, entry in sorted(level.items()):
            if not isinstance(entry, dict) or entry.get("dev"):
                continue
            version = entry.get("version")
            if isinstance(version, str) and version and not version.startswith(("file:", "link:")):
                out.append(AppPackage("npm", name, version, (), None, location))
            if isinstance(entry.get("dependencies"), dict):
                stack.append(entry["dependencies"])
    return out
