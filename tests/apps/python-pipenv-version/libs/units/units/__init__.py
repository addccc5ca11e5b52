"""The app's own package, installed from its directory (pipenv install -e ./libs/units)."""

DAY = 86400
