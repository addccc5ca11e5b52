"""Which build and run images a build uses: a stack's (built into the local store on first
use), or images named on the command line."""

from __future__ import annotations

from pathlib import Path

from builder.errors import PalletError
from builder.oci import reference as refs
from builder.oci.image import Image, load_image
from builder.oci.stores import StoreOptions, open_store

DEFAULT_STACK = "bookworm"
STACKS_DIR = Path(__file__).resolve().parent.parent.parent / "stacks"


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


def _load(text: str, options: StoreOptions) -> Image:
    ref = refs.parse(text)
    store = open_store(ref, options)
    return load_image(store, ref.ref)


def resolve_images(stack: str | None, build_image: str | None, run_image: str | None,
                   options: StoreOptions) -> tuple[Image, Image, str]:
    """(build image, run image, the run image reference as it will be recorded)."""
    if build_image is None or run_image is None:
        from builder.stacks.api import stack_images  # built on first use, then from the local store

        build_ref, run_ref = stack_images(stack_file(stack or DEFAULT_STACK))
        build_image = build_image or build_ref
        run_image = run_image or run_ref
    return _load(build_image, options), _load(run_image, options), run_image
