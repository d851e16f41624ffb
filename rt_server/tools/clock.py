"""Example tool: the current time. Enable with ``RT_TOOLS=rt_server.tools.clock``."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rt_server.tools import ToolRegistry

registry = ToolRegistry()


@registry.tool(description="The current date and time in an IANA time zone, e.g. Europe/Oslo.")
async def current_time(timezone: str = "UTC") -> dict[str, str]:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return {"error": f"unknown time zone {timezone!r}"}
    now = datetime.now(zone)
    return {
        "timezone": timezone,
        "iso": now.isoformat(timespec="seconds"),
        "weekday": now.strftime("%A"),
    }
