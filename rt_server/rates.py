"""A rate per caller: a token bucket for each key (a client token, or an address).

Used by ``POST /api/session``: every secret it mints opens sessions billed to the server's
key, so each caller may mint ``CLIENT_SECRETS_PER_MINUTE`` (all at once, then at that pace).
Pure: the time is passed in. Buckets that are full again are forgotten, so the table holds
only the callers of the last minute or so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_FORGET_ABOVE = 10_000  # buckets kept before the full ones are swept out


@dataclass(slots=True)
class KeyedRate:
    """``per_minute`` for each key, with a burst of as many."""

    per_minute: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key: tokens, at

    def take(self, key: str, now: float) -> float:
        """0.0 when ``key`` may go on (counted); otherwise the seconds until it may."""
        burst, per_second = max(1.0, self.per_minute), self.per_minute / 60.0
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - at) * per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / per_second
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > _FORGET_ABOVE:
            self._sweep(now, burst, per_second)
        return 0.0

    def _sweep(self, now: float, burst: float, per_second: float) -> None:
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * per_second >= burst:
                del self._buckets[key]
