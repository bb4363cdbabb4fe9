"""The one-line status of `supervisor watch`, as a UI's status bar would show it.

    ● Auto-saved 12s ago │ writing │ $0.09 session · $3.10 of $50.00 today
    │ workers 4/4 running │ ~ manuscript/ch1.md 3s ago

(one line on screen).

Pure: the state is updated from replies and events by `watch`, and rendered
for any moment, so the age can be redrawn every second without asking the
service anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from protocol.base import age_text, parse_ts
from services.session.autosave import SaveState, indicator_text

__all__ = ["SEPARATOR", "StatusLine"]

SEPARATOR = " │ "
_FILE_MARKS = {"created": "+", "modified": "~", "deleted": "-", "moved": ">"}


def _money(amount: Decimal) -> str:
    from services.cost.money import usd

    return usd(amount)


@dataclass
class StatusLine:
    """What the line shows; each field is set from a reply or an event."""

    save_state: str = "saved"
    indicator: str = "● Up to date"
    last_save_at: datetime | None = None
    stage: str = "-"
    session_total: Decimal = Decimal(0)
    daily_total: Decimal = Decimal(0)
    daily_limit: Decimal | None = None
    workers: dict[str, str] = field(default_factory=dict)
    last_file: tuple[str, str, datetime] | None = None
    stopped: bool = False

    def apply_session_status(self, status: dict[str, Any]) -> None:
        """From a `session.status` reply."""
        self.save_state = str(status.get("state") or ("saved" if not status["dirty"] else ""))
        self.indicator = str(status["indicator"])
        saved = status.get("last_save_at")
        self.last_save_at = parse_ts(saved) if isinstance(saved, str) else saved

    def apply_totals(self, totals: dict[str, Any]) -> None:
        """From `cost.totals`, or the totals inside a `cost.logged` event."""
        self.session_total = Decimal(str(totals.get("session_total", self.session_total)))
        self.daily_total = Decimal(str(totals.get("daily_total", self.daily_total)))

    def apply_workers(self, status: dict[str, Any]) -> None:
        """From a `supervisor.status` reply."""
        self.workers = {w["name"]: w["state"] for w in status["workers"]}

    def apply_file_event(self, topic: str, data: dict[str, Any], at: datetime) -> None:
        """From a `file.*` event."""
        kind = topic.split(".", 1)[1]
        path = str(data.get("dest_path") or data.get("path") or "?")
        self.last_file = (kind, path, at)

    def _save_text(self, now: datetime) -> str:
        if self.save_state == SaveState.SAVED.value and self.last_save_at is not None:
            age = (now - self.last_save_at).total_seconds()
            return indicator_text(SaveState.SAVED, seconds_since_save=max(0.0, age))
        return self.indicator

    def _workers_text(self) -> str:
        if not self.workers:
            return "workers ?"
        running = [name for name, state in self.workers.items() if state == "running"]
        text = f"workers {len(running)}/{len(self.workers)} running"
        others = [f"{name} {state}" for name, state in self.workers.items() if state != "running"]
        return text + (" · " + ", ".join(others) if others else "")

    def _spend_text(self) -> str:
        today = _money(self.daily_total)
        if self.daily_limit is not None:
            today += f" of {_money(self.daily_limit)}"
        return f"{_money(self.session_total)} session · {today} today"

    def _file_text(self, now: datetime) -> str:
        if self.last_file is None:
            return "no file event yet"
        kind, path, at = self.last_file
        age = age_text(max(0.0, (now - at).total_seconds()))
        return f"{_FILE_MARKS.get(kind, '?')} {path} {age} ago"

    def render(self, now: datetime) -> str:
        """The line at `now` (ages computed here, nothing asked of the service)."""
        if self.stopped:
            return "■ The service stopped"
        return SEPARATOR.join(
            [
                self._save_text(now),
                self.stage,
                self._spend_text(),
                self._workers_text(),
                self._file_text(now),
            ]
        )

    def document(self) -> dict[str, Any]:
        """The same state as JSON (`watch --json`)."""
        return {
            "save_state": self.save_state,
            "indicator": self.indicator,
            "last_save_at": self.last_save_at,
            "stage": self.stage,
            "session_total": self.session_total,
            "daily_total": self.daily_total,
            "daily_limit": self.daily_limit,
            "workers": self.workers,
            "last_file": (
                {"event": self.last_file[0], "path": self.last_file[1], "at": self.last_file[2]}
                if self.last_file
                else None
            ),
            "stopped": self.stopped,
        }
