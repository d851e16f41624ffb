"""Ask the Linux scheduler for short time slices: rt_server waits on sockets, it does not compute.

Since Linux 6.12 the fair scheduler (EEVDF) takes a slice length per task,
``sched_attr.sched_runtime``, clamped to 0.1-100 ms; without one a task gets the base slice,
0.7 ms x (1 + log2 CPUs): 1.4 ms on two CPUs. A shorter slice gives an earlier virtual
deadline. Woken by a socket, rt_server may then preempt a task with a longer slice instead
of queueing behind it, and a busy rt_server gives the CPU back sooner to a process it
woke on the same CPU, such as a client or a backend on the same host. The kernel's advice is
a slice that covers a task's usual run between sleeps. rt_server runs some tens to a few
hundred microseconds per wake-up. Its whole CPU share does not change: the slice decides
when it runs, not how much.

The attribute is per thread and inherited by the threads and processes created after it is
set, so it is asked once, on the event loop's thread, at start-up. Elsewhere (not Linux, an
architecture without a known system call number, a kernel before 6.12) nothing changes and
:func:`request_slice` says why.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import struct
import sys

# sched_setattr / sched_getattr
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}
# struct sched_attr, first version (48 bytes): size, policy, flags, nice, priority,
# runtime, deadline, period. A fair policy keeps its nice value only if it is passed back.
_ATTR = struct.Struct("=IIQiIQQQ")
_FAIR = {0, 3}  # SCHED_OTHER, SCHED_BATCH: the fair policies
_POLICY, _RUNTIME = 1, 5  # where they stand in the struct
MIN_US, MAX_US = 100, 100_000
DEFAULT_US = 100  # SCHED_SLICE_US


def valid(us: int) -> bool:
    """Whether ``us`` is 0 (the kernel's default) or a slice the kernel takes as it is."""
    return us == 0 or MIN_US <= us <= MAX_US


def request_slice(us: int) -> str:
    """Ask for a ``us`` microsecond slice for this thread (and what it starts later); a
    sentence saying what the kernel did, for the log. Never raises."""
    calls = _syscalls()
    if calls is None:
        return f"not asked: no scheduler slice to set on {sys.platform}/{platform.machine()}"
    set_number, get_number = calls
    try:
        fields = list(_get(get_number, 0))
        if fields[_POLICY] not in _FAIR:
            return f"not asked: this process runs under scheduling policy {fields[_POLICY]}"
        fields[_RUNTIME] = us * 1000
        _set(set_number, 0, fields)
    except OSError as exc:
        return f"refused ({exc.strerror}); the kernel's default stays"
    if current_slice_us() != us:
        return "the kernel kept its default (slice requests need Linux 6.12 or newer)"
    return f"{us / 1000:g} ms"


def current_slice_us(tid: int = 0) -> int | None:
    """The slice thread ``tid`` (0: this one) runs with, in microseconds; None where the
    kernel does not say (not Linux, or a kernel before 6.12, which reports 0)."""
    calls = _syscalls()
    if calls is None:
        return None
    try:
        ns = _get(calls[1], tid)[_RUNTIME]
    except OSError:
        return None
    return ns // 1000 or None


def _syscalls() -> tuple[int, int] | None:
    return _SYSCALLS.get(platform.machine()) if sys.platform == "linux" else None


def _get(number: int, tid: int) -> tuple[int, ...]:
    buffer = ctypes.create_string_buffer(_ATTR.size)
    _check(_libc().syscall(number, tid, buffer, _ATTR.size, 0))  # (tid, attr, size, flags)
    return _ATTR.unpack(buffer.raw)


def _set(number: int, tid: int, fields: list[int]) -> None:
    buffer = ctypes.create_string_buffer(_ATTR.pack(*fields), _ATTR.size)
    _check(_libc().syscall(number, tid, buffer, 0))  # (tid, attr, flags)


def _check(result: int) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
