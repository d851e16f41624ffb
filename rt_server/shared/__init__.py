"""State shared by the instances of rt_server behind one load balancer (docs/scale-out.md).

    Shared               the interface (:mod:`rt_server.shared.base`)
    ├── LocalShared      no ``REDIS_URL``: this process alone, as one instance always was
    └── RedisShared      ``REDIS_URL``: every instance on one Redis (:mod:`.redis`)

:func:`open_shared` is the one switch on ``REDIS_URL``.
"""

from __future__ import annotations

from rt_server.config import Settings
from rt_server.shared.base import Caps, Full, LocalShared, Shared, SharedUnavailable, digest

__all__ = ["Caps", "Full", "LocalShared", "Shared", "SharedUnavailable", "digest", "open_shared"]


def open_shared(settings: Settings) -> Shared:
    """The shared state ``settings`` ask for (enter it with ``async with``)."""
    limits = settings.limits
    caps = Caps(limits.max_sessions_total, limits.max_sessions_per_token)
    window = settings.resume_window_seconds
    if settings.redis_url is None:
        return LocalShared(settings.instance_id, caps, window)
    from rt_server.shared.redis import RedisShared

    return RedisShared(settings.redis_url, settings.instance_id, caps, window)
