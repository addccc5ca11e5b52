"""Ship the built-in buildpacks and stacks inside the wheel.

They live at the top of the repository (``buildpacks/``, ``stacks/``); a wheel gets a copy in
``builder/_data/``, where ``builder.resources`` finds them. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA = ("buildpacks", "stacks")


class build_py_with_data(build_py):  # noqa: N801 - setuptools' naming
    def run(self) -> None:
        super().run()
        for name in DATA:
            src = HERE / name
            dst = Path(self.build_lib) / "builder" / "_data" / name
            if dst.exists():
                shutil.rmtree(dst)
            # file modes are kept: a buildpack's bin/detect and bin/build stay executable
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules"))


setup(cmdclass={"build_py": build_py_with_data})
