"""`supervisor inspect history`: the sessions as a table a person reads.

Read-only and independent of the service: it reads history.json (or its
compressed form) and, when asked for more sessions than it holds, the
archive. Times are shown in the local time zone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from protocol.codec import decimal_text
from protocol.history import HistoryEntry
from services.history.archive import read_archive
from services.readonly.history import merge_sessions, newest_first, read_history_file
from services.runtime.paths import ProjectPaths

__all__ = ["format_cost", "format_duration", "render_history", "render_table"]

_STATUS_MARK = {"active": "● active", "ended": "ended", "interrupted": "⚠ interrupted"}


def format_cost(cost: Decimal, unpriced: int = 0) -> str:
    """Dollars to the cent, exact below a cent (`$0.00000007`), unpriced noted."""
    if cost == 0 or abs(cost) >= Decimal("0.01"):
        text = f"${cost.quantize(Decimal('0.01'))}"
    else:
        text = f"${decimal_text(cost)}"
    return f"{text} +{unpriced} unpriced" if unpriced else text


def format_duration(minutes: float) -> str:
    """`2h 45m`, `12m`, `<1m`."""
    whole = round(minutes)
    if whole < 1:
        return "<1m"
    hours, rest = divmod(whole, 60)
    return f"{hours}h {rest:02d}m" if hours else f"{rest}m"


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "-"


def _operations(entry: HistoryEntry) -> str:
    if not entry.operations_count:
        return "-"
    parts = sorted(entry.operations_count.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in parts)


def render_table(entries: list[HistoryEntry]) -> str:
    """The table itself, for any list of entries."""
    header = ("Session", "Status", "Started", "Duration", "Cost", "Files", "Operations")
    rows = [
        (
            entry.session_id,
            _STATUS_MARK.get(entry.status, entry.status),
            _local(entry.start_time),
            format_duration(entry.duration_minutes),
            format_cost(entry.total_cost, entry.unpriced_operations),
            f"+{len(entry.files_created)} ~{len(entry.files_modified)} -{len(entry.files_deleted)}",
            _operations(entry),
        )
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells: tuple[str, ...]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    rule = (*("-" * width for width in widths), "-" * len(header[-1]))
    out = [line(header), line(rule)]
    out += [line(row) for row in rows]
    return "\n".join(out)


def render_history(paths: ProjectPaths, *, limit: int = 20) -> str:
    """The last `limit` sessions, newest first, with totals and a legend."""
    found = read_history_file(paths)
    recent = newest_first(list(found.document.sessions))
    notes: list[str] = []
    if found.status == "corrupt":
        notes.append(f"! {found.source} is unreadable ({found.error}); showing the archive only")
    entries = recent[:limit]
    if limit > len(recent):
        archive = read_archive(paths.archive_dir)
        entries = merge_sessions(recent, archive.entries, limit)
        if archive.torn_files:
            names = ", ".join(path.name for path in archive.torn_files)
            notes.append(f"! a torn tail was skipped in {names}")
    if not entries:
        return "\n".join([*notes, "No sessions recorded yet."])
    total = sum((entry.total_cost for entry in entries), Decimal(0))
    unpriced = sum(entry.unpriced_operations for entry in entries)
    shown = f"{len(entries)} session{'s' if len(entries) != 1 else ''}"
    source = found.source.name if found.source else "history.json"
    recent_ids = {entry.session_id for entry in recent}
    archived_total = sum(1 for entry in entries if entry.session_id not in recent_ids)
    lines = [
        f"History of {paths.project.name} ({shown} from {source}"
        + (f" and the archive of {archived_total}" if archived_total else "")
        + ", newest first)",
        "",
        render_table(entries),
        "",
        f"Total {format_cost(total, unpriced)}    Files: +created ~modified -deleted    "
        f"Times: local ({datetime.now().astimezone().strftime('%Z')})",
    ]
    return "\n".join([*notes, *lines])
