"""Docker engine fixtures (filled in by the daemon work)."""
