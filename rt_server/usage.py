"""Token usage as the Realtime API reports it, split for metrics and records (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def token_split(usage: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """A Realtime ``usage`` object's tokens by (direction, kind): input text, audio, image
    and cached (part of the input, already counted there), output text and audio."""
    details_in = usage.get("input_token_details") or {}
    details_out = usage.get("output_token_details") or {}
    split = {
        ("input", kind): _int(details_in.get(f"{kind}_tokens"))
        for kind in ("text", "audio", "image", "cached")
    }
    split.update(
        {("output", kind): _int(details_out.get(f"{kind}_tokens")) for kind in ("text", "audio")}
    )
    return split


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
