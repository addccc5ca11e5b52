"""The build cache: ``cache = true`` layers (and their metadata) kept between builds of one
image, restored before the build so buildpacks can skip work.

Layers move by rename (the cache and the work directory share a file system), so restoring a
large dependency layer costs nothing and keeps its inodes and mtimes, which lets the exporter
reuse its compressed blob without tarring it again (``layercache``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from builder.lifecycle import tomlio
from builder.lifecycle.build import BuildResult
from builder.lifecycle.buildpack import Buildpack


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def restore(self, group: list[Buildpack], layers_dir: Path) -> list[str]:
        """Move cached layers of the group's buildpacks into place; metadata without [types]."""
        restored = []
        for bp in group:
            src = self.root / bp.layers_name
            if not src.is_dir():
                continue
            dst = layers_dir / bp.layers_name
            dst.mkdir(parents=True, exist_ok=True)
            for toml_path in sorted(src.glob("*.toml")):
                name = toml_path.name[: -len(".toml")]
                content = src / name
                if not content.is_dir():
                    continue
                try:
                    data = tomlio.read(toml_path)
                except tomlio.TomlError:
                    continue  # a damaged cache entry is dropped, not fatal
                data.pop("types", None)
                tomlio.write(dst / toml_path.name, data)
                os.rename(content, dst / name)
                restored.append(f"{bp.id}:{name}")
            if (src / "store.toml").is_file():
                shutil.copy2(src / "store.toml", dst / "store.toml")
            shutil.rmtree(src, ignore_errors=True)
        return restored

    def save(self, result: BuildResult, layers_dir: Path) -> None:
        """Keep this build's ``cache = true`` layers (replacing what was cached before)."""
        for output in result.outputs:
            bp = output.buildpack
            dst = self.root / bp.layers_name
            shutil.rmtree(dst, ignore_errors=True)
            cached = [layer for layer in output.layers if layer.types.cache and layer.path.is_dir()]
            store = layers_dir / bp.layers_name / "store.toml"
            if not cached and not store.is_file():
                continue
            dst.mkdir(parents=True, exist_ok=True)
            for layer in cached:
                shutil.copy2(layer.path.parent / f"{layer.name}.toml", dst / f"{layer.name}.toml")
                os.rename(layer.path, dst / layer.name)
            if store.is_file():
                shutil.copy2(store, dst / "store.toml")

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.root)
