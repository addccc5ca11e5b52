"""Package URLs (https://github.com/package-url/purl-spec), built the way packageurl-python does.

Pure; only what pallet's SBOMs need: ``deb``, ``pypi``, ``npm``, ``golang`` and ``oci``.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote as _quote


def _q(text: str) -> str:
    return _quote(text, safe="/:")


def purl(kind: str, name: str, version: str | None = None, namespace: str | None = None,
         qualifiers: dict[str, str] | None = None) -> str:
    out = f"pkg:{kind}/"
    if namespace:
        out += "/".join(_q(seg) for seg in namespace.strip("/").split("/") if seg) + "/"
    out += _q(name)
    if version:
        out += "@" + _q(version)
    quals = {k.lower(): v for k, v in (qualifiers or {}).items() if v}
    if quals:
        out += "?" + "&".join(f"{k}={_q(quals[k])}" for k in sorted(quals))
    return out


def deb(name: str, version: str, arch: str | None, distro_id: str | None, distro: str | None) -> str:
    return purl("deb", name, version, namespace=distro_id or "debian",
                qualifiers={"arch": arch or "", "distro": distro or ""})


def pypi_name(name: str) -> str:
    """PEP 503 normalisation, as the purl spec asks for pypi names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pypi(name: str, version: str) -> str:
    return purl("pypi", pypi_name(name), version)


def npm(name: str, version: str) -> str:
    if name.startswith("@") and "/" in name:
        scope, _, base = name.partition("/")
        return purl("npm", base, version, namespace=scope)
    return purl("npm", name, version)


def golang(module: str, version: str | None) -> str:
    namespace, _, name = module.rpartition("/")
    return purl("golang", name, version if version and version != "(devel)" else None, namespace=namespace or None)


def oci(name: str, digest: str, repository_url: str | None = None, arch: str | None = None) -> str:
    """``arch``: the purl spec's qualifier for one platform's image of a multi-platform one."""
    return purl("oci", name.rsplit("/", 1)[-1].lower(), digest,
                qualifiers={"repository_url": repository_url or "", "arch": arch or ""})


def oci_named(name: str, digest: str, arch: str | None = None) -> str:
    """``pkg:oci/NAME@DIGEST?repository_url=HOST/REPO`` for an image named as signatures name it
    (``HOST/REPO`` for a registry: the URL only then; a local name stays local)."""
    first = name.split("/", 1)[0]
    registry = "/" in name and ("." in first or ":" in first or first == "localhost") \
        and not name.startswith("oci:")
    return oci(name.rstrip("/").rsplit("/", 1)[-1], digest, name if registry else None, arch)


@functools.lru_cache(maxsize=65536)
def parse(text: str) -> tuple[str, str, str | None, dict[str, str]]:
    """(type, full name, version, qualifiers) of a purl; the full name joins namespace and name
    as the ecosystem writes it (``@types/node``, ``github.com/gorilla/mux``). Pure."""
    from urllib.parse import unquote

    if not text.startswith("pkg:"):
        raise ValueError(f"not a purl: {text!r}")
    rest = text[4:].split("#", 1)[0]
    rest, _, query = rest.partition("?")
    kind, _, path = rest.partition("/")
    path, _, version = path.rpartition("@") if "@" in path.rsplit("/", 1)[-1] else (path, "", "")
    quals = {}
    for pair in query.split("&") if query else []:
        k, _, v = pair.partition("=")
        quals[k.lower()] = unquote(v)
    name = "/".join(unquote(seg) for seg in path.strip("/").split("/") if seg)
    return kind.lower(), name, unquote(version) if version else None, quals  # (cached: treat as read-only)
