"""``python -m benchmarks`` (``make bench``): measure what rt_server adds (issue 7).

Every scenario runs the emulator in its own process and measures it two ways, through
rt_server (its own process) and direct; see benchmarks/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvloop

from benchmarks import connect, hotpath, memory, procs, report, text_turn, voice
from rt_server import sched

SCENARIOS = ("text", "voice", "connect", "memory", "hotpath", "gateway")


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
    p.add_argument(
        "--repeat", type=int, default=1, help="voice: run the levels this many times, rotated"
    )
    p.add_argument("--seconds", type=float, help="seconds per voice level (default 15; quick 5)")
    p.add_argument(
        "--frame-ms",
        type=int,
        default=20,
        choices=(5, 10, 20, 40),
        help="voice: client audio frame length (rt_server joins frames shorter than "
        "AUDIO_COALESCE_MS, 20 by default)",
    )
    p.add_argument("--workers", type=int, default=0, help="load generator processes (0: auto)")
    p.add_argument("--memory-levels", help="idle sessions (default 1,100,1000)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="wait up to this many seconds for an idle machine before each scenario and "
        "voice level (0: do not wait)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the benchmark and every process it starts (negative "
        "needs root): on a shared machine, -10 keeps other work from dominating p99",
    )
    p.add_argument(
        "--harness-slice",
        type=int,
        default=0,
        metavar="US",
        help="the benchmark, its load generators and the emulator ask for this scheduler "
        "slice (0: the kernel's default), as rt_server does with SCHED_SLICE_US; rt_server "
        "and the relay inherit it unless they ask for their own",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="text, voice, connect: rt_server (and the relay) on the last CPU alone, the "
        "emulator and load generator on the others, as when rt_server has a core of its own "
        "and its backend and clients are elsewhere",
    )
    p.add_argument("--profile", action="store_true", help="run rt_server under cProfile")
    p.add_argument(
        "--spy",
        action="store_true",
        help="voice: sample rt_server with py-spy --native at every level; the share of each "
        "layer goes in voice.json and the summary (raw stacks in OUT/py-spy/)",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="text only: stamp the turn inside rt_server and cut it into stages (where the "
        "time goes), in text.json and the summary",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for rt_server (repeatable), e.g. BACKEND_SOCKET=sdk",
    )
    args = p.parse_args(argv)
    if not sched.valid(args.harness_slice):
        p.error(
            f"--harness-slice takes 0 or {sched.MIN_US}-{sched.MAX_US} us, got {args.harness_slice}"
        )
    if args.trace and args.scenario != ["text"]:
        p.error("--trace goes with --scenario text alone")
    if bad := [item for item in args.env if "=" not in item]:
        p.error(f"--env takes NAME=VALUE, got {bad[0]!r}")
    # The floor relay asks for rt_server's slice (procs.slice_of): refuse what rt_server would.
    for item in args.env:
        name, value = item.split("=", 1)
        if name == "SCHED_SLICE_US" and not (value.isdigit() and sched.valid(int(value))):
            p.error(
                f"--env SCHED_SLICE_US takes 0 or {sched.MIN_US}-{sched.MAX_US} us, got {value!r}"
            )
    return args


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def run_scenario(
    name: str, args: argparse.Namespace, shared: procs.Pair | None, root: Path
) -> dict[str, Any]:
    quick = args.quick
    if name == "text":
        turns = args.turns or (50 if quick else 300)
        return uvloop.run(text_turn.run(turns, shared, root, trace=args.stamps))
    if name == "gateway":  # the text turn by a Realtime API client, through /v1/realtime
        return uvloop.run(
            text_turn.run(args.turns or (50 if quick else 300), shared, root, gateway=True)
        )
    if name == "connect":
        return uvloop.run(connect.run(args.connects or (30 if quick else 100), shared, root))
    if name == "memory":  # a fresh rt_server of its own, whatever ran before
        levels = _ints(args.memory_levels or "1,100,1000")
        return uvloop.run(memory.run(levels, root, settle=0.2 if quick else 1.0))
    if name == "hotpath":
        return hotpath.run(2000 if quick else 20000, 3 if quick else 5)
    levels = _ints(args.levels or ("10,50" if quick else "10,50,100,200,300"))
    seconds = args.seconds or (5.0 if quick else 15.0)
    spy_dir = args.out / "py-spy" if args.spy else None
    if spy_dir is not None:
        spy_dir.mkdir(parents=True, exist_ok=True)
    return voice.run(
        levels,
        seconds,
        shared,
        root,
        workers=args.workers,
        quiet_wait=args.quiet_wait,
        spy_dir=spy_dir,
        frame_ms=args.frame_ms,
        repeat=args.repeat,
    )


@contextlib.contextmanager
def shared_servers(
    args: argparse.Namespace, scenarios: list[str], root: Path, meta: dict[str, Any]
) -> Iterator[procs.Pair | None]:
    """One emulator and rt_server for text, connect and voice (memory starts its own);
    ``--pin`` places them and records where in ``meta``."""
    if not {"text", "connect", "voice", "gateway"} & set(scenarios):
        yield None
        return
    profile = args.out / "rt_server_profile" if args.profile else None
    env = dict(item.split("=", 1) for item in args.env)
    voice = "voice" in scenarios
    with procs.pair(root, profile=profile, trace=args.stamps, env=env, voice=voice) as pair:
        if args.pin:
            meta["placement"] = procs.pin(pair)
        meta["slices"] = procs.slices(pair)
        yield pair


def run_all(
    args: argparse.Namespace,
    scenarios: list[str],
    shared: procs.Pair | None,
    root: Path,
    results: dict[str, dict[str, Any]],
    meta: dict[str, Any],
) -> None:
    for name in scenarios:
        print(f"== {name}", flush=True)
        busy = procs.wait_quiet(args.quiet_wait) if args.quiet_wait else None
        started = time.monotonic()
        results[name] = run_scenario(name, args, shared, root)
        results[name]["machine_busy_cores_before"] = busy
        results[name]["wall_seconds"] = round(time.monotonic() - started, 1)
        report.save_json(args.out, name, results[name], meta)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, "-m", "benchmarks", *(argv or sys.argv[1:])])
    procs.raise_fd_limit()
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # children inherit it
    if args.harness_slice:  # the children inherit it too
        print(f"harness scheduler slice: {sched.request_slice(args.harness_slice)}")
    args.out.mkdir(parents=True, exist_ok=True)
    scenarios = args.scenario or list(SCENARIOS)
    meta = {
        "command": command,
        "quick": args.quick,
        "nice": args.nice,
        "placement": "shared: the scheduler places every process",
        "rt_server": procs.describe(args.ref),
        "machine": procs.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
        root = procs.snapshot(args.ref, Path(tmp)) if args.ref else procs.ROOT
        args.stamps = Path(tmp) / "stamps.txt" if args.trace else None
        with shared_servers(args, scenarios, root, meta) as shared:
            run_all(args, scenarios, shared, root, results, meta)
    summary = report.summary(results, meta)
    print(summary)
    report.save_summary(args.out, summary, results, meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
