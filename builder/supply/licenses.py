"""Licence names as packages state them -> SPDX license expressions. Pure.

Debian copyright files use DEP-5 short names (``GPL-2+``, ``Expat``, ``BSD-3-clause``), Python and
npm metadata free text or SPDX ids. An SBOM must carry valid SPDX expressions, so names with a
known SPDX equivalent are mapped; any other name becomes a ``LicenseRef-`` (declared, with its
original name, in the SPDX document), never a guess.
"""

from __future__ import annotations

import hashlib
import re

# DEP-5 / common short names (lower case) -> SPDX identifiers.
_MAP = {
    "gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later",
    "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later", "gpl-2.0": "GPL-2.0-only", "gpl-2.0+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later", "gpl-3.0": "GPL-3.0-only", "gpl-3.0+": "GPL-3.0-or-later",
    "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later", "lgpl-3.0": "LGPL-3.0-only", "lgpl-3.0+": "LGPL-3.0-or-later",
    "agpl-3": "AGPL-3.0-only", "agpl-3+": "AGPL-3.0-or-later",
    "gfdl-1.2": "GFDL-1.2-only", "gfdl-1.2+": "GFDL-1.2-or-later",
    "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later",
    "expat": "MIT", "mit": "MIT", "mit license": "MIT", "x11": "X11",
    "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
    "0bsd": "0BSD", "isc": "ISC", "isc license": "ISC", "isc license (iscl)": "ISC",
    "apache-2": "Apache-2.0", "apache-2.0": "Apache-2.0", "apache 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "bsd license": "BSD-3-Clause", "mit license (mit)": "MIT",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0", "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0",
    "python software foundation license": "PSF-2.0", "psf-2.0": "PSF-2.0", "psf": "PSF-2.0",
    "python-2.0": "Python-2.0", "zlib": "Zlib", "zlib/libpng": "Zlib", "bsl-1.0": "BSL-1.0",
    "cc0-1.0": "CC0-1.0", "cc0": "CC0-1.0", "unlicense": "Unlicense", "the unlicense (unlicense)": "Unlicense",
    "openssl": "OpenSSL", "curl": "curl", "epl-1.0": "EPL-1.0", "epl-2.0": "EPL-2.0",
    "cc-by-3.0": "CC-BY-3.0", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-3.0": "CC-BY-SA-3.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "wtfpl": "WTFPL", "ftl": "FTL", "ofl-1.1": "OFL-1.1", "blueoak-1.0.0": "BlueOak-1.0.0",
    "artistic-2.0": "Artistic-2.0", "artistic-1.0": "Artistic-1.0", "bsd-source-code": "BSD-Source-Code",
    "hpnd": "HPND", "ncsa": "NCSA", "libpng": "Libpng", "libpng-2.0": "libpng-2.0", "ijg": "IJG",
    "gpl-2+ with autoconf exception": "GPL-2.0-or-later WITH Autoconf-exception-2.0",
}
_KNOWN = {v for v in _MAP.values() if " " not in v}
_KNOWN_LOWER = {v.lower(): v for v in _KNOWN}


def spdx_id(name: str) -> str | None:
    """The SPDX identifier for one licence name, if we know it."""
    key = name.strip().lower()
    return _MAP.get(key) or _KNOWN_LOWER.get(key)


def license_ref(name: str) -> str:
    """A ``LicenseRef-`` for a name we cannot map; stable, and distinct for distinct names."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", name.strip()).strip("-.")[:48] or "unnamed"
    return f"LicenseRef-{slug}-{hashlib.sha256(name.strip().encode()).hexdigest()[:8]}"


def to_expression(text: str) -> tuple[str, dict[str, str]]:
    """(SPDX expression, {LicenseRef id: original name}) for one stated licence.

    ``A or B`` / ``A and B`` of known names map term by term; anything else (commas, ``with``,
    parentheses, prose) becomes one LicenseRef as a whole, unless it is a known name itself.
    """
    text = " ".join(text.split())
    whole = spdx_id(text)
    if whole:
        return whole, {}
    if re.fullmatch(r"[A-Za-z0-9.+-]+(?: (?:or|and|OR|AND) [A-Za-z0-9.+-]+)*", text):
        parts = text.split(" ")
        out, refs = [], {}
        for i, part in enumerate(parts):
            if i % 2:
                out.append(part.upper())
                continue
            sid = spdx_id(part)
            if sid is None:
                sid = license_ref(part)
                refs[sid] = part
            out.append(sid)
        return " ".join(out), refs
    ref = license_ref(text)
    return ref, {ref: text}


def combine(names: tuple[str, ...], expression: str | None) -> tuple[str | None, dict[str, str]]:
    """One SPDX expression for a package: its own expression if it states one, else its names
    joined with AND (a Debian package is under all the licences its copyright file lists)."""
    if expression:
        return to_expression(expression)
    if not names:
        return None, {}
    exprs, refs = [], {}
    for name in names:
        e, r = to_expression(name)
        exprs.append(f"({e})" if " " in e else e)
        refs.update(r)
    return " AND ".join(dict.fromkeys(exprs)), refs
