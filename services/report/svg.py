"""The report's charts as inline SVG: bars by day, a month gauge, ranked bars, a timeline.

Drawn here rather than by a plotting library: four simple shapes do not
justify a dependency (matplotlib or plotly would add tens of MB and a
script-driven output), and every mark carries its exact figure in a
`data-` attribute and a `<title>` tooltip, so the page can be checked.
Geometry uses floats; the figures shown are always the exact Decimals.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape

from services.report.figures import DaySpend, SessionSpan

__all__ = ["daily_bars", "exact_usd", "month_gauge", "ranked_bars", "session_timeline"]

_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def exact_usd(amount: Decimal) -> str:
    """`$12.3456`: every digit of the exact amount, no exponent, no trailing zeros."""
    text = format(amount.normalize() if amount else Decimal(0), "f")
    if "." not in text:
        text += ".00"
    elif len(text.split(".")[1]) == 1:
        text += "0"
    return f"${text}"


def _cents(amount: Decimal) -> str:
    """`$12.35` for axis labels (axes are a scale, not a figure)."""
    return f"${amount.quantize(Decimal('0.01')):,.2f}"


def _scale(values: list[Decimal]) -> float:
    top = max([float(v) for v in values] + [0.0])
    return top * 1.1 if top > 0 else 1.0


def daily_bars(days: list[DaySpend], limit: Decimal | None, *, width: int = 760) -> str:
    """One bar per day against the daily limit (a dashed line); bars over it stand out."""
    height, left, right, top, bottom = 240, 70, 12, 16, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = _scale([d.total for d in days] + ([limit] if limit is not None else []))
    slot = plot_w / max(1, len(days))
    bar_w = max(1.0, slot * 0.72)

    def y_of(value: float) -> float:
        return top + plot_h - value / ceiling * plot_h

    parts = [
        f'<svg class="chart daily" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Daily spend" {_FONT}>'
    ]
    for step in range(5):
        value = ceiling * step / 4
        y = y_of(value)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_cents(Decimal(str(round(value, 4))))}</text>"
        )
    label_every = max(1, math.ceil(len(days) / 10))
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar_w) / 2
        h = float(day.total) / ceiling * plot_h
        over = limit is not None and day.total > limit
        label = f"{day.day:%a %d %b}: {exact_usd(day.total)}, {day.calls} call(s)"
        if day.unpriced:
            label += f", {day.unpriced} unpriced"
        classes = "bar day over" if over else "bar day"
        parts.append(
            f'<rect class="{classes}" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{bar_w:.1f}" height="{h:.1f}" data-day="{day.day.isoformat()}" '
            f'data-total="{day.total}"><title>{escape(label)}</title></rect>'
        )
        if index % label_every == 0 or index == len(days) - 1:
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{day.day:%d %b}</text>'
            )
    if limit is not None:
        y = y_of(float(limit))
        parts.append(
            f'<line class="limit" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="limit-label" x="{width - right}" y="{y - 4:.1f}" text-anchor="end">'
            f"daily limit {exact_usd(limit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def month_gauge(
    spent: Decimal, projection: Decimal, limit: Decimal | None, *, width: int = 760
) -> str:
    """Month to date (solid), its projection (pale) and the monthly limit (a marker)."""
    height, left, right = 64, 8, 8
    plot_w = width - left - right
    ceiling = _scale([spent, projection] + ([limit] if limit is not None else []))

    def w_of(value: Decimal) -> float:
        return float(value) / ceiling * plot_w

    parts = [
        f'<svg class="chart month" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Month to date" {_FONT}>',
        f'<rect class="track" x="{left}" y="14" width="{plot_w}" height="22" rx="3"/>',
        f'<rect class="projection" x="{left}" y="14" width="{w_of(projection):.1f}" height="22" '
        f'rx="3" data-total="{projection}"><title>projected to the month end: '
        f"{exact_usd(projection)}</title></rect>",
        f'<rect class="spent" x="{left}" y="14" width="{w_of(spent):.1f}" height="22" rx="3" '
        f'data-total="{spent}"><title>month to date: {exact_usd(spent)}</title></rect>',
    ]
    if limit is not None:
        x = left + w_of(limit)
        parts.append(
            f'<line class="limit" x1="{x:.1f}" x2="{x:.1f}" y1="8" y2="42"/>'
            f'<text class="limit-label" x="{x:.1f}" y="56" text-anchor="middle">'
            f"monthly limit {exact_usd(limit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def ranked_bars(amounts: dict[str, Decimal], *, kind: str, width: int = 760) -> str:
    """One labelled bar per name (largest first), with its exact amount."""
    if not amounts:
        return '<p class="empty">No priced calls in this period.</p>'
    row, label_w, amount_w = 24, 210, 120
    plot_w = width - label_w - amount_w
    height = row * len(amounts) + 8
    ceiling = _scale(list(amounts.values())) / 1.1
    parts = [
        f'<svg class="chart ranked {kind}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Spend by {kind}" {_FONT}>'
    ]
    for index, (name, amount) in enumerate(amounts.items()):
        y = 4 + index * row
        w = max(1.0, float(amount) / ceiling * plot_w) if amount else 0.0
        parts.append(
            f'<text class="name" x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(name[:34])}</text>"
            f'<rect class="bar {kind}" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="16" '
            f'rx="2" data-name="{escape(name)}" data-total="{amount}">'
            f"<title>{escape(name)}: {exact_usd(amount)}</title></rect>"
            f'<text class="amount" x="{width - 4}" y="{y + 15}" text-anchor="end">'
            f"{exact_usd(amount)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def session_timeline(
    sessions: list[SessionSpan], start: datetime, end: datetime, *, width: int = 760
) -> str:
    """Each session as a block on a time axis from `start` to `end` (local days marked)."""
    if not sessions:
        return '<p class="empty">No writing session in this period.</p>'
    height, left, right = 70, 8, 8
    plot_w = width - left - right
    span_s = max(1.0, (end - start).total_seconds())

    def x_of(moment: datetime) -> float:
        return left + (moment - start).total_seconds() / span_s * plot_w

    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Sessions" {_FONT}>',
        f'<line class="grid" x1="{left}" x2="{width - right}" y1="40" y2="40"/>',
    ]
    day = start
    days_total = max(1, round(span_s / 86400))
    every = max(1, math.ceil(days_total / 10))
    index = 0
    while day <= end:
        if index % every == 0:
            x = x_of(day)
            anchor = "start" if index == 0 else "middle"
            parts.append(
                f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="36" y2="44"/>'
                f'<text class="axis" x="{x:.1f}" y="60" text-anchor="{anchor}">{day:%d %b}</text>'
            )
        day += timedelta(days=1)
        index += 1

    def local(moment: datetime) -> str:
        return moment.astimezone(start.tzinfo).strftime("%Y-%m-%d %H:%M")

    for session in sessions:
        x = x_of(session.start)
        w = max(3.0, session.minutes * 60 / span_s * plot_w)
        label = (
            f"{session.session_id}: {local(session.start)}, {session.minutes:.0f} min, "
            f"{exact_usd(session.cost)}, {session.files} file(s), {session.status}"
        )
        parts.append(
            f'<rect class="session {escape(session.status)}" x="{x:.1f}" y="14" '
            f'width="{w:.1f}" height="20" rx="2" data-session="{escape(session.session_id)}">'
            f"<title>{escape(label)}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)
