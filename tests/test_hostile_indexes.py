"""Hostile image indexes (issue 11, third sweep): indexes nested thousands deep, and an index that
lists one image thousands of times at every level. Content addressing rules out a cycle, but not
depth or repetition: copy recursed once per level (a RecursionError, reported as "index.json is
unreadable") and fetched each listed child again every time it was listed.
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.oci import mediatypes as mt
from builder.oci.copy import MAX_INDEX_DEPTH, copy_image
from builder.oci.stores.layout import LayoutStore
from tests.cli import pallet
from tests.imagekit import push_image
from tests.test_hostile_inputs import one_line_error


def _index_of(store: LayoutStore, children: list[dict], tag: str | None = None):
    data = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children}).encode()
    return store.put_manifest(data, mt.OCI_INDEX, tag=tag)


def test_indexes_nested_thousands_deep_are_refused_by_copy(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "src")
    desc, _ = push_image(store, [{"a": b"1"}], tag=None)
    for _ in range(1500):
        desc = _index_of(store, [desc.to_json()])
    _index_of(store, [desc.to_json()], tag="t")
    proc = pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{tmp_path}/dst:t", check=False)
    one_line_error(proc, f"nests indexes more than {MAX_INDEX_DEPTH} deep")
    assert not (tmp_path / "dst" / "index.json").exists() or LayoutStore(tmp_path / "dst").list_tags() == []


def test_an_index_of_indexes_within_the_limit_is_copied(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "src")
    desc, _ = push_image(store, [{"a": b"1"}], tag=None)
    for _ in range(MAX_INDEX_DEPTH - 1):
        desc = _index_of(store, [desc.to_json()])
    top = _index_of(store, [desc.to_json()], tag="t")
    pallet("copy", f"oci:{tmp_path}/src:t", f"oci:{tmp_path}/dst:t")
    assert LayoutStore(tmp_path / "dst").resolve("t").digest == top.digest


class _Counting(LayoutStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fetched: list[str] = []

    def get_manifest(self, ref: str):  # noqa: ANN201
        self.fetched.append(ref)
        return super().get_manifest(ref)


def test_an_index_listing_one_child_many_times_fetches_it_once(tmp_path: Path) -> None:
    """Ten levels of 'the level below, 50 times' would be 50^10 fetches."""
    store = LayoutStore(tmp_path / "src")
    desc, _ = push_image(store, [{"a": b"1"}], tag=None)
    for _ in range(MAX_INDEX_DEPTH - 1):
        desc = _index_of(store, [desc.to_json()] * 50)
    _index_of(store, [desc.to_json()] * 50, tag="t")
    src = _Counting(tmp_path / "src")
    copy_image(src, "t", LayoutStore(tmp_path / "dst"), "t")
    assert len(src.fetched) == MAX_INDEX_DEPTH + 1, len(src.fetched)  # the top, then each level once
