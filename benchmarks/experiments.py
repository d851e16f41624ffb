"""EXPERIMENTS: candidate hot-path changes, measured without touching rt_server's sources.

``python -m benchmarks --scenario voice --experiment NAME[,NAME]`` starts rt_server through
:mod:`benchmarks.server`, which calls :func:`apply` before anything runs: the patch lives
in that one benchmark process only. Each experiment is a proposal for rt_server's code,
written as the smallest monkeypatch that shows its effect; the README lists what each
one measured. (Settings need no experiment: ``--env BACKEND_SOCKET=sdk``.)

Proposals measured and adopted since: the aiohttp backend socket (now the default,
``BACKEND_SOCKET``), plain-integer traffic counters (``rt_server.metrics.Traffic``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _uvicorn_ws(implementation: str) -> Callable[[], None]:
    """uvicorn serves client WebSockets with ``implementation`` instead of its default
    (``websockets-sansio``), which ``rt-server`` leaves as it is."""

    def patch() -> None:
        import uvicorn

        original = uvicorn.run

        def run(*args: Any, **kwargs: Any) -> None:
            original(*args, **{**kwargs, "ws": implementation})

        uvicorn.run = run

    return patch


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "ws_legacy": _uvicorn_ws("websockets"),  # uvicorn's legacy websockets protocol
}


def apply(name: str) -> None:
    for part in name.split(","):
        if part not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {part!r}; known: {', '.join(EXPERIMENTS)}")
        print(f"EXPERIMENT applied in this rt_server process only: {part}", flush=True)
        EXPERIMENTS[part]()
