"""``GET /ready``: whether a backend session can be had now, probed and cached.

The probe does what a session does first: the credential (an Azure token), then a real
Realtime handshake, closed at once (a wrong key is refused there, an endpoint that is down
cannot be reached). Its result is reused for ``READY_CACHE_SECONDS`` (default 10): however
often a load balancer asks, the backend sees at most one probe connection per period, and
every answer says how old its result is (``checked_seconds_ago``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from rt_server.backends import Backend
from rt_server.errors import BackendError


@dataclass(slots=True)
class Readiness:
    """The last probe's result, and when it was had."""

    backend: Backend
    max_age: float
    _at: float = 0.0
    _error: BackendError | None = None
    _probed: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def probe(self) -> tuple[BackendError | None, float]:
        """The error a session would meet now (None: none), and the result's age in s."""
        async with self._lock:  # concurrent asks share one probe
            if not self._probed or time.monotonic() - self._at >= self.max_age:
                self._error = await self._try()
                self._at, self._probed = time.monotonic(), True
            return self._error, time.monotonic() - self._at

    async def _try(self) -> BackendError | None:
        try:
            await self.backend.check()
            connection = await self.backend.connect()
            await connection.aclose()
        except BackendError as exc:
            return exc
        return None
