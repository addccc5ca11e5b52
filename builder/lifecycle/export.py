"""Phase 4, export: the app image from the run image, the launch layers the buildpacks left,
the app directory, the launcher and the process types.

Layer order: run image layers; one layer per launch layer (buildpack order, then layer name);
the app layer (/workspace, owned by the CNB user); the launcher; the config layer (process
types as /cnb/process/<type> and their launcher files). Everything that depends on the run
image is computed by ``compose``, so rebase can recompute it for another run image.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from pathlib import Path

from builder.errors import PalletError
from builder.lifecycle import launch as launchfmt
from builder.lifecycle.build import BuildResult
from builder.lifecycle.compose import BUILD_METADATA, AppLayer, AppPart, compose
from builder.lifecycle.layercache import LayerCache
from builder.lifecycle.layers import merge_processes
from builder.lifecycle.results import ExportResult
from builder.lifecycle.process import LAUNCHER, LAYERS, PROCESS_CONFIG_DIR, PROCESS_DIR, WORKSPACE, Process
from builder.oci import mutate
from builder.oci.copy import CopyStats, copy_blobs
from builder.oci.image import Image
from builder.oci.compress import APP_GZIP_LEVEL
from builder.oci.layer import Entry, layer_from_entries
from builder.oci.stores.base import Store

PALLET_LIFECYCLE_VERSION = "0.1.0"
#: Build env (``--env`` or project.toml): ``always`` keeps the launcher in every image; ``auto``
#: (the default) leaves it out of an image whose one process can be its entrypoint.
LAUNCHER_CHOICE = "BP_LAUNCHER"
_ACTIONS = ("override", "default", "append", "prepend")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def launcher_free_env(result: BuildResult, processes: list[Process], default: str | None,
                      choice: str = "auto") -> tuple[tuple[str, str, str, str | None], ...] | None:
    """The launch environment of an image that needs no launcher, as rules; None if it needs one.

    The launcher's work is to pick a process type and set up its environment from the launch
    layers at start-up. An image with one process type has nothing to pick, and its environment
    is fixed at build time: the same rules, applied in the launcher's order (per buildpack: its
    layers' bin/ and lib/, then their env/, env.launch/ and env.launch/<type>/ files), can be
    applied to the run image's env now and written into the config, as ko and apko images do.
    Such an image starts its process directly (no launcher in it: 9 kB less, and no extra exec).
    With several process types, or env files the config cannot carry exactly (not UTF-8, a NUL,
    a symlink, a directory where a file should be), the image keeps the launcher."""
    if choice not in ("auto", "always"):
        raise PalletError(f"{LAUNCHER_CHOICE}={choice!r}: give 'auto' (the default: no launcher in an image "
                          "with one process type) or 'always'")
    if choice == "always" or len(processes) != 1 or default != processes[0].type:
        return None
    ptype = processes[0].type
    rules: list[tuple[str, str, str, str | None]] = []
    for output in result.outputs:
        layers = [(layer.path, f"{LAYERS}/{output.buildpack.layers_name}/{layer.name}")
                  for layer in sorted(output.layers, key=lambda x: x.name) if layer.types.launch]
        for host, inside in layers:
            for sub, var in (("bin", "PATH"), ("lib", "LD_LIBRARY_PATH")):
                if os.path.exists(host / sub):
                    rules.append((var, "prepend", f"{inside}/{sub}", ":"))
        for host, _ in layers:
            for env_dir in (host / "env", host / "env.launch", host / "env.launch" / ptype):
                if os.path.islink(env_dir):
                    return None
                if not env_dir.is_dir():
                    continue
                files = {}
                for entry in os.scandir(env_dir):
                    if entry.is_dir(follow_symlinks=False):
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        return None  # a symlink, a FIFO...: what the launcher would read is not sure
                    files[entry.name] = entry.path
                for name in sorted(files, key=lambda n: n.encode("utf-8", "surrogateescape")):
                    var, dot, action = name.partition(".")
                    action = action if dot else "override"
                    if not var or "=" in var or action not in _ACTIONS:
                        continue  # as the launcher: hidden files, .delim files, unknown suffixes
                    if not _ENV_NAME.match(var):
                        return None  # a name a config's "NAME=value" could not carry as the launcher sets it
                    value = _env_text(files[name])
                    delim = _env_text(files[f"{var}.delim"]) if f"{var}.delim" in files else ""
                    if value is None or delim is None:
                        return None
                    rules.append((var, action, value, delim or None))
    return tuple(rules)


def _env_text(path: str) -> str | None:
    """A launch env file's value as the config can carry it (UTF-8, no NUL), else None."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\0" in text else text


def _config_layer_entries(processes: list[Process], layer_dirs: list[str], metadata_toml: bytes) -> list[Entry]:
    entries = [Entry.file(f"{LAYERS}/config/metadata.toml", metadata_toml)]
    for proc in processes:
        entries.append(Entry.symlink(f"{PROCESS_DIR}/{proc.type}", LAUNCHER))
        entries.append(Entry.file(f"{PROCESS_CONFIG_DIR}/{proc.type}", launchfmt.encode_process(proc, layer_dirs)))
    return entries


def _metadata_toml(result: BuildResult, processes: list[Process]) -> bytes:
    from builder.lifecycle import tomlio

    return tomlio.dumps({
        "buildpacks": [{"id": o.buildpack.id, "version": o.buildpack.version, "api": o.buildpack.api}
                       for o in result.outputs],
        "processes": [{"type": p.type, "command": list(p.command), "args": list(p.args), "direct": True,
                       "buildpack-id": p.buildpack_id, **({"working-dir": p.working_dir} if p.working_dir else {})}
                      for p in processes],
    }).encode()


SBOM_EXTENSIONS = ("cdx.json", "spdx.json", "syft.json")


def _layer_sboms(result: BuildResult, app_layers: list[AppLayer], cache_dir: Path | None = None) -> list[Entry]:
    """The CNB SBOM layer: ``/layers/sbom/launch/<bp>/<layer>/sbom.<ext>`` for each launch layer,
    as its buildpack wrote it (``<layer>.sbom.<ext>``) or, when it wrote none, the dependencies
    pallet finds installed in the layer (Python dist-info, node_modules, Go binaries); and each
    buildpack's ``launch.sbom.<ext>``. Only what buildpacks contributed: the run image's packages
    are not here, so a rebase leaves this layer as it is."""
    entries: list[Entry] = []
    for output in result.outputs:
        bp = output.buildpack
        bp_dir = output.layers[0].path.parent if output.layers else None
        if bp_dir is not None:
            for ext in SBOM_EXTENSIONS:
                launch_sbom = bp_dir / f"launch.sbom.{ext}"
                if launch_sbom.is_file():
                    entries.append(Entry.file(f"{LAYERS}/sbom/launch/{bp.layers_name}/sbom.{ext}",
                                              launch_sbom.read_bytes()))
        for layer in sorted(output.layers, key=lambda x: x.name):
            if not layer.types.launch:
                continue
            where = f"{LAYERS}/sbom/launch/{bp.layers_name}/{layer.name}"
            own = [(ext, layer.path.parent / f"{layer.name}.sbom.{ext}") for ext in SBOM_EXTENSIONS]
            own = [(ext, path) for ext, path in own if path.is_file()]
            if own:
                entries.extend(Entry.file(f"{where}/sbom.{ext}", path.read_bytes()) for ext, path in own)
                continue
            inside = f"{LAYERS}/{bp.layers_name}/{layer.name}"
            match = [x for x in app_layers if x.created_by == f"buildpack {bp.id}: layer {layer.name}"]
            if not match:
                continue
            document = _cached_layer_sbom(cache_dir, match[0], inside, layer.path)
            if document is not None:
                entries.append(Entry.file(f"{where}/sbom.cdx.json", document))
    return entries


def _cached_layer_sbom(cache_dir: Path | None, layer: AppLayer, inside: str, source: Path) -> bytes | None:
    """A layer's SBOM document, remembered by diffID (an unchanged layer is not read again).
    It is read from ``source``, the directory the layer was just made of (or found in the layer
    cache for, by its files' stats), not from the compressed blob: the same document, faster."""
    from builder.supply.sbom import LAYER_SBOM_FORMAT, layer_dir_sbom

    key = hashlib.sha256(f"{LAYER_SBOM_FORMAT}\0{layer.diff_id}\0{inside}".encode()).hexdigest()
    path = cache_dir / key if cache_dir else None
    if path is not None and path.is_file():
        data = path.read_bytes()
        return data or None
    document = layer_dir_sbom(source, name=inside, diff_id=layer.diff_id)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}")
        tmp.write_bytes(document or b"")
        os.replace(tmp, path)
    return document


def export(result: BuildResult, app_dir: Path, run_image: Image, run_name: str, dst: Store, tag: str,
           *, uid: int, gid: int, cache: LayerCache, work_dir: Path, launcher: str = "auto") -> ExportResult:
    app_layers: list[AppLayer] = []
    blob_files: dict[str, Path] = {}
    reused, written = [], []
    lifecycle_bps = []
    launch_dirs: list[str] = []
    path_dirs: list[str] = []
    labels: dict[str, str] = {}

    def add(cached, created_by: str, hit: bool, name: str) -> str:
        app_layers.append(AppLayer(cached.descriptor, cached.diff_id, created_by))
        blob_files[cached.descriptor.digest] = cached.path
        (reused if hit else written).append(name)
        return cached.diff_id

    for output in result.outputs:
        bp = output.buildpack
        layer_meta = {}
        for layer in sorted(output.layers, key=lambda x: x.name):
            if not layer.types.launch:
                continue
            inside = f"{LAYERS}/{bp.layers_name}/{layer.name}"
            if not layer.has_content:
                raise PalletError(f"buildpack {bp.id}: layer {layer.name} is marked launch = true but "
                                  f"{inside} has no content (reusing layers of a previous image is not "
                                  "supported; keep the layer cached instead)")
            cached, hit = cache.layer(layer.path, prefix=inside.lstrip("/"), uid=uid, gid=gid)
            diff_id = add(cached, f"buildpack {bp.id}: layer {layer.name}", hit, f"{bp.id}:{layer.name}")
            layer_meta[layer.name] = {"sha": diff_id, "data": layer.metadata, "launch": True,
                                      "build": layer.types.build, "cache": layer.types.cache}
            launch_dirs.append(inside)
            if (layer.path / "bin").is_dir():
                path_dirs.append(f"{inside}/bin")
        lifecycle_bps.append({"key": bp.id, "version": bp.version, "layers": layer_meta})
        labels.update(output.launch.labels)

    sbom_entries = _layer_sboms(result, app_layers, cache.root / "sbom")
    sbom_sha = None
    if sbom_entries:
        sbom_path = work_dir / "sbom.layer"
        sbom_layer = layer_from_entries(sbom_entries, sbom_path, uid=uid, gid=gid, gzip_level=APP_GZIP_LEVEL)
        app_layers.append(AppLayer(sbom_layer.descriptor(), sbom_layer.diff_id, "buildpacks' SBOM"))
        blob_files[sbom_layer.digest] = sbom_path
        sbom_sha = sbom_layer.diff_id

    cached, hit = cache.layer(app_dir, prefix="workspace", uid=uid, gid=gid)
    app_sha = add(cached, "app: /workspace", hit, "app")

    processes, default = merge_processes([o.launch.processes for o in result.outputs])
    launch_env = launcher_free_env(result, processes, default, launcher)
    lifecycle_parts: dict[str, dict[str, str]] = {}
    if launch_env is None:
        launcher_entries = [Entry.file(LAUNCHER, launchfmt.launcher_binary(run_image.config.architecture), mode=0o755)]
        launcher_path = work_dir / "launcher.layer"
        launcher_layer = layer_from_entries(launcher_entries, launcher_path, gzip_level=APP_GZIP_LEVEL)
        app_layers.append(AppLayer(launcher_layer.descriptor(), launcher_layer.diff_id, "launcher"))
        blob_files[launcher_layer.digest] = launcher_path

        config_path = work_dir / "config.layer"
        # Launch layers are applied in reverse for PATH precedence by the launcher; it gets them in order.
        config_layer = layer_from_entries(
            _config_layer_entries(processes, launch_dirs, _metadata_toml(result, processes)), config_path,
            uid=uid, gid=gid, gzip_level=APP_GZIP_LEVEL)
        app_layers.append(AppLayer(config_layer.descriptor(), config_layer.diff_id, "process types"))
        blob_files[config_layer.digest] = config_path
        lifecycle_parts = {"launcher": {"sha": launcher_layer.diff_id}, "config": {"sha": config_layer.diff_id}}

    labels[BUILD_METADATA] = json.dumps({
        "buildpacks": [{"id": o.buildpack.id, "version": o.buildpack.version} for o in result.outputs],
        "processes": [{"type": p.type, "command": list(p.command), "args": list(p.args), "direct": True,
                       "buildpackID": p.buildpack_id, **({"working-dir": p.working_dir} if p.working_dir else {})}
                      for p in processes],
        **({"launcher": {"version": PALLET_LIFECYCLE_VERSION, "source": {"name": "pallet"}}}
           if launch_env is None else {}),
        **({"defaultProcess": default} if default else {}),
    }, sort_keys=True, separators=(",", ":"))

    lifecycle = {"buildpacks": lifecycle_bps, "app": [{"sha": app_sha}], **lifecycle_parts,
                 **({"sbom": {"sha": sbom_sha}} if sbom_sha else {})}
    if launch_env is None:
        app = AppPart(layers=app_layers, uid=uid, gid=gid,
                      entrypoint=(f"{PROCESS_DIR}/{default}",) if default else (LAUNCHER,),
                      path_dirs=path_dirs, labels=labels, lifecycle=lifecycle)
    else:
        only = processes[0]
        app = AppPart(layers=app_layers, uid=uid, gid=gid, entrypoint=tuple(only.command), path_dirs=path_dirs,
                      labels=labels, lifecycle=lifecycle, launch_env=launch_env, cmd=tuple(only.args) or None,
                      working_dir=posixpath.normpath(posixpath.join(WORKSPACE, only.working_dir or ".")))
    manifest, config = compose(run_image.manifest, run_image.config, run_image.digest, run_name, app)
    manifest, config_bytes = mutate.finalize(manifest, config)

    stats = CopyStats()
    # Run image blobs: skipped when the destination has them, mounted within one registry.
    copy_blobs(run_image.store, dst, list(run_image.manifest.layers), stats=stats)
    for layer in app_layers:
        digest = layer.descriptor.digest
        if dst.has_blob(digest):
            stats.skipped += 1
            continue
        dst.put_blob_file(layer.descriptor, blob_files[digest])
        stats.copied += 1
    dst.put_blob_bytes(config_bytes, manifest.config.media_type)
    desc = dst.put_manifest(manifest.to_bytes(), manifest.media_type, tag=tag)
    return ExportResult(desc, processes, default, reused, written, stats)
