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
    "RecoveryNotice",
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


class RecoveryNotice(Document):
    """What a UI shows after a crash, kept as state until it is acknowledged.

    Set by the session writer when it starts over a session that ended
    without a clean stop; cleared only by `session.ack_recovery`. The
    `session.recovered` event announces it, but a UI that connected too late
    for the event still reads it here (`session.get`, `session.status`).
    """

    interrupted_session_id: str
    """The session that was interrupted (the current one again when `resumed`)."""
    resumed: bool
    """True: the interrupted session continues; False: a new session began over it."""
    detected_at: Timestamp
    """When the service found the interruption (its start)."""
    started_at: Timestamp
    """When the interrupted session began."""
    last_activity: Timestamp
    """The interrupted session's last recorded activity."""
    duration_s: Annotated[float, Field(ge=0)]
    """From `started_at` to `last_activity`, in seconds."""
    last_save_at: Timestamp | None = None
    """Its last snapshot: what a person would call "last saved"."""
    files_changed: list[str] = Field(default_factory=list)
    """Files in the watched folders changed since that save (project-relative)."""


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
    recovery: RecoveryNotice | None = None
    """An interruption not yet acknowledged by the UI (`session.ack_recovery`)."""


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
