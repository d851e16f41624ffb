"""How many real-time audio sessions one emulator process (one core) sustains.

    python -m rt_server.emulator.bench_capacity --sessions 50 100 200 --seconds 10

Starts `python -m rt_server.emulator` in a subprocess, then for each session count opens that many
websocket sessions (in a separate client process) that send 20 ms PCM16 frames at real-time pace
with server VAD on: one second of tone (a "turn", answered with an automatic response) every four
seconds, silence otherwise. It reads the emulator's CPU time from /proc (Linux) and reports its
utilisation and the capacity that extrapolates to 100 % of one core. Clients run in their own
process so they do not share the emulator's core.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import orjson
from websockets.asyncio.client import connect

from rt_server.serving import free_port

FRAME_MS = 20
RATE = 24000


def _frames() -> tuple[str, str]:
    samples = RATE * FRAME_MS // 1000
    t = np.arange(samples) / RATE
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    quiet = bytes(samples * 2)

    def event(pcm: bytes) -> str:
        audio = base64.b64encode(pcm).decode()
        return orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode()

    return event(tone), event(quiet)


@dataclass
class ClientResult:
    frames_sent: int = 0
    events_received: int = 0
    late_frames: int = 0  # frames sent more than one frame late (the client fell behind)
    failures: int = 0


async def _session(url: str, seconds: float, index: int, result: ClientResult) -> None:
    tone, quiet = _frames()
    try:
        async with connect(url, max_size=None, compression=None) as ws:

            async def drain() -> None:
                async for _ in ws:
                    result.events_received += 1

            async with asyncio.TaskGroup() as group:
                draining = group.create_task(drain())
                loop = asyncio.get_running_loop()
                start = loop.time() + (index % 50) * FRAME_MS / 1000 / 50  # spread the sends
                n_frames = int(seconds * 1000 / FRAME_MS)
                for k in range(n_frames):
                    due = start + k * FRAME_MS / 1000
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -FRAME_MS / 1000:
                        result.late_frames += 1
                    in_turn = (k * FRAME_MS) % 4000 < 1000
                    await ws.send(tone if in_turn else quiet)
                    result.frames_sent += 1
                draining.cancel()
    except (OSError, asyncio.TimeoutError) as exc:  # noqa: UP041 - clarity
        result.failures += 1
        print(f"session {index}: {exc!r}", file=sys.stderr)


async def _clients(url: str, sessions: int, seconds: float) -> ClientResult:
    result = ClientResult()
    async with asyncio.TaskGroup() as group:
        for index in range(sessions):
            group.create_task(_session(url, seconds, index, result))
    return result


def _run_clients(url: str, sessions: int, seconds: float) -> ClientResult:
    return asyncio.run(_clients(url, sessions, seconds))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the emulator did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "rt_server.emulator",
        "--port",
        str(port),
        "--log-level",
        "WARNING",
    ]
    emulator = subprocess.Popen(command)  # noqa: S603 - our own module
    try:
        _wait_for(port)
        url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
        print(
            f"{'sessions':>8} {'emulator CPU':>12} {'frames/s':>9} {'events/s':>9} {'late':>6} {'capacity@100%':>14}"
        )
        with ProcessPoolExecutor(max_workers=1) as pool:
            for sessions in args.sessions:
                before, started = _cpu_seconds(emulator.pid), time.monotonic()
                result = pool.submit(_run_clients, url, sessions, args.seconds).result()
                cpu = (_cpu_seconds(emulator.pid) - before) / (time.monotonic() - started)
                wall = time.monotonic() - started
                capacity = sessions / cpu if cpu > 0 else float("inf")
                print(
                    f"{sessions:>8} {cpu:>11.0%} {result.frames_sent / wall:>9.0f} "
                    f"{result.events_received / wall:>9.0f} {result.late_frames:>6} {capacity:>14.0f}"
                    + (f"  ({result.failures} failed)" if result.failures else "")
                )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
