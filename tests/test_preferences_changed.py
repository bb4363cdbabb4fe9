"""`preferences.changed`: the session writer announces preferences, the ledger follows them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from fake_context import make_harness, ok, start_session_writer
from service import running_service
from test_cost_ledger import LedgerHarness

from protocol.events import PreferencesChangedData, parse_event_data
from protocol.names import Op, Topic, WorkerName


def _announced(events: list[tuple[str, Any]]) -> list[PreferencesChangedData]:
    found = []
    for topic, data in events:
        if topic == Topic.PREFERENCES_CHANGED.value:
            parsed = parse_event_data(topic, data if isinstance(data, dict) else data.model_dump())
            assert isinstance(parsed, PreferencesChangedData)
            found.append(parsed)
    return found


def test_the_writer_announces_preferences_at_start_and_on_each_change(tmp_path: Path) -> None:
    """One event at start, one per change with the new values and revision, none for a no-op."""
    writer, harness = start_session_writer(tmp_path / "novel")
    (at_start,) = _announced(harness.events)
    assert at_start.preferences == writer.preferences
    harness.events.clear()
    ok(harness.call(writer, Op.PREFERENCES_SET, {"values": {"budget_warning_fraction": 0.5}}))
    (changed,) = _announced(harness.events)
    assert changed.preferences.budget_warning_fraction == Decimal("0.5")
    assert changed.revision == writer.revision > at_start.revision
    harness.events.clear()
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "writing"}))
    assert _announced(harness.events) == []


def test_the_ledger_follows_what_the_writer_announces(tmp_path: Path) -> None:
    """The writer's event, delivered twice (at least once), moves the ledger's warning threshold."""
    project = tmp_path / "novel"
    writer, harness = start_session_writer(project)
    harness.events.clear()
    ok(harness.call(writer, Op.PREFERENCES_SET, {"values": {"budget_warning_fraction": 0.5}}))
    ((topic, data),) = [e for e in harness.events if e[0] == Topic.PREFERENCES_CHANGED.value]
    ledgers = LedgerHarness(tmp_path / "ledger")  # its own folder: it never sees that file
    ledger = ledgers.open()
    ledgers.one(ledger, ledgers.call("cost.set_budget", daily_limit=Decimal("1.00")))
    estimate = ledgers.call("cost.estimate", model="gpt-4", input_tokens=17_000)
    assert ledgers.one(ledger, estimate)["warning"] is None  # $0.51 is below 80 %
    reader = make_harness(tmp_path / "ledger", name=WorkerName.COST_LEDGER)
    for _ in range(2):
        reader.deliver(ledger, topic, data, source=WorkerName.SESSION_WRITER.value)
    assert ledgers.log(ledger, "gpt-4", 17_000, 0)["warning"] is not None  # 51 % of $1.00


def test_a_preference_set_takes_effect_in_the_ledger_before_its_reply(tmp_path: Path) -> None:
    """On a live tree, the `cost.log` sent after `preferences.set`'s reply uses the new fraction."""
    with running_service(tmp_path / "novel") as service:
        assert service.request("cost.set_budget", {"daily_limit": 1.0})["ok"]
        set_reply = service.request("preferences.set", {"values": {"budget_warning_fraction": 0.5}})
        assert set_reply["ok"], set_reply
        logged = service.request(
            "cost.log",
            {"model": "gpt-4", "input_tokens": 17_000, "output_tokens": 0, "operation": "draft"},
        )
        assert logged["ok"], logged
        assert logged["result"]["warning"] is not None, logged
