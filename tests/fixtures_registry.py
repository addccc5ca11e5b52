"""Registry fixtures (filled in by the registry work)."""
