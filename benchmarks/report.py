"""Results on disk: ``<scenario>.json``, ``summary.md`` and ``voice_latency.png``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

from benchmarks.stats import table, verdict

TEXT_P50_MS = 0.5
TEXT_P99_MS = 2.0
VOICE_SESSIONS = 200
VOICE_P99_MS = 5.0
IDLE_KB = 100.0


def save_json(
    out: Path, name: str, data: dict[str, Any], meta: dict[str, Any] | None = None
) -> None:
    body = {"scenario": name, **({"meta": meta} if meta else {}), **data}
    (out / f"{name}.json").write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")


TARGETS_HEAD = ("target", "measured", "verdict", "the floor relay, same run")


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(target, measured, PASS/MISS, what the floor relay measured) for every target whose
    scenario ran."""
    rows: list[tuple[str, str, str, str]] = []
    if "text" in results:
        first = results["text"]["first"]
        added, floor = first["added"], first.get("floor", {})
        for q, limit in (("p50", TEXT_P50_MS), ("p99", TEXT_P99_MS)):
            rows.append(
                (
                    f"text turn added {q} <= {limit} ms (to first delta)",
                    f"{added[q]:.3f} ms",
                    verdict(added[q] <= limit),
                    f"{floor[q]:.3f} ms" if q in floor else "-",
                )
            )
    if "voice" in results:
        voice = results["voice"]
        best, floor_best = voice["max_sessions_added_p99_under_5ms"], voice.get(
            "floor_max_sessions_under_5ms"
        )
        rows.append(
            (
                f">= {VOICE_SESSIONS} real-time voice sessions, added p99 <= {VOICE_P99_MS} ms",
                f"{best} sessions (levels run: {voice['levels']})",
                verdict(best >= VOICE_SESSIONS),
                f"{floor_best} sessions" if floor_best is not None else "-",
            )
        )
    if "memory" in results and results["memory"]["rows"]:
        last = results["memory"]["rows"][-1]
        rows.append(
            (
                f"idle session <= {IDLE_KB:g} KB resident",
                f"{last['kb_per_session']:.1f} KB at {last['sessions']} sessions",
                verdict(last["kb_per_session"] <= IDLE_KB),
                "-",
            )
        )
    return rows


def _pct(stats: dict[str, float]) -> str:
    return " / ".join(f"{stats[k]:.3f}" for k in ("p50", "p90", "p99"))


def _text(result: dict[str, Any]) -> str:
    rows = []
    for metric, label in (("first", "to first text_delta"), ("done", "to text_done")):
        r = result[metric]
        rows.append((label, *(_pct(r[k]) for k in ("through", "direct", "added", "floor"))))
    head = ("ms, p50 / p90 / p99", "through rt_server", "direct", "added", "floor")
    cpu = result["rt_server_cpu_ms_per_turn"]
    return (
        f"### Text turn ({result['turns']} turns each way, one connection each, rotating)\n\n"
        f"{table(head, rows)}\n\nrt_server CPU per turn: {cpu:.2f} ms.\n" + _trace(result)
    )


def _gateway(result: dict[str, Any]) -> str:
    rows = []
    for metric, label in (("first", "to the first transcript delta"), ("done", "to its .done")):
        r = result[metric]
        rows.append((label, *(_pct(r[k]) for k in ("through", "direct", "added", "floor"))))
    head = ("ms, p50 / p90 / p99", "through the gateway", "direct", "added", "floor")
    cpu = result["rt_server_cpu_ms_per_turn"]
    return (
        f"### Realtime gateway text turn ({result['turns']} turns each way: the same Realtime "
        "API client through `/v1/realtime`, direct and through the relay)\n\n"
        f"{table(head, rows)}\n\nrt_server CPU per turn: {cpu:.2f} ms.\n"
    )


def _trace(result: dict[str, Any]) -> str:
    """The stages of a through turn (``--trace``), when the run took them."""
    trace = result.get("trace")
    if not trace:
        return ""
    rows = [
        (
            what["what"],
            f"{what.get('p50', float('nan')):.1f}",
            f"{what.get('p90', float('nan')):.1f}",
        )
        for what in trace["us"].values()
    ]
    total = trace["total_us"]
    rows.append(
        ("the whole turn, to the first delta", f"{total['p50']:.1f}", f"{total['p90']:.1f}")
    )
    direct = result["first"]["direct"]
    return (
        f"\nWhere a through turn's time goes (`--trace`: stamps in the client and inside "
        f"rt_server on one clock; {trace['turns_cut']} of {trace['turns']} turns cut):\n\n"
        f"{table(('stage', 'p50 us', 'p90 us'), rows)}\n\nEach stage's percentiles are its "
        "own, so they do not add up to the whole turn's. Direct, the same turn took "
        f"{direct['p50'] * 1000:.1f} / {direct['p90'] * 1000:.1f} us (p50 / p90), the "
        "backend's share and the two hops to and from it included.\n"
    )


def _voice(result: dict[str, Any]) -> str:
    rows = []
    for row in result["rows"]:
        t, d, r = row["through"], row["direct"], row["relay"]
        ok = row["added_ms"]["p99"] <= VOICE_P99_MS and t["lost"] == 0
        rows.append(
            (
                row["sessions"],
                f"{t['rtt_ms']['p50']:.2f} / {t['rtt_ms']['p99']:.2f}",
                f"{d['rtt_ms']['p50']:.2f} / {d['rtt_ms']['p99']:.2f}",
                f"{row['added_ms']['p50']:.2f} / {row['added_ms']['p99']:.2f}",
                f"{row['floor_ms']['p50']:.2f} / {row['floor_ms']['p99']:.2f}",
                f"{t['lost']} / {d['lost']} / {r['lost']}",
                f"{row['rt_server_cpu_percent_of_core']:.0f}%",
                f"{row['rt_server_cpu_us_per_frame']:.0f}",
                f"{row.get('reference_cpu_us_per_frame', 0):.0f}",
                f"{row.get('ratio_to_reference')}",
                f"{row['relay_cpu_us_per_frame']:.0f}",
                f"{row.get('haproxy_cpu_us_per_frame', 0):.0f}",
                f"{row['rt_server_cpu_s_per_session_minute']:.3f}",
                _calls(row.get("syscalls_per_frame")),
                f"{t['cpu_cores']['emulator'] * 100:.0f}%",
                f"{t['loadgen_cpu_cores'] * 100:.0f}% / {d['loadgen_cpu_cores'] * 100:.0f}%",
                f"{t['other_cpu_cores'] * 100:.0f}% / {d['other_cpu_cores'] * 100:.0f}%",
                verdict(ok),
            )
        )
    head = (
        "N",
        "through p50/p99 ms",
        "direct p50/p99 ms",
        "added p50/p99 ms",
        "floor p50/p99 ms",
        "lost thr/dir/relay",
        "rt_server CPU",
        "rt_server us / frame",
        "reference us / frame",
        "ratio",
        "relay us / frame",
        "haproxy us / frame",
        "CPU s / session-min",
        "syscalls / frame rt/ref/relay/hap (sends)",
        "emulator CPU",
        "load gen CPU thr/dir",
        "others' CPU thr/dir",
        "p99 <= 5 ms",
    )
    return (
        f"### Real-time voice ({result['seconds_per_level']:g} s per level, "
        f"{result.get('frame_ms', 20):g} ms frames of "
        f"{result['frame_bytes']} B, load generator processes: {result['workers']})\n\n"
        f"{table(head, rows)}\n\nCPU is percent of one core over the measured window "
        "(the emulator's during the through run); \"others'\" is every other process on the "
        "machine (noise). Largest N with added p99 <= 5 ms and no lost frame: "
        f"**{result['max_sessions_added_p99_under_5ms']}**; for the floor relay: "
        f"**{result.get('floor_max_sessions_under_5ms', '-')}**. Direct alone kept its round "
        f"trip p99 under 5 ms up to N = **{result.get('direct_max_sessions_p99_under_5ms', '-')}**"
        "; above that the machine is saturated without any middle tier. rt_server logged "
        f"{result.get('rt_server_error_lines', 0)} ERROR lines.\n" + _layers(result)
    )


def _calls(by_tier: dict[str, dict[str, float] | None] | None) -> str:
    """System calls per frame of each middle process, sends in brackets (``-``: not counted)."""
    if not by_tier:
        return "-"
    tiers = ("rt_server", "reference", "relay", "haproxy")
    counts = [by_tier.get(tier) for tier in tiers]
    every = " / ".join(f"{c['all']:.1f}" if c else "-" for c in counts)
    sends = " / ".join(
        f"{c.get('sendto', 0) + c.get('write', 0):.2f}" if c else "-" for c in counts
    )
    return f"{every} ({sends})"


def _layers(result: dict[str, Any]) -> str:
    """The py-spy breakdown (``--spy``), when the run took one."""
    by_level = result.get("where_the_time_goes")
    if not by_level:
        return ""
    from benchmarks.spy import table as layer_table

    levels = {int(n): shares for n, shares in by_level.items()}
    return (
        "\nWhere rt_server's CPU goes, through rt_server (py-spy --native, share of busy "
        f"samples):\n\n{layer_table(levels)}\n\nSampling pauses rt_server for every sample "
        "and py-spy's own CPU shows as others': read the shares from this run, not its "
        "latencies.\n"
    )


def _connect(result: dict[str, Any]) -> str:
    ways = ("through", "direct", "added", "floor")
    rows = [("connect to ready", *(_pct(result[k]) for k in ways))]
    head = (
        "ms, p50 / p90 / p99",
        "through (to connected)",
        "direct (to session.updated)",
        "added",
        "floor",
    )
    return f"### Connect ({result['connects']} connects each way)\n\n{table(head, rows)}\n"


def _memory(result: dict[str, Any]) -> str:
    rows = [
        (r["sessions"], f"{r['rss_mb']:.1f}", f"{r['delta_mb']:.2f}", f"{r['kb_per_session']:.1f}")
        for r in result["rows"]
    ]
    head = ("idle sessions", "RSS MB", "RSS - baseline MB", "KB per session")
    return (
        f"### Memory (baseline RSS with 0 sessions: {result['baseline_rss_mb']:.1f} MB)\n\n"
        f"{table(head, rows)}\n"
    )


def _hotpath(result: dict[str, Any]) -> str:
    rows = [(name, f"{us:.2f}") for name, us in result["us_per_call"].items()]
    return (
        "### Hot path pieces (CPU us per call, in-process, best of "
        f"{result['rounds']} rounds; `python -m benchmarks.hotpath`)\n\n"
        f"{table(('piece of one audio frame in rt_server', 'us'), rows)}\n"
    )


_SECTIONS = {
    "text": _text,
    "voice": _voice,
    "connect": _connect,
    "memory": _memory,
    "hotpath": _hotpath,
    "gateway": _gateway,
}


def summary(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        "# rt_server benchmark: what the middle tier adds",
        "",
        f"- Command: `{meta['command']}`",
        f"- rt_server: {meta['rt_server']}; date {meta['date']}",
        f"- Scheduling priority (nice) of every benchmark process: {meta.get('nice', 0)}",
        f"- CPU placement: {meta.get('placement', 'shared: the scheduler places every process')}",
        *([f"- Scheduler slices (`SCHED_SLICE_US`): {meta['slices']}"] if "slices" in meta else []),
        f"- Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs "
        f"({m['physical_cores']} cores), {m['memory_gb']} GB; Python {m['python']}; "
        f"load average at start {m['load_average_at_start']}",
        f"- The load generator, rt_server and the emulator share these {m['logical_cpus']} "
        "CPUs: through rt_server (or the relay) three processes compete for them, direct two.",
        "- added = through rt_server - direct, at the same percentile.",
        "- floor = through a byte relay that does nothing (`benchmarks/relay.py`) - direct: what "
        "any extra process on the path costs on this machine, measured in the same run.",
        "",
        "## Targets",
        "",
        table(TARGETS_HEAD, targets(results)) or "(no target measured)",
        "",
        "## Results",
        "",
    ]
    for name, section in _SECTIONS.items():
        if name in results:
            lines += [section(results[name]), ""]
    return "\n".join(lines)


def save_summary(
    out: Path, text: str, results: dict[str, dict[str, Any]], meta: dict[str, Any]
) -> None:
    for name, data in results.items():
        save_json(out, name, data, meta)
    (out / "summary.md").write_text(text)
    if "voice" in results:
        plot_voice(results["voice"], out / "voice_latency.png")


def plot_voice(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    n = [r["sessions"] for r in rows]
    fig, (lat, cpu) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for key, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^-")):
        values = [r["added_ms"][key] for r in rows]
        lat.plot(n, [v if not math.isnan(v) else None for v in values], style, label=f"added {key}")
    floor = [r["floor_ms"]["p99"] for r in rows]
    lat.plot(n, [v if not math.isnan(v) else None for v in floor], "x:", label="floor relay p99")
    lat.axhline(VOICE_P99_MS, color="red", linewidth=0.8, linestyle=":", label="5 ms target (p99)")
    lat.set_ylabel("added round trip per frame (ms)")
    lat.set_yscale("symlog", linthresh=1.0)
    lowest = min((r["added_ms"][k] for r in rows for k in ("p50", "p90", "p99")), default=0.0)
    lat.set_ylim(bottom=min(-0.5, lowest * 1.5))
    lat.set_title("rt_server: added latency per 20 ms frame (through - direct)")
    lat.legend()
    lat.grid(True, alpha=0.3)
    cpu.plot(n, [r["rt_server_cpu_percent_of_core"] for r in rows], "o-", label="rt_server")
    cpu.plot(
        n, [r["through"]["cpu_cores"]["emulator"] * 100 for r in rows], "s--", label="emulator"
    )
    cpu.plot(n, [r["through"]["loadgen_cpu_cores"] * 100 for r in rows], "^:", label="load gen")
    others = [r["through"].get("other_cpu_cores", 0.0) * 100 for r in rows]
    cpu.plot(n, others, "x:", color="grey", label="other processes (noise)")
    cpu.axhline(100, color="red", linewidth=0.8, linestyle=":")
    cpu.set_xlabel("concurrent real-time sessions")
    cpu.set_ylabel("CPU, % of one core (through run)")
    cpu.legend()
    cpu.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
