"""``json.loads`` for untrusted documents (labels, signatures, envelopes, SBOMs, advisories).

Python's parser recurses once per level of nesting: ``[[[[...`` a few thousand deep raises
``RecursionError``, which no ``except ValueError`` around a parse catches, and which came out as
a traceback wherever an image's label or a registry's attestation was read. Here it is a
``ValueError`` like any other malformed JSON, so each caller's existing handling applies.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
