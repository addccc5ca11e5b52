"""``pallet builder create``: a stack's build image plus one layer holding pallet, the
buildpacks and their order, and the stack's images, as an OCI image in any store.

The layer (owned by root, except the build directories) holds:

- ``/cnb/pallet/lib``: pallet and its dependencies, installed by pip for the build image's own
  ``python3`` (its version and the run image's architecture pick the wheels), run by
  ``/cnb/pallet/bin/pallet``. A build image without ``python3`` (the ``tiny`` stack) is refused:
  pallet needs a Python to run on, and adding Debian's python3 beside a distroless stack is not
  done yet.
- ``/cnb/buildpacks``: pallet's built-in buildpacks, any given ones, and ``order.toml`` (the
  given one, or the built-in order).
- ``/cnb/pallet/stack``: an OCI layout with the run image (whole: a build exports onto it
  without pulling anything) and the build image's manifest and config (its layers are the
  container's own filesystem), and ``/cnb/pallet/builder.json`` describing them by digest.
- ``/workspace``, ``/layers``, ``/platform``: empty, owned by the CNB user, for in-place builds.

Labels name the stack and the run image by digest. The config is the build image's, with the
CNB user as ``User``, pallet on ``PATH`` and its caches under ``/tmp`` (writable in any pod).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from builder.builders.info import BUILD_TAG, RUN_TAG, STACK_LAYOUT, BuilderInfo
from builder.errors import PalletError, UsageError

if TYPE_CHECKING:
    from builder.oci.image import Image
    from builder.oci.model import Descriptor
    from builder.oci.reference import Reference
    from builder.oci.stores import StoreOptions

PALLET_DIR = "/cnb/pallet"
BUILDPACKS_DIR = "/cnb/buildpacks"
LABEL_PREFIX = "io.pallet.builder"
#: pip platform tags per image architecture (manylinux wheels run on any glibc Debian has).
PIP_PLATFORMS = {
    "amd64": ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "linux_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "linux_aarch64"),
}

LAUNCHER = f"""#!/usr/bin/python3 -s
# pallet, as installed in a builder image (pallet builder create).
import sys
sys.path.insert(0, "{PALLET_DIR}/lib")
from builder.entry import main
sys.exit(main())
"""


class BuilderError(PalletError):
    """A builder image cannot be made from these inputs (no python3 in the stack, no wheel)."""


@dataclass(frozen=True)
class BuilderResult:
    descriptor: "Descriptor"
    info: BuilderInfo
    python: str
    buildpacks: tuple[str, ...]


# -- pure parts ------------------------------------------------------------------------------


def python_version(rootfs: Path) -> str:
    """``X.Y`` of the build image's ``/usr/bin/python3``, from the interpreter's name."""
    for candidate in (rootfs / "usr" / "bin" / "python3", rootfs / "bin" / "python3"):
        if candidate.is_symlink() or candidate.exists():
            target = os.readlink(candidate) if candidate.is_symlink() else candidate.name
            found = re.search(r"python(\d+\.\d+)$", target)
            if found:
                return found.group(1)
            for sibling in sorted(candidate.parent.glob("python3.*")):
                found = re.fullmatch(r"python(\d+\.\d+)", sibling.name)
                if found:
                    return found.group(1)
    raise BuilderError("the stack's build image has no python3, which pallet needs to run in a builder "
                       "image; use a stack with Python (trixie, bookworm), not a distroless one such as tiny")


def builder_labels(info: BuilderInfo, buildpacks: list[tuple[str, str]]) -> dict[str, str]:
    """Labels naming what the builder carries (the run image by digest), and the CNB builder
    metadata key tools such as ``pack builder inspect`` read."""
    metadata = {"buildpacks": [{"id": i, "version": v} for i, v in buildpacks],
                "stack": {"runImage": {"image": info.run_name}},
                "createdBy": {"name": "pallet", "version": _version()}}
    return {
        f"{LABEL_PREFIX}.stack": info.stack,
        f"{LABEL_PREFIX}.run-image": info.run_name,
        f"{LABEL_PREFIX}.run-image.digest": info.run_image,
        f"{LABEL_PREFIX}.build-image.digest": info.build_image,
        "io.buildpacks.builder.metadata": json.dumps(metadata, sort_keys=True, separators=(",", ":")),
    }


def builder_env(build_env: dict[str, str]) -> dict[str, str]:
    path = build_env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return {"PATH": f"{PALLET_DIR}/bin:{path}", "PALLET_BUILDPACKS": BUILDPACKS_DIR,
            "XDG_CACHE_HOME": "/tmp/pallet-cache", "PALLET_HOME": "/tmp/pallet-home",
            "PALLET_SERVER": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def _version() -> str:
    from builder import __version__

    return __version__


# -- I/O ------------------------------------------------------------------------------------


def source_tree() -> Path | None:
    """The checkout pallet runs from, if it runs from one (a wheel is built from it)."""
    root = Path(__file__).resolve().parent.parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "builder").is_dir() else None


def build_wheel(out: Path) -> Path:
    root = source_tree()
    if root is None:
        raise BuilderError("pallet is not running from a source tree: give the wheel to install with --wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(out), str(root)], capture_output=True, text=True)
    wheels = sorted(out.glob("pallet-*.whl"))
    if done.returncode != 0 or not wheels:
        raise BuilderError(f"cannot build pallet's wheel from {root}: {done.stderr.strip()[-500:]}")
    return wheels[-1]


def install_pallet(wheel: Path, target: Path, python: str, arch: str) -> None:
    """pip installs ``wheel`` and its dependencies, as binary wheels for ``python``/``arch``."""
    platforms = PIP_PLATFORMS.get(arch)
    if platforms is None:
        raise BuilderError(f"no wheel platform known for architecture {arch}")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(target),
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for tag in platforms:
        cmd += ["--platform", tag]
    done = subprocess.run([*cmd, str(wheel)], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuilderError(f"pip could not install pallet for Python {python} ({arch}): "
                           f"{done.stderr.strip()[-800:]}")
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts for the host's Python


def copy_buildpacks(dest: Path, extra: list[Path], order: Path | None) -> list[tuple[str, str]]:
    """The built-in buildpacks and ``extra`` ones under ``dest``, one folder each, with the order."""
    from builder.lifecycle import buildpack as bpmod
    from builder.resources import buildpacks_dir

    builtin = buildpacks_dir()
    dest.mkdir(parents=True)
    seen: list[tuple[str, str]] = []
    dirs = [d for d in sorted(builtin.iterdir()) if (d / "buildpack.toml").is_file()] + list(extra)
    for src in dirs:
        bp = bpmod.load(src)
        if bp.is_composite:
            raise BuilderError(f"buildpack {bp.id} is composite; give its component buildpacks")
        name = bp.layers_name
        if (dest / name).exists():
            shutil.rmtree(dest / name)  # a given buildpack replaces a built-in one of that id
            seen = [s for s in seen if s[0] != bp.id]
        shutil.copytree(src, dest / name, symlinks=True)
        seen.append((bp.id, bp.version))
    order_src = order or builtin / "order.toml"
    if not order_src.is_file():
        raise UsageError(f"--order {order_src}: not a file")
    shutil.copy2(order_src, dest / "order.toml")
    return seen


def write_stack_layout(dest: Path, build: "Image", run: "Image") -> None:
    """An OCI layout with the run image whole and the build image's manifest and config."""
    from builder.oci.copy import copy_image
    from builder.oci.stores.layout import LayoutStore

    with LayoutStore(dest) as store:
        copy_image(run.store, run.digest, store, RUN_TAG)
        store.put_blob_bytes(build.config_bytes, build.manifest.config.media_type)
        store.put_manifest(build.manifest_bytes, build.descriptor.media_type, tag=BUILD_TAG)


def create_builder(stack: str, dst: "Reference", options: "StoreOptions", *, buildpacks: list[Path],
                   order: Path | None = None, wheel: Path | None = None,
                   say: Callable[[str], None] = lambda line: None) -> BuilderResult:
    from builder.lifecycle.images import resolve_images
    from builder.lifecycle.pipeline import cnb_user
    from builder.lifecycle.rootfs import unpack_image
    from builder.oci import mutate
    from builder.oci import reference as refs
    from builder.oci.copy import copy_blobs
    from builder.oci.layer import entries_from_dir, layer_from_entries
    from builder.oci.model import History
    from builder.oci.stores import open_store

    if dst.digest:
        raise UsageError(f"-t {dst}: name a tag, not a digest")
    build, run, run_name = resolve_images(stack=stack, build_image=None, run_image=None, options=options)
    python = python_version(unpack_image(build))
    uid, gid = cnb_user(build)
    mirror = f"docker://{dst.host}/{dst.repository}@{run.digest}" if dst.transport == refs.REGISTRY else None
    info = BuilderInfo(stack=stack, build_image=build.digest, run_image=run.digest, run_name=run_name,
                       run_mirror=mirror)
    arch = run.config.architecture or "amd64"
    with tempfile.TemporaryDirectory(prefix="pallet-builder-") as tmp:
        tmpdir = Path(tmp)
        root = tmpdir / "root"
        pallet_dir = root / PALLET_DIR.lstrip("/")
        say(f"installing pallet for the build image's Python {python}")
        wheel = wheel or build_wheel(tmpdir / "wheel")
        install_pallet(wheel, pallet_dir / "lib", python, arch)
        (pallet_dir / "bin").mkdir(parents=True)
        launcher = pallet_dir / "bin" / "pallet"
        launcher.write_text(LAUNCHER)
        launcher.chmod(0o755)
        ids = copy_buildpacks(root / BUILDPACKS_DIR.lstrip("/"), buildpacks, order)
        say("copying the stack's images into the builder")
        write_stack_layout(root / STACK_LAYOUT.lstrip("/"), build, run)
        (pallet_dir / "builder.json").write_text(info.to_json())
        for name in ("workspace", "layers", "platform"):
            (root / name).mkdir()
        entries = [dataclasses.replace(e, uid=uid, gid=gid) if e.path.strip("/") in ("workspace", "layers", "platform")
                   else e for e in entries_from_dir(root)]
        layer = layer_from_entries(entries, tmpdir / "layer")
        layer_desc = layer.descriptor()
        created = mutate.rfc3339(mutate.source_date_epoch())
        config = dataclasses.replace(build.config, created=created, config=mutate.apply_changes(
            build.config.config, mutate.ConfigChanges(
                env=builder_env(build.config.config.env_dict()), user=f"{uid}:{gid}", working_dir="/workspace",
                labels=builder_labels(info, ids))))
        manifest, config = mutate.append_layer(build.manifest, config, layer_desc, layer.diff_id,
                                               History(created=created, created_by="pallet builder create"))
        manifest, config_bytes = mutate.finalize(manifest, config)
        say(f"writing {dst}")
        with open_store(dst, options) as store:
            if mirror is not None:  # the run image beside the builder, by digest: exports mount it
                from builder.oci.copy import copy_image

                copy_image(run.store, run.digest, store, None)
            copy_blobs(build.store, store, list(build.manifest.layers))
            if not store.has_blob(layer_desc.digest):
                with open(tmpdir / "layer", "rb") as f:
                    store.put_blob(layer_desc, f)
            store.put_blob_bytes(config_bytes, manifest.config.media_type)
            desc = store.put_manifest(manifest.to_bytes(), manifest.media_type, tag=dst.tag or refs.DEFAULT_TAG)
    return BuilderResult(desc, info, python, tuple(f"{i}@{v}" for i, v in ids))
