"""Store backends behind one interface (see ``base.Store``), and the one place that maps a
parsed reference to the backend that serves it. Backends are imported lazily: the Docker SDK
and requests cost start-up time that a command touching only a layout should not pay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from builder.oci import reference as refs
from builder.oci.reference import Reference
from builder.oci.stores.base import Store


@dataclass(frozen=True)
class StoreOptions:
    """Connection settings from the command line."""

    insecure: bool = False
    creds: str | None = None


def pallet_home() -> Path:
    """Where the local store lives: ``$PALLET_HOME``, default ``~/.local/share/pallet``."""
    env = os.environ.get("PALLET_HOME")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME")
    return Path(data) / "pallet" if data else Path.home() / ".local" / "share" / "pallet"


def local_store_path() -> Path:
    return pallet_home() / "store"


def open_store(ref: Reference, options: StoreOptions | None = None) -> Store:
    """The store a reference names (bound to its repository)."""
    options = options or StoreOptions()
    if ref.transport == refs.OCI:
        from builder.oci.stores.layout import LayoutStore

        return LayoutStore(ref.path or ".")
    if ref.transport == refs.LOCAL:
        from builder.oci.stores.layout import LayoutStore

        return LayoutStore(local_store_path(), namespace=ref.repository)
    if ref.transport == refs.REGISTRY:
        from builder.oci.stores.registry import RegistryStore

        assert ref.host and ref.repository
        return RegistryStore(ref.host, ref.repository, insecure=options.insecure, creds=options.creds)
    if ref.transport == refs.DAEMON:
        from builder.oci.stores.daemon import DaemonStore

        assert ref.repository
        return DaemonStore(ref.repository)
    if ref.transport == refs.ARCHIVE:
        from builder.oci.stores.archive import ArchiveStore

        assert ref.path
        return ArchiveStore(ref.path, ref.repository)
    raise ValueError(f"no store for transport {ref.transport!r}")
