"""The session document (current.json) and the preferences (preferences.json)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

from protocol.base import Document, Money, ProjectPath, ShortText, Timestamp
from protocol.names import Stage

__all__ = [
    "MAX_RECENT_QUERIES",
    "CurrentState",
    "NotebookLMSettings",
    "OpenFile",
    "Preferences",
    "RecentQuery",
    "SessionDocument",
    "TimeZoneName",
]

MAX_RECENT_QUERIES = 10
"""`recent_queries` keeps this many, newest last."""


class CurrentState(Document):
    """Where the writer is in the UI."""

    stage: Stage = Stage.CREATION
    screen: ShortText = "home"
    breadcrumb: list[ShortText] = Field(default_factory=lambda: ["Home"])


class OpenFile(Document):
    """A file open in an editor pane, with its cursor."""

    path: ProjectPath
    cursor_line: Annotated[int, Field(ge=0)] = 0
    cursor_col: Annotated[int, Field(ge=0)] = 0


class RecentQuery(Document):
    """A question the writer asked a knowledge source."""

    query: ShortText
    timestamp: Timestamp
    source: ShortText


class SessionDocument(Document):
    """current.json: the seed's session object plus what recovery needs.

    `ended_at` is the clean-end marker: set only by a clean stop. A document
    without it whose `owner_pid` no longer lives belongs to an interrupted
    session (a flag alone would lie after a reboot, hence the pid).
    `revision` counts applied mutations; the journal replays those above it.
    """

    session_id: str
    project_name: str
    created_at: Timestamp
    last_activity: Timestamp
    current_state: CurrentState = Field(default_factory=CurrentState)
    open_files: list[OpenFile] = Field(default_factory=list)
    model_preferences: dict[Stage, str] = Field(default_factory=dict)
    recent_queries: list[RecentQuery] = Field(default_factory=list)
    revision: Annotated[int, Field(ge=0)] = 0
    owner_pid: int | None = None
    host: str | None = None
    last_saved_at: Timestamp | None = None
    ended_at: Timestamp | None = None


def _check_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'Europe/Paris')"
        ) from exc
    return value


TimeZoneName = Annotated[str | None, AfterValidator(_check_zone)]
"""An IANA zone name, or None for the system's zone."""


class NotebookLMSettings(Document):
    """A linked NotebookLM notebook, if any."""

    enabled: bool = False
    notebook_url: ShortText | None = None
    notebook_id: ShortText | None = None


class Preferences(Document):
    """preferences.json: what the writer chose; every field has a default."""

    model_preferences: dict[Stage, str] = Field(default_factory=dict)
    notebooklm: NotebookLMSettings = Field(default_factory=NotebookLMSettings)
    keyboard_shortcuts: dict[str, str] = Field(default_factory=dict)
    theme: ShortText = "system"
    colors: dict[str, str] = Field(default_factory=dict)
    autosave_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 30.0
    timezone: TimeZoneName = None
    budget_warning_fraction: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.8")
    confirm_above: Annotated[Money, Field(ge=0)] = Decimal("0.10")
