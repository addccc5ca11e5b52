"""Errors a platform team can cause with a stack file, a lock or the package mirror."""

from __future__ import annotations

from builder.errors import PalletError


class StackError(PalletError):
    """Anything wrong with building a stack that the user can act on."""


class StackFileError(StackError):
    """A stack file that is not valid TOML or has a missing or wrong field (the message names both)."""


class LockError(StackError):
    """A lock file that is missing, malformed, out of date with its stack file, or no longer resolves."""


class UnknownPackageError(StackError):
    """A package name the mirror does not have."""


class MirrorError(StackError):
    """The package mirror cannot be reached or answered with an error."""


class AssemblyError(StackError):
    """The root file system could not be assembled (mmdebstrap failed, or installed other versions)."""


class StaleLockError(LockError):
    """A lock naming package versions that neither the mirror nor the local package cache has."""

    def __init__(self, message: str, packages: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.packages = packages
