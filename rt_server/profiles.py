"""Named assistant profiles from a TOML or JSON file (``PROFILE_FILE``).

    [default]                 # overrides the environment's profile
    instructions = "You are the front desk of Contoso."
    voice = "marin"

    [profiles.support]        # chosen by a client with ?profile=support
    instructions = "You are Contoso's support agent."
    welcome_instructions = "Greet the caller and ask how you can help."

Every named profile starts from the default profile and changes only what it lists.
Keys are the fields of :class:`rt_server.profile.Profile`; anything else stops start-up.
An MCP server's ``headers`` name environment variables; their values are read here, once,
and a variable that is not set stops start-up.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from rt_server.errors import ConfigError
from rt_server.profile import McpServer, Profile

_FIELDS = {f.name for f in dataclasses.fields(Profile)} - {"name"}


def load_profiles(
    path: str, default: Profile, env: Mapping[str, str] | None = None
) -> dict[str, Profile]:
    """The profiles a file declares, by name, ``default`` included (``env``: where MCP
    header values are read)."""
    env = env if env is not None else {}
    try:
        text = Path(path).read_text(encoding="utf-8")
        data: Any = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"PROFILE_FILE {path!r}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"PROFILE_FILE {path!r}: the top level must be a table")
    base = _profile(default, "default", data.get("default", {}), path, env)
    profiles = {"default": base}
    named = data.get("profiles", {})
    if not isinstance(named, dict):
        raise ConfigError(f"PROFILE_FILE {path!r}: 'profiles' must be a table of tables")
    for name, changes in named.items():
        profiles[name] = _profile(base, name, changes, path, env)
    return profiles


def _profile(
    base: Profile, name: str, changes: object, path: str, env: Mapping[str, str]
) -> Profile:
    if not isinstance(changes, dict):
        raise ConfigError(f"PROFILE_FILE {path!r}: profile {name!r} must be a table")
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ConfigError(
            f"PROFILE_FILE {path!r}: profile {name!r} has unknown keys {sorted(unknown)}"
        )
    servers = changes.get("mcp_servers") or []
    if any(isinstance(server, dict) and "header_values" in server for server in servers):
        raise ConfigError(
            f"PROFILE_FILE {path!r}: profile {name!r}: MCP header values come from the "
            "environment; 'headers' names the variables"
        )
    merged = {**dataclasses.asdict(base), **changes, "name": name}
    try:
        profile = TypeAdapter(Profile).validate_python(merged)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"PROFILE_FILE {path!r}: profile {name!r}, {where}: {first['msg']}"
        ) from None
    resolved = tuple(_with_headers(server, env, name) for server in profile.mcp_servers)
    return dataclasses.replace(profile, mcp_servers=resolved)


def _with_headers(server: McpServer, env: Mapping[str, str], profile: str) -> McpServer:
    values = {}
    for header, variable in server.headers.items():
        value = env.get(variable)
        if not value:
            raise ConfigError(
                f"profile {profile!r}, MCP server {server.server_label!r}: header {header!r} "
                f"reads the environment variable {variable}, which is not set"
            )
        values[header] = value
    return dataclasses.replace(server, header_values=values)
