"""The session writer's parts on their own: no part knows the worker, each runs with stand-ins."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from protocol.session import Preferences, SessionDocument
from services.session.saving import AutoSave, SaveTiming
from services.session.status import StatusView, session_status
from services.store import AtomicJsonFile, FileOps

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_no_session_part_imports_the_worker() -> None:
    """Nothing under services/session/ imports services.session_writer, not even for typing."""
    offenders = []
    for path in sorted((ROOT / "services" / "session").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            if any(name.startswith("services.session_writer") for name in names):
                offenders.append(path.name)
    assert offenders == []


@dataclass
class StandInSession:
    """A `SavedSession` that is not a worker: a document, a revision, and what it was told."""

    document: SessionDocument
    preferences: Preferences = field(default_factory=Preferences)
    revision: int = 1
    preferences_version: int = 0
    saved: list[datetime] = field(default_factory=list)

    def start_segment(self, now: datetime) -> list[Path]:
        """No journal here: nothing becomes obsolete."""
        return []

    def note_saved(self, saved_at: datetime) -> None:
        """Remember what the auto-save told us."""
        self.saved.append(saved_at)


def test_autosave_saves_a_stand_in_session(tmp_path: Path) -> None:
    """AutoSave writes whatever session it is given and tells it when, with events published."""
    document = SessionDocument(
        session_id="2026-03-01-090000", project_name="p", created_at=T0, last_activity=T0
    )
    session = StandInSession(document)
    published: list[tuple[str, Any]] = []
    autosave = AutoSave(
        session,
        current=AtomicJsonFile(tmp_path / "current.json"),
        preferences=AtomicJsonFile(tmp_path / "preferences.json"),
        journal_ops=FileOps(),
        timing=SaveTiming(
            interval_s=30.0, max_replay_records=2000, clock=lambda: T0, monotonic=lambda: 0.0
        ),
        publish=lambda topic, data: published.append((topic, data)),
        call_soon_threadsafe=lambda callback: None,
        log=_SilentLog(),
        snapshot_revision=0,
        last_save_at=None,
    )
    done = autosave.snapshot("session.save", sync=True)
    assert done is not None and done.ok
    assert session.saved == [T0]
    assert [topic for topic, _ in published] == ["session.saved"]
    written = SessionDocument.model_validate_json((tmp_path / "current.json").read_bytes())
    assert written.last_saved_at == T0
    assert session_status(autosave.status_view()).indicator == "● Auto-saved 0s ago"
    autosave.close(1.0)


class _SilentLog:
    """A logger that drops everything."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _view(**changes: Any) -> StatusView:
    base: dict[str, Any] = {
        "session_id": "s",
        "revision": 5,
        "snapshot_revision": 4,
        "now": T0 + timedelta(seconds=75),
        "dirty": True,
        "round_failed": False,
        "last_error": None,
        "last_save_at": T0,
        "interval_s": 30.0,
        "max_attempts": 3,
        "in_flight": False,
        "failed_attempts": 0,
        "round_max_attempts": 0,
        "round_error": None,
    }
    return StatusView(**{**base, **changes})


def test_status_from_a_view_shows_a_retry_in_flight() -> None:
    """A round in flight with one failed try reads `retrying (2/3)` with its error."""
    result = session_status(
        _view(in_flight=True, failed_attempts=1, round_max_attempts=3, round_error="EIO")
    )
    assert result.indicator == "⚠ Auto-save failed — retrying (2/3)"
    assert result.last_error == "EIO"


def test_status_from_a_view_counts_the_age_of_the_last_save() -> None:
    """A clean view says how long ago the last save was, from the view's own `now`."""
    result = session_status(_view(dirty=False))
    assert result.indicator == "● Auto-saved 1 min ago"
    assert result.seconds_since_save == 75.0
