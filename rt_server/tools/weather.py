"""Example tool: current weather from Open-Meteo (no API key).

Enable with ``RT_TOOLS=rt_server.tools.weather``; ``WEATHER_API_URL`` and
``WEATHER_GEOCODING_URL`` point it elsewhere (a proxy, a mock); ``WEATHER_INSTRUCTIONS``
says how the model describes the weather once the tool has answered (the instructions of
that reply; default: the modular relay's). The HTTP transport is
injectable (:func:`weather_registry`), so tests use ``httpx.MockTransport`` and no network.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from rt_server.tools import ToolRegistry

#: The modular relay's default for how the model describes the weather (WEATHER_INSTRUCTIONS).
DEFAULT_INSTRUCTIONS = (
    "Describe the weather in a conversational way for someone going for a walk. Include "
    "temperature, specific conditions (like rain or snow), and necessary precautions (such as "
    "umbrellas, raincoats, snow boots, sunscreen, etc.)."
)
FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
GEOCODING_URL = "https://geocoding-api.open-meteo.com/v1/search"


def weather_registry(
    forecast_url: str = FORECAST_URL,
    geocoding_url: str = GEOCODING_URL,
    transport: httpx.AsyncBaseTransport | None = None,
    instructions: str = DEFAULT_INSTRUCTIONS,
) -> ToolRegistry:
    """A registry holding ``get_weather``, talking to the given endpoints; the model
    describes its result following ``instructions``."""
    registry = ToolRegistry()

    @registry.tool(
        description="Current temperature and wind for a city.",
        timeout=8.0,
        reply_instructions=instructions,
    )
    async def get_weather(city: str) -> dict[str, Any]:
        async with httpx.AsyncClient(transport=transport, timeout=5.0) as http:
            found = await http.get(geocoding_url, params={"name": city, "count": 1})
            found.raise_for_status()
            places = found.json().get("results") or []
            if not places:
                return {"error": f"no place called {city!r}"}
            place = places[0]
            forecast = await http.get(
                forecast_url,
                params={
                    "latitude": place["latitude"],
                    "longitude": place["longitude"],
                    "current": "temperature_2m,wind_speed_10m",
                },
            )
            forecast.raise_for_status()
        current = forecast.json()["current"]
        return {
            "city": place.get("name", city),
            "temperature_c": current["temperature_2m"],
            "wind_kmh": current["wind_speed_10m"],
        }

    return registry


registry = weather_registry(
    os.environ.get("WEATHER_API_URL", FORECAST_URL),
    os.environ.get("WEATHER_GEOCODING_URL", GEOCODING_URL),
    instructions=os.environ.get("WEATHER_INSTRUCTIONS", "").strip() or DEFAULT_INSTRUCTIONS,
)
