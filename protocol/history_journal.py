"""The history archiver's files: `archive/live.jsonl` and `archive/sessions-YYYY.jsonl.gz`.

A line of `live.jsonl` is one `HistoryJournalLine`, a union keyed on `kind`:
a `checkpoint` (the whole entry and its de-duplication state), then `event`,
`resume` and `end` records, each with its time `ts`. Lines are `Record`s
(unknown fields from a newer writer are kept).

0.1.0 wrote the kind under `k` and the time under `at`: such lines are read
as `kind` and `ts` (`decode_history_journal_line`), so a journal left by 0.1.0
is replayed after an upgrade. A line of the yearly archive is one
`HistoryEntry`, the `history.json` shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, TypeAdapter

from protocol.base import Record, Timestamp
from protocol.codec import loads_exact
from protocol.history import HistoryEntry

__all__ = [
    "HISTORY_JOURNAL_LINE",
    "HistoryCheckpoint",
    "HistoryEnd",
    "HistoryEvent",
    "HistoryJournalLine",
    "HistoryResume",
    "decode_archive_line",
    "decode_history_journal_line",
]


class HistoryCheckpoint(Record):
    """`checkpoint`: the live entry and what de-duplication needs, at `ts`."""

    kind: Literal["checkpoint"] = "checkpoint"
    entry: HistoryEntry
    cost_ids: list[str] = Field(default_factory=list)
    """Request ids (or descriptions) of the operations counted."""
    cost_ids_complete: bool = True
    """False when the entry came from history.json alone: its operations' ids are unknown."""
    seen: list[str] = Field(default_factory=list)
    """Keys (`Event.key`) of the last events applied."""
    ts: Timestamp | None = None


class HistoryEvent(Record):
    """`event`: an accepted event, as the entry was folded from it."""

    kind: Literal["event"] = "event"
    key: str
    """`Event.key`, or `ledger:<request id>` for an operation found only in the ledger."""
    topic: str
    data: dict[str, Any] = Field(default_factory=dict)
    ts: Timestamp


class HistoryResume(Record):
    """`resume`: an ended session was continued."""

    kind: Literal["resume"] = "resume"
    ts: Timestamp


class HistoryEnd(Record):
    """`end`: the session ended cleanly."""

    kind: Literal["end"] = "end"
    ts: Timestamp


def _from_0_1_0(value: Any) -> Any:
    # 0.1.0 named the discriminator `k` and the time `at`.
    if isinstance(value, dict) and "kind" not in value and "k" in value:
        renamed = {key: item for key, item in value.items() if key not in {"k", "at"}}
        renamed["kind"] = value["k"]
        if "at" in value:
            renamed["ts"] = value["at"]
        return renamed
    return value


HistoryJournalLine = Annotated[
    Annotated[
        HistoryCheckpoint | HistoryEvent | HistoryResume | HistoryEnd,
        Field(discriminator="kind"),
    ],
    BeforeValidator(_from_0_1_0),
]
"""One line of `archive/live.jsonl` (this version's shape, or 0.1.0's)."""

HISTORY_JOURNAL_LINE: TypeAdapter[HistoryCheckpoint | HistoryEvent | HistoryResume | HistoryEnd] = (
    TypeAdapter(HistoryJournalLine)
)


def decode_history_journal_line(
    line: bytes | str | dict[str, Any],
) -> HistoryCheckpoint | HistoryEvent | HistoryResume | HistoryEnd:
    """One `live.jsonl` line as its model, money exact; ValueError when it is not one.

    A dict is a line already parsed with exact numbers (`loads_exact`).
    """
    value = line if isinstance(line, dict) else loads_exact(line)
    return HISTORY_JOURNAL_LINE.validate_python(value)


def decode_archive_line(line: bytes | str) -> HistoryEntry:
    """One line of a yearly archive as its entry; ValueError when it is not one."""
    return HistoryEntry.model_validate(loads_exact(line))
