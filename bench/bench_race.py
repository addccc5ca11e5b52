"""The build race: pallet vs ``docker build`` (BuildKit and the classic builder) on the same apps.

    python bench/bench_race.py [--runs 5] [--samples python-flask,node-express] [--stack trixie] [--write]

For each sample, three tools build the same app on images of the same stack (``--stack``: the
default stack, trixie, unless named; pallet is given the same ``--stack``):
- pallet: ``pallet build SRC -t race-SAMPLE:pallet`` into the local store (daemonless);
- BuildKit: ``DOCKER_BUILDKIT=1 /usr/bin/docker build`` with an idiomatic multi-stage
  Dockerfile (below): dependency manifests copied and installed first in the build image, then
  the installed dependencies and the source copied onto the run image; the same install as the
  buildpack (a venv + pip with the same flags; npm ci --omit=dev);
- classic: ``DOCKER_BUILDKIT=0 /usr/bin/docker build``, the same Dockerfile but for the CA line.

Three builds each round, for each tool, interleaved: cold (pallet: an empty --cache-dir; docker:
--no-cache; the stack's images are present in both), after a one-line app change, and with no
change. Medians over the rounds, the ratios pallet/BuildKit (target <= 1.0), final image sizes
(uncompressed, as ``docker image inspect`` reports them; pallet's image is loaded into the
engine to measure it the same way) and whether two cold builds give the same digest.

The TLS-inspecting proxy's CA (the host trust store) reaches docker builds at build time only:
as a BuildKit secret mount, and for the classic builder (no secrets, no mounts) as a build
argument written to /tmp and removed in the same RUN step of the build stage, so it is in no
layer; the final image never sees it (the bench checks). pallet's sandbox mounts it read-only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
#: Apps raced that are test apps, not samples: a pnpm app (pnpm from the npm registry, as the
#: buildpack installs it), a single-page app (a build script; served by pallet-static) and a
#: Vite app (Vite 8 from the npm registry; the same).
TEST_APPS = {name: ROOT / "tests" / "apps" / name for name in ("node-pnpm", "node-spa", "node-vite")}


def source_of(name: str) -> Path:
    return TEST_APPS.get(name, SAMPLES / name)
PALLET = str(ROOT / ".venv" / "bin" / "pallet") if (ROOT / ".venv" / "bin" / "pallet").exists() else "pallet"
DOCKER = "/usr/bin/docker"  # Debian's client: it can drive the daemon's BuildKit
CA = "/etc/ssl/certs/ca-certificates.crt"
HOME = Path.home() / ".cache" / "pallet-bench" / "race-home"
STACK = "trixie"  # --stack
BUILD_IMAGE, RUN_IMAGE = f"pallet-race/{STACK}-build:0.1.0", f"pallet-race/{STACK}-run:0.1.0"


def use_stack(name: str) -> None:
    global STACK, BUILD_IMAGE, RUN_IMAGE
    STACK = name
    BUILD_IMAGE, RUN_IMAGE = f"pallet-race/{name}-build:0.1.0", f"pallet-race/{name}-run:0.1.0"
TOOLS = ("pallet", "pallet-inproc", "buildkit", "classic")
#: pallet-inproc: the same builds with PALLET_SERVER=0 (no build server: every build starts
#: Python and imports pallet), to show what the server is worth; the targets are pallet's.
PHASES = ("cold", "change", "nochange")

# {mount}{setup}{env}...{cleanup}: how the step gets the CA (a secret mount for BuildKit, a build
# argument written to /tmp for the classic builder). The Python install is the buildpack's, command
# for command (a venv without pip, the stack's pip run in it, hash-based .pyc in one process).
DOCKERFILES = {
    "python-flask": """\
FROM {build} AS build
USER root
RUN python3 -m venv --without-pip /layers/venv
COPY requirements.txt .
RUN {mount}{setup}mkdir -p /tmp/pallet-pip && ln -sfn /usr/lib/python3/dist-packages/pip /tmp/pallet-pip/pip \\
 && {env} PYTHONPATH=/tmp/pallet-pip /layers/venv/bin/python -m pip install --no-compile --no-input \\
      --disable-pip-version-check --no-warn-script-location --progress-bar off --no-cache-dir -r requirements.txt \\
 && (PYTHONHASHSEED=0 /layers/venv/bin/python -S -m compileall -f -qq --invalidation-mode unchecked-hash \\
      /layers/venv/lib || true){cleanup}

FROM {run}
COPY --from=build /layers/venv /layers/venv
WORKDIR /workspace
COPY . .
ENV PATH=/layers/venv/bin:$PATH PORT=8080 PYTHONUNBUFFERED=1
USER 1000:1000
CMD ["gunicorn", "--control-socket", "/tmp/gunicorn.ctl", "app:app"]
""",
    "node-express": """\
FROM {build} AS build
USER root
WORKDIR /layers/modules
COPY package.json package-lock.json ./
RUN {mount}{setup}{env} npm ci --omit=dev --prefer-offline --no-audit --no-fund --cache /tmp/npm-cache{cleanup}

FROM {run}
WORKDIR /workspace
COPY --from=build /layers/modules/node_modules ./node_modules
COPY . .
ENV NODE_ENV=production PORT=8080
USER 1000:1000
CMD ["node", "server.js"]
""",
    # pnpm at packageManager's version, from the npm registry (the stack has none), then the
    # production install from the lockfile: what pallet/nodejs does.
    "node-pnpm": """\
FROM {build} AS build
USER root
RUN {mount}{setup}{env} npm install -g --prefix /opt/pnpm --no-audit --no-fund --cache /tmp/npm-cache pnpm@9.15.9{cleanup}
WORKDIR /layers/modules
COPY package.json pnpm-lock.yaml ./
RUN {mount}{setup}{env} /opt/pnpm/bin/pnpm install --frozen-lockfile --prod --store-dir /tmp/pnpm-store \\
 && rm -f node_modules/.modules.yaml{cleanup}

FROM {run}
WORKDIR /workspace
COPY --from=build /layers/modules/node_modules ./node_modules
COPY . .
ENV NODE_ENV=production PORT=8080
USER 1000:1000
CMD ["node", "server.js"]
""",
    # Every dependency for the build script, the build, and the output on the run image served
    # by the same static server pallet uses: the prebuilt binary pallet/static ships, taken from
    # an image of its own (prepare() makes it), as a Dockerfile takes nginx or caddy.
    "node-spa": """\
FROM {build} AS build
USER root
WORKDIR /app
COPY package.json package-lock.json ./
RUN {mount}{setup}{env} npm ci --include=dev --prefer-offline --no-audit --no-fund --cache /tmp/npm-cache{cleanup}
COPY . .
RUN npm run build

FROM {run}
COPY --from={static} /pallet-static /usr/local/bin/pallet-static
COPY --from=build /app/dist /workspace/dist
ENV STATIC_ROOT=/workspace/dist STATIC_SPA=1 PORT=8080
USER 1000:1000
CMD ["/usr/local/bin/pallet-static"]
""",
}
#: How each builder gets the CA for one RUN step: (mount flag, setup, environment, cleanup).
CA_BUILDKIT = ("--mount=type=secret,id=ca,target=/run/secrets/ca.crt ", "",
               "PIP_CERT=/run/secrets/ca.crt NODE_EXTRA_CA_CERTS=/run/secrets/ca.crt", "")
#: The classic builder: the host's CAs that the build image lacks (a build argument holds at most
#: 128 KiB, the host bundle is larger), added to the image's own bundle in /tmp for one step.
CA_CLASSIC = ("", "cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca.crt && printf '%s' \"$CA_PEM\" >> /tmp/ca.crt \\\n && ",
              "PIP_CERT=/tmp/ca.crt NODE_EXTRA_CA_CERTS=/tmp/ca.crt", " \\\n && rm /tmp/ca.crt")
#: The file a one-line change edits: (file, the start of the line to replace, its new text).
CHANGE = {"python-flask": ("app.py", "GREETING = ", 'GREETING = "Hello from python-flask (edit {n})"'),
          "node-express": ("server.js", 'app.get("/healthz"',
                           'app.get("/healthz", (req, res) => res.type("text").send("ok {n}\\n"));'),
          "node-pnpm": ("server.js", "  res.end(", '  res.end(`Hello from node-pnpm (edit {n}): a day is ${{ms("1d")}} ms\\n`);'),
          "node-spa": ("src/app.js", "document.getElementById",
                       'document.getElementById("route").textContent = "route (edit {n}) " + location.pathname;'),
          "node-vite": ("src/route.js", "  return ", "  return `route (edit {n}) ${{path}}`;")}


DOCKERFILES["node-vite"] = DOCKERFILES["node-spa"]


def dockerfile(sample: str, classic: bool) -> str:
    mount, setup, env, cleanup = CA_CLASSIC if classic else CA_BUILDKIT
    text = DOCKERFILES[sample].format(build=BUILD_IMAGE, run=RUN_IMAGE, static=STATIC_IMAGE, mount=mount, setup=setup, env=env,
                                      cleanup=cleanup)
    if classic:
        text = text.replace("USER root\n", "USER root\nARG CA_PEM\n", 1)
    return text


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])}... failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = run(cmd, env)
    return time.perf_counter() - start, proc


_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def extra_certs(_cache: dict[str, str] = {}) -> str:  # noqa: B006 - computed once
    """The host trust store's certificates that the build image's does not have."""
    if "pem" not in _cache:
        image = run([DOCKER, "run", "--rm", "--network", "none", "--entrypoint", "cat", BUILD_IMAGE,
                     "/etc/ssl/certs/ca-certificates.crt"]).stdout
        known = set(_PEM.findall(image))
        _cache["pem"] = "\n".join(c for c in _PEM.findall(Path(CA).read_text()) if c not in known) + "\n"
    return _cache["pem"]


def pallet_env() -> dict[str, str]:
    env = dict(os.environ, PALLET_HOME=str(HOME / "home"))
    # A pallet installed with pip has its byte-code compiled; this machine's environment sets
    # PYTHONDONTWRITEBYTECODE, which would make every run compile pallet's modules again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@dataclass
class Sample:
    name: str
    work: Path
    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cold_digests: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    round: int = 0

    @property
    def pallet_src(self) -> Path:
        return self.work / "pallet" / self.name

    @property
    def docker_ctx(self) -> Path:
        return self.work / "docker" / self.name

    def cache(self, tool: str = "pallet") -> Path:
        return self.work / f"{tool}-cache"

    def tag(self, tool: str) -> str:
        return f"race-{self.name}:{tool}"

    def record(self, tool: str, phase: str, seconds: float) -> None:
        self.times.setdefault((tool, phase), []).append(seconds)

    def build(self, tool: str, phase: str) -> str:
        """One timed build; its digest (pallet) or image ID (docker)."""
        if tool.startswith("pallet"):
            if phase == "cold":
                shutil.rmtree(self.cache(tool), ignore_errors=True)
            env = pallet_env()
            if tool == "pallet-inproc":
                env["PALLET_SERVER"] = "0"
            seconds, proc = timed([PALLET, "build", str(self.pallet_src), "-t", self.tag(tool), "--stack", STACK,
                                   "--cache-dir", str(self.cache(tool))], env)
            ident = proc.stdout.strip().rsplit("@", 1)[1]
        else:
            classic = tool == "classic"
            env = dict(os.environ, DOCKER_BUILDKIT="0" if classic else "1")
            cmd = [DOCKER, "build", "-q", "--network", "host", "-t", self.tag(tool), "-f",
                   str(self.docker_ctx / ("Dockerfile.classic" if classic else "Dockerfile"))]
            cmd += ["--build-arg", f"CA_PEM={extra_certs()}"] if classic else ["--secret", f"id=ca,src={CA}"]
            if phase == "cold":
                cmd.append("--no-cache")
            seconds, proc = timed([*cmd, str(self.docker_ctx)], env)
            ident = proc.stdout.strip().splitlines()[-1]
        self.record(tool, phase, seconds)
        if phase == "cold":
            self.cold_digests.setdefault(tool, []).append(ident)
        return ident

    def restore(self) -> None:
        """The sample as shipped, so that every round's cold build has the same input."""
        name = CHANGE[self.name][0]
        for root in (self.pallet_src, self.docker_ctx):
            shutil.copy2(source_of(self.name) / name, root / name)

    def change(self) -> None:
        """A one-line change to the app's code, in both copies."""
        name, start, template = CHANGE[self.name]
        self.round += 1
        for root in (self.pallet_src, self.docker_ctx):
            path = root / name
            lines = path.read_text().splitlines(keepends=True)
            i = next(i for i, ln in enumerate(lines) if ln.startswith(start))
            lines[i] = template.format(n=f"{self.round}.{RUN_ID}") + "\n"
            path.write_text("".join(lines))


#: Part of every edit: BuildKit keeps its cache between runs of this bench (and `--no-cache` cold
#: builds still write it), so an edit a former run made would be a cache hit, not a change.
RUN_ID = uuid.uuid4().hex[:8]

STATIC_IMAGE = "pallet-race/pallet-static:1"


def static_image() -> None:
    """pallet/static's prebuilt server as an image of its own, for the Dockerfile to copy from."""
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy2(ROOT / "buildpacks" / "static" / "prebuilt" / "pallet-static-amd64", Path(ctx) / "pallet-static")
        (Path(ctx) / "Dockerfile").write_text("FROM scratch\nCOPY pallet-static /pallet-static\n")
        run([DOCKER, "build", "-q", "-t", STATIC_IMAGE, ctx], env=dict(os.environ, DOCKER_BUILDKIT="1"))


def load_stack_into_docker() -> None:
    """The stack's images in pallet's store (built, or found in the cache) and in Docker, under
    BUILD_IMAGE and RUN_IMAGE, loaded only when Docker's copy is not the same image."""
    HOME.mkdir(parents=True, exist_ok=True)
    env = pallet_env()
    out = run([PALLET, "stack", "build", "--refresh", str(ROOT / "stacks" / f"{STACK}.toml")], env).stdout.split()
    build_ref, run_ref = out[0], out[1]
    for ref, name in ((build_ref, BUILD_IMAGE), (run_ref, RUN_IMAGE)):
        want = json.loads(run([PALLET, "inspect", "--json", ref], env).stdout)["config"]["digest"]
        have = subprocess.run([DOCKER, "image", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True)
        if have.returncode != 0 or have.stdout.strip() != want:
            run([PALLET, "copy", ref.split("@")[0], f"docker-daemon:{name}"], env)


def prepare(work: Path, names: list[str]) -> list[Sample]:
    """The stack's images in pallet's store (and its build image unpacked, as Docker has its
    images unpacked), loaded into Docker too; a copy of each sample for each side."""
    load_stack_into_docker()
    env = pallet_env()
    samples = []
    for name in names:
        s = Sample(name, work)
        shutil.copytree(source_of(name), s.pallet_src, ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
        shutil.copytree(source_of(name), s.docker_ctx, ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
        if name in ("node-spa", "node-vite"):
            static_image()
        (s.docker_ctx / "Dockerfile").write_text(dockerfile(name, classic=False))
        (s.docker_ctx / "Dockerfile.classic").write_text(dockerfile(name, classic=True))
        (s.docker_ctx / ".dockerignore").write_text("Dockerfile*\n.dockerignore\nnode_modules\n__pycache__\n")
        # Warm-up (not timed): pallet's rootfs of the build image, Docker's base images and
        # frontend; and both sides' view of the registries.
        run([PALLET, "detect", str(s.pallet_src)], env)
        # The build server, like the Docker daemon, is up before the race (the first build
        # starts it; this one is not timed, and its cache is dropped by the cold build).
        run([PALLET, "build", str(s.pallet_src), "-t", s.tag("pallet"), "--stack", STACK, "--cache-dir",
             str(s.cache())], env)
        samples.append(s)
    return samples


def image_size_in_docker(tag: str) -> int:
    return int(run([DOCKER, "image", "inspect", "-f", "{{.Size}}", tag]).stdout.strip())


def sbom_bytes(tag: str) -> int:
    """The bytes of the CNB SBOM layer's files in pallet's image (what Docker counts of it): the
    supply chain's in-image SBOM of the buildpacks' dependencies, which a Dockerfile image has not."""
    import tarfile

    info = json.loads(run([PALLET, "inspect", "--json", tag], pallet_env()).stdout)
    lifecycle = json.loads(info["config"]["labels"]["io.buildpacks.lifecycle.metadata"])
    sha = (lifecycle.get("sbom") or {}).get("sha")
    layers = [layer for layer in info["layers"] if layer["diffID"] == sha]
    if not layers:
        return 0
    blob = HOME / "home" / "store" / "blobs" / "sha256" / layers[0]["digest"].split(":", 1)[1]
    with tarfile.open(blob) as t:
        return sum(m.size for m in t.getmembers() if m.isfile())


def machine() -> str:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    docker = run([DOCKER, "version", "-f", "{{.Server.Version}}"]).stdout.strip()
    return (f"nproc {os.cpu_count()}; cpu {cpu}; ram {mem:.1f} GiB; os {platform.platform()}; "
            f"python {platform.python_version()}; docker engine {docker} (client {DOCKER}, BuildKit built in)")


def report(samples: list[Sample], runs: int) -> str:
    lines = ["## Build race", "",
             f"Run {datetime.date.today().isoformat()} with `python bench/bench_race.py --runs {runs} --stack {STACK}`.",
             "",
             f"Machine: {machine()}", "",
             "pallet builds into its local store, daemonless (bubblewrap over the unpacked build image); "
             "docker builds the Dockerfiles in `bench/bench_race.py` (multi-stage: manifests first, the same "
             "install as the buildpack, then the source, on images of the same stack loaded into the engine). "
             "Cold = no pallet cache (an empty --cache-dir) / `docker build --no-cache`, stack images present; "
             "change = after a one-line edit of the app's code; no change = the same build again. "
             f"Seconds, median of {runs} interleaved rounds (min-max).", ""]
    for s in samples:
        lines += [f"### {s.name}", "",
                  "| build | pallet | pallet, no server | BuildKit | classic | pallet/BuildKit | target |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for phase, label in zip(PHASES, ("cold", "one-line change", "no change")):
            cells = []
            med = {}
            for tool in TOOLS:
                xs = s.times[(tool, phase)]
                med[tool] = statistics.median(xs)
                cells.append(f"{med[tool]:.2f} ({min(xs):.2f}-{max(xs):.2f})")
            ratio = med["pallet"] / med["buildkit"]
            lines.append(f"| {label} | {' | '.join(cells)} | {ratio:.2f} | <= 1.0 {'✓' if ratio <= 1.0 else '✗'} |")
        sizes = s.sizes
        smallest = min(sizes["buildkit"], sizes["classic"])
        lines += ["", f"Image size (uncompressed bytes, `docker image inspect`): pallet {sizes['pallet']:,}, "
                      f"BuildKit {sizes['buildkit']:,}, classic {sizes['classic']:,}; pallet - Dockerfile = "
                      f"{sizes['pallet'] - smallest:+,} bytes (target pallet <= Dockerfile: "
                      f"{'✓' if sizes['pallet'] <= smallest else '✗'}); of pallet's, the in-image SBOM "
                      f"{sizes['sbom']:,} bytes, so pallet - SBOM - Dockerfile = "
                      f"{sizes['pallet'] - sizes['sbom'] - smallest:+,} bytes.",
                  ""]
        for tool in TOOLS:
            ds = s.cold_digests[tool]
            same = len(set(ds)) == 1
            lines.append(f"- {tool}: {len(ds)} cold builds, {'one digest' if same else f'{len(set(ds))} different digests'}"
                         f" ({', '.join(sorted(set(d[7:19] for d in ds)))})")
        lines.append("")
    return "\n".join(lines)


def write_results(section: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Build race\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    if found:
        # The hand-written analysis after "Notes:" stays; the measured part is replaced.
        old = found.group(0)
        notes = old[old.index("\nNotes:") + 1:] if "\nNotes:" in old else ""
        text = text[: found.start()] + section.rstrip() + "\n\n" + notes + text[found.end():]
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--samples", default="python-flask,node-express")
    ap.add_argument("--stack", default="trixie", help="the stack both sides build on (default: trixie)")
    ap.add_argument("--write", action="store_true", help="put the section into bench/RESULTS.md")
    args = ap.parse_args()
    use_stack(args.stack)
    names = args.samples.split(",")
    with tempfile.TemporaryDirectory(prefix="pallet-race-") as tmp:
        samples = prepare(Path(tmp), names)
        for r in range(args.runs):
            for s in samples:
                # Interleaved: each tool's cold, change and no-change builds, then the next tool's,
                # rotating the order every round so no tool always goes first.
                for tool in TOOLS[r % len(TOOLS):] + TOOLS[: r % len(TOOLS)]:
                    for phase in PHASES:
                        if phase == "cold":
                            s.restore()
                        if phase == "change":
                            s.change()
                        s.build(tool, phase)
                print(f"round {r + 1}/{args.runs} done", file=sys.stderr)
        # A line of each certificate only this host has (the proxy's CA; not a public root that
        # certifi also ships): none may be in the images.
        public = set(_PEM.findall(run([DOCKER, "run", "--rm", "--network", "none", "--entrypoint", "cat", BUILD_IMAGE,
                                       "/usr/lib/python3/dist-packages/pip/_vendor/certifi/cacert.pem"]).stdout))
        probes = [cert.splitlines()[3] for cert in _PEM.findall(extra_certs()) if cert not in public]
        for s in samples:
            loaded = f"race-{s.name}:pallet-loaded"
            run([PALLET, "copy", s.tag("pallet"), f"docker-daemon:{loaded}"], pallet_env())
            s.sizes["sbom"] = sbom_bytes(s.tag("pallet"))
            for tool, image in (("pallet", loaded), ("buildkit", s.tag("buildkit")), ("classic", s.tag("classic"))):
                s.sizes[tool] = image_size_in_docker(image)
                if probes:
                    leaked = subprocess.run([DOCKER, "run", "--rm", "--network", "none", "--user", "0",
                                             "--entrypoint", "/bin/grep", image, "-rlF", "--exclude-dir=proc",
                                             "--exclude-dir=sys", "--exclude-dir=dev",
                                             *(a for p in probes for a in ("-e", p)), "/"],
                                            capture_output=True, text=True)
                    assert not leaked.stdout.strip(), f"the CA is in {image}: {leaked.stdout}"
    section = report(samples, args.runs)
    print(section)
    if args.write:
        write_results(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
