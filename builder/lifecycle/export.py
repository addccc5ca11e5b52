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
from pathlib import Path

from builder.errors import PalletError
from builder.lifecycle import launch as launchfmt
from builder.lifecycle.build import BuildResult
from builder.lifecycle.compose import BUILD_METADATA, AppLayer, AppPart, compose
from builder.lifecycle.layercache import LayerCache
from builder.lifecycle.layers import merge_processes
from builder.lifecycle.results import ExportResult
from builder.lifecycle.process import LAUNCHER, LAYERS, PROCESS_CONFIG_DIR, PROCESS_DIR, Process
from builder.oci import mutate
from builder.oci.copy import CopyStats, copy_blobs
from builder.oci.image import Image
from builder.oci.compress import APP_GZIP_LEVEL
from builder.oci.layer import Entry, layer_from_entries
from builder.oci.stores.base import Store

PALLET_LIFECYCLE_VERSION = "0.1.0"


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
           *, uid: int, gid: int, cache: LayerCache, work_dir: Path) -> ExportResult:
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
    launcher_entries = [Entry.file(LAUNCHER, launchfmt.launcher_binary(run_image.config.architecture), mode=0o755)]
    launcher_path = work_dir / "launcher.layer"
    launcher = layer_from_entries(launcher_entries, launcher_path, gzip_level=APP_GZIP_LEVEL)
    app_layers.append(AppLayer(launcher.descriptor(), launcher.diff_id, "launcher"))
    blob_files[launcher.digest] = launcher_path

    config_path = work_dir / "config.layer"
    # Launch layers are applied in reverse for PATH precedence by the launcher; it gets them in order.
    config_layer = layer_from_entries(
        _config_layer_entries(processes, launch_dirs, _metadata_toml(result, processes)), config_path,
        uid=uid, gid=gid, gzip_level=APP_GZIP_LEVEL)
    app_layers.append(AppLayer(config_layer.descriptor(), config_layer.diff_id, "process types"))
    blob_files[config_layer.digest] = config_path

    labels[BUILD_METADATA] = json.dumps({
        "buildpacks": [{"id": o.buildpack.id, "version": o.buildpack.version} for o in result.outputs],
        "processes": [{"type": p.type, "command": list(p.command), "args": list(p.args), "direct": True,
                       "buildpackID": p.buildpack_id, **({"working-dir": p.working_dir} if p.working_dir else {})}
                      for p in processes],
        "launcher": {"version": PALLET_LIFECYCLE_VERSION, "source": {"name": "pallet"}},
        **({"defaultProcess": default} if default else {}),
    }, sort_keys=True, separators=(",", ":"))

    app = AppPart(
        layers=app_layers, uid=uid, gid=gid,
        entrypoint=(f"{PROCESS_DIR}/{default}",) if default else (LAUNCHER,),
        path_dirs=path_dirs, labels=labels,
        lifecycle={"buildpacks": lifecycle_bps, "app": [{"sha": app_sha}],
                   "launcher": {"sha": launcher.diff_id}, "config": {"sha": config_layer.diff_id},
                   **({"sbom": {"sha": sbom_sha}} if sbom_sha else {})},
    )
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
