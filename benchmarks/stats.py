"""Percentiles and the table every scenario prints."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QUANTILES = (50, 90, 99)


def percentiles(samples_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/max and the count of a list of milliseconds (NaN when empty)."""
    data = np.asarray(samples_ms, dtype=np.float64)
    if data.size == 0:
        return {"n": 0, **{f"p{q}": float("nan") for q in QUANTILES}, "max": float("nan")}
    values = np.percentile(data, QUANTILES)
    out: dict[str, float] = {"n": int(data.size)}
    out.update({f"p{q}": round(float(v), 4) for q, v in zip(QUANTILES, values, strict=True)})
    out["max"] = round(float(data.max()), 4)
    return out


def added(through: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """What rt_server adds at each percentile: through minus direct."""
    return {
        f"p{q}": round(through[f"p{q}"] - direct[f"p{q}"], 4)
        for q in QUANTILES
        if f"p{q}" in through
    }


def against_direct(by_way: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``added`` (through rt_server - direct) and ``floor`` (through the relay - direct)."""
    direct = by_way["direct"]
    return {"added": added(by_way["through"], direct), "floor": added(by_way["relay"], direct)}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (also readable on a terminal)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)
