"""pallet: source directory to a reproducible, signed OCI image."""

__version__ = "0.1.0"
