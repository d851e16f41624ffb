"""SCHED_SLICE_US: the scheduler slice rt_server asks for, checked with the kernel itself."""

from __future__ import annotations

import os
import platform
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from rt_server.sched import current_slice_us, request_slice

T = TypeVar("T")

# EEVDF takes slice requests from Linux 6.12 (the project's machines run newer kernels);
# an older kernel keeps its default and reports no slice.
_RELEASE = tuple(int(part) for part in platform.release().split(".")[:2] if part.isdigit())
HONOURED = sys.platform == "linux" and platform.machine() == "x86_64" and _RELEASE >= (6, 12)


def in_thread(work: Callable[[], T]) -> T:
    """Run ``work`` on a thread of its own, so the slice it asks for leaves the test's alone."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def test_the_kernel_grants_the_slice_asked_for_to_that_thread_only() -> None:
    before = current_slice_us()
    said, granted = in_thread(lambda: (request_slice(250), current_slice_us()))
    if not HONOURED:
        assert "kernel kept its default" in said or said.startswith("not asked")
        assert granted is None
        return
    assert (said, granted) == ("0.25 ms", 250)
    assert current_slice_us() == before != 250


def test_threads_started_afterwards_inherit_the_slice() -> None:
    def ask_then_start() -> int | None:
        request_slice(400)
        return in_thread(current_slice_us)

    assert in_thread(ask_then_start) == (400 if HONOURED else None)


def test_a_thread_outside_the_fair_policies_is_left_as_it_is() -> None:
    def idle_then_ask() -> tuple[str, int]:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread only
        return request_slice(250), os.sched_getscheduler(0)

    said, policy = in_thread(idle_then_ask)
    assert policy == os.SCHED_IDLE
    assert said == f"not asked: this process runs under scheduling policy {os.SCHED_IDLE}"
