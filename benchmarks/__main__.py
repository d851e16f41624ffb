"""``python -m benchmarks`` (``make bench``): measure what rt_server adds (issue 7).

Every scenario runs the emulator in its own process and measures it two ways, through
rt_server (its own process) and direct; see benchmarks/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from benchmarks import connect, memory, procs, report, text_turn, voice

SCENARIOS = ("text", "voice", "connect", "memory")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer turns, levels and seconds")
    p.add_argument("--scenario", choices=SCENARIOS, action="append", help="repeatable")
    p.add_argument("--out", type=Path, default=procs.ROOT / "benchmarks" / "results")
    p.add_argument(
        "--ref",
        help="measure rt_server as committed at this git ref (default: the working tree)",
    )
    p.add_argument("--turns", type=int, help="text turns each way (default 300; quick 50)")
    p.add_argument("--connects", type=int, help="connects each way (default 100; quick 30)")
    p.add_argument("--levels", help="voice sessions, comma separated (default 10,50,100,200,300)")
    p.add_argument("--seconds", type=float, help="seconds per voice level (default 15; quick 5)")
    p.add_argument("--workers", type=int, default=0, help="load generator processes (0: auto)")
    p.add_argument("--memory-levels", help="idle sessions (default 1,100,1000)")
    p.add_argument("--profile", action="store_true", help="voice: run rt_server under pyinstrument")
    p.add_argument("--experiment", help="voice: apply a labelled hot-path experiment")
    return p.parse_args(argv)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def run_scenario(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    quick = args.quick
    if name == "text":
        return uvloop.run(text_turn.run(args.turns or (50 if quick else 300), root))
    if name == "connect":
        return uvloop.run(connect.run(args.connects or (30 if quick else 100), root))
    if name == "memory":
        return uvloop.run(memory.run(_ints(args.memory_levels or "1,100,1000"), root))
    levels = _ints(args.levels or ("10,50" if quick else "10,50,100,200,300"))
    seconds = args.seconds or (5.0 if quick else 15.0)
    profile = args.out / "rt_server_profile" if args.profile else None
    return voice.run(
        levels,
        seconds,
        root,
        workers=args.workers,
        profile=profile,
        experiment=args.experiment,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, "-m", "benchmarks", *(argv or sys.argv[1:])])
    procs.raise_fd_limit()
    args.out.mkdir(parents=True, exist_ok=True)
    scenarios = args.scenario or list(SCENARIOS)
    meta = {
        "command": command,
        "quick": args.quick,
        "rt_server": procs.describe(args.ref),
        "machine": procs.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
        root = procs.snapshot(args.ref, Path(tmp)) if args.ref else procs.ROOT
        for name in scenarios:
            print(f"== {name}", flush=True)
            started = time.monotonic()
            results[name] = run_scenario(name, args, root)
            results[name]["wall_seconds"] = round(time.monotonic() - started, 1)
            report.save_json(args.out, name, results[name], meta)
    summary = report.summary(results, meta)
    print(summary)
    report.save_summary(args.out, summary, results, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
