"""Choosing a stack by the runtime versions an app asks for: pure, nothing is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.lifecycle.stackchoice import (NoStackError, Offer, Request, app_requests, choose_stack, fit_minimum,
                                           fit_release, Fit, python_requests, shipped_offers)

ROOT = Path(__file__).resolve().parent.parent
# What the shipped locks say today would make these tests move with every re-lock: the
# offers here are written out, and one test checks the real locks only for their shape.
TRIXIE = Offer("trixie", {"python": "3.13.5", "node": "20.19.2", "go": "1.24"})
BOOKWORM = Offer("bookworm", {"python": "3.11.2", "node": "18.20.4", "go": "1.19"})
OFFERS = [TRIXIE, BOOKWORM]


def pv(version: str) -> list[Request]:
    return [Request("python", version, ".python-version")]


def test_no_request_is_the_default_stack():
    choice = choose_stack([], OFFERS, "trixie")
    assert (choice.stack, choice.notices) == ("trixie", ())
    assert "default" in choice.reason


@pytest.mark.parametrize("version,stack", [("3.13", "trixie"), ("3", "trixie"), ("3.13.5", "trixie"),
                                           ("3.11", "bookworm"), ("3.11.2", "bookworm")])
def test_a_release_lands_on_the_stack_that_has_it(version, stack):
    choice = choose_stack(pv(version), OFFERS, "trixie")
    assert choice.stack == stack and choice.notices == ()
    assert choice.reason.startswith(f"stack {stack}") and "\n" not in choice.reason
    assert f".python-version asks for Python {version}" in choice.reason


def test_leaving_the_default_says_what_the_default_has():
    choice = choose_stack(pv("3.11"), OFFERS, "trixie")
    assert choice.reason == ("stack bookworm: .python-version asks for Python 3.11; the default stack trixie has "
                             "Python 3.13.5, bookworm has Python 3.11.2")


def test_another_patch_level_of_the_same_minor_builds_with_a_notice():
    choice = choose_stack(pv("3.11.11"), OFFERS, "trixie")
    assert choice.stack == "bookworm"
    assert len(choice.notices) == 1 and "3.11.11" in choice.notices[0] and "3.11.2" in choice.notices[0]
    # an exact fit elsewhere beats a patch-level fit on the default
    choice = choose_stack(pv("3.13.5"), [Offer("old", {"python": "3.13.1"}), TRIXIE], "old")
    assert choice.stack == "trixie" and choice.notices == ()


def test_a_version_no_stack_has_lists_every_stack():
    with pytest.raises(NoStackError) as err:
        choose_stack(pv("3.8"), OFFERS, "trixie")
    msg = str(err.value)
    assert "Python 3.8" in msg and "trixie has Go 1.24, Node.js 20.19.2, Python 3.13.5" in msg
    assert "bookworm has Go 1.19, Node.js 18.20.4, Python 3.11.2" in msg
    assert "\n" not in msg


def test_every_request_must_fit_the_same_stack():
    both = [Request("python", "3.11", ".python-version"),
            Request("python", ">=3.12", "pyproject.toml requires-python", "pep440")]
    with pytest.raises(NoStackError):
        choose_stack(both, OFFERS, "trixie")
    narrow = [Request("python", ">=3.9,<3.12", "pyproject.toml requires-python", "pep440")]
    assert choose_stack(narrow, OFFERS, "trixie").stack == "bookworm"
    wide = [Request("python", ">=3.9", "pyproject.toml requires-python", "pep440")]
    assert choose_stack(wide, OFFERS, "trixie").stack == "trixie"  # the default, when it fits


def test_other_runtimes_and_minimums():
    assert choose_stack([Request("go", "1.21", "go.mod", "minimum")], OFFERS, "trixie").stack == "trixie"
    assert choose_stack([Request("node", "18", "package.json engines.node")], OFFERS, "trixie").stack == "bookworm"
    with pytest.raises(NoStackError):
        choose_stack([Request("go", "1.25", "go.mod", "minimum")], OFFERS, "trixie")
    with pytest.raises(NoStackError):  # a stack without the runtime never fits
        choose_stack(pv("3.13"), [Offer("static", {})], "static")


def test_fit_rules():
    assert fit_release("3.11", "3.11.2") == Fit.EXACT
    assert fit_release("3.11.11", "3.11.2") == Fit.MINOR
    assert fit_release("3.1", "3.11.2") == Fit.NONE  # numbers, not string prefixes
    assert fit_release("3.12.1", "3.11.2") == Fit.NONE
    assert fit_minimum("1.22", "1.24") == Fit.EXACT
    assert fit_minimum("1.24.3", "1.24") == Fit.MINOR  # Debian's golang-go says 1.24, no patch
    assert fit_minimum("1.25", "1.24") == Fit.NONE


def test_unreadable_requests_are_clear_errors():
    from builder.errors import PalletError

    with pytest.raises(PalletError, match="not a valid version specifier"):
        choose_stack([Request("python", ">>3", "pyproject.toml requires-python", "pep440")], OFFERS, "trixie")


def test_reading_what_a_python_app_asks_for(tmp_path):
    assert python_requests(tmp_path) == []
    (tmp_path / ".python-version").write_text("# pinned\n3.13\n")
    (tmp_path / "runtime.txt").write_text("python-3.13.1\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nrequires-python = ">=3.12"\n')
    assert app_requests(tmp_path) == [
        Request("python", "3.13", ".python-version"), Request("python", "3.13.1", "runtime.txt"),
        Request("python", ">=3.12", "pyproject.toml requires-python", "pep440")]
    (tmp_path / ".python-version").write_text("pypy3.10\n")  # the buildpack explains this one
    assert [r.source for r in python_requests(tmp_path)] == ["runtime.txt", "pyproject.toml requires-python"]


def test_the_shipped_stacks_offer_their_locked_runtimes():
    offers = {o.stack: o for o in shipped_offers(ROOT / "stacks")}
    assert list(offers)[:2] == ["trixie", "bookworm"]  # newest Debian release first
    assert "tiny" not in offers and "bookworm-static" not in offers  # no runtime to run on
    for offer in offers.values():
        assert set(offer.runtimes) >= {"python", "node", "go"}
    lock = (ROOT / "stacks" / "trixie.lock").read_text()
    assert f'"python3:amd64={offers["trixie"].runtimes["python"]}' in lock
