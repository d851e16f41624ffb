"""The benchmark suite, at its smallest: every scenario runs and writes sane results.

No timing is asserted (that is the benchmark's job, on a quiet machine); only that each
scenario measured both ways and wrote its JSON, the summary and the plot.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from benchmarks import stamps, turn_trace
from benchmarks.__main__ import parse_args

ROOT = Path(__file__).resolve().parents[2]
SMALLEST = [
    "--quick",
    "--turns", "5",
    "--connects", "3",
    "--levels", "2",
    "--seconds", "1",
    "--memory-levels", "1,5",
    "--quiet-wait", "0",
]  # fmt: skip


SCENARIOS = ("text", "voice", "connect", "memory", "hotpath", "gateway")
WAYS = ("through", "direct", "relay")
# Processes run at once: text, connect and voice share one emulator and rt_server.
GROUPS = (("text", "connect", "voice", "gateway"), ("memory",), ("hotpath",))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every scenario in its own ``python -m benchmarks`` process, all at once (each starts
    its own servers; run one after another they would take most of the time budget)."""
    outs = {group: tmp_path_factory.mktemp(group[0]) for group in GROUPS}
    running = {
        group: subprocess.Popen(
            [sys.executable, "-m", "benchmarks", *SMALLEST, "--out", str(out)]
            + [arg for name in group for arg in ("--scenario", name)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for group, out in outs.items()
    }
    outputs = {group: process.communicate(timeout=180)[0] for group, process in running.items()}
    for group, process in running.items():
        assert process.returncode == 0, f"{group}:\n{outputs[group]}"
    return {name: out for group, out in outs.items() for name in group}


def load(results: dict[str, Path], name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((results[name] / f"{name}.json").read_bytes())
    assert data["scenario"] == name
    assert data["meta"]["machine"]["logical_cpus"] >= 1
    return data


def positive_ms(stats: dict[str, float]) -> None:
    assert stats["n"] > 0
    assert 0 < stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"] < 10_000


def test_text_turn(results: dict[str, Path]) -> None:
    data = load(results, "text")
    assert data["turns"] == 5
    for metric in ("first", "done"):
        for way in WAYS:
            positive_ms(data[metric][way])
        assert set(data[metric]["added"]) == set(data[metric]["floor"]) == {"p50", "p90", "p99"}
    assert data["rt_server_cpu_ms_per_turn"] >= 0


def test_gateway_text_turn(results: dict[str, Path]) -> None:
    data = load(results, "gateway")
    assert (data["turns"], data["gateway"]) == (5, True)
    for metric in ("first", "done"):
        for way in WAYS:
            positive_ms(data[metric][way])


def test_voice(results: dict[str, Path]) -> None:
    data = load(results, "voice")
    [row] = data["rows"]
    assert row["sessions"] == 2
    for way in (*WAYS, "reference", "haproxy"):
        level = row[way]
        assert level["sent"] == 2 * 50
        assert level["received"] + level["lost"] == level["sent"]
        assert level["received"] > 0
        positive_ms(level["rtt_ms"])
        assert level["loadgen_cpu_cores"] >= 0
    assert row["through"]["cpu_cores"]["rt_server"] > 0
    assert row["relay"]["cpu_cores"]["relay"] > 0  # the floor relay carried the relay way
    assert row["relay_cpu_us_per_frame"] > 0
    # The reference relay and HAProxy carried theirs, on rt_server's protocol and the API's.
    assert row["reference"]["cpu_cores"]["reference"] > 0
    assert row["haproxy"]["cpu_cores"]["haproxy"] > 0
    assert row["ratio_to_reference"] > 0
    assert set(row["haproxy_ms"]) == {"p50", "p90", "p99"}
    assert set(row["floor_ms"]) == {"p50", "p90", "p99"}
    assert row["rt_server_cpu_s_per_session_minute"] > 0
    assert data["direct_max_sessions_p99_under_5ms"] in (0, 2)
    assert (results["voice"] / "voice_latency.png").stat().st_size > 1000


def test_connect(results: dict[str, Path]) -> None:
    data = load(results, "connect")
    for way in WAYS:
        positive_ms(data[way])


def test_memory(results: dict[str, Path]) -> None:
    data = load(results, "memory")
    assert data["baseline_rss_mb"] > 10
    assert [row["sessions"] for row in data["rows"]] == [1, 5]


def test_hotpath(results: dict[str, Path]) -> None:
    data = load(results, "hotpath")
    assert data["us_per_call"]
    # up to a second: a full garbage collection of the start-up heap takes about 0.1 s
    odd = {piece: us for piece, us in data["us_per_call"].items() if not 0 < us < 1_000_000}
    assert not odd
    assert any("start-up frozen" in piece for piece in data["us_per_call"])


def test_summary(results: dict[str, Path]) -> None:
    for name in SCENARIOS:
        assert "Command: `" in (results[name] / "summary.md").read_text()
    voice = (results["voice"] / "summary.md").read_text()
    assert voice.count("PASS") + voice.count("MISS") >= 2


def test_hotpath_measures_both_backend_sockets(results: dict[str, Path]) -> None:
    pieces = load(results, "hotpath")["us_per_call"]
    for socket in ("sdk", "aiohttp"):
        assert f"backend send: {socket} socket" in pieces
        assert f"backend round trip: {socket} socket" in pieces


def test_compare_tabulates_one_row_per_ref_and_run() -> None:
    from benchmarks import compare

    def results_of(commit: str, us: float) -> dict[str, Any]:
        level = {
            "sessions": 50,
            "rt_server_cpu_us_per_frame": us,
            "rt_server_cpu_percent_of_core": 52.4,
            "added_ms": {"p99": 1.234},
        }
        voice = {"meta": {"rt_server": f"{commit} (ref, snapshot)"}, "rows": [level]}
        text = {"first": {"added": {"p50": 0.5, "p99": 1.25}}, "rt_server_cpu_ms_per_turn": 2.1}
        return {"voice": voice, "text": text}

    rows = [
        compare.row("e89e6e0", 1, results_of("e89e6e0", 284.4)),
        compare.row("HEAD", 1, results_of("ac998e0", 209.6)),
    ]
    assert [r["ref"] for r in rows] == ["e89e6e0", "HEAD (ac998e0)"]
    assert [r["N=50 us/frame"] for r in rows] == [284, 210]
    assert rows[1]["N=50 CPU"] == "52%"
    assert rows[1]["text added p50/p99 ms"] == "0.500 / 1.250"
    lines = compare.table(rows).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| ref | run | N=50 us/frame")


def test_spy_sums_native_samples_by_layer() -> None:
    from benchmarks import spy

    loop = "<module> (rt-server:8);Runner.run (asyncio/runners.py:118)"
    raw = "\n".join(
        [
            f"{loop};WebSocketsSansIOProtocol.data_received (uvicorn/protocols/x.py:195) 30",
            f"{loop};Session._from_client (rt_server/session.py:290);write (libc.so.6) 20",
            f"{loop};Translator._audio_delta (rt_server/translate.py:300);"
            "binascii_a2b_base64_impl (binascii.c) 10",
            f"{loop};Session._from_backend (rt_server/session.py:304) 10",
            f"{loop};AiohttpConnection.recv (rt_server/backends/sockets.py:55);"
            "ClientWebSocketResponse.receive (aiohttp/client_ws.py:400) 20",
            f"{loop};uv_run (core.c);epoll_pwait (libc.so.6) 500",  # idle
            "Thread._bootstrap (threading.py:995);_connection_worker_thread "
            "(aiosqlite/core.py:50) 400",  # another thread, waiting
            f"{loop};Loop__run (loop.c) 10",
        ]
    )
    assert spy.layers(raw) == {
        "client WebSocket (uvicorn + websockets)": 30.0,
        "kernel: socket writes": 20.0,
        "backend WebSocket (aiohttp)": 20.0,
        "translation (incl. base64)": 10.0,
        "session pumps and backend glue": 10.0,
        "event loop and tasks": 10.0,
    }
    table = spy.table({50: {"kernel: socket writes": 20.0}, 100: {"kernel: socket writes": 25.5}})
    assert table.splitlines()[2] == "| kernel: socket writes | 20.0 % | 25.5 % |"


def test_pin_gives_rt_server_and_the_relays_the_last_cpu_alone() -> None:
    from benchmarks import procs

    cpus = sorted(os.sched_getaffinity(0))
    started = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(6)
    ]
    names = ("emulator", "rt_server", "relay", "reference", "haproxy", "harness")
    try:
        emulator, server, relay, reference, haproxy, harness = (
            procs.Child(name, p, 0, io.BytesIO()) for name, p in zip(names, started, strict=True)
        )
        pair = procs.Pair(emulator, server, relay, reference, haproxy)
        placement = procs.pin(pair, harness.popen.pid)
        if len(cpus) < 2:
            assert placement == "not pinned (one CPU)"
            return
        assert psutil.Process(server.popen.pid).cpu_affinity() == [cpus[-1]]
        for relaying in (relay, reference, haproxy):
            assert psutil.Process(relaying.popen.pid).cpu_affinity() == [cpus[-1]]
        assert psutil.Process(emulator.popen.pid).cpu_affinity() == cpus[:-1]
        assert os.sched_getaffinity(harness.popen.pid) == set(cpus[:-1])
        assert placement.startswith(f"rt_server and the relays on CPU {cpus[-1]}")
    finally:
        for p in started:
            p.kill()
            p.wait()


def test_interleave_runs_the_variants_in_turns() -> None:
    from benchmarks import interleave

    variants = ["--variant", "off=", "--variant", "on=--env A=1 --pin"]
    args = interleave.parse_args(
        ["--out", "x", "--repeat", "2", *variants, "--", "--scenario", "text"]
    )
    assert interleave.commands(args) == [
        ("off_1", ["--scenario", "text"]),
        ("on_1", ["--scenario", "text", "--env", "A=1", "--pin"]),
        ("off_2", ["--scenario", "text"]),
        ("on_2", ["--scenario", "text", "--env", "A=1", "--pin"]),
    ]


def test_cpu_seconds_counts_threads_that_have_exited() -> None:
    from benchmarks import procs

    burn = (
        "import threading, time\n"
        "def spin():\n"
        "    end = time.thread_time() + 0.2\n"
        "    while time.thread_time() < end: pass\n"
        "thread = threading.Thread(target=spin); thread.start(); thread.join()\n"
        "print('done', flush=True); time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == b"done\n"
            used = procs.cpu_seconds(child.pid)  # the spinning thread has exited by now
            times = psutil.Process(child.pid).cpu_times()
            assert 0.2 <= used < 5.0
            assert abs(used - (times.user + times.system)) < 0.05  # psutil counts 10 ms ticks
        finally:
            child.kill()


def test_trace_cuts_every_through_turn_into_stages(tmp_path: Path) -> None:
    argv = [*SMALLEST, "--scenario", "text", "--trace", "--out", str(tmp_path)]
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    trace = orjson.loads((tmp_path / "text.json").read_bytes())["trace"]
    assert trace["turns"] == trace["turns_cut"] == 5
    assert list(trace["us"]) == [key for key, _ in turn_trace.STAGES]
    for stage in trace["us"].values():
        assert 0 < stage["p50"] <= stage["p90"] < 10_000_000
    assert 0 < trace["total_us"]["p50"] <= trace["total_us"]["p90"]
    assert "Where a through turn's time goes" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("value", ["abc", "-5", "50", "200000"])
def test_a_slice_rt_server_would_refuse_is_refused_up_front(value: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--scenario", "text", "--env", f"SCHED_SLICE_US={value}"])
    assert parse_args(["--env", "SCHED_SLICE_US=0", "--env", "SCHED_SLICE_US=100"]).env


def test_trace_is_refused_beside_other_scenarios() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--scenario", "text", "--scenario", "voice", "--trace"])


def test_stages_cut_a_turn_at_rt_servers_stamps() -> None:
    timeline = [
        (10_000, stamps.CLIENT_READ),
        (30_000, stamps.CLIENT_PARSED),
        (60_000, stamps.ASGI_RECEIVED),
        (100_000, stamps.MESSAGE),
        (150_000, stamps.VALIDATED),
        (210_000, stamps.TRANSLATED),
        (240_000, stamps.BACKEND_SENT),
        (280_000, stamps.BACKEND_SENT),
        (360_000, stamps.BACKEND_READ),
        (370_000, stamps.EVENT + "response.created"),
        (380_000, stamps.BACKEND_READ),
        (450_000, stamps.EVENT + "response.output_audio_transcript.delta"),
        (550_000, stamps.WRITE_DELTA),
    ]
    # The client's turn from 0 to 660 us; then one that rt_server never saw (not cut).
    result = turn_trace.stages(timeline, [(0, 660_000), (1_000_000, 1_100_000)])
    assert result["turns"] == 2 and result["turns_cut"] == 1
    us = {key: stage["p50"] for key, stage in result["us"].items()}
    assert us == {
        "to_rt_server": 10,
        "frame_parsing": 20,
        "to_session": 30,
        "to_translator": 40,
        "validation": 50,
        "handler": 60,
        "backend_sends": 70,  # to the last send
        "backend": 80,  # to the first read after it
        "before_delta": 90,
        "delta_to_write": 100,
        "to_client": 110,
    }
    assert result["total_us"]["p50"] == 660
