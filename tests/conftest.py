"""Shared fixtures. Real components only: a real registry, a real Docker engine."""

pytest_plugins = ["tests.fixtures_registry", "tests.fixtures_docker", "tests.fixtures_bookworm"]
