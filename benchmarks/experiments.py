"""EXPERIMENTS: candidate hot-path changes, applied by monkeypatching a benchmark's own
rt_server process (``--experiment NAME``). Not rt_server code; see the README."""

from __future__ import annotations

from collections.abc import Callable

EXPERIMENTS: dict[str, Callable[[], None]] = {}


def apply(name: str) -> None:
    for part in name.split(","):
        if part not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {part!r}; known: {', '.join(EXPERIMENTS)}")
        print(f"EXPERIMENT applied in this rt_server process: {part}", flush=True)
        EXPERIMENTS[part]()
