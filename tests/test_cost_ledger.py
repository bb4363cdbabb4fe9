"""The cost ledger worker in-process: replies, events, idempotency, budget, session, costs.json.

`LedgerHarness` (a fake WorkerContext with a settable clock) is reused by the
other `test_cost_*` modules.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from protocol.codec import dumps, loads_exact
from protocol.costs import Budget, CostsDocument, CostTotals
from protocol.envelopes import decode_event, encode_event, encode_ok
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import PreferencesChangedData, parse_event_data
from protocol.names import Op, Topic, WorkerName
from protocol.ops import CostEstimateResult, CostLogResult, parse_args
from protocol.session import Preferences
from services.cost.pricing import genai_prices_version
from services.cost_ledger import CostLedger
from services.inprocess import worker_context
from services.runtime.paths import ProjectPaths
from services.runtime.worker import Call, WorkerContext
from services.store import JsonLinesLog

START = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday


class LedgerHarness:
    """A project folder, a fake context that records events, and a settable clock."""

    def __init__(self, project: Path, *, now: datetime = START, zone: str | None = "UTC") -> None:
        self.project = project
        self.paths = ProjectPaths.of(project)
        self.now = now
        self.mono = 1000.0
        self.events: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)
        if zone is not None:
            self.set_zone(zone)

    def set_zone(self, zone: str) -> None:
        """Write the `timezone` preference (as the session writer would)."""
        self.paths.session_dir.mkdir(parents=True, exist_ok=True)
        self.paths.preferences.write_bytes(dumps({"timezone": zone}))

    def change_preferences(self, ledger: CostLedger, **values: Any) -> None:
        """Deliver `preferences.changed` as the session writer publishes it, through the
        real event envelope (the ledger no longer reads preferences.json after its start)."""
        data = PreferencesChangedData(
            session_id="s1", revision=1, preferences=Preferences.model_validate(values)
        )
        topic = Topic.PREFERENCES_CHANGED.value
        frames = encode_event(topic, WorkerName.SESSION_WRITER.value, 0, self.now, data)
        assert ledger.on_events([decode_event(frames, exact=True)]) == [True]

    def context(self, session_id: str) -> WorkerContext:
        """A WorkerContext whose `publish` appends to `events`."""
        return worker_context(
            self.paths.project,
            WorkerName.COST_LEDGER,
            session_id=session_id,
            publish=lambda topic, data, minor=False: self.events.append(
                (topic, loads_exact(dumps(data)))
            ),
        )

    def open(self, session_id: str = "s1", **kwargs: Any) -> CostLedger:
        """A started ledger over the project (a restart when one ran before)."""
        ledger = CostLedger(
            self.context(session_id), clock=lambda: self.now, monotonic=lambda: self.mono, **kwargs
        )
        ledger.start()
        return ledger

    def call(self, op: str, request_id: str | None = None, **args: Any) -> Call:
        """A call with validated args and a fresh id unless one is given."""
        return Call(id=request_id or f"req-{next(self._ids)}", op=Op(op), args=parse_args(op, args))

    def log_call(
        self,
        model: str = "claude-sonnet-3.5",
        input_tokens: int = 1000,
        output_tokens: int = 0,
        *,
        operation: str = "scene_generation",
        request_id: str | None = None,
    ) -> Call:
        """A `cost.log` call."""
        return self.call(
            "cost.log",
            request_id,
            operation=operation,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    def one(self, ledger: CostLedger, call: Call) -> Any:
        """Run one call as its own batch; return the JSON the client would read."""
        (outcome,) = ledger.handle_batch([call])
        if isinstance(outcome, ProtocolError):
            raise outcome
        return loads_exact(dumps(outcome))

    def log(self, ledger: CostLedger, *args: Any, **kwargs: Any) -> Any:
        """Log one operation and return the reply."""
        return self.one(ledger, self.log_call(*args, **kwargs))

    def tick(self, ledger: CostLedger, seconds: float = 0.0) -> None:
        """Let `seconds` pass on both clocks, then run the ledger's timed work."""
        self.mono += seconds
        self.now += timedelta(seconds=seconds)
        ledger.tick(self.mono)

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every ledger line, oldest first (optionally of one kind)."""
        lines: list[dict[str, Any]] = []
        for path in sorted(self.paths.ledger_dir.glob("*.jsonl")):
            lines += [loads_exact(line) for line in path.read_bytes().splitlines() if line]
        return [r for r in lines if kind is None or r["kind"] == kind]

    def topics(self) -> list[str]:
        """The topics published so far."""
        return [topic for topic, _ in self.events]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[LedgerHarness]:
    """A ledger harness over a fresh project in UTC."""
    yield LedgerHarness(tmp_path / "project")


def test_log_prices_exactly_and_replies_with_totals(harness: LedgerHarness) -> None:
    """A logged call comes back with its exact cost, its price's source and the new totals."""
    ledger = harness.open()
    reply = CostLogResult.model_validate(harness.log(ledger, "claude-sonnet-3.5", 12450, 3200))
    assert reply.operation.cost == Decimal("0.08535")
    assert reply.operation.price_source == f"genai-prices@{genai_prices_version()}"
    assert reply.operation.request_id and reply.operation.session_id == "s1"
    reply = CostLogResult.model_validate(harness.log(ledger, "gemini-flash", 1, 0))
    assert reply.operation.cost == Decimal("0.000000075")
    assert reply.totals.session_total == Decimal("0.085350075")
    assert reply.totals.daily_total == reply.totals.monthly_total == Decimal("0.085350075")
    assert reply.totals.by_model == {
        "claude-sonnet-3.5": Decimal("0.08535"),
        "gemini-flash": Decimal("0.000000075"),
    }
    assert reply.warning is None


def test_each_log_publishes_cost_logged_after_the_fsync(harness: LedgerHarness) -> None:
    """Every logged call is announced once with `cost.logged`, and it is on disk by then."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 1000)
    assert harness.topics() == ["cost.logged"]
    data = parse_event_data("cost.logged", harness.events[0][1])
    assert data.cost == Decimal("0.09")  # type: ignore[attr-defined]
    assert len(harness.records("op")) == 1


def test_unknown_model_is_recorded_unpriced_never_zero(harness: LedgerHarness) -> None:
    """A call on a model nobody prices is kept, flagged unpriced, counted and announced."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    reply = CostLogResult.model_validate(harness.log(ledger, "my-local-llm", 500, 20))
    assert reply.operation.cost is None and reply.operation.priced is False
    assert reply.totals.unpriced_operations == 1 and reply.totals.daily_unpriced == 1
    assert reply.totals.session_total == Decimal("0.03")
    assert "my-local-llm" not in reply.totals.by_model  # not shown as $0
    assert harness.topics() == ["cost.logged", "cost.logged", "cost.unpriced"]
    assert "my-local-llm" in harness.events[-1][1]["message"]
    (record,) = [r for r in harness.records("op") if r["model"] == "my-local-llm"]
    assert record["cost"] is None and record["priced"] is False


def test_estimate_of_unknown_model_is_unknown_model(harness: LedgerHarness) -> None:
    """Asking what an unknown model would cost is an `unknown_model` error, not $0."""
    ledger = harness.open()
    with pytest.raises(ProtocolError) as caught:
        harness.one(ledger, harness.call("cost.estimate", model="nope-1", input_tokens=10))
    assert caught.value.code == ErrorCode.UNKNOWN_MODEL
    assert harness.records() == []


def test_estimate_gives_cost_confirm_and_price_source(harness: LedgerHarness) -> None:
    """An estimate says the cost, whether to ask first (above confirm_above) and records nothing."""
    ledger = harness.open()
    cheap = CostEstimateResult.model_validate(
        harness.one(ledger, harness.call("cost.estimate", model="gpt-4", input_tokens=1000))
    )
    assert cheap.cost == Decimal("0.03") and cheap.confirm is False and cheap.warning is None
    dear = CostEstimateResult.model_validate(
        harness.one(
            ledger,
            harness.call("cost.estimate", model="gpt-4", input_tokens=1000, output_tokens=1000),
        )
    )
    assert dear.cost == Decimal("0.09") and dear.confirm is False
    big = harness.one(ledger, harness.call("cost.estimate", model="gpt-4", input_tokens=10_000))
    assert big["confirm"] is True and big["price_source"].startswith("genai-prices@")
    assert harness.records() == [] and harness.events == []


def test_resend_is_applied_once_and_answered_with_first_result(harness: LedgerHarness) -> None:
    """Re-sending a cost.log id (after a timeout) neither appends nor re-announces it."""
    ledger = harness.open()
    first = harness.log(ledger, "gpt-4", 1000, 0, request_id="c1-000017")
    harness.log(ledger, "gpt-4", 2000, 0)
    again = harness.log(ledger, "gpt-4", 1000, 0, request_id="c1-000017")
    assert again == first
    assert len(harness.records("op")) == 2
    assert harness.topics().count("cost.logged") == 2


def test_resend_in_the_same_batch_is_applied_once(harness: LedgerHarness) -> None:
    """Two copies of one request arriving together are recorded once and answered alike."""
    ledger = harness.open()
    call = harness.log_call("gpt-4", 1000, request_id="dup")
    first, second = ledger.handle_batch([call, call])
    assert dumps(first) == dumps(second)
    assert len(harness.records("op")) == 1


def test_resend_after_restart_gets_the_first_result(harness: LedgerHarness) -> None:
    """After the ledger restarts, a re-sent id still gets exactly its first reply."""
    ledger = harness.open()
    first = harness.log(ledger, "gpt-4", 1000, 0, request_id="c1-1")
    harness.log(ledger, "gpt-4", 3000, 0)  # totals move on
    restarted = harness.open()  # no stop(): a crash
    assert harness.log(restarted, "gpt-4", 1000, 0, request_id="c1-1") == first
    assert len(harness.records("op")) == 2


def test_a_resent_reply_is_byte_for_byte_the_first(harness: LedgerHarness) -> None:
    """The client reads the same bytes again: from the reply cache, and rebuilt from the line."""
    ledger = harness.open()
    call = harness.log_call("gpt-4", 1000, request_id="c1-bytes")
    (first,) = ledger.handle_batch([call])
    harness.log(ledger, "gpt-4", 3000, 0)  # totals move on
    (cached,) = ledger.handle_batch([call])
    restarted = harness.open()  # no stop(): a crash; the reply comes from the ledger line
    (rebuilt,) = restarted.handle_batch([call])
    assert encode_ok("c1-bytes", cached) == encode_ok("c1-bytes", first)
    assert encode_ok("c1-bytes", rebuilt) == encode_ok("c1-bytes", first)


def test_an_id_used_by_cost_log_is_refused_for_another_op(harness: LedgerHarness) -> None:
    """An id is one request's: re-used for another cost op, it is refused either way round."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0, request_id="shared-1")
    (refused,) = ledger.handle_batch([harness.call("cost.set_budget", "shared-1", daily_limit=10)])
    assert isinstance(refused, ProtocolError) and "already used for cost.log" in refused.message
    harness.one(ledger, harness.call("cost.set_budget", "shared-2", daily_limit=10))
    (refused,) = ledger.handle_batch([harness.log_call("gpt-4", 1000, request_id="shared-2")])
    assert isinstance(refused, ProtocolError) and "cost.set_budget" in refused.message
    harness.one(ledger, harness.call("cost.reset_session", "shared-3"))
    (refused,) = ledger.handle_batch([harness.log_call("gpt-4", 1000, request_id="shared-3")])
    assert isinstance(refused, ProtocolError) and "cost.reset_session" in refused.message
    assert len(harness.records("op")) == 1


def test_resend_older_than_the_reply_cache_is_rebuilt_from_the_ledger(
    harness: LedgerHarness,
) -> None:
    """A re-send that outlived the reply cache is answered from its ledger line, exactly."""
    ledger = harness.open()
    first = harness.log(ledger, "gpt-4", 1000, 0, request_id="old-one")
    ledger.handle_batch([harness.log_call("gpt-4", n) for n in range(5000)])
    harness.tick(ledger, 1.0)  # checkpoint: the restart below replays nothing
    ledger.stop()
    restarted = harness.open()
    assert restarted.loaded_info["records_replayed"] == 0
    assert harness.log(restarted, "gpt-4", 1000, 0, request_id="old-one") == first
    assert len(harness.records("op")) == 5001


def test_set_budget_is_durable_and_partial(harness: LedgerHarness) -> None:
    """A budget change keeps the limits not mentioned, null removes one, and survives a crash."""
    ledger = harness.open()
    reply = harness.one(ledger, harness.call("cost.set_budget", daily_limit=10))
    budget = Budget.model_validate(reply)
    assert budget.daily_limit == 10 and budget.weekly_limit == 200 and budget.monthly_limit == 500
    reply = harness.one(
        ledger, harness.call("cost.set_budget", weekly_limit=None, warnings_enabled=False)
    )
    assert reply == {
        "daily_limit": 10,
        "weekly_limit": None,
        "monthly_limit": 500,
        "warnings_enabled": False,
        "daily_hard_limit": None,
        "weekly_hard_limit": None,
        "monthly_hard_limit": None,
    }
    restarted = harness.open()
    assert restarted.loaded_info["checkpoint_used"] is False
    harness.tick(restarted, 1.0)
    document = CostsDocument.model_validate(loads_exact(harness.paths.costs.read_bytes()))
    assert document.budget.daily_limit == 10 and document.budget.weekly_limit is None
    assert document.budget.warnings_enabled is False


def test_null_warnings_enabled_is_invalid_args(harness: LedgerHarness) -> None:
    """`warnings_enabled: null` is refused with a clear message and changes nothing."""
    ledger = harness.open()
    with pytest.raises(ProtocolError) as caught:
        harness.one(ledger, harness.call("cost.set_budget", warnings_enabled=None))
    assert caught.value.code == ErrorCode.INVALID_ARGS
    assert "warnings_enabled" in caught.value.message
    assert harness.records() == []


def test_reset_session_restarts_session_total_only(harness: LedgerHarness) -> None:
    """A reset zeroes the session total and by_model; day, week and month keep counting."""
    ledger = harness.open()
    harness.log(ledger, "gpt-4", 1000, 0)
    totals = CostTotals.model_validate(harness.one(ledger, harness.call("cost.reset_session")))
    assert totals.session_total == 0 and totals.by_model == {}
    assert totals.daily_total == Decimal("0.03") == totals.monthly_total
    reply = CostLogResult.model_validate(harness.log(ledger, "gpt-4", 2000, 0))
    assert reply.totals.session_total == Decimal("0.06")
    assert reply.totals.daily_total == Decimal("0.09")
    restarted = harness.open()
    totals = CostTotals.model_validate(harness.one(restarted, harness.call("cost.totals")))
    assert totals.session_total == Decimal("0.06") and totals.daily_total == Decimal("0.09")


def test_resumed_session_keeps_its_totals_and_a_new_one_starts_at_zero(
    harness: LedgerHarness,
) -> None:
    """Resuming session s1 keeps its total; a new session s2 starts at $0 with the same day."""
    ledger = harness.open("s1")
    harness.log(ledger, "gpt-4", 1000, 0)
    ledger.stop()
    resumed = harness.open("s1")
    assert harness.one(resumed, harness.call("cost.totals"))["session_total"] == Decimal("0.03")
    resumed.stop()
    fresh = harness.open("s2")
    totals = harness.one(fresh, harness.call("cost.totals"))
    assert totals["session_total"] == 0 and totals["daily_total"] == Decimal("0.03")


def test_costs_json_is_snapshotted_from_tick_not_on_every_log(harness: LedgerHarness) -> None:
    """costs.json follows within the snapshot delay, in the seed's shape, not per call."""
    ledger = harness.open()
    harness.tick(ledger, 1.0)
    before = harness.paths.costs.stat().st_mtime_ns
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.log(ledger, "my-local-llm", 10, 0)
    assert harness.paths.costs.stat().st_mtime_ns == before
    assert ledger.next_deadline() is not None
    harness.tick(ledger, ledger.snapshot_delay_s)
    document = CostsDocument.model_validate(loads_exact(harness.paths.costs.read_bytes()))
    assert document.session_total == Decimal("0.03") and document.unpriced_operations == 1
    assert [op.model for op in document.operations] == ["gpt-4", "my-local-llm"]
    assert document.day == "2026-11-18" and document.week == "2026-W47"
    assert document.month == "2026-11" and document.timezone == "UTC"
    assert document.operations_note is None and document.operations_count == 2


def test_costs_json_keeps_only_the_last_session_operations(harness: LedgerHarness) -> None:
    """costs.json embeds at most 1,000 operations and says how many more the ledger holds."""
    ledger = harness.open()
    ledger.handle_batch([harness.log_call("gemini-flash", n) for n in range(1005)])
    harness.tick(ledger, 1.0)
    document = CostsDocument.model_validate(loads_exact(harness.paths.costs.read_bytes()))
    assert len(document.operations) == 1000 and document.operations_count == 1005
    assert document.operations[0].input_tokens == 5
    assert document.operations_note is not None and "1005" in document.operations_note
    expected = sum(Decimal(n) * Decimal("0.075") for n in range(1005)) / 1_000_000
    assert document.session_total == expected


def test_unknown_op_and_failed_append_are_errors_not_crashes(
    harness: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misrouted op is unknown_op; a disk error answers internal and records nothing."""
    ledger = harness.open()
    (outcome,) = ledger.handle_batch([harness.call("session.get")])
    assert isinstance(outcome, ProtocolError) and outcome.code == ErrorCode.UNKNOWN_OP
    harness.log(ledger, "gpt-4", 1000, 0)

    def full_disk(self: JsonLinesLog, records: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(JsonLinesLog, "append_many", full_disk)
    outcomes = ledger.handle_batch([harness.log_call("gpt-4", 5000, request_id="lost")])
    assert isinstance(outcomes[0], ProtocolError) and outcomes[0].code == ErrorCode.INTERNAL
    monkeypatch.undo()
    totals = harness.one(ledger, harness.call("cost.totals"))
    assert totals["session_total"] == Decimal("0.03")  # memory matches the ledger
    reply = harness.log(ledger, "gpt-4", 5000, 0, request_id="lost")  # the retry is applied
    assert reply["operation"]["cost"] == Decimal("0.15")
    assert len(harness.records("op")) == 2


def test_operations_carry_the_session_and_go_to_the_utc_month_file(
    harness: LedgerHarness,
) -> None:
    """Each month's records go to their own file, which starts with the budget in force."""
    harness.now = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", daily_limit=7))
    harness.log(ledger, "gpt-4", 1000, 0)
    harness.now = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    harness.log(ledger, "gpt-4", 1000, 0)
    names = sorted(p.name for p in harness.paths.ledger_dir.glob("*.jsonl"))
    assert names == ["2026-11.jsonl", "2026-12.jsonl"]
    december = loads_exact(
        (harness.paths.ledger_dir / "2026-12.jsonl").read_bytes().splitlines()[0]
    )
    assert december["kind"] == "budget" and december["carried"] is True
    assert december["budget"]["daily_limit"] == 7


def test_cheap_cost_events_are_marked_minor_for_the_session_writer() -> None:
    """cost.logged at or under the confirm threshold (or unpriced) is minor; above it is not."""
    from decimal import Decimal

    from services.cost_ledger import _is_minor

    threshold = Decimal("0.10")
    assert _is_minor("cost.logged", {"cost": Decimal("0.10")}, threshold)
    assert _is_minor("cost.logged", {"cost": None}, threshold)
    assert not _is_minor("cost.logged", {"cost": Decimal("0.11")}, threshold)
    assert not _is_minor("budget.warning", {"cost": Decimal("0.01")}, threshold)
