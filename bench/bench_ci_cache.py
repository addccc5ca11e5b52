"""The CI-runner race for ``--cache-image``: every build on a cold runner (a fresh PALLET_HOME and
build cache; the stack's images present, as on a runner using a builder image), pushing to a local
registry through a counting proxy.

    python bench/bench_ci_cache.py [--sample python-flask] [--rounds 2]

Per round: a cold build without a cache image; a cold build that seeds the cache image (its first
use); a cold build with the cache image to another repository (the buildpacks run from the
restored cache: nothing is installed); and one to the seeded repository (the restored memo
reuses its image). Then BuildKit on cold runners (its build cache emptied with ``docker builder
prune``, the app image removed; the stack's images present): the race's Dockerfile for the
sample, built and pushed without a cache, then with ``--cache-from`` the image a first runner
pushed with its inline cache (``BUILDKIT_INLINE_CACHE=1``), the registry cache the host's Docker
engine (20.10) offers. The BuildKit runners share this machine's Docker engine, which remembers
which repositories of the registry got which layers and mounts them from there on a push (a
fresh runner's engine knows only what it pulled): its bytes sent after its first row are a lower
bound. Then BuildKit's registry cache (``--cache-to type=registry,mode=max``, a separate cache
manifest) on truly fresh engines: each runner a new Docker-in-Docker container (bench/dind.py:
Debian trixie's Docker 26 and buildx, the containerd image store, whose docker driver can
export caches), the stack's images loaded into it (not timed), ``docker buildx build`` pushing
the image (and cache) gzip-compressed: no cache; seeding the cache; and ``--cache-from`` it (plus
``--cache-to``) pushing to another repository. The DinD image is made once (mmdebstrap, ~1 min)
and reused; ``--no-dind`` skips these rows, and they are skipped with a line saying why when the
image cannot be made or its engine does not start. Reports seconds, bytes sent and received
through the proxy, and the digests (pallet's four must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_race, dind  # noqa: E402
from bench.countproxy import CountingProxy  # noqa: E402
from tests.fixtures_registry import start_registry  # noqa: E402


def build(src: Path, tag: str, work: Path, *extra: str) -> tuple[dict, str, float]:
    runner = work / uuid.uuid4().hex[:8]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PALLET_HOME": str(runner / "home"), "PALLET_SERVER": "0"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "builder", "build", str(src), "-t", tag, "--stack", "bookworm",
                           "--cache-dir", str(runner / "cache"), "--json", *extra],
                          capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"build failed:\n{proc.stderr}")
    return json.loads(proc.stdout), proc.stderr, elapsed


def buildkit_runner(src: Path, ctx: Path, image: str, cache_from: str | None) -> float:
    """A cold BuildKit runner: build cache emptied, the app image gone, the stack's images
    present; the race's Dockerfile built (with its inline cache) and pushed. Seconds."""
    make_context(src, ctx)
    docker = bench_race.DOCKER
    subprocess.run([docker, "builder", "prune", "-af"], capture_output=True, check=True)
    subprocess.run([docker, "image", "rm", "-f", image, *([cache_from] if cache_from else [])], capture_output=True)
    cmd = [docker, "build", "-q", "--network", "host", "--secret", f"id=ca,src={bench_race.CA}",
           "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", image]
    if cache_from:
        cmd += ["--cache-from", cache_from]
    start = time.perf_counter()
    for step in ([*cmd, str(ctx)], [docker, "push", "-q", image]):
        proc = subprocess.run(step, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "1"})
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(step[:3])} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def make_context(src: Path, ctx: Path) -> None:
    """The race's Dockerfile for the sample, in a copy of it (once per round)."""
    if not ctx.exists():
        shutil.copytree(src, ctx, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
        (ctx / "Dockerfile").write_text(bench_race.dockerfile(src.name, classic=False))
        (ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\n__pycache__\nnode_modules\n")


def registry_cache_runner(work: Path, ctx: Path, stack_tar: Path, image: str, cache: str | None,
                          cache_from: bool) -> float:
    """A cold runner with its own fresh Docker 26 engine (DinD, containerd image store): the
    stack's images loaded (not timed), then ``docker buildx build --push`` (the docker driver),
    exporting the registry cache (``mode=max``) when ``cache`` and importing it when
    ``cache_from``. Seconds of the build and push."""
    engine = dind.Engine(work, ctx)
    try:
        engine.load(stack_tar)
        # The stack's layers came from `docker load`, uncompressed: gzip them on the way out, as a
        # runner that pulled its base images would hold them (the push pays the compression).
        gz = "compression=gzip,force-compression=true"
        cmd = ["buildx", "build", "-q", "--network", "host", "--secret", f"id=ca,src={dind.CA}",
               "--output", f"type=image,name={image},push=true,{gz}"]
        if cache:
            cmd += ["--cache-to", f"type=registry,ref={cache},mode=max,{gz}"]
        if cache and cache_from:
            cmd += ["--cache-from", f"type=registry,ref={cache}"]
        start = time.perf_counter()
        engine.docker(*cmd, "/ctx")
        return time.perf_counter() - start
    finally:
        engine.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", default="python-flask")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-dind", action="store_true", help="skip the registry-cache rows (Docker-in-Docker)")
    args = ap.parse_args()
    src = ROOT / "samples" / args.sample
    bench_race.use_stack("bookworm")
    bench_race.load_stack_into_docker()
    rows: dict[str, list[tuple[float, int, int]]] = {}
    digests: set[str] = set()
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stack_tar: Path | None = None
        if not args.no_dind:
            try:
                made = dind.ensure_image()
                notes.append(f"DinD image {dind.IMAGE}: " + (f"made in {made:.0f} s (mmdebstrap trixie + import; set-up)"
                                                             if made is not None else "reused"))
                stack_tar = work / "stack.tar"
                bench_race.run([bench_race.DOCKER, "save", "-o", str(stack_tar), bench_race.BUILD_IMAGE,
                                bench_race.RUN_IMAGE])
            except dind.DindUnavailable as exc:
                notes.append(f"BuildKit registry-cache rows skipped: {exc}")
        reg = start_registry(work / "registry")
        try:
            host, port = reg.host.split(":")
            proxy = CountingProxy(host, int(port))
            for r in range(args.rounds):
                cache = f"docker://{proxy.host}/race{r}/app-cache:main"
                plan = [("cold, no cache image", f"race{r}/plain", ()),
                        ("cold, seeding the cache image", f"race{r}/app", ("--cache-image", cache)),
                        ("cold, cache image (another repository)", f"race{r}/other", ("--cache-image", cache)),
                        ("cold, cache image (same repository: memo)", f"race{r}/app", ("--cache-image", cache))]
                for name, repo, extra in plan:
                    proxy.reset()
                    result, stderr, elapsed = build(src, f"docker://{proxy.host}/{repo}:1", work, *extra)
                    rows.setdefault(name, []).append((elapsed, proxy.sent, proxy.received))
                    digests.add(result["digest"])
                    if "other repository" in name and "installing" in stderr:
                        raise SystemExit("the restored cache did not spare the install:\n" + stderr)
                ctx = work / f"docker-{r}"
                bk = [("BuildKit, cold, no cache", f"race{r}/bk-plain", None),
                      ("BuildKit, cold, seeding its inline cache", f"race{r}/bk", None),
                      ("BuildKit, cold, --cache-from (another repository)", f"race{r}/bk-other", f"race{r}/bk")]
                for name, repo, cache_from in bk:
                    proxy.reset()
                    elapsed = buildkit_runner(src, ctx, f"{proxy.host}/{repo}:1",
                                              f"{proxy.host}/{cache_from}:1" if cache_from else None)
                    rows.setdefault(name, []).append((elapsed, proxy.sent, proxy.received))
                if stack_tar is None:
                    continue
                cache = f"{proxy.host}/race{r}/bk26-cache:main"
                reg_rows = [("BuildKit 26 (fresh DinD engine), no cache", f"race{r}/bk26-plain", None, False),
                            ("BuildKit 26, seeding --cache-to type=registry", f"race{r}/bk26", cache, False),
                            ("BuildKit 26, --cache-from type=registry (other repo)", f"race{r}/bk26-other", cache, True)]
                try:
                    for name, repo, cache_ref, cache_from in reg_rows:
                        proxy.reset()
                        elapsed = registry_cache_runner(work, ctx, stack_tar, f"{proxy.host}/{repo}:1", cache_ref,
                                                        cache_from)
                        rows.setdefault(name, []).append((elapsed, proxy.sent, proxy.received))
                except dind.DindUnavailable as exc:
                    notes.append(f"BuildKit registry-cache rows skipped: {exc}")
                    stack_tar = None
        finally:
            reg.stop()
    print(f"{args.sample}, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, runs in rows.items():
        secs = statistics.median(x[0] for x in runs)
        sent = statistics.median(x[1] for x in runs) / 1e6
        got = statistics.median(x[2] for x in runs) / 1e6
        print(f"  {name:45s} {secs:6.1f} s   sent {sent:7.2f} MB   received {got:7.2f} MB   "
              f"(runs: {' '.join(f'{x[0]:.1f}' for x in runs)})")
    print(f"  digests: {'all equal' if len(digests) == 1 else digests}")
    for note in notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()
