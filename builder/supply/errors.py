"""Errors of the supply-chain commands, as PalletError types (one line on the command line)."""

from __future__ import annotations

from builder.errors import PalletError


class SupplyError(PalletError):
    """A supply-chain step could not be done (a malformed signature store, an unreadable SBOM)."""


class KeyFileError(SupplyError):
    """A key file that is missing, unreadable, of an unsupported type, or already there."""


class PasswordError(SupplyError):
    """No password could be had, or it does not open the key. Never carries the password."""


class PolicyError(SupplyError):
    """A policy file that cannot be read or says something we do not know."""


class VerificationError(SupplyError):
    """An image failed verification; the message lists every reason."""

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])
