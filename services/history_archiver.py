"""The history archiver worker: a history that never drops a session.

It owns `.session/history.json` (or `history.json.gz`) and `.session/archive/`
(docs/protocol.md) and answers `history.list`.

* The live session's entry is built from the events it receives (`file.*`,
  `cost.logged`, `session.*`). Events come in batches (the host holds them
  `history.event_window_s`, unacknowledged); each accepted batch is appended
  to the journal `archive/live.jsonl` with one write, fsynced unless it holds
  only `cost.logged` (the ledger's fsynced line holds those), before the
  host acknowledges it, so `kill -9` at any moment loses nothing;
  history.json is rewritten from memory soon after (at most once a second)
  and `history.updated` is published.
* While the session runs, its `end_time` is the last moment it was known
  alive (refreshed every auto-save interval). A clean stop finalizes it
  `ended`; a start that finds another session still `active` finalizes that
  one `interrupted` at its last known end time.
* history.json keeps the newest `history.size` sessions; older ones move to
  compressed yearly JSON Lines in the archive, written before history.json
  is (see `services.history.store`).
* At start, operations of the live session found in the cost ledger but never
  delivered are counted (`services.history.ledger`), de-duplicated by
  request id.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson
from pydantic import ValidationError

from protocol.base import utc_now
from protocol.codec import decimal_text, dumps, loads_exact
from protocol.costs import CostOperation
from protocol.envelopes import Event
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import FileEventData, SessionRecoveredData, SessionSavedData
from protocol.history import HistoryEntry, SessionStatusName
from protocol.history_journal import HistoryEnd, HistoryEvent, HistoryResume
from protocol.names import Op, Topic, WorkerName
from protocol.ops import HistoryListArgs
from services.history.costline import COST_LOGGED, CostLine, read_cost_logged, utc_stamp
from services.history.journal import JournalRecord, LiveJournal, event_line
from services.history.ledger import session_operations
from services.history.live import LiveSession, finalized
from services.history.operation import canonical_operation
from services.history.store import HistoryStore
from services.readonly.history import merge_sessions, newest_first, read_archive
from services.readonly.liveness import pid_alive
from services.runtime.delivery import read_event
from services.runtime.worker import Call, Worker, WorkerContext
from services.store import RetryPolicy, ensure_private_dir

__all__ = ["HistoryArchiver", "NotDurableError"]

COST_LOGGED_TOPIC = Topic.COST_LOGGED.value


def _as_json(operation: CostOperation) -> dict[str, Any]:
    """`{"operation": ...}` as a subscriber reads it: what the journal keeps of a cost.

    Exactly `loads_exact(dumps(...))` of it: the timestamp as its JSON text and
    the cost as the Decimal (or int) its JSON digits read back as. Only those
    two declared fields differ from the model's Python dump, so they are
    converted directly; the round trip through the standard library's JSON
    parser was a fifth of the archiver's CPU per `cost.logged`. Unknown extra
    fields (any JSON shape) still take the round trip.
    """
    if operation.__pydantic_extra__:
        rebuilt: dict[str, Any] = loads_exact(dumps({"operation": operation}))
        return rebuilt
    fields = operation.model_dump()
    fields["timestamp"] = orjson.dumps(fields["timestamp"], option=orjson.OPT_UTC_Z)[1:-1].decode()
    cost = fields["cost"]
    if cost is not None:
        text = decimal_text(cost)
        fields["cost"] = Decimal(text) if "." in text else int(text)
    return {"operation": fields}


def _kept_operation(raw: Any) -> dict[str, Any]:
    """`{"operation": ...}` as the journal keeps it (ValidationError if it is not one).

    The ledger's own operations are already in that form (`canonical_operation`);
    any other goes through the model.
    """
    canonical = canonical_operation(raw)
    if canonical is not None:
        return {"operation": canonical}
    return _as_json(CostOperation.model_validate(raw))


class NotDurableError(OSError):
    """An accepted event is applied in memory but not yet in the journal.

    Raised from `on_event` so the host does not acknowledge the event: if the
    archiver dies before the journal takes it, the supervisor delivers it again.
    """


class HistoryArchiver(Worker):
    """Keeps history.json and the archive; the live entry is durable per event."""

    name: ClassVar[WorkerName] = WorkerName.HISTORY_ARCHIVER

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        settings = ctx.settings
        # Every save runs on the main loop and a failed one is tried again at a
        # later tick, so the retries here never sleep (a sleep would hold up
        # events and heartbeats).
        self.retry = RetryPolicy(attempts=settings.store.attempts, wait_initial_s=0, wait_max_s=0)
        self.keep = settings.history.size
        self.timing = settings.history
        """`[history]` timings: history.json is rewritten `save_delay_s` after a
        change (the journal already has it) but at most every `min_save_gap_s`
        (which also rate-limits `history.updated`); the ledger is read
        `reconcile_delay_s` after start, once re-deliveries had their chance; a
        failed journal append is tried again `retry_journal_s` later."""
        self.event_window_s = settings.history.event_window_s
        self.alive_interval_s = settings.autosave.interval_s
        self.store = HistoryStore(
            ctx.paths,
            keep=self.keep,
            compress_above_bytes=settings.history.compress_above_bytes,
            retry=self.retry,
        )
        self.journal: LiveJournal | None = None
        self.live = LiveSession.new(ctx.session_id)
        self.others: list[HistoryEntry] = []
        self.problem: str | None = None
        self.duplicates = 0
        self.saves = 0
        self.save_failures = 0
        self.reconciled = 0
        self._unjournaled: list[JournalRecord] = []
        self._fsync_owed = False
        """A record other than a `cost.logged` event waits in `_unjournaled`."""
        self._batching = False
        self._dirty_since: float | None = None
        self._last_save = -math.inf
        self._next_alive = math.inf
        self._reconcile_at: float | None = None
        self._retry_at: float | None = None

    # -- start and stop ------------------------------------------------------------

    def start(self) -> None:
        """Replay the journal, settle older sessions, and make the live entry current."""
        paths = self.ctx.paths
        ensure_private_dir(paths.archive_dir)
        loaded = self.store.load()
        if loaded.problem:
            self.problem = f"history was unreadable ({loaded.problem}); moved to {loaded.moved_to}"
            self.log.error("history.corrupt", error=loaded.problem, moved_to=str(loaded.moved_to))
            self.log.warning("history.rebuilt", summary=loaded.rebuilt)
        self.journal = LiveJournal(paths.archive_dir, retry=self.retry)
        if self.journal.repaired_bytes:
            self.log.warning("history.journal_torn_tail", removed_bytes=self.journal.repaired_bytes)
        replay = self.journal.replay()
        now = utc_now()
        by_id = {entry.session_id: entry for entry in loaded.sessions}
        session_id = self.ctx.session_id
        live, rewrite = replay.live, False
        if live is not None and live.session_id != session_id:
            by_id[live.session_id] = self._closed(live, by_id.get(live.session_id))
            live, rewrite = None, True
        on_disk = by_id.pop(session_id, None)
        if live is None:
            live = LiveSession.from_entry(on_disk) if on_disk else LiveSession.new(session_id, now)
            rewrite = True
        elif on_disk is not None and on_disk.end_time is not None:
            live.touch(on_disk.end_time)  # the last heartbeat snapshot
        resumed = live.status != "active"
        live.status = "active"
        live.touch(now)
        for other_id, entry in by_id.items():
            if entry.status == "active":
                by_id[other_id] = finalized(entry, "interrupted", None)
                self.log.warning("history.session_interrupted", session_id=other_id)
        self.live, self.others = live, list(by_id.values())
        self._save()
        # Only now that history.json holds the finished previous session may
        # the journal that proves it be replaced.
        if rewrite:
            self.journal.rewrite(live, now)
        elif resumed:
            self.journal.append(HistoryResume(ts=now))
        started = time.monotonic()
        self._next_alive = started + self.alive_interval_s
        self._reconcile_at = started + self.timing.reconcile_delay_s
        self.log.info("history.started", replayed=replay.records, **self.health())

    def _closed(self, live: LiveSession, on_disk: HistoryEntry | None) -> HistoryEntry:
        ended = live.status == "ended" or (on_disk is not None and on_disk.status == "ended")
        entry = live.to_entry()
        ends = [moment for moment in (entry.end_time, on_disk and on_disk.end_time) if moment]
        status: SessionStatusName = "ended" if ended else "interrupted"
        self.log.info("history.session_closed", session_id=live.session_id, status=status)
        return finalized(entry, status, max(ends) if ends else None)

    def stop(self) -> None:
        """Finalize the live entry: `ended`, or `interrupted` if the supervisor died."""
        if self.journal is None:
            return
        self._flush_unjournaled()
        now = utc_now()
        pid = self.ctx.options.get("supervisor_pid")
        if isinstance(pid, int) and not pid_alive(pid):
            self.live.touch(now)
            self.log.warning("history.supervisor_gone", session_id=self.live.session_id)
        else:
            self._journal(HistoryEnd(ts=now))
            self.live.status = "ended"
            self.live.touch(now)
        self._save()
        self.journal.close()
        self.journal = None

    def health(self) -> dict[str, Any]:
        """Facts for READY and the logs."""
        return {
            "session_id": self.live.session_id,
            "sessions_in_history": len(self.others) + 1,
            "journal_bytes": self.journal.size if self.journal else 0,
            "problem": self.problem,
            "unjournaled": len(self._unjournaled),
        }

    # -- events --------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Apply an event to the live entry, durably, once."""
        topic = event.topic
        if topic == Topic.SESSION_RECOVERED:
            self._on_recovered(event)
            return
        if topic == Topic.SESSION_SAVED:
            self._on_saved(event)
            return
        if not (topic.startswith("file.") or topic == Topic.COST_LOGGED):
            return
        key = event.key
        if self.live.has_seen(key):
            self.duplicates += 1
            return
        data = self._accept(topic, event.data)
        if data is None:
            return
        # The record's line, not its model: the fields are what `HistoryEvent`
        # holds (a str key and topic, JSON-ready data, a UTC time).
        now = utc_now()
        durable = self._journal(event_line(key, topic, data, now), cost=topic == Topic.COST_LOGGED)
        self.live.apply_event(key, topic, data, now)
        self._mark_dirty()
        if not durable:
            raise NotDurableError(f"{topic} event {key} waits for the journal (disk failing)")

    def _accept(self, topic: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Validated, JSON-normalised data worth journaling, or None."""
        try:
            if topic == Topic.COST_LOGGED:
                # Only the operation is kept: the totals beside it are not validated.
                normal = _kept_operation(data.get("operation"))
                session_id = normal["operation"]["session_id"]
                if session_id not in (None, self.live.session_id):
                    self.log.info("history.cost_other_session", session_id=session_id)
                    return None
                if self.live.knows_cost(normal["operation"]):
                    self.duplicates += 1
                    return None
                return normal
            return FileEventData.model_validate(data).model_dump(exclude_none=True)
        except ValidationError as exc:
            self.log.warning("history.event_rejected", topic=topic, error=str(exc).splitlines()[0])
            return None

    def _on_saved(self, event: Event) -> None:
        try:
            saved = SessionSavedData.model_validate(event.data)
        except ValidationError:
            return
        if saved.session_id == self.live.session_id:
            self.live.touch(saved.saved_at)  # alive then; the heartbeat makes it durable
            self._mark_dirty()

    def _on_recovered(self, event: Event) -> None:
        try:
            recovered = SessionRecoveredData.model_validate(event.data)
        except ValidationError:
            return
        target, last = recovered.interrupted_session_id, recovered.last_save_at
        if target is None or last is None or target == self.live.session_id:
            return
        for index, entry in enumerate(self.others):
            if entry.session_id == target and (entry.end_time is None or last > entry.end_time):
                status = "interrupted" if entry.status == "active" else entry.status
                self.others[index] = finalized(entry, status, last)
                if not self._save():  # durable before the event is acknowledged
                    raise NotDurableError(f"history.json not written for {target}")
                return

    def on_events(self, events: Sequence[Event]) -> list[bool]:
        """Apply events that arrived together, then make them durable with one fsync."""
        self._batching = True
        try:
            taken = super().on_events(events)
        finally:
            self._batching = False
        return self._made_durable(taken)

    def on_deliveries(self, deliveries: Sequence[tuple[int, bytes, bytes]]) -> list[bool]:
        """`on_events` of events as delivered, in order: a plain `cost.logged` is read
        from its bytes and journaled as a line spliced from them (`read_cost_logged`);
        any other event is read and applied the general way (`on_event`)."""
        taken: list[bool] = []
        now = utc_now()
        stamp = utc_stamp(now)
        self._batching = True
        try:
            for _number, topic, body in deliveries:
                line = read_cost_logged(body) if topic == COST_LOGGED else None
                if line is not None:
                    taken.append(self._on_cost_line(line, now, stamp))
                    continue
                try:
                    event = read_event(topic, body)
                except ProtocolError:
                    self.log.exception("worker.event_malformed")
                    taken.append(True)  # delivering it again would only fail again
                    continue
                taken += super().on_events((event,))
        finally:
            self._batching = False
        return self._made_durable(taken)

    def _made_durable(self, taken: list[bool]) -> list[bool]:
        """`taken` once the batch's journal records are written, else all refused."""
        if self._flush_unjournaled():
            return taken
        # Not on disk: none is acknowledged, so all are delivered again (and,
        # already applied in memory, counted once: `has_seen` dedupes them).
        self.log.warning("history.batch_not_durable", events=len(taken))
        return [False] * len(taken)

    def _on_cost_line(self, line: CostLine, now: datetime, stamp: bytes) -> bool:
        """`on_event` of a `cost.logged` read from its bytes, inside a batch: False
        where `on_event` raises `NotDurableError` (the journal is closed)."""
        live = self.live
        if live.has_seen(line.key):
            self.duplicates += 1
            return True
        operation = line.operation
        session_id = operation["session_id"]
        if session_id is not None and session_id != live.session_id:
            self.log.info("history.cost_other_session", session_id=session_id)
            return True
        if live.knows_cost(operation):
            self.duplicates += 1
            return True
        durable = self._journal(line.journal_line(stamp), cost=True)
        live.apply_event(line.key, COST_LOGGED_TOPIC, {"operation": operation}, now)
        self._mark_dirty()
        return durable

    def _journal(self, record: JournalRecord, *, cost: bool = False) -> bool:
        """Append `record` behind any still waiting; False when it is not durable yet.

        `cost`: it is a `cost.logged` event, which the ledger holds (see
        `_flush_unjournaled`). Inside `on_events` the record only queues: the
        batch is flushed at once.
        """
        if self.journal is None:
            return False
        self._unjournaled.append(record)  # in order, behind earlier failures
        if not cost:
            self._fsync_owed = True
        if self._batching:
            return True
        return self._flush_unjournaled()

    def _flush_unjournaled(self) -> bool:
        """Append what waits for the journal; True when nothing waits any more."""
        if self.journal is None:
            return not self._unjournaled
        try:
            if self._unjournaled:
                # One write for the batch. It is fsynced unless it holds only
                # cost.logged records: those are in the ledger, fsynced before
                # their `ok`, and the archiver reconciles with the ledger at
                # start, so the page cache (which outlives a kill -9 of this
                # process) is enough. Sharing the disk's journal commits with
                # the ledger would halve the ledger's throughput.
                self.journal.append_many(self._unjournaled, fsync=self._fsync_owed)
                self._unjournaled.clear()
                self._fsync_owed = False
        except OSError as exc:
            self._retry_at = time.monotonic() + self.timing.retry_journal_s
            self.log.error(  # noqa: TRY400 - the message says it all; no traceback
                "history.journal_failed", error=str(exc), waiting=len(self._unjournaled)
            )
            return False
        self._retry_at = None
        return True

    # -- timed work ----------------------------------------------------------------

    def _mark_dirty(self) -> None:
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()

    def _save_due(self) -> float | None:
        if self._dirty_since is None:
            return None
        return max(
            self._dirty_since + self.timing.save_delay_s,
            self._last_save + self.timing.min_save_gap_s,
        )

    def next_deadline(self) -> float | None:
        """The earliest of: snapshot, heartbeat, ledger check, journal retry.

        Asked twice per turn of the host's loop, so plain comparisons (no lists).
        """
        earliest = self._next_alive
        for moment in (self._save_due(), self._reconcile_at, self._retry_at):
            if moment is not None and moment < earliest:
                earliest = moment
        return None if earliest == math.inf else earliest

    def tick(self, now: float) -> None:
        """Snapshot history.json, refresh the heartbeat, reconcile, retry, compact."""
        if self._retry_at is not None and now >= self._retry_at:
            self._flush_unjournaled()
        if self._reconcile_at is not None and now >= self._reconcile_at:
            self._reconcile_at = None
            self.reconcile_with_ledger()
        if now >= self._next_alive:
            self._next_alive = now + self.alive_interval_s
            self.live.touch(utc_now())
            self._mark_dirty()
        due = self._save_due()
        if due is not None and now >= due:
            self._save()
        if self.journal is not None and self.journal.needs_compaction and not self._unjournaled:
            try:
                self.journal.rewrite(self.live, utc_now())
            except OSError as exc:  # the journal is intact; try again next time
                self.log.warning("history.compaction_failed", error=str(exc))

    def _save(self) -> bool:
        """Write history.json (archiving the oldest); True when it is on disk."""
        result = self.store.save([*self.others, self.live.to_entry()], pinned=self.live.session_id)
        self._last_save = time.monotonic()
        archived = {entry.session_id for entry in result.archived}
        self.others = [
            entry
            for entry in (result.kept if result.outcome.ok else self.others)
            if entry.session_id != self.live.session_id and entry.session_id not in archived
        ]
        if archived:
            self.log.info("history.archived", sessions=sorted(archived))
        if result.archive_error:
            self.log.error("history.archive_failed", error=result.archive_error)
        if not result.outcome.ok:
            self.save_failures += 1
            self._mark_dirty()
            self.log.error("history.save_failed", error=result.outcome.error)
            return False
        self.saves += 1
        self._dirty_since = None
        self.ctx.publish(
            Topic.HISTORY_UPDATED.value,
            {"session_id": self.live.session_id, "status": self.live.status},
        )
        return True

    def reconcile_with_ledger(self) -> int:
        """Count live-session operations the ledger has and we never received."""
        if not self.live.cost_ids_complete:
            self.log.info("history.reconcile_skipped", reason="operation ids of this entry unknown")
            return 0
        found = 0
        counted = self.live.cost_ids
        for record in session_operations(
            self.ctx.paths.ledger_dir, self.live.session_id, self.live.start_time
        ):
            if record.id and record.id in counted:
                continue  # delivered: its request id is its `cost_key`
            data = _as_json(record.as_operation())
            if self.live.knows_cost(data["operation"]):
                continue
            entry = HistoryEvent(
                key=f"ledger:{record.id}", topic=Topic.COST_LOGGED.value, data=data, ts=utc_now()
            )
            self._journal(entry, cost=True)
            self.live.apply(entry)
            found += 1
        if found:
            self.reconciled += found
            self._mark_dirty()
            self.log.warning("history.reconciled_from_ledger", operations=found)
        return found

    # -- ops -----------------------------------------------------------------------

    def handle(self, call: Call) -> Any:
        """`history.list {limit}`: sessions newest first, the archive when asked for more."""
        if call.op != Op.HISTORY_LIST or not isinstance(call.args, HistoryListArgs):
            raise ProtocolError(
                ErrorCode.UNKNOWN_OP,
                f"{self.name} does not answer {call.op.value!r}",
                request_id=call.id,
            )
        recent = newest_first([*self.others, self.live.to_entry()])
        limit = call.args.limit
        if limit is None:
            return recent[: self.keep]
        if limit <= len(recent):
            return recent[:limit]
        return merge_sessions(recent, read_archive(self.ctx.paths.archive_dir).entries, limit)
