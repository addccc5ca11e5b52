"""A stack published to a registry (``pallet stack build --publish``), named by digest in an
app's ``project.toml``, so a runner builds on it without assembling it (no mmdebstrap, no
Debian mirror)::

    [io.pallet.stack]
    build-image = "docker://reg.example/stacks/trixie-build:0.1.0@sha256:..."
    run-image = "docker://reg.example/stacks/trixie-run:0.1.0@sha256:..."
    # or: builder = "docker://reg.example/pallet/builder@sha256:..."   (pallet builder create)

Both images are pulled once per pair of digests into an OCI layout in the cache
(``builders/<key>``: made under a temporary name, renamed when complete; leased while a build
reads it, so ``pallet prune`` leaves it alone). Digests are required: a tag can move, and a
build of the same source must use the same stack wherever it runs (``builder.builders.pin``: the
refusal quotes the digest the tag names now).

The app image records the run image as a build on the stack itself does (``NAME-run:VERSION``
at its digest, from the run image's labels), so the digest is the same as a local-stack build's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from builder.lifecycle.tomlio import TomlError, value_at

if TYPE_CHECKING:
    from builder.oci.reference import Reference
    from builder.oci.image import Image
    from builder.oci.stores import StoreOptions

TABLE = "io.pallet.stack"
_DONE = "images.json"


@dataclass(frozen=True)
class StackRef:
    """What ``[io.pallet.stack]`` names: a build and run image pair, or a builder image."""

    build_image: str | None = None
    run_image: str | None = None
    builder: str | None = None


def parse_stack_ref(data: dict, where: str,
                    pin: "Callable[[Reference], str | None]" = lambda ref: None) -> StackRef | None:
    """The project's stack reference (None without the table); one-line errors for what it must not say.
    ``pin``: a tag's reference at the digest it names now, for the refusal to quote (None: unknown)."""
    from builder.builders.pin import digest_required
    from builder.errors import PalletError
    from builder.oci import reference as refs

    table = value_at(data, TABLE, where)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise TomlError(f"{where}: [{TABLE}] must be a table")
    unknown = sorted(set(table) - {"build-image", "run-image", "builder"})
    if unknown:
        raise TomlError(f"{where}: [{TABLE}] has unknown keys {', '.join(unknown)}: it takes build-image and "
                        "run-image, or builder")
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise TomlError(f"{where}: [{TABLE}] {key} must be an image reference (a string)")
        try:
            ref = refs.parse(value)
        except PalletError as exc:
            raise TomlError(f"{where}: [{TABLE}] {key}: {exc}") from None
        if ref.transport != refs.REGISTRY:   # the source's word: not a path on this machine, nor its Docker's
            raise TomlError(f"{where}: [{TABLE}] {key} must name a registry (docker://HOST/REPO@sha256:...), not "
                            f"{value!r}: project.toml comes with the source, and this machine's files and images "
                            "are the command line's to name (--build-image, --run-image, --builder)")
        if not ref.digest:  # as --builder's: pallet stack build --publish prints references by digest
            raise TomlError(digest_required(f"{where}: [{TABLE}] {key}", value, pin(ref)))
    if "builder" in table:
        if len(table) > 1:
            raise TomlError(f"{where}: [{TABLE}] builder names the stack's images: drop build-image and run-image")
        return StackRef(builder=table["builder"])
    if set(table) != {"build-image", "run-image"}:
        raise TomlError(f"{where}: [{TABLE}] needs both build-image and run-image (or a builder)")
    return StackRef(build_image=table["build-image"], run_image=table["run-image"])


def _named(ref: "Reference", options: "StoreOptions | None", given: tuple[str | None, ...]) -> "StoreOptions":
    """The options to open ``ref`` with: project.toml comes with the source, which may be anyone's,
    so ``--creds`` go to a registry it names only when the command line names that host too
    (a stack on docker://attacker.example had the password sent there)."""
    from builder.oci.stores import options_for_named

    return options_for_named(ref, options, given)


def read_stack_ref(source: Path, options: "StoreOptions | None" = None,
                   given: tuple[str | None, ...] = ()) -> StackRef | None:
    """``source``'s stack reference; a tag in it is refused, quoting the digest it names now.
    ``given``: the references the user typed (their hosts may get ``--creds``)."""
    from builder.builders.pin import current_digest
    from builder.lifecycle import tomlio

    from builder.inputfile import check_in_app

    path = source / "project.toml"
    check_in_app(source, path, "project.toml")
    data = tomlio.read_optional(path)
    return None if data is None else parse_stack_ref(
        data, str(path), lambda ref: current_digest(ref, _named(ref, options, given)))


def images_from_stack_ref(stack: StackRef, options: "StoreOptions", cache_root: Path,
                          given: tuple[str | None, ...] = ()) -> tuple["Image", "Image", str, str | None]:
    """(build image, run image, run image name to record, stack name) for a project's stack reference."""
    from builder.oci import reference as refs

    if stack.builder is not None:
        from builder.builders.pull import images_from_builder

        return images_from_builder(stack.builder, _named(refs.parse(stack.builder), options, given), cache_root)
    assert stack.build_image is not None and stack.run_image is not None
    return images_from_refs(stack.build_image, stack.run_image, options, cache_root, given)


def images_from_refs(build_text: str, run_text: str, options: "StoreOptions", cache_root: Path,
                     given: tuple[str | None, ...] = ()) -> tuple["Image", "Image", str, str | None]:
    from builder.gc import lease
    from builder.oci import reference as refs
    from builder.oci.image import load_image
    from builder.oci.stores.layout import LayoutStore

    build_ref, run_ref = refs.parse(build_text), refs.parse(run_text)
    assert build_ref.digest and run_ref.digest
    name = hashlib.sha256(f"{build_ref.digest}\0{run_ref.digest}".encode()).hexdigest()
    area = cache_root / "builders"
    done = area / name
    lease.hold_for_process(area, name)  # pallet prune leaves it to this build
    if not (done / _DONE).is_file():
        _pull(build_ref, run_ref, options, done, given)
    store = LayoutStore(done / "stack", create=False)
    build, run = load_image(store, build_ref.digest), load_image(store, run_ref.digest)
    labels = run.config.config.labels
    stack_name = labels.get("io.pallet.stack.name")
    version = labels.get("org.opencontainers.image.version")
    run_name = (refs.parse(f"{stack_name}-run:{version}").at_digest(run.digest)
                if stack_name and version and labels.get("io.pallet.stack.image") == "run" else run_text)
    return build, run, run_name, stack_name


def _pull(build_ref, run_ref, options: "StoreOptions", done: Path,  # noqa: ANN001
          given: tuple[str | None, ...]) -> None:
    from builder.oci.copy import copy_image
    from builder.oci.stores import open_store
    from builder.oci.stores.layout import LayoutStore

    done.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{done.name}-", dir=done.parent))
    try:
        with LayoutStore(tmp / "stack") as layout:
            for ref, tag in ((build_ref, "build"), (run_ref, "run")):
                with open_store(ref, _named(ref, options, given)) as src:
                    copy_image(src, ref.digest, layout, tag)  # by digest: checked as it comes in
        (tmp / _DONE).write_text(json.dumps({"build": str(build_ref), "run": str(run_ref)}, indent=2) + "\n")
        if done.exists():
            shutil.rmtree(done)
        os.replace(tmp, done)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
