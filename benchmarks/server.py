"""rt_server's console script, optionally profiled or traced.

``python -m benchmarks.server [--profile DIR] [--trace FILE]`` runs exactly what
``rt-server`` runs (settings from the environment, uvicorn, one worker). With
``--profile`` the process runs under pyinstrument (a statistical profile, ``profile.txt``
and ``profile.html``) or cProfile (exact call counts and own time in CPU seconds of the
event loop's thread, not wall time, so waiting for a CPU is not counted; ``cprofile.txt``
and ``cprofile.pstats``), written to DIR when it exits; pass ``--profiler`` to pick one.
``--trace FILE`` installs :mod:`benchmarks.stamps` in this process only (SIGUSR1 writes
them to FILE): nothing in rt_server's sources changes.
"""

from __future__ import annotations

import argparse
import io
import pstats
import signal
import time
from pathlib import Path

from rt_server.main import run


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.server")
    p.add_argument("--profile", type=Path)
    p.add_argument("--profiler", choices=["pyinstrument", "cprofile"], default="cprofile")
    p.add_argument("--trace", type=Path)
    args = p.parse_args()
    if args.trace:
        from benchmarks import stamps

        stamps.install(args.trace)
    if args.profile is None:
        run()
        return
    # uvicorn re-raises the SIGTERM it caught once it has shut down; with the default
    # action that would end the process before the report is written.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    args.profile.mkdir(parents=True, exist_ok=True)
    if args.profiler == "pyinstrument":
        _pyinstrument(args.profile)
    else:
        _cprofile(args.profile)


def _pyinstrument(out: Path) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        run()
    finally:
        profiler.stop()
        (out / "profile.txt").write_text(profiler.output_text(show_all=False))
        (out / "profile.html").write_text(profiler.output_html())


def _cprofile(out: Path) -> None:
    import cProfile

    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        run()
    finally:
        profiler.disable()
        profiler.dump_stats(out / "cprofile.pstats")
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).strip_dirs()
        stats.sort_stats("tottime").print_stats(45)
        stats.sort_stats("cumulative").print_stats(60)
        (out / "cprofile.txt").write_text(text.getvalue())


if __name__ == "__main__":
    main()
