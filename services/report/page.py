"""The report as one HTML document: inline CSS and SVG, no script, nothing fetched.

A Content-Security-Policy of `default-src 'none'` makes the promise
enforceable: even a future edit that referenced a font or an image would be
refused by the browser rather than reach the network.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from html import escape

from services.report.figures import ReportFigures
from services.report.svg import (
    daily_bars,
    exact_usd,
    month_gauge,
    ranked_bars,
    session_timeline,
)

__all__ = ["render_page"]

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 800px;
       color: #1f2328; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.meta, .empty, .note { color: #57606a; }
.figures { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.figure { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; min-width: 160px; }
.figure b { display: block; font-size: 18px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eaeef2; }
td.money, th.money { text-align: right; font-variant-numeric: tabular-nums; }
details { margin-top: 8px; }
svg .grid { stroke: #eaeef2; } svg .tick { stroke: #8c959f; }
svg .axis, svg .name, svg .amount { fill: #57606a; }
svg .bar { fill: #4c8eda; } svg .bar.over { fill: #d1242f; }
svg .limit { stroke: #bc4c00; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .limit-label { fill: #bc4c00; }
svg .track { fill: #f6f8fa; } svg .spent { fill: #4c8eda; } svg .projection { fill: #b6d3f2; }
svg .session { fill: #2da44e; } svg .session.interrupted { fill: #bf8700; }
svg .session.active { fill: #8250df; }
"""


def _figure(label: str, value: str, css: str = "") -> str:
    return f'<div class="figure {css}"><span>{escape(label)}</span><b>{escape(value)}</b></div>'


def _money_cell(amount: Decimal) -> str:
    return f'<td class="money" data-total="{amount}">{exact_usd(amount)}</td>'


def _days_table(figures: ReportFigures) -> str:
    rows = "".join(
        f"<tr><td>{day.day.isoformat()}</td>{_money_cell(day.total)}"
        f'<td class="money">{day.calls}</td></tr>'
        for day in reversed(figures.days)
    )
    return (
        "<details><summary>Every day, exactly</summary><table class='days'>"
        "<tr><th>day</th><th class='money'>spend</th><th class='money'>calls</th></tr>"
        f"{rows}</table></details>"
    )


def _sessions_table(figures: ReportFigures) -> str:
    if not figures.sessions:
        return ""
    zone = figures.generated_at.astimezone().tzinfo
    rows = "".join(
        f"<tr><td>{escape(s.session_id)}</td>"
        f"<td>{s.start.astimezone(zone):%Y-%m-%d %H:%M}</td>"
        f'<td class="money">{s.minutes:.0f} min</td>{_money_cell(s.cost)}'
        f'<td class="money">{s.files}</td><td>{escape(s.status)}</td></tr>'
        for s in reversed(figures.sessions)
    )
    return (
        "<table class='sessions'><tr><th>session</th><th>start</th>"
        "<th class='money'>duration</th><th class='money'>cost</th>"
        f"<th class='money'>files</th><th>status</th></tr>{rows}</table>"
    )


def _sources_table(figures: ReportFigures) -> str:
    rows = "".join(
        f"<tr><td>{escape(s.source)}</td><td>{s.first:%Y-%m-%d}</td><td>{s.last:%Y-%m-%d}</td>"
        f'<td class="money">{s.calls}</td></tr>'
        for s in figures.price_sources
    )
    table = (
        "<table class='sources'><tr><th>price source</th><th>first used</th><th>last used</th>"
        f"<th class='money'>calls</th></tr>{rows}</table>"
        if rows
        else '<p class="empty">No call in this period.</p>'
    )
    return f"{table}<p class='note'>Prices in force now: {escape(figures.prices_now)}.</p>"


def render_page(figures: ReportFigures, *, project_name: str) -> str:
    """The whole HTML document."""
    days = figures.days
    first, last = days[0].day, days[-1].day
    start = datetime(first.year, first.month, first.day).astimezone()
    end = max(figures.generated_at.astimezone(), start + timedelta(days=1))
    limit_text = exact_usd(figures.monthly_limit) if figures.monthly_limit is not None else "none"
    over_days = (
        sum(1 for d in days if d.total > figures.daily_limit)
        if figures.daily_limit is not None
        else 0
    )
    tiles = "".join(
        [
            _figure(f"last {len(days)} days", exact_usd(figures.period_total), "period"),
            _figure("month to date", exact_usd(figures.month_to_date), "mtd"),
            _figure("projected for the month", exact_usd(figures.projection), "projection"),
            _figure("monthly limit", limit_text, "monthly-limit"),
        ]
    )
    notes = []
    if figures.period_unpriced:
        notes.append(
            f"{figures.period_unpriced} call(s) on models without a price are counted "
            "but not included in the amounts."
        )
    if over_days:
        notes.append(f"{over_days} day(s) went over the daily limit (in red).")
    if figures.history_problem:
        notes.append(escape(figures.history_problem))
    notes_html = "".join(f"<p class='note'>{note}</p>" for note in notes)
    daily_limit = (
        f"against the daily limit of {exact_usd(figures.daily_limit)}"
        if figures.daily_limit is not None
        else "(no daily limit set)"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Writers Factory spend report - {escape(project_name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Spend report: {escape(project_name)}</h1>
<p class="meta">{first.isoformat()} to {last.isoformat()} ({escape(figures.zone)}),
generated {figures.generated_at.astimezone():%Y-%m-%d %H:%M}. Amounts are exact sums of the
ledger's lines; {figures.period_calls} call(s) in this period.</p>
<div class="figures">{tiles}</div>
{notes_html}
<h2>Daily spend {daily_limit}</h2>
{daily_bars(days, figures.daily_limit)}
{_days_table(figures)}
<h2>This month: {exact_usd(figures.month_to_date)} so far, about
{exact_usd(figures.projection.quantize(Decimal("0.01")))} at this pace</h2>
{month_gauge(figures.month_to_date, figures.projection, figures.monthly_limit)}
<h2>Spend by model</h2>
{ranked_bars(figures.by_model, kind="model")}
<h2>Spend by operation</h2>
{ranked_bars(figures.by_operation, kind="operation")}
<h2>Writing sessions</h2>
{session_timeline(figures.sessions, start, end)}
{_sessions_table(figures)}
<h2>Price sources</h2>
{_sources_table(figures)}
</body></html>
"""
