"""What the session writer remembers of the requests and events it already took.

A re-sent request id gets its first answer and is never applied twice; an
event delivered again is never recorded twice (docs/protocol.md). The
live process remembers the last `settings.protocol.idempotency_entries`
answers exactly. The newest `CARRIED_IDS` request ids and `CARRIED_ACTIVITY`
event keys are also carried into each new journal segment
(`SessionJournal.rotate`), so the promise survives compaction and a restart.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from protocol.names import Op
from services.runtime.worker import ReplyCache
from services.session.replay import RememberedReply

__all__ = ["ACTIVITY_KEYS_KEPT", "CARRIED_ACTIVITY", "CARRIED_IDS", "RequestMemory"]

CARRIED_IDS = 256
"""Request ids carried into each new journal segment: the idempotency window
that survives compaction *and* a restart."""

CARRIED_ACTIVITY = 64
"""Event keys carried into each new journal segment (re-deliveries come within seconds)."""

ACTIVITY_KEYS_KEPT = 1024
"""Event keys the live process remembers."""


class RequestMemory:
    """Answers already given, changes already applied, events already recorded."""

    def __init__(self, capacity: int) -> None:
        self._answers = ReplyCache(capacity)
        self._applied: OrderedDict[str, RememberedReply] = OrderedDict()
        self._activity: OrderedDict[str, None] = OrderedDict()

    def answer_to(self, request_id: str) -> RememberedReply | None:
        """What a request with this id was answered, if it is remembered."""
        entry = self._answers.get(request_id)
        return entry if isinstance(entry, RememberedReply) else None

    def answered(self, reply: RememberedReply) -> None:
        """Remember an answer that changed nothing (a refusal, a save) for exact re-sends."""
        self._answers.put(reply.id, reply)

    def applied(self, reply: RememberedReply) -> None:
        """Remember a change the journal holds: answered exactly, carried through compaction."""
        self._answers.put(reply.id, reply)
        self._applied[reply.id] = reply
        self._applied.move_to_end(reply.id)
        while len(self._applied) > CARRIED_IDS:
            self._applied.popitem(last=False)

    def has_recorded(self, key: str) -> bool:
        """Whether the event with this key is already in the journal."""
        return key in self._activity

    def recorded(self, key: str) -> None:
        """Remember that the event with this key is in the journal."""
        self._activity[key] = None
        while len(self._activity) > ACTIVITY_KEYS_KEPT:
            self._activity.popitem(last=False)

    def carried_ids(self) -> list[dict[str, Any]]:
        """The recent request ids a new journal segment carries (see `CARRIED_IDS`)."""
        carried = []
        for reply in self._applied.values():
            entry: dict[str, Any] = {"id": reply.id, "op": reply.op, "rev": reply.rev}
            if reply.op == Op.PREFERENCES_SET.value and reply.result is not None:
                entry["result"] = reply.result  # small, and exact beats "the state now"
            carried.append(entry)
        return carried

    def carried_activity(self) -> list[str]:
        """Keys of the last recorded events, so a re-delivery after compaction is still ignored."""
        return list(self._activity)[-CARRIED_ACTIVITY:]
