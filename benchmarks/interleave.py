"""``python -m benchmarks.interleave``: variants of one benchmark command, run in turns.

    python -m benchmarks.interleave --out benchmarks/results/slice --repeat 2 \\
        --variant kernel="--env SCHED_SLICE_US=0" --variant short= \\
        -- --scenario text --quiet-wait 10

runs ``python -m benchmarks`` with the shared arguments plus each variant's own, variant
after variant, ``--repeat`` times (off, on, off, on), so a busy spell on the machine lands
on all of them. Each run's ``summary.md`` is kept as ``OUT/<label>_<n>.md``. Where
:mod:`benchmarks.compare` runs git refs against each other, this runs settings
or placements against each other on the same code.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.procs import ROOT


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.interleave", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="LABEL=ARGS",
        help="a label and the arguments only this variant gets (repeatable)",
    )
    p.add_argument("shared", nargs=argparse.REMAINDER, help="-- then the arguments all share")
    args = p.parse_args(argv)
    if bad := [v for v in args.variant if "=" not in v]:
        p.error(f"--variant takes LABEL=ARGS, got {bad[0]!r}")
    if args.shared[:1] == ["--"]:
        args.shared = args.shared[1:]
    return args


def commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(``<label>_<n>``, the ``python -m benchmarks`` arguments) in the order they run."""
    variants = [v.split("=", 1) for v in args.variant]
    return [
        (f"{label}_{n}", [*args.shared, *shlex.split(own)])
        for n in range(1, args.repeat + 1)
        for label, own in variants
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, benchmark_args in commands(args):
        print(f"== {name}: python -m benchmarks {shlex.join(benchmark_args)}", flush=True)
        with tempfile.TemporaryDirectory(prefix="rt-interleave-") as tmp:
            subprocess.run(
                [sys.executable, "-m", "benchmarks", *benchmark_args, "--out", tmp],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            shutil.copyfile(Path(tmp) / "summary.md", args.out / f"{name}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
