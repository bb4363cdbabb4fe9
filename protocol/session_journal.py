"""The session writer's journal: every line of `journal/NNNNNN.jsonl`.

A journal line is one `JournalLine`, a union keyed on `kind`: a segment's
header (`segment`), then `begin`, `op`, `activity`, `owner` and `end` records,
each with its `rev` (one counter for the whole journal) and its time `ts`.
Lines are `Record`s (unknown fields from a newer writer are kept). 0.1.0
wrote a segment header's time as `created_at`; it is read as `ts`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, TypeAdapter

from protocol.base import Money, ProjectPath, Record, Timestamp
from protocol.codec import loads_exact

__all__ = [
    "JOURNAL_LINE",
    "CarriedReply",
    "JournalActivity",
    "JournalBegin",
    "JournalEnd",
    "JournalLine",
    "JournalOp",
    "JournalOwner",
    "JournalSegment",
    "decode_journal_line",
]

Revision = Annotated[int, Field(ge=0)]


class CarriedReply(Record):
    """A request id applied in a segment a compaction deleted, kept for idempotency."""

    id: str
    op: str
    rev: Revision
    result: Any = None
    """The first result when it can be given again exactly (`preferences.set`)."""


class JournalSegment(Record):
    """`segment`: the first line of every segment."""

    kind: Literal["segment"] = "segment"
    segment: Annotated[int, Field(ge=1)]
    base_rev: Revision
    """The revision this segment starts after."""
    ts: Timestamp = Field(validation_alias=AliasChoices("ts", "created_at"))
    """When the segment was started (0.1.0 called it `created_at`)."""
    carried: list[CarriedReply] = Field(default_factory=list)
    activity: list[str] = Field(default_factory=list)
    """Keys of the last events recorded, so a re-delivery is not recorded twice."""


class JournalBegin(Record):
    """`begin`: a new session starts."""

    kind: Literal["begin"] = "begin"
    rev: Revision
    session_id: str
    ts: Timestamp
    project_name: str = ""
    owner_pid: int | None = None
    host: str | None = None
    model_preferences: dict[str, str] = Field(default_factory=dict)


class JournalOp(Record):
    """`op`: an acknowledged mutating request, its args as applied."""

    kind: Literal["op"] = "op"
    rev: Revision
    session_id: str
    id: str
    op: str
    args: dict[str, Any] = Field(default_factory=dict)
    ts: Timestamp


class JournalActivity(Record):
    """`activity`: a file event or an expensive `cost.logged` moved `last_activity`."""

    kind: Literal["activity"] = "activity"
    rev: Revision
    session_id: str
    key: str
    """The event's key (`Event.key`)."""
    topic: str
    path: ProjectPath | None = None
    cost: Money | None = None
    operation: str | None = None
    ts: Timestamp


class JournalOwner(Record):
    """`owner`: the session is continued by a new supervisor."""

    kind: Literal["owner"] = "owner"
    rev: Revision
    session_id: str
    owner_pid: int | None = None
    host: str | None = None
    ts: Timestamp


class JournalEnd(Record):
    """`end`: the clean-end marker."""

    kind: Literal["end"] = "end"
    rev: Revision
    session_id: str
    ts: Timestamp


JournalLine = Annotated[
    JournalSegment | JournalBegin | JournalOp | JournalActivity | JournalOwner | JournalEnd,
    Field(discriminator="kind"),
]
"""One line of a session journal segment."""

JOURNAL_LINE: TypeAdapter[
    JournalSegment | JournalBegin | JournalOp | JournalActivity | JournalOwner | JournalEnd
] = TypeAdapter(JournalLine)

def decode_journal_line(
    line: bytes,
) -> JournalSegment | JournalBegin | JournalOp | JournalActivity | JournalOwner | JournalEnd:
    """One journal line as its model, every number with a fraction exact; ValueError if not one."""
    return JOURNAL_LINE.validate_python(loads_exact(line))
