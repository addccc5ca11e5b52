"""Errors a user can cause, as our own types.

The CLI prints any ``PalletError`` as one line (``pallet: error: ...``) and exits with
``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class PalletError(Exception):
    """A problem the user can act on; the message says what to do."""

    exit_code = 1
    #: Whether the message's own lines are kept when printed (else it is one line, its
    #: newlines shown escaped: they could only come from untrusted text).
    multiline = False


class UsageError(PalletError):
    """The command line itself is wrong (bad reference syntax, bad flag value)."""

    exit_code = 2


class InvalidReferenceError(UsageError):
    """A malformed image reference."""


class NotFoundError(PalletError):
    """A tag, manifest or blob that the store does not have."""


class DigestMismatchError(PalletError):
    """Bytes that do not match the digest (or size) they were asked for by."""


class StoreError(PalletError):
    """A store could not be read or written (I/O, permissions, protocol)."""


class RegistryError(StoreError):
    """A registry answered with an error or could not be reached."""


class AuthError(RegistryError):
    """A registry refused our credentials."""


class DaemonError(StoreError):
    """The Docker engine is not reachable or refused a request."""


class UnsafeArchiveError(PalletError):
    """A layer tar tries to write outside the directory it is unpacked into."""


class LayerError(PalletError):
    """A directory cannot be turned into a layer (sockets, devices, unreadable files)."""


class InputFileError(PalletError):
    """A file given to pallet (a key, a policy, advisories, a plan, a stack file) that is not a
    regular file or is larger than any real one."""


# -- what untrusted text may look like on the user's terminal -----------------------------------

#: Characters a terminal acts on instead of showing: C0 controls (ESC starts colour, cursor and
#: title sequences; CR overwrites a line), C1 controls (CSI 0x9b is ESC [ on some terminals),
#: and the bidirectional overrides that make text read in another order. (DEL is left as it
#: is: terminals ignore it.)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NEWLINE = re.compile("\n")

#: The most of one message pallet prints: a registry's error body or an image's file name can
#: be megabytes, and would otherwise be printed whole.
MAX_MESSAGE = 4000


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cut(text: str, limit: int) -> str:
    """``text`` with its middle left out when longer than ``limit`` (both ends tend to matter:
    what failed, and what to do)."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return f"{text[:head]}…[{len(text) - head - tail} characters left out]…{text[len(text) - tail:]}"


def for_terminal(text: str, *, multiline: bool = False, limit: int | None = MAX_MESSAGE) -> str:
    """``text`` as it may be printed: control characters shown escaped (``\\x1b``), so that an
    image, a registry or a source cannot move the cursor, retitle the window or forge a line;
    newlines too unless ``multiline``; at most ``limit`` characters."""
    if limit is not None:
        text = cut(text, limit)
    text = _CONTROL.sub(_escape, text)
    return text if multiline else _NEWLINE.sub(_escape, text)


def shown(value: object, limit: int = 200) -> str:
    """An untrusted value (an entry name, a link target, a tag) quoted in a message: ``repr`` of
    it (control characters escaped), its middle left out past ``limit`` characters (a layer's
    PAX record may hold a name of megabytes)."""
    return repr(cut(value if isinstance(value, str) else str(value), limit))
