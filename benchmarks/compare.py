"""Before / after: the voice and text scenarios for several rt_server refs, interleaved.

``python -m benchmarks.compare --refs e89e6e0,HEAD --repeat 2 -- --levels 50,100``
runs ``python -m benchmarks --ref REF --scenario voice --scenario text ARGS`` for every
ref in turn, ``--repeat`` times over (A B A B: both refs see the same drift of a shared
machine), with the benchmark harness of the working tree for all of them. It prints and
saves (``OUT/compare.md`` and ``OUT/compare.json``) one table: rt_server's CPU per frame
round trip and added p99 per voice level, and the text turn's added latency and CPU, one
row per ref and repetition. A hot-path change is kept when its rows beat the old ones in
every repetition.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks import procs


def run_one(ref: str, extra: list[str], out: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks", "--ref", ref, "--out", str(out)]
    argv += ["--scenario", "voice", "--scenario", "text", *extra]
    subprocess.run(argv, cwd=procs.ROOT, check=True, stdout=subprocess.DEVNULL)
    return {name: orjson.loads((out / f"{name}.json").read_bytes()) for name in ("voice", "text")}


def row(ref: str, rep: int, results: dict[str, Any]) -> dict[str, Any]:
    voice, text = results["voice"], results["text"]
    commit = str(voice["meta"]["rt_server"]).split()[0]
    line: dict[str, Any] = {"ref": ref if ref == commit else f"{ref} ({commit})", "run": rep}
    for level in voice["rows"]:
        n = level["sessions"]
        line[f"N={n} us/frame"] = round(level["rt_server_cpu_us_per_frame"])
        line[f"N={n} CPU"] = f"{level['rt_server_cpu_percent_of_core']:.0f}%"
        line[f"N={n} added p99 ms"] = round(level["added_ms"]["p99"], 2)
    added = text["first"]["added"]
    line["text added p50/p99 ms"] = f"{added['p50']:.3f} / {added['p99']:.3f}"
    line["text CPU ms/turn"] = text["rt_server_cpu_ms_per_turn"]
    return line


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ours, extra = argv[:split], argv[split + 1 :]
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    p.add_argument("--refs", required=True, help="comma-separated git refs, oldest first")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--out", type=Path, default=procs.ROOT / "benchmarks" / "results")
    args = p.parse_args(ours)
    refs = [ref for ref in args.refs.split(",") if ref]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rt-compare-") as tmp:
        for rep in range(1, args.repeat + 1):
            for ref in refs:
                out = Path(tmp) / f"{rep}-{ref.replace('/', '_')}"
                out.mkdir()
                rows.append(row(ref, rep, run_one(ref, extra, out)))
                print(f"  compare: {ref} run {rep} done", flush=True)
    command = shlex.join(["python", "-m", "benchmarks.compare", *argv])
    machine = procs.machine()
    text = (
        f"# Before / after\n\n- Command: `{command}`\n- Machine: {machine['cpu_model']}, "
        f"{machine['logical_cpus']} logical CPUs, Python {machine['python']}; load average "
        f"at start {machine['load_average_at_start']}\n\n"
    )
    text += table(rows) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(text)
    body = {"command": command, "rows": rows}
    (args.out / "compare.json").write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
