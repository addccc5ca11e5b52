"""A changelog service; its version comes from the git tag it was built from."""
