"""``--trace``: where a text turn's time goes, stage by stage, from stamps in the client and
inside rt_server (:mod:`benchmarks.stamps`) on one monotonic clock.

A through turn, from the client's ``user_message`` to its first ``text_delta``, is cut at
the stamps rt_server took for it into eleven stages; each stage's p50 and p90 are given in
µs. The stages' p50s do not add up to the total's p50 (each is the median of its own).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from benchmarks import stamps as st
from benchmarks.stats import percentiles

#: (key, what the stage is), in the order a turn passes them.
STAGES = (
    ("to_rt_server", "the client's write until rt_server reads its socket"),
    ("frame_parsing", "picows parsed the frame: the listener decodes its payload"),
    ("to_session", "the listener hands the message to the session (same callback)"),
    ("to_translator", "the session's accounting, until the translator has it"),
    ("validation", "pydantic validates the message"),
    ("handler", "the handler builds the backend events"),
    ("backend_sends", "the sends to the backend (two events)"),
    ("backend", "the backend (the emulator): last send until its answer is read"),
    ("before_delta", "the reply's events before the first delta, read and translated"),
    ("delta_to_write", "the delta's event until its frame is handed to the client socket"),
    ("to_client", "the write until the client has the frame (the client's wake-up and read)"),
)
_DELTAS = {
    st.EVENT + "response.output_audio_transcript.delta",
    st.EVENT + "response.output_text.delta",
}
_DELTA = "delta"  # the index's one key for both kinds of delta


class _Index:
    """Stamps by label (every delta under ``_DELTA``, other events under ``st.EVENT``), each
    list in time order, for "the first X after t" lookups."""

    def __init__(self, stamps: Sequence[tuple[int, str]]) -> None:
        self.at: dict[str, list[int]] = {}
        for ns, label in sorted(stamps):
            if label.startswith(st.EVENT):
                label = _DELTA if label in _DELTAS else st.EVENT
            self.at.setdefault(label, []).append(ns)

    def after(self, label: str, t: int) -> int | None:
        times = self.at.get(label, [])
        i = bisect.bisect_left(times, t)
        return times[i] if i < len(times) else None

    def before(self, label: str, t: int) -> int | None:
        times = self.at.get(label, [])
        i = bisect.bisect_left(times, t)
        return times[i - 1] if i else None


def _cut(index: _Index, start: int, first: int) -> dict[str, int] | None:
    """One turn's stages in ns, or None when a stamp is missing or out of order (the turn
    is not counted)."""
    message = index.after(st.MESSAGE, start)
    if message is None or message > first:
        return None
    read = index.before(st.CLIENT_READ, message)
    received = index.before(st.ASGI_RECEIVED, message)
    validated = index.after(st.VALIDATED, message)
    translated = index.after(st.TRANSLATED, message)
    if read is None or received is None or validated is None or translated is None:
        return None
    parsed = index.after(st.CLIENT_PARSED, read)
    answered = index.after(st.BACKEND_READ, translated)
    delta = index.after(_DELTA, translated)
    if parsed is None or answered is None or delta is None:
        return None
    sent = index.before(st.BACKEND_SENT, answered)
    written = index.after(st.WRITE_DELTA, delta)
    if sent is None or written is None:
        return None
    points = [start, read, parsed, received, message, validated, translated, sent, answered]
    points += [delta, written, first]
    if points != sorted(points):
        return None
    return {key: points[i + 1] - points[i] for i, (key, _) in enumerate(STAGES)}


def stages(stamps: Sequence[tuple[int, str]], turns: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """``turns``: each through turn's (start, first delta) as the client stamped them."""
    index = _Index(stamps)
    cuts = [cut for start, first in turns if (cut := _cut(index, start, first)) is not None]
    us: dict[str, Any] = {}
    for key, what in STAGES:
        values = [cut[key] / 1000 for cut in cuts]
        us[key] = {"what": what, **_p50_p90(values)} if values else {"what": what}
    totals = [sum(cut.values()) / 1000 for cut in cuts]
    return {"turns": len(turns), "turns_cut": len(cuts), "us": us, "total_us": _p50_p90(totals)}


def _p50_p90(values: list[float]) -> dict[str, float]:
    pct = percentiles(values)
    return {"p50": round(pct["p50"], 1), "p90": round(pct["p90"], 1)}
