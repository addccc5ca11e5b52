"""Which build and run images a build uses: a stack's (built into the local store on first
use), or images named on the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import NotFoundError, PalletError
from builder.oci import reference as refs
from builder.oci.image import Image, load_image
from builder.oci.model import Platform
from builder.oci.stores import StoreOptions, open_store
from builder.resources import stacks_dir

if TYPE_CHECKING:
    from builder.lifecycle.stackchoice import Choice

DEFAULT_STACK = "trixie"
STACKS_DIR = stacks_dir()


def stack_file(stack: str) -> Path:
    """``NAME`` means ``stacks/NAME.toml`` (the project's, then pallet's own); else a path."""
    candidate = Path(stack)
    if candidate.suffix == ".toml" or "/" in stack:
        if not candidate.is_file():
            raise PalletError(f"stack file {stack} not found")
        return candidate
    for root in (Path.cwd() / "stacks", STACKS_DIR):
        path = root / f"{stack}.toml"
        if path.is_file():
            return path
    raise PalletError(f"unknown stack {stack!r}: no stacks/{stack}.toml here or in {STACKS_DIR}")


def stack_for_app(source: Path) -> "Choice":
    """The shipped stack whose runtimes the app asks for (``stackchoice``), and why."""
    from builder.lifecycle.stackchoice import app_requests, choose_stack, shipped_offers

    return choose_stack(app_requests(source), shipped_offers(STACKS_DIR), DEFAULT_STACK)


def _load(text: str, options: StoreOptions, platform: Platform | None = None) -> Image:
    ref = refs.parse(text)
    store = open_store(ref, options)
    return load_image(store, ref.ref, platform)


def resolve_images(stack: str | None, build_image: str | None, run_image: str | None,
                   options: StoreOptions, locked: bool = False,
                   platform: Platform | None = None) -> tuple[Image, Image, str]:
    """(build image, run image, the run image reference as it will be recorded); from an index,
    ``platform``'s manifests (default: this machine's).

    A stack whose lock the mirror has moved past is built with the mirror's current versions
    (and says so, every time, until the lock is updated), unless ``locked``.
    """
    if build_image is not None and run_image is not None:
        return _load(build_image, options, platform), _load(run_image, options, platform), run_image
    from builder.stacks import api  # built on first use, then from the local store

    path = stack_file(stack or DEFAULT_STACK)
    remembered = api.remembered_images(path, locked=locked)
    if remembered is not None:
        try:
            return _resolved(remembered, build_image, run_image, options, platform)
        except NotFoundError:
            pass  # the local store lost them: deliver them again
    images = api.stack_images(path, locked=locked)  # and remembered for the next build
    return _resolved(images, build_image, run_image, options, platform)


def _resolved(stack_refs: tuple[str, str], build_image: str | None, run_image: str | None,
              options: StoreOptions, platform: Platform | None = None) -> tuple[Image, Image, str]:
    build_ref = build_image or stack_refs[0]
    run_ref = run_image or stack_refs[1]
    return _load(build_ref, options, platform), _load(run_ref, options, platform), run_ref
