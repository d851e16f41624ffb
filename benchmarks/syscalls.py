"""System calls per frame: a count that the machine's noise does not move.

CPU per frame is read side by side because a busy machine inflates it for everyone; the
number of system calls a process makes for the same load barely moves with the noise (a
slower process may read two frames in one call where a fast one reads one, so it moves a
little, the same way for every tier). ``perf stat`` counts them with the kernel's
tracepoints over the measured window: every call (``raw_syscalls:sys_enter``), and the
socket writes and reads among them. Where ``perf`` or its tracepoints are missing (an
unprivileged container), :func:`count` gives ``None`` and the report shows "-".
"""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["EVENTS", "Counting", "count", "parse", "per_frame"]

#: Report name -> tracepoint.
EVENTS = {
    "all": "raw_syscalls:sys_enter",
    "sendto": "syscalls:sys_enter_sendto",
    "write": "syscalls:sys_enter_write",
    "recvfrom": "syscalls:sys_enter_recvfrom",
    "read": "syscalls:sys_enter_read",
    "epoll_pwait": "syscalls:sys_enter_epoll_pwait",
    "epoll_wait": "syscalls:sys_enter_epoll_wait",
}


class Counting:
    """``perf stat`` attached to one process for a window; :meth:`result` waits for it."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self._popen = popen

    def result(self, timeout: float = 30.0) -> dict[str, int] | None:
        try:
            _, err = self._popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            return None
        return parse(err)


def parse(output: str) -> dict[str, int] | None:
    """``perf stat -x,`` output ("value,unit,event,...") -> counts by report name; ``None``
    when the total is missing (a tracepoint perf could not open)."""
    names = {tracepoint: name for name, tracepoint in EVENTS.items()}
    counts: dict[str, int] = {}
    for line in output.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2] in names and fields[0].isdigit():
            counts[names[fields[2]]] = int(fields[0])
    return counts if "all" in counts else None


def count(pid: int, seconds: float) -> Counting | None:
    """Start counting ``pid``'s system calls for ``seconds``; ``None`` without ``perf``."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    argv = [perf, "stat", "-x", ",", "-p", str(pid)]
    for tracepoint in EVENTS.values():
        argv += ["-e", tracepoint]
    argv += ["--", "sleep", f"{seconds:g}"]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return Counting(popen)


def per_frame(counts: dict[str, int] | None, frames: int) -> dict[str, float] | None:
    """Each count divided by the frames carried in the window (two decimals)."""
    if not counts or frames <= 0:
        return None
    return {name: round(value / frames, 2) for name, value in counts.items()}
