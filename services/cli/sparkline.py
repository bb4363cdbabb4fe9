"""A one-line chart of daily spend for the terminal: `▁▂▁▅█▃`.

Used by `inspect costs` for the last 14 days. Bars are relative to the
busiest day; a day with no spend is a space-like `·` so idle days read as
gaps, and any spend at all shows at least the lowest bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

__all__ = ["SPARK_DAYS", "sparkline"]

SPARK_DAYS = 14
_BARS = "▁▂▃▄▅▆▇█"
_IDLE = "·"


def sparkline(values: Sequence[Decimal]) -> str:
    """One character per value, scaled to the largest."""
    top = max(values, default=Decimal(0))
    if top <= 0:
        return _IDLE * len(values)
    marks = []
    for value in values:
        if value <= 0:
            marks.append(_IDLE)
            continue
        index = int(value * (len(_BARS) - 1) / top)
        marks.append(_BARS[max(0, min(index, len(_BARS) - 1))])
    return "".join(marks)
