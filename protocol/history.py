"""history.json and one history entry."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from protocol.base import Document, Money, ProjectPath, Timestamp

__all__ = ["HistoryDocument", "HistoryEntry", "SessionStatusName"]

SessionStatusName = Literal["active", "ended", "interrupted"]


class HistoryEntry(Document):
    """One session as the history shows it (the seed's entry plus `status`).

    While a session is `active`, `end_time` is the last moment it was known to
    be alive, so an interrupted session keeps a truthful end.
    """

    session_id: str
    start_time: Timestamp
    end_time: Timestamp | None = None
    duration_minutes: Annotated[float, Field(ge=0)] = 0
    total_cost: Money = Decimal(0)
    files_modified: list[ProjectPath] = Field(default_factory=list)
    files_created: list[ProjectPath] = Field(default_factory=list)
    operations_count: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    status: SessionStatusName = "active"
    files_deleted: list[ProjectPath] = Field(default_factory=list)
    """Files that existed before the session and were deleted (or renamed away) in it."""
    unpriced_operations: Annotated[int, Field(ge=0)] = 0
    """Operations on a model with no price: counted, never shown as $0 in `total_cost`."""


class HistoryDocument(Document):
    """history.json: `{"sessions": [...]}`, newest first."""

    sessions: list[HistoryEntry] = Field(default_factory=list)
