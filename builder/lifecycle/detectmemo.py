"""Detection remembered: a buildpack's ``bin/detect`` is not run again while nothing it reads changed.

Every build runs detection, and for a build whose source changed it is a sandbox start and a
process or two per buildpack of the order (~0.1-0.2 s in all), though a one-line edit of the
app's code almost never changes what a detect says. A built-in buildpack declares what its
detect reads (``detect-inputs``, else ``inputs``; see ``inputs``), as it does for skipping its
build; the outcome of its last detect (exit code, output, the build plans it offered) is kept
under a key of:

- the buildpack (id, version, a digest of its files), the build image, the target and the
  environment its detect saw (``--env`` values and ``PALLET_EXPLAIN`` included);
- what of the app the declared inputs cover (whole files, names, matching lines);
- every path of the source with its type, exec bit and link target, and project.toml (as the
  incremental build's shape key has), so a detect that looks for a file by name misses as soon
  as one appears.

Anyone's buildpack that declares nothing is run every time, as the spec says. A memo that
cannot be read is an empty memo; one is written only with the outcomes of the build that just
ran (by temp name and rename), so it never grows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from builder.lifecycle import inputs as inputsmod
from builder.lifecycle.buildpack import Buildpack
from builder.lifecycle.detected import Outcome
from builder.lifecycle.plan import Alternative, Require

FILE = "detect-memo.json"
_FORMAT = "pallet-detect-memo-v1"


def _encode(outcome: Outcome) -> dict[str, Any]:
    return {"code": outcome.code, "output": list(outcome.output),
            "alternatives": [{"provides": list(a.provides),
                              "requires": [{"name": r.name, "metadata": r.metadata} for r in a.requires]}
                             for a in outcome.alternatives]}


def _decode(bp: Buildpack, data: dict[str, Any]) -> Outcome:
    alternatives = tuple(Alternative(provides=tuple(a["provides"]),
                                     requires=tuple(Require(r["name"], dict(r["metadata"])) for r in a["requires"]))
                         for a in data["alternatives"])
    return Outcome(bp, int(data["code"]), [str(x) for x in data["output"]], alternatives)


class DetectMemo:
    """The outcomes of the last build's detects, for one build cache."""

    def __init__(self, path: Path, app_dir: Path, build_image: str) -> None:
        self.path = path
        self.app_dir = app_dir
        self.build_image = build_image
        self._names: str | None = None
        self._lock = threading.Lock()
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = json.loads(path.read_text())
            if isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(data.get("outcomes"), dict):
                self._old = data["outcomes"]

    def key(self, bp: Buildpack, env: dict[str, str], target: dict[str, str]) -> str | None:
        declared = inputsmod.declared(bp, detect=True)
        if declared is None:
            return None
        with self._lock:
            if self._names is None:
                from builder.lifecycle.incremental import names_digest

                self._names = names_digest(self.app_dir)
        h = hashlib.sha256(json.dumps({"format": _FORMAT, "buildpack": [bp.id, bp.version, bp.digest()],
                                       "build_image": self.build_image, "target": target, "env": env,
                                       "inputs": [declared.files, declared.names, declared.lines, declared.skip_dirs],
                                       "names": self._names}, sort_keys=True, default=str).encode())
        inputsmod.digest_app(h, self.app_dir, declared)
        return h.hexdigest()

    def get(self, bp: Buildpack, key: str) -> Outcome | None:
        data = self._old.get(key)
        if not isinstance(data, dict):
            return None
        try:
            outcome = _decode(bp, data)
        except (KeyError, TypeError, ValueError):
            return None
        with self._lock:
            self._new[key] = data
        return outcome

    def put(self, key: str, outcome: Outcome) -> None:
        try:
            encoded = json.loads(json.dumps(_encode(outcome)))
        except (TypeError, ValueError):
            return  # plan metadata JSON cannot hold: run it next time
        with self._lock:
            self._new[key] = encoded

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": _FORMAT, "outcomes": self._new}, sort_keys=True))
        os.replace(tmp, self.path)
