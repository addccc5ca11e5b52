"""``pallet rebase --shard I/N``: a fleet split by repository, the same on every runner; the
shards together cover every image exactly once."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from builder.errors import UsageError
from builder.oci.stores.layout import LayoutStore
from builder.shard import parse_shard, repository_key, select, shard_of
from tests.cli import pallet
from tests.imagekit import push_image


def _fleet() -> list[str]:
    rng = random.Random(15)
    refs = []
    for i in range(400):
        host = rng.choice(["reg.example", "reg.example:5000", "127.0.0.1:5000"])
        repo = f"team{rng.randrange(12)}/app{i % 150}"
        refs.append(f"docker://{host}/{repo}:{rng.choice(['1', 'prod', 'v2.3'])}")
    refs += [f"docker://reg.example/team0/app0@sha256:{'a' * 64}", "local-app:1", "local-app:2",
             "oci:/srv/layouts/shop:prod", "oci:/srv/layouts/shop:canary"]
    return refs


@pytest.mark.parametrize("total", [1, 2, 3, 8, 16])
def test_shards_cover_every_image_exactly_once_and_keep_repositories_together(total):
    fleet = _fleet()
    shards = [select(fleet, i, total) for i in range(1, total + 1)]
    assert Counter(ref for shard in shards for ref in shard) == Counter(fleet)  # each image exactly once
    for shard in shards:
        assert shard == [ref for ref in fleet if ref in set(shard)]  # the given order kept
    owner: dict[str, int] = {}
    for i, shard in enumerate(shards, 1):
        for ref in shard:
            assert owner.setdefault(repository_key(ref), i) == i  # a repository never spans runners
    shuffled = fleet[:]
    random.Random(1).shuffle(shuffled)
    assert {r: shard_of(r, total) for r in shuffled} == {r: shard_of(r, total) for r in fleet}
    if total > 1:
        assert all(shards)  # 400 images: every runner gets work


def test_tags_and_digests_of_one_repository_share_a_shard():
    assert shard_of("docker://reg.example/team0/app0:1", 7) == shard_of(f"docker://reg.example/team0/app0@sha256:{'a' * 64}", 7)
    assert repository_key("oci:/srv/layouts/shop:prod") == repository_key("oci:/srv/layouts/shop:canary")
    assert repository_key("docker://reg.example/a/b:1") != repository_key("docker://other.example/a/b:1")


@pytest.mark.parametrize("bad", ["0/4", "5/4", "1/0", "2", "a/b", "1/4/2", "-1/4"])
def test_bad_shards_are_usage_errors(bad):
    with pytest.raises(UsageError, match="expected I/N"):
        parse_shard(bad)


def test_rebase_from_file_by_shard_end_to_end(tmp_path):
    """Every runner reads the same list; each rebases (here: fails to find) only its part."""
    with LayoutStore(tmp_path / "run") as store:
        push_image(store, [{"etc/os-release": b"ID=test\n"}], tag="v2")
    fleet = [f"oci:{tmp_path}/apps/app{i % 23}:t{i}" for i in range(60)]
    plan = tmp_path / "fleet.txt"
    plan.write_text("\n".join(fleet) + "\n")
    seen: list[str] = []
    for i in range(1, 5):
        done = pallet("rebase", "--from", str(plan), "--shard", f"{i}/4", "--run-image", f"oci:{tmp_path}/run:v2",
                      "--json", "--jobs", "4", check=False, env={"PALLET_HOME": str(tmp_path / "home")})
        results = json.loads(done.stdout)["results"] if done.stdout else []
        assert all(r["status"] == "failed" for r in results)  # the apps do not exist: listed, not stopped
        seen += [r["reference"] for r in results]
    assert sorted(seen) == sorted(fleet)
    refused = pallet("rebase", "--from", str(plan), "--shard", "5/4", "--run-image", f"oci:{tmp_path}/run:v2",
                     check=False, env={"PALLET_HOME": str(tmp_path / "home")})
    assert refused.returncode != 0 and "expected I/N" in refused.stderr and "Traceback" not in refused.stderr
