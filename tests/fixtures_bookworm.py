"""Session fixtures: one PALLET_HOME with the bookworm stack's images (and, when a test asks,
bookworm-static's), built once and shared by the buildpack and sample tests; another with the
trixie stack's."""

from __future__ import annotations

import pytest

from tests.cli import pallet
from tests.samplekit import ROOT, Home, stack_home


@pytest.fixture(scope="session")
def bookworm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return stack_home(tmp_path_factory, "bookworm")


@pytest.fixture(scope="session")
def bookworm(bookworm_env: dict[str, str]) -> Home:
    """The bookworm stack (Python, Node.js and Go to build with; Python and Node.js to run on)."""
    return Home(bookworm_env, "bookworm")


@pytest.fixture(scope="session")
def bookworm_static(bookworm_env: dict[str, str]) -> Home:
    """The bookworm-static stack (its run image has no Python, Node.js or shell utilities beyond
    Debian's essential set), in the same PALLET_HOME."""
    pallet("stack", "build", str(ROOT / "stacks" / "bookworm-static.toml"), "--refresh", env=bookworm_env, timeout=1800)
    return Home(bookworm_env, "bookworm-static")


@pytest.fixture(scope="session")
def trixie_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return stack_home(tmp_path_factory, "trixie")


@pytest.fixture(scope="session")
def trixie(trixie_env: dict[str, str]) -> Home:
    """The trixie stack (Debian 13, the default), in a PALLET_HOME of its own."""
    return Home(trixie_env, "trixie")
