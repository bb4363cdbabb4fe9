"""The session writer: nothing acknowledged is ever lost, and the indicator tells the truth.

It owns `.session/current.json`, `.session/preferences.json` and
`.session/journal/` (docs/protocol.md). Every mutation is a
journal line, fsynced before its `ok` (one fsync per batch: a group commit),
preferences included: preferences.json is rewritten by the saver right after,
never before the journal has the change. current.json is a human-readable
snapshot written in a background thread every interval and at once after a
significant action; the journal segments it covers are then deleted. A
restart loads the snapshot and replays the journal with its recorded
timestamps. See docs/ui-integration.md for what a UI sees.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from protocol.base import utc_now
from protocol.envelopes import Event
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import PreferencesChangedData
from protocol.names import Op, Topic, WorkerName
from protocol.ops import (
    CloseFileArgs,
    OpenFileArgs,
    PreferencesSetArgs,
    SaveResult,
    SignificantActionArgs,
    SignificantActionResult,
)
from protocol.session import Preferences, SessionDocument
from protocol.session_journal import JournalActivity, JournalEnd, JournalOp
from services.runtime.worker import Call, Outcome, Worker, WorkerContext
from services.session.confine import confine
from services.session.journal import SessionJournal
from services.session.memory import RequestMemory
from services.session.replay import RememberedReply
from services.session.saving import AutoSave, SaveTiming
from services.session.startup import (
    StartFacts,
    begin_or_continue,
    default_preferences,
    load_state,
)
from services.session.state import READ_OPS, SAVE_OPS, activity_detail, apply_op, record_activity
from services.session.status import session_status
from services.store import AtomicJsonFile, FileOps, RetryPolicy, ensure_private_dir

__all__ = ["SessionWriter"]


class _Group:
    """Mutations applied in memory since the batch's last journal commit."""

    def __init__(self, writer: SessionWriter) -> None:
        self.checkpoint = (writer._doc, writer._prefs, writer._rev, writer._prefs_version)
        self.records: list[JournalOp] = []
        self.applied: list[tuple[int, Call, RememberedReply]] = []
        self.reads: list[tuple[int, Call]] = []
        self.reasons: list[str] = []
        self.pending: dict[str, RememberedReply] = {}
        self.repeats: list[int] = []  # re-sends, within this group, of an id it applies


class SessionWriter(Worker):
    """The session writer process: session ops, preferences, auto-save, recovery."""

    name: ClassVar[WorkerName] = WorkerName.SESSION_WRITER
    exact_numbers: ClassVar[bool] = True  # preference amounts are money
    stable_results: ClassVar[bool] = True  # documents are replaced, never changed in place

    def __init__(
        self,
        ctx: WorkerContext,
        *,
        snapshot_ops: FileOps | None = None,
        journal_ops: FileOps | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ctx)
        self.clock = clock
        self.monotonic = monotonic
        self.snapshot_ops = snapshot_ops or FileOps()
        self.journal = SessionJournal(ctx.paths.journal_dir, ops=journal_ops)
        self.memory = RequestMemory(ctx.settings.protocol.idempotency_entries)
        self._startup_events: list[tuple[str, Any]] = []
        self._doc: SessionDocument
        self._prefs: Preferences
        self._rev = 0
        self._prefs_version = 0
        self.autosave: AutoSave

    @property
    def document(self) -> SessionDocument:
        """The session document as `session.get` returns it."""
        return self._doc

    @property
    def preferences(self) -> Preferences:
        """The preferences as `preferences.get` returns them."""
        return self._prefs

    @property
    def revision(self) -> int:
        """The last journal revision applied in memory (and durable, between batches)."""
        return self._rev

    @property
    def preferences_version(self) -> int:
        """Counts preference changes in this process, for the saver's bookkeeping."""
        return self._prefs_version

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        """Load the snapshot, replay the journal, then begin or continue the session."""
        ctx, settings = self.ctx, self.ctx.settings
        ensure_private_dir(ctx.paths.session_dir)
        store = settings.store
        retry = RetryPolicy(store.attempts, store.wait_initial_s, store.wait_max_s)
        current = AtomicJsonFile(ctx.paths.current, retry=retry, ops=self.snapshot_ops)
        prefs_file = AtomicJsonFile(ctx.paths.preferences, retry=retry, ops=self.snapshot_ops)
        loaded = load_state(
            self.journal,
            current,
            prefs_file,
            defaults=default_preferences(settings),
            project_name=ctx.paths.project.name,
            log=self.log,
        )
        self._prefs, self._rev = loaded.preferences, loaded.revision
        self._prefs_version = 1 if loaded.preferences_dirty else 0
        for reply in loaded.replies:
            self.memory.applied(reply)
        for key in loaded.activity_keys:
            self.memory.recorded(key)
        if self.journal.segment is None:
            self.journal.rotate(base_rev=self._rev, carried=[], created_at=self.clock())
        owner = ctx.options.get("supervisor_pid")
        facts = StartFacts(
            session_id=ctx.session_id,
            owner_pid=int(owner) if owner is not None else None,
            host=socket.gethostname(),
            now=self.clock(),
            revision=self._rev,
            model_preferences=dict(self._prefs.model_preferences),
            paths=ctx.paths,
        )
        decision = begin_or_continue(loaded.document, facts, log=self.log)
        self._doc = decision.document
        self._startup_events.extend(decision.events)
        if decision.record is not None:
            self.journal.append_many([decision.record])
            self._rev = decision.record.rev
        # Whoever follows the preferences (the ledger) starts from ours, which
        # the journal may hold ahead of preferences.json after a crash.
        self._startup_events.append(self._preferences_event())
        self.autosave = AutoSave(
            self,
            current=current,
            preferences=prefs_file,
            journal_ops=self.journal.ops,
            timing=SaveTiming(
                interval_s=settings.autosave.interval_s,
                max_replay_records=settings.autosave.max_replay_records,
                clock=self.clock,
                monotonic=self.monotonic,
            ),
            publish=ctx.publish,
            call_soon_threadsafe=ctx.call_soon_threadsafe,
            log=self.log,
            snapshot_revision=loaded.snapshot_revision,
            last_save_at=self._doc.last_saved_at,
        )
        override = ctx.options.get("interval_s")
        self.autosave.reschedule(float(override) if override else self._prefs.autosave_interval_s)
        self.log.info(
            "session.ready",
            session_id=self._doc.session_id,
            revision=self._rev,
            replayed=loaded.replayed,
            interval_s=self.autosave.interval_s,
        )
        if decision.record is not None or self._prefs_version:
            # A recovery notice is written at once: the journal's start record
            # does not hold it, and it must outlive a crash of this writer.
            self.autosave.snapshot("start", sync=self._doc.recovery is not None)

    # -- requests -------------------------------------------------------------

    def handle_batch(self, calls: Sequence[Call]) -> list[Outcome]:
        """Apply the batch in memory, journal it with one fsync, then answer."""
        self.autosave.take_reports()
        outcomes: list[Outcome] = [None] * len(calls)
        group = _Group(self)
        for index, call in enumerate(calls):
            if call.op in READ_OPS:
                outcomes[index] = self._read(call.op)
                group.reads.append((index, call))
                continue
            remembered = self._remembered(call, group)
            if remembered is not None:
                outcomes[index] = remembered
                if call.id in group.pending:
                    group.repeats.append(index)
            elif call.op in SAVE_OPS:
                self._commit(group, outcomes)  # the snapshot must not run ahead of the journal
                group = _Group(self)
                outcomes[index] = self._save(call)
            else:
                outcomes[index] = self._apply(index, call, group)
        self._commit(group, outcomes)
        return outcomes

    def _read(self, op: Op) -> Outcome:
        if op is Op.SESSION_GET:
            return self._doc
        if op is Op.PREFERENCES_GET:
            return self._prefs
        self.autosave.take_reports(start_waiting=False)  # records may be uncommitted here
        return session_status(self.autosave.status_view())

    def _remembered(self, call: Call, group: _Group) -> Outcome | None:
        entry = group.pending.get(call.id) or self.memory.answer_to(call.id)
        if entry is None:
            return None
        if entry.op != call.op.value:
            return ProtocolError(
                ErrorCode.INVALID_ARGS,
                f"request id {call.id!r} was already used for {entry.op}; "
                "a new request needs a new id",
            )
        if entry.result is not None:
            return entry.result
        # Applied before the snapshot we started from: never again; answer with the state now.
        return self._prefs if entry.op == Op.PREFERENCES_SET.value else self._doc

    def _apply(self, index: int, call: Call, group: _Group) -> Outcome:
        args = call.args
        try:
            closes_open_pane = isinstance(args, CloseFileArgs) and any(
                entry.path == args.path for entry in self._doc.open_files
            )  # closing only forgets a pane: it works whatever the disk became since
            if isinstance(args, OpenFileArgs | CloseFileArgs) and not closes_open_pane:
                # Stored paths are relative and stay inside the project, links included.
                path = confine(self.ctx.paths.project, args.path)
                if path != args.path:
                    args = args.model_copy(update={"path": path})
            ts = self.clock()
            change = apply_op(self._doc, self._prefs, call.op, args, ts, revision=self._rev + 1)
        except ProtocolError as exc:
            # Not remembered (Stripe's rule for idempotency keys): nothing was
            # applied, so a corrected re-send with the same id is applied.
            return exc
        self._rev += 1
        self._doc = change.document
        if change.preferences is not self._prefs:
            self._prefs, self._prefs_version = change.preferences, self._prefs_version + 1
        group.records.append(
            JournalOp(
                rev=self._rev,
                session_id=self._doc.session_id,
                id=call.id,
                op=call.op.value,
                args=args.model_dump(),
                ts=ts,
            )
        )
        result = self._prefs if call.op is Op.PREFERENCES_SET else self._doc
        reply = RememberedReply(call.id, call.op.value, self._rev, result)
        group.applied.append((index, call, reply))
        group.pending[call.id] = reply
        if change.snapshot_reason is not None:
            group.reasons.append(change.snapshot_reason)
        return result

    def _commit(self, group: _Group, outcomes: list[Outcome]) -> None:
        if not group.records:
            return
        try:
            self.journal.append_many(group.records)
        except Exception as exc:
            self._doc, self._prefs, self._rev, self._prefs_version = group.checkpoint
            self.log.exception("session.journal_failed", error=str(exc), changed="nothing")
            error = ProtocolError(
                ErrorCode.INTERNAL,
                f"could not write the journal ({exc}); nothing was changed — "
                "re-send the request with the same id",
            )
            for index in [i for i, _, _ in group.applied] + group.repeats:
                outcomes[index] = error
            for index, call in group.reads:
                outcomes[index] = self._read(call.op)
            return
        for _, call, reply in group.applied:
            self.memory.applied(reply)
            if isinstance(call.args, PreferencesSetArgs) and (
                "autosave_interval_s" in call.args.values
            ):
                self.autosave.reschedule(self._prefs.autosave_interval_s)  # at once
        if self._prefs is not group.checkpoint[1]:
            self._publish_preferences()  # before the replies: the next request sees them
        for reason in dict.fromkeys(group.reasons):
            self.autosave.snapshot(reason)
        self.autosave.check_journal_size()

    def _preferences_event(self) -> tuple[str, PreferencesChangedData]:
        data = PreferencesChangedData(
            session_id=self._doc.session_id, revision=self._rev, preferences=self._prefs
        )
        return Topic.PREFERENCES_CHANGED.value, data

    def _publish_preferences(self) -> None:
        """`preferences.changed`: the cost ledger follows preferences by it, not by the file."""
        self.ctx.publish(*self._preferences_event())

    def _save(self, call: Call) -> Outcome:
        action = call.args.action if isinstance(call.args, SignificantActionArgs) else None
        reason = "significant_action" if action is not None else "session.save"
        done = self.autosave.snapshot(reason, sync=True, action=action)
        if done is not None and not done.ok:
            return ProtocolError(
                ErrorCode.INTERNAL,
                f"could not write the snapshot after {done.attempts} attempts ({done.error}); "
                "every acknowledged change is safe in the journal and auto-save will retry",
            )
        saved_at = done.job.saved_at if done is not None else self.autosave.last_save_at
        result: Any = (
            SignificantActionResult(saved_at=saved_at)
            if action is not None
            else SaveResult(saved=done is not None, saved_at=saved_at)
        )
        self.memory.answered(RememberedReply(call.id, call.op.value, 0, result))
        return result

    # -- what the auto-save asks of the writer (`SavedSession`) ---------------

    def start_segment(self, now: datetime) -> list[Path]:
        """Rotate the journal, carrying recent ids and activity keys into the new segment."""
        return self.journal.rotate(
            base_rev=self._rev,
            carried=self.memory.carried_ids(),
            created_at=now,
            activity=self.memory.carried_activity(),
        )

    def note_saved(self, saved_at: datetime) -> None:
        """A snapshot reached the disk: the document now says when."""
        self._doc = self._doc.model_copy(update={"last_saved_at": saved_at})

    # -- events, time, stop -----------------------------------------------------

    def on_event(self, event: Event) -> None:
        """A file saved by the writer, or an expensive call: journal the activity, snapshot now."""
        try:
            detail = activity_detail(event, self._prefs.confirm_above)
        except ValueError as exc:
            self.log.warning("session.event_ignored", topic=event.topic, error=str(exc))
            return
        key = event.key
        if detail is None or self.memory.has_recorded(key):
            return  # not significant, or a re-delivery whose effect is already durable
        rev = self._rev + 1
        record = JournalActivity(
            rev=rev,
            session_id=self._doc.session_id,
            key=key,
            topic=event.topic,
            ts=event.ts,
            **detail,
        )
        # Durable before the host acknowledges. An OSError propagates on purpose:
        # the host then leaves the event unacknowledged (and logs why), so it is
        # delivered again instead of being acknowledged but never recorded.
        self.journal.append_many([record])
        self._doc = record_activity(self._doc, event.ts).model_copy(update={"revision": rev})
        self._rev = rev
        self.memory.recorded(key)
        self.autosave.snapshot(event.topic)

    def next_deadline(self) -> float | None:
        """Now while start-up events wait, else the next interval save point (None when clean)."""
        return 0.0 if self._startup_events else self.autosave.next_due()

    def tick(self, now: float) -> None:
        """Publish start-up events; at the interval, snapshot if the snapshot is behind."""
        self.autosave.take_reports()
        events, self._startup_events = self._startup_events, []
        for topic, data in events:
            self.ctx.publish(topic, data)
        self.autosave.due(now)

    def health(self) -> dict[str, Any]:
        """Facts for the READY message."""
        return {"session_id": self._doc.session_id, "revision": self._rev}

    def stop(self) -> None:
        """Clean stop: the clean-end marker goes to the journal, then a final snapshot."""
        from services.readonly.liveness import pid_alive

        grace = self.ctx.settings.supervisor.stop_grace_s
        self.autosave.saver.wait_idle(grace)
        self.autosave.take_reports()
        supervisor = self.ctx.options.get("supervisor_pid")
        # When the supervisor died this is no clean end: the session stays interrupted.
        if supervisor is None or pid_alive(int(supervisor)):
            ts = self.clock()
            record = JournalEnd(rev=self._rev + 1, session_id=self._doc.session_id, ts=ts)
            try:
                self.journal.append_many([record])
            except OSError as exc:
                self.log.exception("session.end_marker_failed", error=str(exc))
            else:
                self._rev += 1
                self._doc = self._doc.model_copy(update={"ended_at": ts, "revision": self._rev})
        done = self.autosave.snapshot("stop", sync=True)
        self.log.info(
            "session.stopped",
            session_id=self._doc.session_id,
            ended=self._doc.ended_at is not None,
            saved=done is None or done.ok,
        )
        self.autosave.close(grace)
        self.journal.close()
