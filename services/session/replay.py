"""Rebuild the session from its snapshot and journal: a pure fold over the records.

Used by the writer at start and by `recovery.inspect_previous` (read-only).
Deterministic: it uses the timestamps recorded in the journal, never the
clock, so the document it rebuilds is the one whose changes were acknowledged.
Records the snapshot already holds (`rev` at or below its revision) are
skipped, except that their request ids are remembered for idempotency.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from protocol.errors import ProtocolError
from protocol.names import Op, Stage
from protocol.ops import PreferencesSetArgs, parse_args
from protocol.session import Preferences, SessionDocument
from protocol.session_journal import (
    JournalActivity,
    JournalBegin,
    JournalEnd,
    JournalLine,
    JournalOp,
    JournalOwner,
    JournalSegment,
)
from services.session.state import apply_op, new_document, patch_preferences, record_activity

__all__ = ["RememberedReply", "Replayed", "replay"]


@dataclass(frozen=True)
class RememberedReply:
    """A request id the journal says was applied, and its first result if known.

    `result` is None for ids whose first result cannot be rebuilt (the snapshot
    already moved past them): such a re-send is still not applied again, and is
    answered with the state as it is now.
    """

    id: str
    op: str
    rev: int
    result: Any | None = None


@dataclass
class Replayed:
    """The state after replay, with what idempotency and the logs need."""

    document: SessionDocument | None
    preferences: Preferences
    revision: int
    """The highest revision the journal or snapshot mentions: the next record gets one more."""
    replies: list[RememberedReply] = field(default_factory=list)
    activity_keys: list[str] = field(default_factory=list)
    applied: int = 0
    rebuilt: bool = False
    """The document was (re)built from journal records rather than only the snapshot."""
    problems: list[str] = field(default_factory=list)


class _Fold:
    def __init__(
        self, document: SessionDocument | None, preferences: Preferences, project_name: str
    ) -> None:
        self.project_name = project_name
        base = document.revision if document is not None else 0
        self.base = base
        self.last = base
        self.out = Replayed(document=document, preferences=preferences, revision=base)

    def record(self, record: JournalLine) -> None:
        out = self.out
        if isinstance(record, JournalSegment):
            out.revision = max(out.revision, record.base_rev)
            out.replies.extend(
                RememberedReply(id=entry.id, op=entry.op, rev=entry.rev, result=entry.result)
                for entry in record.carried
            )
            out.activity_keys.extend(record.activity)
            return
        rev = record.rev
        out.revision = max(out.revision, rev)
        if rev <= self.base:
            # Already in the snapshot: remember ids, change nothing.
            if isinstance(record, JournalOp):
                out.replies.append(RememberedReply(record.id, record.op, rev))
            elif isinstance(record, JournalActivity):
                out.activity_keys.append(record.key)
            return
        if rev <= self.last:
            out.problems.append(f"record rev {rev} out of order after rev {self.last}; skipped")
            return
        self._apply(record)
        self.last = rev
        out.applied += 1

    def _document_for(self, session_id: str, ts: datetime, rev: int) -> SessionDocument | None:
        out = self.out
        if out.document is None:
            out.problems.append(
                f"no snapshot or start record for session {session_id}; "
                "rebuilt from the changes the journal holds"
            )
            out.document = new_document(
                session_id=session_id,
                project_name=self.project_name,
                created_at=ts,
                revision=rev,
            )
            out.rebuilt = True
        if out.document.session_id != session_id:
            out.problems.append(
                f"record rev {rev} belongs to session {session_id}, "
                f"not {out.document.session_id}; skipped"
            )
            return None
        return out.document

    def _apply(
        self, record: JournalBegin | JournalOp | JournalActivity | JournalOwner | JournalEnd
    ) -> None:
        out = self.out
        rev, ts = record.rev, record.ts
        if isinstance(record, JournalBegin):
            out.document = new_document(
                session_id=record.session_id,
                project_name=record.project_name,
                created_at=ts,
                revision=rev,
                model_preferences={Stage(k): v for k, v in record.model_preferences.items()},
                owner_pid=record.owner_pid,
                host=record.host,
            )
            out.rebuilt = True
            return
        if isinstance(record, JournalOp) and record.op == Op.PREFERENCES_SET.value:
            args = parse_args(Op.PREFERENCES_SET, record.args)
            assert isinstance(args, PreferencesSetArgs)  # noqa: S101 - parse_args's table says so
            out.preferences = patch_preferences(out.preferences, args.values, stored=True)
            out.replies.append(RememberedReply(record.id, record.op, rev, out.preferences))
            if out.document is not None:
                out.document = out.document.model_copy(update={"revision": rev})
            return
        document = self._document_for(record.session_id, ts, rev)
        if document is None:
            return
        if isinstance(record, JournalOp):
            op = Op(record.op)
            args = parse_args(op, record.args)
            document = apply_op(document, out.preferences, op, args, ts, revision=rev).document
        elif isinstance(record, JournalActivity):
            document = record_activity(document, ts).model_copy(update={"revision": rev})
            out.activity_keys.append(record.key)
        elif isinstance(record, JournalOwner):
            update = {"owner_pid": record.owner_pid, "host": record.host}
            document = document.model_copy(update={**update, "ended_at": None, "revision": rev})
        else:
            document = document.model_copy(update={"ended_at": ts, "revision": rev})
        out.document = document
        if isinstance(record, JournalOp):
            out.replies.append(RememberedReply(record.id, record.op, rev, out.document))


def replay(
    document: SessionDocument | None,
    preferences: Preferences,
    records: Iterable[JournalLine],
    *,
    project_name: str = "",
) -> Replayed:
    """Apply the records above the snapshot's revision, in order.

    A record that cannot be applied (malformed, or refused by validation) is
    skipped and described in `problems`; the rest still apply. `project_name`
    names a document rebuilt without its start record.
    """
    fold = _Fold(document, preferences, project_name)
    for record in records:
        try:
            fold.record(record)
        except (KeyError, TypeError, ValueError, ProtocolError) as exc:
            fold.out.problems.append(
                f"journal record skipped ({type(exc).__name__}: {exc}): {record!r:.200}"
            )
    return fold.out
