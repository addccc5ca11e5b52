"""Run the real ``pallet`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pallet(*args: str, env: dict[str, str] | None = None, check: bool = True,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"pallet {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def popen(*args: str, env: dict[str, str] | None = None, ignoring: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    """pallet started in the background; ``ignoring``: signals it starts with ignored, as a
    script's background job (``pallet run ... &``) starts with SIGINT and SIGQUIT ignored."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")

    def ignore() -> None:
        for sig in ignoring:
            signal.signal(sig, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "builder", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, preexec_fn=ignore if ignoring else None)
