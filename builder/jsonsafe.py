"""``json.loads`` for untrusted documents (manifests, configs, labels, signatures, envelopes,
SBOMs, advisories).

Three things JSON allows that Python's parser passes on as traps:

- **Depth.** The parser recurses once per level of nesting: ``[[[[...`` a few thousand deep
  raises ``RecursionError``, which no ``except ValueError`` around a parse catches, and which
  came out as a traceback wherever an image's label or a registry's attestation was read. Here
  it is a ``ValueError`` like any other malformed JSON, so each caller's handling applies.
- **Lone surrogates.** ``"\\udc80"`` is a valid JSON string escape, but not a character: the
  ``str`` it gives cannot be encoded as UTF-8, so printing it, writing it back into a config or
  handing it to a program (an image's ``Env``) raised ``UnicodeEncodeError`` far from the parse.
  Each one becomes U+FFFD, as Go's ``encoding/json`` (Docker, containerd, the registries) reads
  it. The bytes of a document are never changed: digests stay those of what was read.
- **Breadth.** Millions of tiny values (``[{},{},...]``) take ~30 times their JSON's size once
  parsed; a document of over ``MAX_VALUES`` is refused before it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: A ``\\uD800``-``\\uDFFF`` escape in the text: only then can a string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE = re.compile("[\ud800-\udfff]")


#: The most values (an upper bound: commas, and brackets and braces) a document may hold. Python
#: takes ~30 times the JSON's size for ``[{},{},...]``: a 256 MiB signature payload or SBOM (what
#: a registry may hold) took gigabytes to parse. Real SBOMs of thousands of packages hold a few
#: million values at most.
MAX_VALUES = 8_000_000


def loads(data: str | bytes | bytearray) -> Any:
    if len(data) > MAX_VALUES:   # only then can it hold more: counted without parsing
        sep = (",", "[", "{") if isinstance(data, str) else (b",", b"[", b"{")
        values = sum(data.count(c) for c in sep)  # type: ignore[arg-type]
        if values > MAX_VALUES:
            raise ValueError(f"the JSON holds over {MAX_VALUES} values, more than any document pallet reads")
    try:
        obj = json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    return scrub_if_needed(obj, data)


def object_or_none(data: str | bytes | bytearray) -> dict[str, Any] | None:
    """The JSON object ``data`` holds, or None for anything else (not JSON, not UTF-8, an
    array): for bytes anyone may have put where a document of ours is expected."""
    try:
        doc = loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def scrub_if_needed(obj: Any, data: str | bytes | bytearray) -> Any:
    """``obj`` (parsed from ``data``) with lone surrogates replaced, when ``data`` can hold any."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    return _scrub(obj) if _SURROGATE_ESCAPE.search(text) else obj


def _scrub(obj: Any) -> Any:
    """``obj`` with every lone surrogate in its strings (keys too) replaced by U+FFFD. Iterative:
    a document may be nested almost as deep as the parser allows."""
    root = [obj]
    todo: list[tuple[Any, Any]] = [(root, 0)]
    while todo:
        holder, key = todo.pop()
        value = holder[key]
        if isinstance(value, str):
            holder[key] = _LONE.sub("\ufffd", value)
        elif isinstance(value, list):
            todo.extend((value, i) for i in range(len(value)))
        elif isinstance(value, dict):
            fixed = {(_LONE.sub("\ufffd", k) if isinstance(k, str) else k): v for k, v in value.items()}
            if fixed.keys() != value.keys():
                value.clear()
                value.update(fixed)
            todo.extend((value, k) for k in list(value))
    return root[0]
