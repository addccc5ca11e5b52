"""What the rest of pallet asks of stacks (the build pipeline: "the images of stack X")."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable

from builder.cachedir import cache_root  # noqa: F401 - also the stack code's
from builder.oci.stores import StoreOptions, local_store_path

_CODE = Path(__file__).resolve().parent


def stack_images(stack_file: str | Path, options: StoreOptions | None = None,
                 log: Callable[[str], None] = lambda _: None, locked: bool = False) -> tuple[str, str]:
    """(build image, run image) of a stack as local-store references with digests.

    Built from the stack file and its lock on first use; after that they come from the stack
    cache in seconds (nothing is assembled again while the stack file and lock are unchanged).
    A stale lock is refreshed (the notice goes to stderr), unless ``locked``.
    """
    from builder.stacks.build import STALE_REFRESH, STALE_REFUSE, build_stack

    notices: list[str] = []

    def notice(text: str) -> None:
        print(f"pallet: {text}", file=sys.stderr, flush=True)
        notices.append(text)

    result = build_stack(stack_file, options=options, log=log, stale=STALE_REFUSE if locked else STALE_REFRESH,
                         notice=notice)
    images = result.images["build"].reference, result.images["run"].reference
    remember_images(stack_file, images, locked=locked, notice=notices[-1] if notices else None)
    return images


def _stat_key(stack_file: Path, locked: bool) -> str | None:
    """A key of what ``stack_images`` reads, by stat (as make and git decide what changed): the
    stack file, its lock, the stack code, the local store it delivers to."""
    h = hashlib.sha256(f"{local_store_path()}\0{locked}".encode())
    try:
        paths = [stack_file.resolve(), stack_file.with_suffix(".lock").resolve()]
        paths += sorted(_CODE.glob("*.py"))
        for path in paths:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    except OSError:
        return None
    return h.hexdigest()


def _memo_path(key: str) -> Path:
    return cache_root() / "stacks" / "resolved" / key


def remembered_images(stack_file: str | Path, locked: bool = False) -> tuple[str, str] | None:
    """What ``stack_images`` answered last time, when nothing it reads has changed since (by
    stat); None otherwise. The caller still loads the images by digest, so a store that lost
    them only costs a full ``stack_images``. A stale-lock notice given then is given again."""
    key = _stat_key(Path(stack_file), locked)
    if key is None:
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(_memo_path(key).read_text())
        images = str(data["build"]), str(data["run"])
        if data.get("notice"):
            print(f"pallet: {data['notice']}", file=sys.stderr, flush=True)
        return images
    return None


def remember_images(stack_file: str | Path, images: tuple[str, str], locked: bool = False,
                    notice: str | None = None) -> None:
    key = _stat_key(Path(stack_file), locked)
    if key is None:
        return
    path = _memo_path(key)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}")
        tmp.write_text(json.dumps({"build": images[0], "run": images[1], "notice": notice}))
        os.replace(tmp, path)
