"""Errors a user can cause, as our own types.

The CLI prints any ``PalletError`` as one line (``pallet: error: ...``) and exits with
``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PalletError(Exception):
    """A problem the user can act on; the message says what to do."""

    exit_code = 1


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
