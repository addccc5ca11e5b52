"""The app image as a pure function of (run image, app part). No I/O.

Export computes the app part once; rebase (issue "Rebase") recovers the same app part from an
image's labels and calls ``compose`` with another run image. Because both go through this one
function, building on run image v2 and rebasing onto v2 give the same manifest digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from builder import jsonsafe
from builder.oci import mediatypes as mt
from builder.oci import mutate
from builder.oci.model import Descriptor, History, ImageConfig, Index, Manifest, Platform, RunConfig
from builder.lifecycle.process import LAYERS, PROCESS_DIR, WORKSPACE

LIFECYCLE_METADATA = "io.buildpacks.lifecycle.metadata"
BUILD_METADATA = "io.buildpacks.build.metadata"
PROJECT_METADATA = "io.buildpacks.project.metadata"
BASE_LABEL_PREFIXES = ("io.buildpacks.base.", "io.buildpacks.stack.")
LAUNCHER_DIR = "/cnb/lifecycle"


@dataclass(frozen=True)
class AppLayer:
    descriptor: Descriptor
    diff_id: str
    created_by: str


@dataclass
class AppPart:
    """Everything of an app image that does not come from its run image."""

    layers: list[AppLayer]
    uid: int
    gid: int
    entrypoint: tuple[str, ...]
    path_dirs: list[str]                      # layer bin/ dirs, in launch order
    labels: dict[str, str]                    # buildpack labels + build metadata (not lifecycle)
    lifecycle: dict[str, Any]                 # io.buildpacks.lifecycle.metadata, without runImage
    created: str = field(default_factory=lambda: mutate.rfc3339(mutate.source_date_epoch()))
    #: An image without a launcher (its one process is the entrypoint): the launch environment
    #: as the launcher would set it up, as (name, op, value, delim) rules applied to the run
    #: image's env, so rebase can apply them to another run image's. None: the launcher's image.
    launch_env: tuple[tuple[str, str, str, str | None], ...] | None = None
    cmd: tuple[str, ...] | None = None        # the process's default arguments (launcher-free)
    working_dir: str = WORKSPACE


def launch_environment(run: RunConfig, rules: tuple[tuple[str, str, str, str | None], ...]) -> RunConfig:
    """The env of a launcher-free image: the run image's, the CNB variables, then the launch
    layers' rules, in the order the launcher applies them at start-up."""
    from builder.lifecycle.envfiles import EnvOp, apply

    base = run.with_env({"CNB_LAYERS_DIR": LAYERS, "CNB_APP_DIR": WORKSPACE, "PATH": _run_path(run)})
    return base.with_env(apply(base.env_dict(), [EnvOp(*rule) for rule in rules]))


def _run_path(run: RunConfig) -> str:
    return run.env_dict().get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def compose(run_manifest: Manifest, run_config: ImageConfig, run_digest: str, run_name: str,
            app: AppPart) -> tuple[Manifest, ImageConfig]:
    """The app image's manifest (config descriptor not yet set) and config."""
    if not run_config.diff_ids:
        from builder.errors import PalletError

        raise PalletError(f"run image {run_name} has no layers")
    top = run_config.diff_ids[-1]
    lifecycle = dict(app.lifecycle)
    lifecycle["runImage"] = {"topLayer": top, "reference": run_digest, "image": run_name}
    # What ``app_part_of`` needs to take the app apart again (CNB readers ignore unknown keys).
    lifecycle["pallet"] = {"pathDirs": list(app.path_dirs), "labels": sorted(app.labels)}
    if app.launch_env is not None:
        lifecycle["pallet"]["launchEnv"] = [list(rule) for rule in app.launch_env]
    labels = {k: v for k, v in run_config.config.labels.items()}
    labels.update(app.labels)
    labels[LIFECYCLE_METADATA] = json.dumps(lifecycle, sort_keys=True, separators=(",", ":"))

    if app.launch_env is None:
        path = ":".join([PROCESS_DIR, LAUNCHER_DIR, *app.path_dirs, _run_path(run_config.config)])
        run = run_config.config.with_env({"CNB_LAYERS_DIR": LAYERS, "CNB_APP_DIR": WORKSPACE, "PATH": path})
        run = replace(run, user=f"{app.uid}:{app.gid}", working_dir=WORKSPACE, entrypoint=app.entrypoint,
                      cmd=None, labels=labels)
    else:
        run = replace(launch_environment(run_config.config, app.launch_env), user=f"{app.uid}:{app.gid}",
                      working_dir=app.working_dir, entrypoint=app.entrypoint, cmd=app.cmd or None, labels=labels)
    history = tuple(run_config.history) + tuple(
        History(created=app.created, created_by=layer.created_by) for layer in app.layers)
    config = replace(run_config, created=app.created, config=run,
                     diff_ids=tuple(run_config.diff_ids) + tuple(layer.diff_id for layer in app.layers),
                     history=history)
    base = mutate.to_oci(run_manifest)
    manifest = Manifest(
        config=Descriptor(mt.OCI_CONFIG, "sha256:" + "0" * 64, 0),
        layers=tuple(base.layers) + tuple(layer.descriptor for layer in app.layers),
        annotations={mt.ANNOTATION_BASE_DIGEST: run_digest, mt.ANNOTATION_BASE_NAME: run_name},
    )
    return manifest, config


class NotBuildpacksImage(Exception):
    """The image has no lifecycle metadata pallet can take apart."""


def app_part_of(manifest: Manifest, config: ImageConfig) -> tuple[AppPart, dict[str, Any]]:
    """The inverse of ``compose``: the app part of an image pallet built, and its old runImage.

    Reads only the manifest and config. Raises NotBuildpacksImage (with the reason) when the
    image lacks what that needs.
    """
    labels = config.config.labels
    raw = labels.get(LIFECYCLE_METADATA)
    if not raw:
        raise NotBuildpacksImage(f"it has no {LIFECYCLE_METADATA} label (not built by buildpacks)")
    try:
        lifecycle = jsonsafe.loads(raw)
        run_image = run_image_named(lifecycle.pop("runImage"))
        top = run_image["topLayer"]
        extra = lifecycle.get("pallet") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise NotBuildpacksImage(f"its {LIFECYCLE_METADATA} label has no runImage.topLayer") from None
    path_dirs, kept_labels = _pallet_section(extra)
    if top not in config.diff_ids:
        raise NotBuildpacksImage(f"runImage.topLayer {top} is not one of its layers")
    base_count = config.diff_ids.index(top) + 1
    app_count = len(config.diff_ids) - base_count
    if len(manifest.layers) != len(config.diff_ids) or len(config.history) < app_count:
        raise NotBuildpacksImage("its manifest, diff_ids and history do not line up")
    history = config.history[len(config.history) - app_count:] if app_count else ()
    layers = [AppLayer(desc, diff_id, h.created_by or "")
              for desc, diff_id, h in zip(manifest.layers[base_count:], config.diff_ids[base_count:], history)]
    user = (config.config.user or "0:0").split(":")
    try:
        uid, gid = int(user[0]), int(user[1] if len(user) > 1 else user[0])
    except ValueError:
        raise NotBuildpacksImage(f"its user {config.config.user!r} is not UID:GID") from None
    lifecycle.pop("pallet", None)
    launch_env = extra.get("launchEnv")
    if launch_env is not None:
        try:
            launch_env = tuple((str(n), str(op), str(v), None if d is None else str(d)) for n, op, v, d in launch_env)
            if any(op not in ("override", "default", "append", "prepend") for _, op, _, _ in launch_env):
                raise ValueError
        except (TypeError, ValueError):
            raise NotBuildpacksImage("its launch environment rules are not (name, op, value, delim)") from None
    app = AppPart(
        layers=layers, uid=uid, gid=gid, entrypoint=tuple(config.config.entrypoint or ()),
        path_dirs=path_dirs,
        labels={k: labels[k] for k in kept_labels if k in labels},
        lifecycle=lifecycle, created=config.created or mutate.rfc3339(mutate.source_date_epoch()),
        launch_env=launch_env, cmd=tuple(config.config.cmd) if launch_env is not None and config.config.cmd else None,
        working_dir=config.config.working_dir or WORKSPACE,
    )
    return app, run_image


def run_image_named(section: Any) -> dict[str, Any]:
    """The lifecycle label's ``runImage`` object, its ``image`` (name) and ``reference`` (digest)
    kept only when strings: the label is the image's, and a number or list there reached the
    reference parser and a cache key as it was (AttributeError and TypeError tracebacks in
    rebase). Not an object: TypeError (the callers' "no runImage")."""
    if not isinstance(section, dict):
        raise TypeError("runImage is not an object")
    run_image = dict(section)
    for key in ("image", "reference"):
        if key in run_image and not isinstance(run_image[key], str):
            del run_image[key]   # what is no name is not known: as if it were not recorded
    return run_image


def _pallet_section(extra: Any) -> tuple[list[str], list[str]]:
    """``pathDirs`` and ``labels`` of the lifecycle label's ``pallet`` section, which ``compose``
    writes as lists of strings: the label is the image's, anyone's, so anything else is refused
    (a string section, or ``"labels": 5``, was an AttributeError or TypeError traceback)."""
    if not isinstance(extra, dict):
        raise NotBuildpacksImage(f"its {LIFECYCLE_METADATA} label's pallet section is not an object")
    lists = []
    for key in ("pathDirs", "labels"):
        value = extra.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise NotBuildpacksImage(f"its {LIFECYCLE_METADATA} label's pallet.{key} is not a list of strings")
        lists.append(value)
    return lists[0], lists[1]


def platform_index(children: list[tuple[Descriptor, Platform]]) -> Index:
    """A multi-platform app image: one manifest per platform, as a pure function of the
    platforms' manifests. Sorted by platform, so the order ``--platform`` named them in does
    not change the digest; rebase of an index re-composes it with this same function."""

    def order(child: tuple[Descriptor, Platform]) -> tuple[str, str, str]:
        p = child[1]
        return p.os, p.architecture, p.variant or ""

    seen = [order(c) for c in children]
    if len(set(seen)) != len(seen):
        raise ValueError("two manifests for one platform")
    return Index(manifests=tuple(replace(Descriptor(d.media_type, d.digest, d.size), platform=p)
                                 for d, p in sorted(children, key=order)))
