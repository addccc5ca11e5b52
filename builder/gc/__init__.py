"""Bounded caches: what ``pallet prune`` and the rootfs size bound remove, and what keeps an
entry (a lease held by a running build or ``pallet run``, a committed stack lock)."""
