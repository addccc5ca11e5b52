"""``--shard I/N``: one runner's part of a fleet, chosen the same way on every runner.

A fleet is split by repository (registry host and repository name; a layout's path; a local
store's name), never by position in the list: every image of one repository lands on the same
runner, whatever order the list is in and however it grows, so two runners never write the same
repository and a repository stays with its runner from one run to the next. The bucket is a
stable hash (sha256) of that key, modulo N. Shards are numbered 1..N, as GitLab's
``CI_NODE_INDEX``/``CI_NODE_TOTAL`` are (a Kubernetes indexed Job counts from 0: add one).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, TypeVar

from builder.errors import PalletError, UsageError
from builder.oci import reference as refs

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` -> (I, N) with 1 <= I <= N."""
    index, sep, total = text.partition("/")
    try:
        i, n = int(index), int(total)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise UsageError(f"--shard {text}: expected I/N with 1 <= I <= N (e.g. 2/8)")
    return i, n


def repository_key(reference: str) -> str:
    """What decides an image's shard: where its repository is, without tag or digest."""
    try:
        ref = refs.parse(reference)
    except PalletError:  # an unparsable line is still assigned (and fails in its shard)
        return reference
    if ref.transport == refs.REGISTRY:
        return f"{ref.transport}:{ref.host}/{ref.repository}"
    return f"{ref.transport}:{ref.path or ''}:{ref.repository or ''}"


def shard_of(reference: str, total: int) -> int:
    """The shard (1..total) of an image."""
    digest = hashlib.sha256(repository_key(reference).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % total + 1


def select(items: Iterable[T], index: int, total: int, key: Callable[[T], str] = str) -> list[T]:  # type: ignore[assignment]
    """The items of shard ``index`` of ``total``, in their given order."""
    return [item for item in items if shard_of(key(item), total) == index]
