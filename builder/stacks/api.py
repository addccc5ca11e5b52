"""What the rest of pallet asks of stacks (the build pipeline: "the images of stack X")."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from builder.oci.stores import StoreOptions


def stack_images(stack_file: str | Path, options: StoreOptions | None = None,
                 log: Callable[[str], None] = lambda _: None) -> tuple[str, str]:
    """(build image, run image) of a stack as local-store references with digests.

    Built from the stack file and its lock on first use; after that they come from the stack
    cache in seconds (nothing is assembled again while the stack file and lock are unchanged).
    """
    from builder.stacks.build import build_stack

    result = build_stack(stack_file, options=options, log=log)
    return result.images["build"].reference, result.images["run"].reference
