"""Store backends behind one interface (see ``base.Store``), and the one place that maps a
parsed reference to the backend that serves it. Backends are imported lazily: the Docker SDK
and requests cost start-up time that a command touching only a layout should not pay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from builder.errors import PalletError
from builder.oci import reference as refs
from builder.oci.reference import Reference
from builder.oci.stores.base import Store


@dataclass(frozen=True)
class StoreOptions:
    """Connection settings from the command line."""

    insecure: bool = False
    creds: str | None = None


def options_for_named(ref: Reference, options: StoreOptions | None, given: "tuple[str | None, ...]",
                      hosts: "tuple[str, ...]" = ()) -> StoreOptions:
    """Options to open ``ref`` when an image names it (a label, an annotation), not the user:
    ``--creds`` go only to a registry host of the references the user gave (``given``, as
    typed, or their ``hosts``). A hostile image's ``runImage.image`` of ``docker://attacker.example/x`` had pallet
    rebase send the password there. (Credentials from the Docker config are per host anyway.)"""
    options = options or StoreOptions()
    if ref.transport != refs.REGISTRY or options.creds is None:
        return options
    trusted = set(hosts)
    for text in given:
        try:
            named = refs.parse(text) if text else None
        except PalletError:
            continue
        if named is not None and named.transport == refs.REGISTRY:
            trusted.add(named.host)
    return options if ref.host in trusted else replace(options, creds=None)


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
