"""The cost ledger worker: every LLM call priced exactly, durably, once.

It owns `.session/costs.json` and `.session/ledger/` (docs/protocol.md,
4, 6). A batch of requests is applied in memory, appended to the month's JSON
Lines file with one write and one fsync (a group commit), and only then
answered; events follow the fsync. A request id seen before is answered with
its first result and never applied twice, across restarts too (each ledger
line carries its reply). costs.json is a snapshot written from `tick` within
`ledger.snapshot_delay_s` of a change; a checkpoint every
`ledger.checkpoint_every_records` records keeps start-up short however long
the ledger grows (both in config/defaults.toml).

Choices a user may notice (documented here, where the code is):

- Idempotency window: the last `APPLIED_IDS_KEPT` (100 k) mutating request
  ids; after a start without a usable checkpoint, those of the month files of
  the last `LOOKBACK_DAYS` (40 days). Every re-send inside the window gets its
  exact first reply (from the reply cache, else from its ledger line).
- Events are published right after the fsync; the host sends them after the
  batch's replies (`replies_first`: the supervisor routes the replies before
  it fans the events out). A crash in between loses the event, not the
  operation (a re-send gets the first reply and no second event, so
  subscribers never count a call twice).
- `unpriced_operations` and `by_model` are per session, like `session_total`;
  `daily_unpriced`/`weekly_unpriced`/`monthly_unpriced` count the windows.
- A warning fires once per (period, window, level, limit): raising a limit
  re-arms it; a restart does not re-fire (each firing is a `warned` record).
- Records go to the file of their UTC month; if the clock steps back across
  a month, appends continue in the newest file.

Files it reads but does not own: `.session/preferences.json` (time zone,
warning fraction, confirm threshold), at start only: then it follows the
session writer's `preferences.changed` events (`services.cost.preferences`); and the
user's price overrides `.session/pricing.toml` (see `services.cost.pricing`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from protocol.base import utc_now
from protocol.codec import Prewritten
from protocol.costs import Budget, CostsDocument, CostTotals
from protocol.envelopes import Event
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import PreferencesChangedData
from protocol.names import Op, Topic, WorkerName
from services.cost.budget import BudgetLimits
from services.cost.ledger_files import LedgerFiles, Position, RecordedReply, month_file_name
from services.cost.loader import load_state
from services.cost.oplines import WrittenLine
from services.cost.preferences import PreferenceWatch
from services.cost.pricing import OVERRIDES_NAME, PriceBook, load_genai_prices_in_background
from services.cost.records import budget_record, line_form, reply_of
from services.cost.requests import MUTATING, Batch, CostDesk
from services.cost.series import (
    SERIES_SAVE_EVERY_S,
    SeriesIndex,
    Stopped,
    read_index,
    save_index,
)
from services.cost.snapshot import costs_document
from services.cost.state import LedgerState
from services.runtime.worker import Call, Outcome, ReplyCache, Worker, WorkerContext
from services.store import AtomicJsonFile, JsonLinesLog, RetryPolicy, ensure_private_dir

__all__ = ["CostLedger"]


class CostLedger(Worker):
    """The cost ledger process (see the module docstring)."""

    name: ClassVar[WorkerName] = WorkerName.COST_LEDGER
    exact_numbers: ClassVar[bool] = True
    replies_first: ClassVar[bool] = True

    def __init__(
        self,
        ctx: WorkerContext,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        use_genai_prices: bool = True,
    ) -> None:
        super().__init__(ctx)
        self._clock = clock
        self._monotonic = monotonic
        self._use_genai_prices = use_genai_prices
        timing = ctx.settings.ledger  # tests may change these three on the instance
        self.checkpoint_every_records = timing.checkpoint_every_records
        self.checkpoint_max_age_s = timing.checkpoint_max_age_s
        self.snapshot_delay_s = timing.snapshot_delay_s
        # costs.json and the checkpoint are caches written on the main loop and
        # tried again at a later tick when they fail: their retries never sleep
        # (a sleep would hold up every request and the heartbeat).
        self._retry = RetryPolicy(ctx.settings.store.attempts, wait_initial_s=0, wait_max_s=0)
        self._files = LedgerFiles(ctx.paths.ledger_dir)
        self._replies = ReplyCache(ctx.settings.protocol.idempotency_entries)
        self._log: JsonLinesLog | None = None
        self._dirty_since: float | None = None
        self._since_checkpoint = 0
        self._checkpoint_at = 0.0
        self._checkpoint_retry_at = 0.0
        self.loaded_info: dict[str, Any] = {}
        self._series_generation = 0
        self._series_saved_at = 0.0
        self._series_thread: threading.Thread | None = None
        self._series_stop = threading.Event()
        self._month_file: tuple[tuple[int, int] | None, str] = (None, "")
        """The last UTC (year, month) appended to and its file's name."""
        self._answered: list[Batch] = []
        """Batches answered whose bookkeeping waits until after the replies (`_settle`)."""

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        """Read prices and preferences, rebuild the state, open this month's file."""
        paths = self.ctx.paths
        ensure_private_dir(paths.ledger_dir)
        self._prefs = PreferenceWatch(paths.preferences, self.ctx.settings)
        if self._prefs.problem:
            self.log.warning("cost_ledger.preferences_unreadable", error=self._prefs.problem)
        self._prices = PriceBook.load(
            paths.session_dir / OVERRIDES_NAME, use_genai_prices=self._use_genai_prices
        )
        if self._use_genai_prices:  # later, off the start-up; a price needed sooner waits
            # A price wanted before the load is done waits for it, beating twice per
            # heartbeat interval, so the supervisor never takes the wait for a hang.
            load_genai_prices_in_background(
                self.ctx.settings.ledger.prices_load_delay_s,
                keep_alive=self.ctx.keep_alive,
                every_s=self.ctx.settings.supervisor.heartbeat_interval_s / 2,
            )
        if self._prices.overrides_problem:
            self.log.error("cost_ledger.overrides_ignored", error=self._prices.overrides_problem)
        self._desk = CostDesk(
            state=lambda: self._state,
            prices=self._prices,
            preferences=lambda: self._prefs.current,
            session_id=self.ctx.session_id,
        )
        self._costs_file = AtomicJsonFile(paths.costs, retry=self._retry)
        self._check_costs_file()
        self._load()

    def _check_costs_file(self) -> None:
        """Move an unparsable costs.json aside (it is rebuilt from the ledger)."""
        try:
            data = self._costs_file.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError:  # a folder in its place, EACCES, EIO: moved aside below
            data = b""
        try:
            if data and isinstance(orjson.loads(data), dict):
                return
        except orjson.JSONDecodeError:
            pass
        outcome = self._costs_file.load(CostsDocument)
        if outcome.status == "corrupt":
            self.log.warning(
                "cost_ledger.costs_json_corrupt",
                moved_to=str(outcome.moved_to),
                error=outcome.error,
            )

    def _load(self) -> None:
        now = self._clock()
        existing = self._files.month_files()
        if existing:
            # Only the newest file is ever appended to, so only it can have a torn tail.
            self._log = JsonLinesLog(existing[-1])
            if self._log.repair is not None:
                self.log.warning(
                    "cost_ledger.torn_tail_cut",
                    file=existing[-1].name,
                    offset=self._log.repair.offset,
                    removed_bytes=self._log.repair.removed_bytes,
                )
        settings = self.ctx.settings.budget
        loaded = load_state(
            self._files,
            session_id=self.ctx.session_id,
            zone=self._prefs.current.zone,
            now=now,
            default_budget=BudgetLimits(
                settings.daily_limit, settings.weekly_limit, settings.monthly_limit
            ),
            on_reply=lambda request_id, line: self._replies.put(request_id, RecordedReply(line)),
        )
        self._state: LedgerState = loaded.state
        if loaded.checkpoint_used or len(loaded.files_read) < len(existing):
            self._state.series.complete = False  # not every operation was replayed
        if not self._state.series.complete:
            self._rebuild_series()
        self._since_checkpoint = loaded.replayed
        self._checkpoint_at = self._monotonic()
        if not loaded.checkpoint_used and loaded.replayed:
            self._since_checkpoint = max(loaded.replayed, self.checkpoint_every_records)
        self._dirty_since = self._monotonic()
        self.loaded_info = {
            "checkpoint_used": loaded.checkpoint_used,
            "checkpoint_problem": loaded.checkpoint_problem,
            "records_replayed": loaded.replayed,
            "files_read": loaded.files_read,
            "bad_lines": len(self._files.bad_records),
        }
        self.log.info("cost_ledger.loaded", **self.loaded_info)

    def _rebuild_series(self) -> None:
        """Read every month file into a full series index in the background (see series.py)."""
        self._series_generation += 1
        generation = self._series_generation
        sizes = [(path, path.stat().st_size) for path in self._files.month_files()]
        self._state.series.pending = []
        files = LedgerFiles(self.ctx.paths.ledger_dir)  # its own reader: no shared state
        zone = self._state.zone
        self._series_stop = stop = threading.Event()

        def read() -> None:
            try:
                rebuilt = read_index(files, sizes, zone, stop=stop)
            except Stopped:
                return
            except Exception as exc:  # a cache: the series stays incomplete, nothing is lost
                problem = repr(exc)
                self.ctx.call_soon_threadsafe(
                    lambda: self.log.warning("cost_ledger.series_rebuild_failed", error=problem)
                )
                return
            self.ctx.call_soon_threadsafe(lambda: self._adopt_series(generation, rebuilt))

        self._series_thread = threading.Thread(target=read, name="series-rebuild", daemon=True)
        self._series_thread.start()

    def _adopt_series(self, generation: int, rebuilt: SeriesIndex) -> None:
        """On the main thread: take the rebuilt index (unless the state was rebuilt since)."""
        self._settle()  # what was answered before goes in through `pending`, as always
        if generation != self._series_generation or self._state.series.complete:
            return
        self._state.series = self._state.series.adopt(rebuilt)
        self.log.info("cost_ledger.series_rebuilt", buckets=len(rebuilt.cells))

    def wait_series(self, timeout_s: float) -> bool:
        """Wait for a background series rebuild to finish (tests, benchmarks); True if done."""
        thread = self._series_thread
        if thread is not None:
            thread.join(timeout_s)
        return self._state.series.complete

    def _reload(self) -> None:
        """Rebuild from disk after a failed append (memory must match the ledger)."""
        self._answered.clear()  # the state read from disk holds them already
        self.close()
        self._load()

    def stop(self) -> None:
        """Write costs.json and a checkpoint, close the ledger."""
        self._settle()
        if self._dirty_since is not None:
            self._snapshot()
        if self._since_checkpoint or self._state.series.complete:
            self._checkpoint(stopping=True)
        self.close()

    def close(self) -> None:
        """Close the ledger file without writing costs.json or a checkpoint.

        What a crash leaves behind, minus the crash: for tests and benchmarks
        that restart a ledger without a clean stop.
        """
        self._series_stop.set()  # a background series read ends soon after
        if self._log is not None:
            self._log.close()
            self._log = None

    def health(self) -> dict[str, Any]:
        """How the state was rebuilt, for READY and the log."""
        return dict(self.loaded_info)

    # -- requests -------------------------------------------------------------------

    def handle_batch(self, calls: Sequence[Call]) -> list[Outcome]:
        """Apply every call, append the batch with one fsync, then answer.

        The batch's bookkeeping that no reply needs (the series index, the ids
        applied, the reply cache) waits until after the replies: `next_deadline`
        asks for a `tick` at once, which the host runs once the replies are sent.
        """
        if self._answered:
            self._settle()  # not ticked since (a batch handled right after another)
        now = self._clock()
        if self._state.refresh(now):
            self._mark_dirty(self._monotonic())  # a new day: costs.json follows
        batch = Batch(now, self._state.budget)
        outcomes: list[Outcome] = []
        try:
            for call in calls:
                try:
                    outcomes.append(self._answer(call, batch))
                except ProtocolError as exc:
                    outcomes.append(exc)
            if batch.records:
                self._commit(batch)
        except OSError as exc:
            self.log.exception("cost_ledger.append_failed", error=str(exc))
            self._reload()
            failure = ProtocolError(
                ErrorCode.INTERNAL,
                f"the cost ledger could not be written ({exc}); nothing was recorded, "
                "re-send the request",
            )
            return [failure for _ in calls]
        except Exception:
            self._reload()  # never answer from a state the ledger does not hold
            raise
        self._answered.append(batch)
        confirm_above = self._prefs.current.confirm_above
        for topic, data in batch.events:
            self.ctx.publish(topic, data, minor=_is_minor(topic, data, confirm_above))
        return outcomes

    def _answer(self, call: Call, batch: Batch) -> Any:
        op = call.op
        logs_a_call = op is Op.COST_LOG  # most calls: no look-up by the op's (Python-level) hash
        if logs_a_call or op in MUTATING:
            first = self._first_reply(call.id, batch)
            if first is not None:
                first_op = _op_of_reply(first)
                if first_op is not None and first_op != call.op.value:
                    raise ProtocolError(
                        ErrorCode.INVALID_ARGS,
                        f"request id {call.id!r} was already used for {first_op}; "
                        "a new request needs a new id",
                        request_id=call.id,
                    )
                return first
        if logs_a_call:
            return self._desk.log_operation(call, batch)
        handler = self._desk.handlers.get(op)
        if handler is None:
            return self.handle(call)  # not a cost op: unknown_op
        return handler(call, batch)

    def _settle(self) -> None:
        """The bookkeeping of the batches answered: series index, ids applied, reply cache.

        A crash before it loses nothing: the batches' lines are durable, and a
        start rebuilds all three from them.
        """
        state, replies = self._state, self._replies
        for batch in self._answered:
            for bucket, model, operation, cost in batch.series:
                state.series.add(bucket, model, operation, cost)
            for request_id in batch.applied:
                state.applied.add(request_id)
            for request_id, reply in batch.replies.items():
                replies.put(request_id, reply)
        self._answered.clear()

    def _first_reply(self, request_id: str, batch: Batch) -> Any:
        """The first result of an id already applied, or None for a new id."""
        if request_id in batch.replies:
            return batch.replies[request_id]
        if request_id not in self._state.applied:
            return None
        cached = self._replies.get(request_id)
        if isinstance(cached, RecordedReply):
            cached = cached.resolve()
            self._replies.put(request_id, cached)
        if cached is not None:
            return cached
        record = self._files.find_request(request_id)
        if record is None:
            raise ProtocolError(
                ErrorCode.INTERNAL,
                f"request {request_id!r} was applied but its ledger record is gone",
                request_id=request_id,
            )
        reply = reply_of(record)
        self._replies.put(request_id, reply)
        return reply

    def _commit(self, batch: Batch) -> None:
        """Append the batch to the month's file: one write, one fsync."""
        now = batch.now
        month = (now.year, now.month) if now.tzinfo is UTC else None
        if month is not None and month == self._month_file[0]:
            name = self._month_file[1]  # the common case: no formatting per batch
        else:
            name = month_file_name(now)
            if month is not None:
                self._month_file = (month, name)
        records = batch.records
        if self._log is None or name > self._log.path.name:
            if self._log is not None:
                self._log.close()
            self._log = JsonLinesLog(self.ctx.paths.ledger_dir / name)
        if self._log.size == 0:
            carried = budget_record(
                batch.budget_before,
                ts=batch.ts,
                request_id=None,
                session_id=self.ctx.session_id,
                carried=True,
            )
            records = [carried, *records]
        self._log.append_many(
            [
                record.fragment() if isinstance(record, WrittenLine) else line_form(record)
                for record in records
            ]
        )
        self._since_checkpoint += len(records)
        if self._dirty_since is None:
            self._dirty_since = self._monotonic()

    # -- timed work -----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The next snapshot, checkpoint or window boundary; at once after answering."""
        if self._answered:
            return 0.0  # the batch's bookkeeping, once the replies are out (`_settle`)
        until_boundary = (self._state.next_boundary() - self._clock()).total_seconds()
        deadline = self._monotonic() + (until_boundary if until_boundary > 0.0 else 0.0)
        if self._dirty_since is not None:
            deadline = min(deadline, self._dirty_since + self.snapshot_delay_s)
        checkpoint_due = self._checkpoint_due_at()
        if checkpoint_due is not None:
            deadline = min(deadline, checkpoint_due)
        return deadline

    def tick(self, now: float) -> None:
        """Settle what was answered, follow the calendar, snapshot costs.json, checkpoint."""
        if self._answered:
            self._settle()
        if self._state.refresh(self._clock()):
            self._mark_dirty(now)
        due_at = self._checkpoint_due_at()
        if due_at is not None and now >= due_at:
            self._checkpoint()
        if self._dirty_since is not None and now >= self._dirty_since + self.snapshot_delay_s:
            self._snapshot()

    def on_event(self, event: Event) -> None:
        """`preferences.changed`: the writer's preferences, applied as a whole (idempotent:
        delivery is at least once). A new time zone moves the windows at once."""
        if event.topic != Topic.PREFERENCES_CHANGED.value:
            return
        data = PreferencesChangedData.model_validate(event.data)
        before = self._prefs.current
        if self._prefs.apply(data.preferences):
            if self._prefs.current.zone != before.zone:
                self._state.set_zone(self._prefs.current.zone, self._clock())
            self._mark_dirty(self._monotonic())
            self.log.info(
                "cost_ledger.preferences_changed",
                revision=data.revision,
                timezone=self._prefs.current.zone_label,
                warning_fraction=str(self._prefs.current.warning_fraction),
                confirm_above=str(self._prefs.current.confirm_above),
            )

    def _checkpoint_due_at(self) -> float | None:
        """When the next checkpoint is due (None: nothing to cover)."""
        if not self._since_checkpoint:
            return None
        if self._since_checkpoint >= self.checkpoint_every_records:
            return self._checkpoint_retry_at
        return max(self._checkpoint_retry_at, self._checkpoint_at + self.checkpoint_max_age_s)

    def _mark_dirty(self, now: float) -> None:
        if self._dirty_since is None:
            self._dirty_since = now

    def _snapshot(self) -> None:
        document = costs_document(
            self._state,
            preferences=self._prefs.current,
            prices=self._prices.describe(),
            warning=self._desk.current_warning(),
            now=self._clock(),
        )
        outcome = self._costs_file.save(document)
        if outcome.ok:
            self._dirty_since = None
        else:
            self.log.error("cost_ledger.snapshot_failed", error=outcome.error)
            self._dirty_since = self._monotonic()  # try again after the delay

    def _save_series(self, position: Position, *, now: float) -> None:
        """Rewrite series.json (complete indexes only; at most every SERIES_SAVE_EVERY_S)."""
        series = self._state.series
        if not series.complete or now < self._series_saved_at + SERIES_SAVE_EVERY_S:
            return
        self._series_saved_at = now
        outcome = save_index(self._files, position, series, retry=self._retry)
        if not outcome.ok:
            self.log.warning("cost_ledger.series_save_failed", error=outcome.error)

    def _checkpoint(self, *, stopping: bool = False) -> None:
        self._checkpoint_at = self._monotonic()
        if self._log is None:
            self._since_checkpoint = 0
            return
        position = self._files.position_at(self._log.path, self._log.size)
        if stopping:
            self._series_saved_at = -SERIES_SAVE_EVERY_S
        self._save_series(position, now=self._checkpoint_at)
        outcome = self._files.write_checkpoint(
            position, self._state.to_checkpoint(), retry=self._retry
        )
        if outcome.ok:
            self._since_checkpoint = 0
        else:
            self.log.error("cost_ledger.checkpoint_failed", error=outcome.error)
            self._checkpoint_retry_at = (
                self._checkpoint_at + self.ctx.settings.ledger.checkpoint_retry_s
            )


def _op_of_reply(reply: Any) -> str | None:
    """Which mutating op a remembered first reply answered (its shape says; see `reply_of`).

    `cost.set_budget` and `cost.reset_session` answer with models (`Budget`,
    `CostTotals`), `cost.log` with a mapping (a dict, or its `Prewritten` reply).
    """
    if isinstance(reply, Budget):
        return Op.COST_SET_BUDGET.value
    if isinstance(reply, CostTotals):
        return Op.COST_RESET_SESSION.value
    if isinstance(reply, Mapping):
        for key, op in _REPLY_KEYS:
            if key in reply:
                return op
    return None


_REPLY_KEYS = (
    ("operation", Op.COST_LOG.value),
    ("daily_limit", Op.COST_SET_BUDGET.value),
    ("session_total", Op.COST_RESET_SESSION.value),
)
"""A first reply held as a plain mapping: the key that says which op it answered."""


_COST_LOGGED = Topic.COST_LOGGED.value
"""The topic's text, read once (an enum's `.value` is a Python-level property)."""


def _is_minor(topic: str, data: Any, confirm_above: Decimal) -> bool:
    """A `cost.logged` at or below the confirm threshold (or unpriced) is minor:
    the session writer, which only snapshots on expensive calls, is spared it."""
    if topic != _COST_LOGGED:
        return False
    if type(data) is not Prewritten and not isinstance(data, Mapping):
        return False
    cost = data.get("cost")
    return cost is None or (isinstance(cost, Decimal) and cost <= confirm_above)
