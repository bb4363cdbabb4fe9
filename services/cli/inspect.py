"""`supervisor inspect`: render a data file, whether or not the service runs.

Read-only by design: it never moves, rewrites or locks anything, so it is safe
beside a running service (which owns the files) and on a broken project.
"""

from __future__ import annotations

import argparse
import errno
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from services.cli.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from services.runtime.paths import ProjectPaths

__all__ = ["inspect", "inspect_command", "render_preferences", "render_session"]


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _costs_csv(paths: ProjectPaths, what: str, *, as_csv: bool, since: str | None) -> int:
    """`inspect costs --csv [--since DATE]`: the ledger's operations as CSV on stdout."""
    from config import load_settings
    from services.cost.export import export_operations
    from services.cost.ledger_files import LedgerFiles
    from services.cost.preferences import PreferenceWatch

    if what != "costs" or not as_csv:
        print("supervisor: --csv and --since go with `inspect costs --csv`", file=sys.stderr)
        return EXIT_USAGE
    try:
        first = date.fromisoformat(since) if since is not None else None
    except ValueError:
        print(f"supervisor: --since {since!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return EXIT_USAGE
    zone = PreferenceWatch(paths.preferences, load_settings()).current.zone
    export_operations(LedgerFiles(paths.ledger_dir), sys.stdout, since=first, zone=zone)
    return EXIT_OK


def render_session(document: BaseModel) -> str:
    """A session document as a person reads it."""
    from protocol.session import SessionDocument

    if not isinstance(document, SessionDocument):
        raise TypeError("render_session takes a SessionDocument")
    state = document.current_state
    ended = document.ended_at
    lines = [
        f"Session {document.session_id} - {document.project_name}",
        f"  started        {_local(document.created_at)}",
        f"  last activity  {_local(document.last_activity)}",
        f"  last saved     {_local(document.last_saved_at)}",
        f"  ended          {_local(ended) if ended else 'no (running, or interrupted)'}",
        f"  stage          {state.stage.value}   screen {state.screen}",
        f"  breadcrumb     {' > '.join(state.breadcrumb) or '-'}",
        "  open files",
    ]
    lines += [
        f"    {f.path}  (line {f.cursor_line}, col {f.cursor_col})" for f in document.open_files
    ] or ["    -"]
    lines.append("  models per stage")
    lines += [
        f"    {stage.value:<10} {model}" for stage, model in document.model_preferences.items()
    ] or ["    -"]
    lines.append("  recent queries")
    lines += [f"    [{q.source}] {q.query}" for q in document.recent_queries] or ["    -"]
    return "\n".join(lines)


def render_preferences(document: BaseModel) -> str:
    """Preferences as `key: value` lines."""
    data = document.model_dump(mode="json")
    return "\n".join(f"{key}: {value}" for key, value in data.items())


def _last_days(paths: Any, now: datetime) -> list[Any]:
    """The last 14 local days' exact spend, read from the ledger."""
    from datetime import timedelta

    from config import load_settings
    from services.cli.sparkline import SPARK_DAYS
    from services.cost.preferences import PreferenceWatch
    from services.report.figures import daily_totals, ledger_operations

    zone = PreferenceWatch(paths.preferences, load_settings()).current.zone
    today = now.astimezone(zone).date()
    first = today - timedelta(days=SPARK_DAYS - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=zone)
    operations = ledger_operations(paths, since)
    return daily_totals(operations, first_day=first, last_day=today, zone=zone)


def _spark_line(days: list[Any]) -> str:
    """`  14 days    ▁▂·▅█▃…  $12.34 (max $5.00 on Nov 28)`."""
    from services.cli.sparkline import sparkline
    from services.report.svg import exact_usd

    total = sum((d.total for d in days), Decimal(0))
    busiest = max(days, key=lambda d: d.total)
    tail = f"max {exact_usd(busiest.total)} on {busiest.day:%b %d}" if busiest.total else "idle"
    return (
        f"  {len(days)} days    {sparkline([d.total for d in days])}  {exact_usd(total)} ({tail})"
    )


def _unreadable(path: Path, status: str, error: str | None) -> str:
    """Why a data file cannot be shown, and what to do when that is not obvious."""
    if path.is_dir():  # e.g. a folder named current.json: say how to move it aside
        from services.cli.failures import explain_os_error

        return explain_os_error(IsADirectoryError(errno.EISDIR, "Is a directory", str(path)))
    if status == "missing":
        return f"{path} does not exist yet"
    return f"{path} is unreadable ({error})"


def inspect(
    project: Path, what: str, *, as_json: bool, as_csv: bool = False, since: str | None = None
) -> int:
    """Print one of the four data files; exit 1 when it is missing or unreadable."""
    from protocol.codec import dumps_pretty
    from protocol.session import Preferences, SessionDocument
    from services.runtime.paths import ProjectPaths
    from services.store import read_document

    paths = ProjectPaths.of(project)
    if as_csv or since is not None:
        return _costs_csv(paths, what, as_csv=as_csv, since=since)
    if what == "history":
        from services.history.read import read_history

        history = read_history(paths)
        if as_json:
            sys.stdout.write(dumps_pretty(history).decode())
        else:
            from services.history.render import render_history

            print(render_history(paths))
        return EXIT_OK
    if what == "costs":
        # Rendered from the ledger itself: works before costs.json first exists.
        from services.cost.render import costs_summary, render_costs

        now = datetime.now(UTC)
        days = _last_days(paths, now)
        if as_json:
            summary = costs_summary(paths, now=now)
            summary["last_14_days"] = [{"day": d.day.isoformat(), "total": d.total} for d in days]
            sys.stdout.write(dumps_pretty(summary).decode())
        else:
            print(render_costs(paths, now=now))
            print(_spark_line(days))
        return EXIT_OK
    files: dict[str, tuple[Path, type[BaseModel]]] = {
        "session": (paths.current, SessionDocument),
        "preferences": (paths.preferences, Preferences),
    }
    path, model = files[what]
    outcome = read_document(path, model)
    if outcome.status == "missing" and what == "preferences":
        outcome = type(outcome)(status="ok", value=Preferences())  # defaults apply
    if outcome.value is None:
        print(f"supervisor: {_unreadable(path, outcome.status, outcome.error)}", file=sys.stderr)
        return EXIT_FAILURE
    if as_json:
        sys.stdout.write(dumps_pretty(outcome.value).decode())
    elif what == "session":
        print(render_session(outcome.value))
    else:
        print(render_preferences(outcome.value))
    return EXIT_OK


def inspect_command(options: argparse.Namespace) -> int:
    """`supervisor inspect`."""
    return inspect(
        options.project,
        options.what,
        as_json=options.json,
        as_csv=options.csv,
        since=options.since,
    )
