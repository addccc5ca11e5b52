"""Builder images: a stack's build image with pallet, its buildpacks and an order inside, for
container-native CI (``pallet builder create``; inside one, builds run in place)."""
