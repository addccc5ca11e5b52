"""Run ``python -m builder ARGS`` under cProfile in *every* thread, timed by each thread's own
CPU clock, and write one merged profile:

    python bench/cpuprofile.py OUT.prof rebase --from fleet.txt --run-image ... --jobs 16

``python -m cProfile`` sees the main thread only (a ``--jobs 16`` rebase does its work in
worker threads) and counts wall time (waits on the registry, and time other processes had the
core, look like hot spots). Read the result with ``python -m pstats OUT.prof``.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import threading
import time


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        prof = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(prof)
        prof.runcall(original_run, self)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_prof = cProfile.Profile(time.thread_time)
    profiles.append(main_prof)
    sys.argv = ["builder", *args]
    try:
        main_prof.runcall(runpy.run_module, "builder", run_name="__main__")
    except SystemExit:
        pass
    finally:
        stats = pstats.Stats(main_prof)
        for prof in profiles[1:]:
            try:
                stats.add(prof)
            except TypeError:  # a thread that never ran anything
                pass
        stats.dump_stats(out)


if __name__ == "__main__":
    main()
