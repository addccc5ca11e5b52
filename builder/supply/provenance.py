"""SLSA provenance: an in-toto Statement v1 with a SLSA Provenance v1 predicate, signed in DSSE.

``statement(facts)`` is pure: the build pipeline collects ``BuildFacts`` as it runs and calls
it at the end. ``source_facts(directory)`` is the one function here that looks at a disk (and
runs ``git``); ``attest`` stores a signed statement next to the image.

The predicate, as https://slsa.dev/provenance/v1 lays it out::

    buildDefinition:
      buildType: BUILD_TYPE
      externalParameters: {source: {repository, commit} | {digest: {sha256}}, stack, buildpacks}
      internalParameters: {palletVersion}
      resolvedDependencies: [{uri, digest: {sha256|gitCommit}, name}]   # source, run/build images, buildpacks
    runDetails:
      builder: {id: BUILDER_ID}
      metadata: {invocationId, startedOn, finishedOn}
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from builder import jsonsafe
from builder import __version__
from builder.oci.digest import is_digest, split
from builder.oci.stores.base import Store
from builder.supply import dsse
from builder.supply.attach import (ATTESTATIONS, Attachment, append_attached, attach_referrer, cosign_tag,
                                   read_attached, subject_of)
from builder.supply.keys import PrivateKey, TrustedKey

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://pallet.dev/buildtypes/buildpacks/v1"
#: A multi-platform build: one build per platform, composed into an index (the subject).
INDEX_BUILD_TYPE = "https://pallet.dev/buildtypes/buildpacks-index/v1"
#: The builder id of a build run by hand; a CI platform passes its own (e.g. its workflow URI).
DEFAULT_BUILDER_ID = "https://pallet.dev/builders/local"
#: Annotation cosign puts on attestation layers.
PREDICATE_ANNOTATION = "predicateType"


@dataclass(frozen=True)
class SourceFacts:
    """Where the source came from: a git commit of a repository, and/or a digest of the tree."""

    repository: str | None = None   # remote URL, credentials removed
    commit: str | None = None
    tree_digest: str | None = None  # sha256:... (see tree_digest), when not a clean checkout
    path: str | None = None         # the source directory inside the repository, if not its root


@dataclass(frozen=True)
class Dependency:
    """Something the build used, by digest: a run/build image or a buildpack."""

    name: str          # e.g. "run-image", "build-image", "pallet/python@0.3.0"
    digest: str        # sha256:...
    uri: str | None = None  # a purl, or an image reference (recorded as ``image_uri`` makes it)


@dataclass(frozen=True)
class BuildFacts:
    image: str                     # the image's name, e.g. "127.0.0.1:5000/app" (the subject's name)
    digest: str                    # the image's manifest digest
    source: SourceFacts
    started_on: datetime.datetime
    finished_on: datetime.datetime
    stack: str | None = None
    buildpacks_requested: tuple[str, ...] = ()  # as asked for (empty: auto-detected)
    run_image: Dependency | None = None
    build_image: Dependency | None = None
    buildpacks: tuple[Dependency, ...] = ()     # as resolved and run
    builder_id: str = DEFAULT_BUILDER_ID
    invocation_id: str | None = None
    extra_parameters: dict[str, Any] = field(default_factory=dict)


def _time(t: datetime.datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest_set(digest: str) -> dict[str, str]:
    algo, hexpart = split(digest)
    return {algo: hexpart}


def _dependency(dep: Dependency) -> dict[str, Any]:
    out: dict[str, Any] = {"name": dep.name, "digest": _digest_set(dep.digest)}
    if dep.uri:
        out["uri"] = dep.uri if dep.uri.startswith("pkg:") else image_uri(dep.uri, dep.digest)
    return out


def source_parameter(source: SourceFacts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if source.repository:
        out["repository"] = source.repository
    if source.commit:
        out["commit"] = source.commit
    if source.tree_digest:
        out["digest"] = _digest_set(source.tree_digest)
    if source.path:
        out["path"] = source.path
    return out


def statement(facts: BuildFacts) -> dict[str, Any]:
    """The in-toto statement (a dict, ready for ``json.dumps``) for a build. Pure."""
    if not is_digest(facts.digest):
        raise ValueError(f"not an image digest: {facts.digest!r}")
    external: dict[str, Any] = {
        "source": source_parameter(facts.source),
        "stack": facts.stack,
        "buildpacks": list(facts.buildpacks_requested),
    }
    external.update(facts.extra_parameters)
    resolved: list[dict[str, Any]] = []
    if facts.source.repository and facts.source.commit:
        resolved.append({"uri": f"git+{facts.source.repository}@{facts.source.commit}",
                         "digest": {"gitCommit": facts.source.commit}, "name": "source"})
    elif facts.source.tree_digest:
        resolved.append({"digest": _digest_set(facts.source.tree_digest), "name": "source"})
    for dep in (facts.run_image, facts.build_image, *facts.buildpacks):
        if dep is not None:
            resolved.append(_dependency(dep))
    metadata: dict[str, Any] = {"startedOn": _time(facts.started_on), "finishedOn": _time(facts.finished_on)}
    if facts.invocation_id:
        metadata["invocationId"] = facts.invocation_id
    return slsa_statement(name=facts.image, digest=facts.digest, build_type=BUILD_TYPE, external=external,
                          resolved=resolved, builder_id=facts.builder_id, metadata=metadata)


def index_statement(name: str, digest: str, platforms: list[tuple[str, str, BuildFacts]]) -> dict[str, Any]:
    """The provenance of a multi-platform build's index (``digest``): ``platforms`` is (platform,
    media type, that platform's build facts) for each manifest of the index, in its order.

    The source, stack, buildpacks asked for and builder are the build's (the same for every
    platform); ``externalParameters.platforms`` lists the platforms; ``resolvedDependencies``
    are the source and each platform's run and build images and buildpacks (named with their
    platform: ``run-image linux/arm64/v8``); ``runDetails.byproducts`` name each platform's
    manifest by digest, as the index does -- each has its own provenance too. Pure."""
    if not platforms:
        raise ValueError("an index statement needs at least one platform")
    if not is_digest(digest):
        raise ValueError(f"not an image digest: {digest!r}")
    per_platform = [(platform, statement(facts)) for platform, _, facts in platforms]
    first = per_platform[0][1]["predicate"]
    external = {**first["buildDefinition"]["externalParameters"], "platforms": [p for p, _ in per_platform]}
    resolved: list[dict[str, Any]] = []
    seen: set[str] = set()
    for platform, st in per_platform:
        for dep in st["predicate"]["buildDefinition"]["resolvedDependencies"]:
            named = dep if dep.get("name") == "source" else {**dep, "name": f"{dep.get('name')} {platform}"}
            key = statement_bytes(named).decode()
            if key not in seen:
                seen.add(key)
                resolved.append(named)
    byproducts = [{"name": platform, "digest": _digest_set(facts.digest), "mediaType": media_type,
                   "uri": _platform_uri(name, facts.digest, platform)} for platform, media_type, facts in platforms]
    starts = [f.started_on for _, _, f in platforms]
    ends = [f.finished_on for _, _, f in platforms]
    metadata: dict[str, Any] = {"startedOn": _time(min(starts)), "finishedOn": _time(max(ends))}
    if platforms[0][2].invocation_id:
        metadata["invocationId"] = platforms[0][2].invocation_id
    return slsa_statement(name=name, digest=digest, build_type=INDEX_BUILD_TYPE, external=external,
                          resolved=resolved, builder_id=platforms[0][2].builder_id, metadata=metadata,
                          byproducts=byproducts)


def _platform_uri(name: str, digest: str, platform: str) -> str:
    """One platform's image of a multi-platform one, named as the subject is: a purl with ``arch``."""
    from builder.supply import purl

    return purl.oci_named(name, digest, platform.split("/")[1] if "/" in platform else platform)


def slsa_statement(*, name: str, digest: str, build_type: str, external: dict[str, Any],
                   resolved: list[dict[str, Any]], builder_id: str, metadata: dict[str, Any],
                   byproducts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An in-toto statement with a SLSA v1 provenance predicate: the shape every pallet statement
    (a build's, a rebase's, an index's) shares. Pure."""
    run_details: dict[str, Any] = {"builder": {"id": builder_id}, "metadata": metadata}
    if byproducts:
        run_details["byproducts"] = byproducts
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": _digest_set(digest)}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": external,
                "internalParameters": {"palletVersion": __version__},
                "resolvedDependencies": resolved,
            },
            "runDetails": run_details,
        },
    }


def same_claim_key(st: Any) -> bytes | None:
    """The statement less what differs between two runs of one build (``runDetails.metadata``:
    times, invocation id). A reproducible build of the same digest makes the same claim, and
    attesting it again must not add a second attestation of it. Pure."""
    if not isinstance(st, dict):
        return None
    pred = st.get("predicate")
    if isinstance(pred, dict) and isinstance(pred.get("runDetails"), dict):
        run = {k: v for k, v in pred["runDetails"].items() if k != "metadata"}
        st = {**st, "predicate": {**pred, "runDetails": run}}
    return statement_bytes(st)


def statement_bytes(st: dict[str, Any]) -> bytes:
    return json.dumps(st, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- reading a statement back (for policies) ---------------------------------------------------


def builder_id_of(st: dict[str, Any]) -> str | None:
    """The builder id of a SLSA v1 (or v0.2) provenance statement."""
    pred = st.get("predicate")
    if not isinstance(pred, dict):
        return None
    if isinstance(pred.get("runDetails"), dict):
        builder = pred["runDetails"].get("builder")
    else:
        builder = pred.get("builder")  # SLSA v0.2
    value = builder.get("id") if isinstance(builder, dict) else None
    return value if isinstance(value, str) else None


def resolved_dependencies(st: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects of a statement's ``buildDefinition.resolvedDependencies``; none when that is not
    a list (a signer's statement may hold anything: a number there was a TypeError traceback)."""
    pred = st.get("predicate")
    bd = pred.get("buildDefinition") if isinstance(pred, dict) else None
    deps = bd.get("resolvedDependencies") if isinstance(bd, dict) else None
    return [d for d in deps if isinstance(d, dict)] if isinstance(deps, list) else []


def source_repository_of(st: dict[str, Any]) -> str | None:
    """The source repository a provenance statement names (pallet's, else a git+ dependency)."""
    pred = st.get("predicate")
    if not isinstance(pred, dict):
        return None
    bd = pred.get("buildDefinition")
    if isinstance(bd, dict):
        ext = bd.get("externalParameters")
        source = ext.get("source") if isinstance(ext, dict) else None
        if isinstance(source, dict) and isinstance(source.get("repository"), str):
            return source["repository"]
        for dep in resolved_dependencies(st):
            uri = dep.get("uri")
            if isinstance(uri, str) and uri.startswith("git+"):
                url = uri[4:]
                return url.rsplit("@", 1)[0] if "@" in url.rsplit("/", 1)[-1] else url
    return None


# -- facts about a source directory (I/O) ------------------------------------------------------


def _git(directory: Path, *args: str) -> str | None:
    """git's answer in ``directory``, the source's repository: a stranger's, whose config must
    not run commands (its core.fsmonitor or a filter driver ran on the host as git status
    looked at the work tree, outside any sandbox)."""
    from builder.lifecycle.gitignored import harmless_config

    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        proc = subprocess.run(["git", *harmless_config("git", directory, env), "-C", str(directory), *args],
                              capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?([^/:]+):(?!//)(.+)$")


def strip_credentials(url: str) -> str:
    """A remote URL reduced to scheme, host (and port) and path: no ``user:password@``, no query
    (``?private_token=...``), no fragment. A token in a remote URL must not end up in
    provenance, and the commit appended to it (``git+URL@COMMIT``) must land after the path.
    git's scp-like ``git@host:path`` becomes ``ssh://host/path``. Pure."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    m = _SCP_LIKE.match(url)
    if m and not parts.scheme.startswith(("/", ".")) and len(m.group(1)) > 1:
        return f"ssh://{m.group(1)}/{m.group(2).lstrip('/').split('?', 1)[0].split('#', 1)[0]}"
    return url.split("?", 1)[0].split("#", 1)[0]  # a local path: never a query to keep


def image_uri(name: str | None, digest: str) -> str | None:
    """How provenance names an image: a purl ``pkg:oci/NAME@DIGEST``, with
    ``repository_url=HOST/REPO`` for a registry image. Never a local store name or a host path
    (``tiny-run:0.1.0``, ``oci:/home/me/layout``): they mean nothing on another machine. Pure."""
    from builder.oci import reference as refs
    from builder.supply import purl

    if not name:
        return None
    if name.startswith("pkg:"):
        return name
    try:
        ref = refs.parse(name)
    except Exception:  # a name we cannot parse: the digest alone identifies the image
        return purl.oci("image", digest)
    if ref.transport == refs.REGISTRY:
        return purl.oci(ref.repository, digest, f"{ref.host}/{ref.repository}")
    last = (ref.repository or ref.path or "").rstrip("/").rsplit("/", 1)[-1] or "image"
    return purl.oci(last, digest)


def requested_buildpacks(requested: tuple[str, ...], resolved: tuple[tuple[str, str, str], ...]) -> list[str]:
    """What ``--buildpack`` asked for, as ``ID@VERSION``: a directory given on the command line
    is named by the buildpack it holds, never its host path. ``resolved``: (id, version, path)
    of each buildpack that ran. Pure."""
    by_path = {os.path.realpath(path): f"{bid}@{version}" for bid, version, path in resolved}
    by_id = {bid: f"{bid}@{version}" for bid, version, _ in resolved}
    out = []
    for item in requested:
        if item in by_id:
            out.append(by_id[item])
        elif os.path.realpath(item) in by_path:
            out.append(by_path[os.path.realpath(item)])
        elif "/" in item and (item.startswith((".", "/", "~")) or os.path.exists(item)):
            out.append("(a buildpack directory that did not run)")
        else:
            out.append(item)
    return out


def source_facts(directory: str | os.PathLike[str]) -> SourceFacts:
    """The repository URL and commit when ``directory`` is in a clean git checkout with a remote;
    otherwise (no git, no remote, uncommitted changes) also a digest of the tree itself."""
    path = Path(directory).resolve()
    top = _git(path, "rev-parse", "--show-toplevel")
    if top:
        commit = _git(path, "rev-parse", "HEAD")
        remote = _git(path, "remote", "get-url", "origin")
        if remote is None:
            remotes = (_git(path, "remote") or "").split()
            remote = _git(path, "remote", "get-url", remotes[0]) if remotes else None
        status = _git(path, "status", "--porcelain", "--ignore-submodules=all", "--", ".")
        rel = os.path.relpath(path, top)
        clean = status == ""
        return SourceFacts(repository=strip_credentials(remote) if remote else None, commit=commit,
                           tree_digest=None if (clean and remote and commit) else tree_digest(path),
                           path=None if rel == "." else rel)
    return SourceFacts(tree_digest=tree_digest(path))


def tree_digest(directory: str | os.PathLike[str]) -> str:
    """A digest of a directory's content: sorted paths, kinds, exec bits, file bytes, link targets.

    Times, owners and the directory's own name do not count; ``.git`` is skipped.
    """
    root = Path(directory)
    h = hashlib.sha256(b"pallet tree v1\n")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            full = Path(dirpath) / name
            rel = (rel_dir / name).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                h.update(f"L {rel}\0{os.readlink(full)}\n".encode("utf-8", "surrogateescape"))
            elif stat.S_ISREG(st.st_mode):
                fh = hashlib.sha256()
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        fh.update(chunk)
                kind = "X" if st.st_mode & 0o111 else "F"
                h.update(f"{kind} {rel}\0{fh.hexdigest()}\n".encode("utf-8", "surrogateescape"))
        for d in dirnames:
            if not os.path.islink(os.path.join(dirpath, d)):
                h.update(f"D {(rel_dir / d).as_posix()}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


# -- attaching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attested:
    digest: str
    tag: str                  # sha256-<hex>.att
    attestations: str         # digest of the .att manifest
    referrer: str             # digest of the OCI 1.1 referrer manifest
    envelope: bytes


def attest(store: Store, digest: str, st: dict[str, Any], key: PrivateKey) -> Attested:
    """Sign ``st`` in a DSSE envelope and attach it twice: cosign's ``.att`` tag and a referrer.

    Attesting the same statement (``same_claim_key``: times aside) with the same key again
    reuses the envelope already there, so nothing new is written.
    """
    subject = subject_of(store, digest)
    payload = statement_bytes(st)
    mine = [TrustedKey(key.public_key(), "signing key")]

    claim = same_claim_key(st)

    def same(existing: Attachment) -> bool:
        try:
            env = dsse.parse(existing.payload)
        except dsse.EnvelopeError:
            return False
        if env.payload != payload:
            try:
                if same_claim_key(jsonsafe.loads(env.payload)) != claim:
                    return False
            except (ValueError, UnicodeDecodeError):
                return False
        return bool(dsse.verify(env, mine))

    current = read_attached(store, subject.digest, ATTESTATIONS)
    previous = [a.payload for _, a in current.attachments if same(a)]
    envelope = previous[0] if previous else dsse.sign(payload, dsse.INTOTO_PAYLOAD_TYPE, key)
    predicate_type = str(st.get("predicateType") or "")
    layer = Attachment(dsse.MEDIA_TYPE, envelope, {"dev.cosignproject.cosign/signature": "",
                                                   PREDICATE_ANNOTATION: predicate_type})
    att, _ = append_attached(store, subject.digest, ATTESTATIONS, layer, same=same)
    referrer = attach_referrer(store, subject, dsse.MEDIA_TYPE, envelope, dsse.MEDIA_TYPE,
                               {"in-toto.io/predicate-type": predicate_type})
    return Attested(digest=subject.digest, tag=cosign_tag(subject.digest, ATTESTATIONS), attestations=att.digest,
                    referrer=referrer.digest, envelope=envelope)
