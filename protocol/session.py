"""The session document (current.json) and the preferences (preferences.json)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from protocol.base import (
    MAX_CURSOR,
    MAX_WHOLE_NUMBER,
    Document,
    Money,
    ProjectPath,
    ShortText,
    Timestamp,
)
from protocol.names import Stage

__all__ = [
    "MAX_RECENT_QUERIES",
    "PREFERENCE_RANGES",
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
    cursor_line: Annotated[int, Field(ge=0, le=MAX_CURSOR)] = 0
    cursor_col: Annotated[int, Field(ge=0, le=MAX_CURSOR)] = 0


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
    revision: Annotated[int, Field(ge=0, le=MAX_WHOLE_NUMBER)] = 0
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


PREFERENCE_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "autosave_interval_s": (Decimal(1), Decimal(3600)),
    "confirm_above": (Decimal(0), Decimal(1_000_000)),
}
"""Inclusive bounds of the numeric preferences (docs/configuration.md lists them).

`preferences.set` refuses a value outside them with `invalid_args`; a value
outside them found on disk (preferences.json or the journal, written by an
older version or by hand) is clamped into range when read, so that no stored
value can make a worker spin (an autosave every 1e-300 s) or lose the file."""

MAX_MAP_ENTRIES = 500
"""Most entries a preference map (shortcuts, colours) may hold."""


def _clamp_when_stored(name: str) -> BeforeValidator:
    low, high = PREFERENCE_RANGES[name]

    def clamp(value: object, info: ValidationInfo) -> object:
        context = info.context
        if not (isinstance(context, dict) and context.get("stored")):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return value
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if number.is_nan():
            return value
        if number < low:
            return type(value)(low) if isinstance(value, float) else low
        if number > high:
            return type(value)(high) if isinstance(value, float) else high
        return value

    return BeforeValidator(clamp)


ShortKey = Annotated[str, Field(max_length=200)]
PreferenceMap = Annotated[dict[ShortKey, ShortText], Field(max_length=MAX_MAP_ENTRIES)]


class NotebookLMSettings(Document):
    """A linked NotebookLM notebook, if any."""

    enabled: bool = False
    notebook_url: ShortText | None = None
    notebook_id: ShortText | None = None


class Preferences(Document):
    """preferences.json: what the writer chose; every field has a default."""

    model_preferences: dict[Stage, str] = Field(default_factory=dict)
    notebooklm: NotebookLMSettings = Field(default_factory=NotebookLMSettings)
    keyboard_shortcuts: PreferenceMap = Field(default_factory=dict)
    theme: ShortText = "system"
    colors: PreferenceMap = Field(default_factory=dict)
    autosave_interval_s: Annotated[
        float, Field(ge=1, le=3600), _clamp_when_stored("autosave_interval_s")
    ] = 30.0
    """Seconds between snapshots when something changed: 1 s to 1 h."""
    timezone: TimeZoneName = None
    budget_warning_fraction: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.8")
    """Warn at this share of a budget: above 0, at most 1."""
    confirm_above: Annotated[
        Money, Field(ge=0, le=1_000_000), _clamp_when_stored("confirm_above")
    ] = Decimal("0.10")
    """Ask before a call estimated above this many dollars: 0 to 1,000,000."""
