"""Where rt_server's CPU goes: a py-spy native profile, summed by layer.

``python -m benchmarks --scenario voice --spy`` attaches ``py-spy record --native`` to the
rt_server process for each voice level's measured window (through rt_server only). Unlike
cProfile it does not slow the process much, and it sees native frames: the kernel's socket
calls and C extensions as well as Python. :func:`layers` sums the samples into the layers
the README names (the client socket's WebSocket stack, the kernel's reads and writes, the
session, the translation, the backend socket, ...), and :func:`table` renders them.
Samples that only wait (the loop in ``epoll_wait``, the records writer's thread) are left
out. Sampling with ``--native`` pauses the process for every sample: read the shares from
such a run, not its latency figures.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)")
_PY = re.compile(r"\(([^)]*\.py)\)")

#: The first matching prefix of a frame's file names its layer.
_LAYERS = (
    ("websockets/", "client WebSocket (uvicorn + websockets)"),
    ("uvicorn/", "client WebSocket (uvicorn + websockets)"),
    ("enum.py", "client WebSocket (uvicorn + websockets)"),  # websockets' Opcode(...)
    ("starlette/", "Starlette WebSocket wrapper"),
    ("picows", "WebSockets (picows)"),
    ("rt_server/edge/", "client socket edge (rt_server/edge)"),
    ("rt_server/backends/sockets.py", "backend socket (rt_server/backends/sockets.py)"),
    ("aiohttp/", "backend WebSocket (aiohttp)"),
    ("openai/", "backend WebSocket (openai SDK)"),
    ("rt_server/translate.py", "translation (incl. base64)"),
    ("base64.py", "translation (incl. base64)"),
    ("rt_server/", "session pumps and backend glue"),
    ("asyncio/", "event loop and tasks"),
)
_IDLE_THREADS = ("aiosqlite", "Thread._bootstrap")


def executable() -> str:
    """py-spy beside this interpreter (a dev dependency), else on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--spy needs py-spy (a dev dependency: make install)")
    return found


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds``; raw collapsed stacks go to ``out``."""
    argv = [executable(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--rate", "200", "--native", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def layer_of(stack: list[str]) -> str | None:
    """The layer of one sampled stack (outermost frame first); None when it only waits."""
    leaf = stack[-1]
    if leaf.startswith(("write (libc", "writev (libc", "send (libc", "sendmsg (libc")):
        return "kernel: socket writes"
    if leaf.startswith(("read (libc", "recv (libc", "recvfrom (libc", "readv (libc")):
        return "kernel: socket reads"
    if leaf.startswith("epoll"):
        return None  # the loop waiting for sockets: idle, not work
    for frame in reversed(stack):
        if found := _PY.search(frame):
            path = found.group(1)
            for prefix, layer in _LAYERS:
                if path.startswith(prefix):
                    return layer
            return f"other Python ({path.split('/')[0]})"
    return "event loop and tasks"


def layers(raw: str) -> dict[str, float]:
    """Percent of the busy samples per layer, largest first."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack_text, _, number = line.rpartition(" ")
        if not stack_text or not number.isdigit() or any(t in stack_text for t in _IDLE_THREADS):
            continue
        layer = layer_of([_LINE.sub(")", f) for f in stack_text.split(";")])
        if layer is not None:
            counts[layer] += int(number)
    total = sum(counts.values()) or 1
    return {layer: round(n * 100 / total, 1) for layer, n in counts.most_common()}


def table(by_level: dict[int, dict[str, float]]) -> str:
    """Markdown: one column per voice level."""
    levels = sorted(by_level)
    names = list(dict.fromkeys(name for n in levels for name in by_level[n]))
    lines = ["| layer | " + " | ".join(f"N={n}" for n in levels) + " |"]
    lines.append("|---|" + "---|" * len(levels))
    for name in names:
        cells = [f"{by_level[n].get(name, 0.0):.1f} %" for n in levels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
