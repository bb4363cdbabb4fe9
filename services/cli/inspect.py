"""`supervisor inspect`: render a data file, whether or not the service runs.

Read-only by design: it never moves, rewrites or locks anything, so it is safe
beside a running service (which owns the files) and on a broken project.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from services.cli.exits import EXIT_FAILURE, EXIT_OK

__all__ = ["inspect", "render_preferences", "render_session"]


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


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


def inspect(project: Path, what: str, *, as_json: bool) -> int:
    """Print one of the four data files; exit 1 when it is missing or unreadable."""
    from protocol.codec import dumps_pretty
    from protocol.session import Preferences, SessionDocument
    from services.runtime.paths import ProjectPaths
    from services.store import read_document

    paths = ProjectPaths.of(project)
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

        if as_json:
            sys.stdout.write(dumps_pretty(costs_summary(paths)).decode())
        else:
            print(render_costs(paths, now=datetime.now(UTC)))
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
        reason = (
            "does not exist yet"
            if outcome.status == "missing"
            else f"is unreadable ({outcome.error})"
        )
        print(f"supervisor: {path} {reason}", file=sys.stderr)
        return EXIT_FAILURE
    if as_json:
        sys.stdout.write(dumps_pretty(outcome.value).decode())
    elif what == "session":
        print(render_session(outcome.value))
    else:
        print(render_preferences(outcome.value))
    return EXIT_OK
