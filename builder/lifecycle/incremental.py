"""Only the app changed: make the app layer again and put it in place of the last build's.

A one-line edit of ``app.py`` changes the source, so the whole-build memo misses; yet when the
edit touches nothing any buildpack reads, detect would pass the same group with the same plan,
every buildpack would be skipped (``inputs``) and export would produce the last image with one
layer replaced. This module proves that cheaply and then does just that, with no sandbox:

- the *shape key* covers everything but the contents of files no buildpack reads: the images,
  the run image name, the build env, the buildpacks' and pallet's own files (as the memo key
  does), ``SOURCE_DATE_EPOCH``, every source path (with its type, exec bit, link target), and,
  through each buildpack's declared inputs, what its ``bin/detect`` (for every buildpack whose
  detect ran last time) and its ``bin/build`` (for the group) read: whole files, names, or the
  lines a regex matches;
- when it equals the last build's, the app directory is copied as a build would copy it, the
  buildpacks' recorded changes to the top of /workspace are made again, the app layer is
  written (or found in the layer cache), and the last image is recomposed around it with the
  same ``compose`` that export and rebase use. The result is the image a full build would give
  (a test builds both ways and compares digests).

A buildpack without declared inputs (anyone's buildpack, by default) turns this off: pallet
cannot know what it reads.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from builder import treewalk
from builder.lifecycle import inputs as inputsmod
from builder.lifecycle.buildpack import Buildpack

if TYPE_CHECKING:
    from builder.lifecycle.results import ExportResult
    from builder.oci.image import Image
    from builder.oci.stores.base import Store

def _names(h: "hashlib._Hash", root: Path) -> None:
    """Every path under ``root`` (``.git`` aside) with its type, exec bit and link target."""
    for dirpath, dirs, files in treewalk.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirs[:] = [d for d in dirs if d != ".git"]
        dirs.sort()
        for name in sorted(files + dirs):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if os.path.islink(path):
                what = "L" + os.readlink(path)
            elif os.path.isdir(path):
                what = "D"
            else:
                what = f"F{st.st_mode & 0o111:o}"
            h.update(f"{rel}\0{what}\n".encode("utf-8", "surrogateescape"))


def names_digest(root: Path) -> str:
    """A digest of every path under ``root`` (as ``_names`` feeds it) and of project.toml."""
    h = hashlib.sha256(b"names-v1\n")
    _names(h, root)
    _project_toml(h, root)
    return h.hexdigest()


def _project_toml(h: "hashlib._Hash", root: Path) -> None:
    """Feed ``h`` the digest of the app's project.toml, streamed: it may link to a file of any size
    (read_project refuses a link out of the app, maybe only after this key is made)."""
    project = root / "project.toml"
    if project.is_file():
        with open(project, "rb") as f:
            h.update(b"project.toml\0" + hashlib.file_digest(f, "sha256").digest())


Reads = list[tuple[str, inputsmod.Inputs]]


def reads_of(detected: list[Buildpack], group: list[Buildpack]) -> Reads | None:
    """What each buildpack whose detect ran, and each of the group's builds, reads of the app;
    None when one of them does not say."""
    out: Reads = []
    for phase, bps in (("detect", detected), ("build", group)):
        for bp in bps:
            declared = inputsmod.declared(bp, detect=phase == "detect")
            if declared is None:
                return None
            out.append((f"{phase} {bp.id}@{bp.version}", declared))
    return out


def shape_key(base: str, source: Path, reads: Reads) -> str:
    """The key of everything but what no buildpack reads. ``base``: the memo's key of the
    build's other inputs (images, env, buildpacks, pallet, epoch), computed without the source."""
    h = hashlib.sha256(f"shape-v1\0{base}\n".encode())
    _names(h, source)
    _project_toml(h, source)
    for label, declared in reads:
        h.update(f"\0{label}\n".encode())
        inputsmod.digest_app(h, source, declared)
    return h.hexdigest()


@dataclass
class Shape:
    """What the memo keeps of a build for the next one to recognise (and reuse) its shape.

    The buildpacks' declared reads are kept as they were: the shape key only matches when the
    buildpacks' files (part of ``base``) are unchanged, so they are still what parsing gives."""

    key: str
    reads: Reads
    workspace: list[dict[str, str | None]]   # each group buildpack's changes to /workspace

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "workspace": self.workspace,
                "reads": [[label, list(r.files), list(r.names), [list(x) for x in r.lines], list(r.skip_dirs)]
                          for label, r in self.reads]}

    @classmethod
    def from_json(cls, data: Any) -> "Shape | None":
        try:
            reads = [(str(label), inputsmod.Inputs(tuple(r[1]), tuple(r[2]), tuple((g, rx) for g, rx in r[3]),
                                                   tuple(r[4]) if len(r) > 4 else ()))
                     for r in data["reads"] for label in [r[0]]]
            return cls(str(data["key"]), reads, [dict(w) for w in data["workspace"]])
        except (KeyError, TypeError, ValueError):
            return None


def apply_workspace(app_dir: Path, changes: list[dict[str, str | None]]) -> None:
    from builder.lifecycle.cache import Record

    for change in changes:
        Record(key="", workspace=change).reinstate_workspace(app_dir)


def rebuild_app(*, source: Path, previous: "Image", run_image: "Image", run_name: str, dst: "Store", tag: str,
                shape: Shape, cache_root: Path, work_root: Path, processes: list,
                default: str | None) -> "ExportResult | None":
    """The last image with a new app layer; None when the last image cannot be taken apart."""
    from builder.lifecycle.compose import NotBuildpacksImage, app_part_of, compose
    from builder.lifecycle.results import ExportResult
    from builder.lifecycle.layercache import LayerCache
    from builder.lifecycle.project import copy_source, read_project
    from builder.oci import mutate

    try:
        app, _ = app_part_of(previous.manifest, previous.config)
        app_sha = app.lifecycle["app"][0]["sha"]
    except (NotBuildpacksImage, KeyError, IndexError, TypeError):
        return None
    old = [i for i, layer in enumerate(app.layers) if layer.diff_id == app_sha]
    if len(old) != 1:
        return None
    with tempfile.TemporaryDirectory(prefix="pallet-app-", dir=work_root) as tmp:
        app_dir = Path(tmp) / "workspace"
        copy_source(source, app_dir, read_project(source))
        apply_workspace(app_dir, shape.workspace)
        cached, hit = LayerCache(cache_root / "layers").layer(app_dir, prefix="workspace", uid=app.uid, gid=app.gid)
    app.layers[old[0]] = replace(app.layers[old[0]], descriptor=cached.descriptor, diff_id=cached.diff_id)
    app.lifecycle["app"] = [{"sha": cached.diff_id}]
    manifest, config = compose(run_image.manifest, run_image.config, run_image.digest, run_name, app)
    manifest, config_bytes = mutate.finalize(manifest, config)
    if not dst.has_blob(cached.descriptor.digest):
        dst.put_blob_file(cached.descriptor, cached.path)
    dst.put_blob_bytes(config_bytes, manifest.config.media_type)
    desc = dst.put_manifest(manifest.to_bytes(), manifest.media_type, tag=tag)
    names = [f"{bp['key']}:{name}" for bp in app.lifecycle.get("buildpacks", []) for name in bp.get("layers", {})]
    return ExportResult(desc, processes, default, layers_reused=names + (["app"] if hit else []),
                        layers_written=[] if hit else ["app"])


def log_hit(output: Callable[[str], None]) -> None:
    output("only app files no buildpack reads changed: the buildpacks' layers are reused, the app layer is new")

