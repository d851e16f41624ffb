"""rt_server's console script, optionally profiled or with a labelled experiment applied.

``python -m benchmarks.server [--profile DIR] [--experiment NAME]`` runs exactly what
``rt-server`` runs (settings from the environment, uvicorn, one worker). With
``--profile`` the whole process runs under pyinstrument and the report is written to DIR
when it exits. ``--experiment`` patches rt_server *in this process only* (see
:mod:`benchmarks.experiments`): nothing in rt_server's sources changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rt_server.main import run


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.server")
    p.add_argument("--profile", type=Path)
    p.add_argument("--experiment")
    args = p.parse_args()
    if args.experiment:
        from benchmarks.experiments import apply

        apply(args.experiment)
    if args.profile is None:
        run()
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        run()
    finally:
        profiler.stop()
        args.profile.mkdir(parents=True, exist_ok=True)
        (args.profile / "profile.txt").write_text(profiler.output_text(show_all=False))
        (args.profile / "profile.html").write_text(profiler.output_html())


if __name__ == "__main__":
    main()
