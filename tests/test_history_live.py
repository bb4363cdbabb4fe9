"""The live entry folded from events: what the history says a session did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.history import HistoryEntry
from protocol.history_journal import HistoryEvent
from services.history.live import LiveSession, cost_key, duration_minutes, finalized

START = datetime(2026, 11, 23, 14, 30, 22, tzinfo=UTC)


def file_event(topic: str, path: str, dest: str | None = None, key: str = "") -> HistoryEvent:
    data = {"path": path} if dest is None else {"path": path, "dest_path": dest}
    return HistoryEvent(key=key or f"{topic}:{path}", topic=topic, data=data, ts=START)


def cost_event(
    request_id: str | None, cost: Decimal | None, name: str = "scene_generation"
) -> HistoryEvent:
    operation = {
        "timestamp": "2026-11-23T15:30:00Z",
        "operation": name,
        "model": "claude-sonnet-3.5",
        "input_tokens": 12450,
        "output_tokens": 3200,
        "cost": cost,
        "request_id": request_id,
    }
    return HistoryEvent(
        key=f"c:{request_id}", topic="cost.logged", data={"operation": operation}, ts=START
    )


def test_files_created_modified_deleted_per_session() -> None:
    """New files are 'created', existing ones 'modified', removed ones 'deleted', each once."""
    live = LiveSession.new("s1", START)
    for record in [
        file_event("file.modified", "manuscript/ch5.md"),
        file_event("file.modified", "manuscript/ch5.md"),
        file_event("file.created", "output/reports/voice.md"),
        file_event("file.modified", "output/reports/voice.md"),
        file_event("file.deleted", "planning/old.md"),
    ]:
        live.apply(record)
    entry = live.to_entry()
    assert entry.files_modified == ["manuscript/ch5.md"]
    assert entry.files_created == ["output/reports/voice.md"]
    assert entry.files_deleted == ["planning/old.md"]


def test_a_file_made_and_removed_in_the_session_leaves_no_trace() -> None:
    """Created then deleted within one session: neither created nor deleted."""
    live = LiveSession.new("s1", START)
    live.apply(file_event("file.created", "manuscript/scratch.md"))
    live.apply(file_event("file.deleted", "manuscript/scratch.md"))
    entry = live.to_entry()
    assert (entry.files_created, entry.files_modified, entry.files_deleted) == ([], [], [])


def test_deleted_then_recreated_is_modified() -> None:
    """A chapter deleted and written again existed before: it was modified."""
    live = LiveSession.new("s1", START)
    live.apply(file_event("file.deleted", "manuscript/ch1.md"))
    live.apply(file_event("file.created", "manuscript/ch1.md"))
    entry = live.to_entry()
    assert entry.files_modified == ["manuscript/ch1.md"]
    assert entry.files_deleted == []


def test_renames_carry_a_new_file_and_record_an_old_one() -> None:
    """A new file keeps 'created' under its new name; an older one is deleted plus created."""
    live = LiveSession.new("s1", START)
    live.apply(file_event("file.created", "manuscript/draft.md"))
    live.apply(file_event("file.moved", "manuscript/draft.md", "manuscript/ch9.md"))
    live.apply(file_event("file.moved", "manuscript/ch1.md", "manuscript/ch01.md"))
    entry = live.to_entry()
    assert entry.files_created == ["manuscript/ch9.md", "manuscript/ch01.md"]
    assert entry.files_deleted == ["manuscript/ch1.md"]


def test_total_cost_is_exact() -> None:
    """A thousand operations of $0.0036 total exactly $3.6 (no float drift)."""
    live = LiveSession.new("s1", START)
    for n in range(1000):
        live.apply(cost_event(f"r{n}", Decimal("0.0036")))
    assert live.to_entry().total_cost == Decimal("3.6")
    assert live.to_entry().operations_count == {"scene_generation": 1000}


def test_operations_counted_by_name_and_unpriced_never_zero() -> None:
    """operations_count is per operation name; an unpriced call is counted, not priced $0."""
    live = LiveSession.new("s1", START)
    live.apply(cost_event("a", Decimal("0.15")))
    live.apply(cost_event("b", None, name="voice_test"))
    live.apply(cost_event("c", Decimal("0.05"), name="scene_enhancement"))
    entry = live.to_entry()
    assert entry.operations_count == {
        "scene_generation": 1,
        "voice_test": 1,
        "scene_enhancement": 1,
    }
    assert entry.total_cost == Decimal("0.20")
    assert entry.unpriced_operations == 1


def test_a_redelivered_operation_counts_once() -> None:
    """The same request id delivered twice is one operation and one cost."""
    live = LiveSession.new("s1", START)
    assert live.apply(cost_event("r1", Decimal("0.15")))
    assert not live.apply(cost_event("r1", Decimal("0.15")))
    assert live.to_entry().total_cost == Decimal("0.15")


def test_operation_without_request_id_is_identified_by_its_content() -> None:
    """Without a request id, an operation's full description is its identity."""
    first = cost_event(None, Decimal("1")).data["operation"]
    assert cost_key(first) == cost_key(dict(first))
    assert cost_key(first) != cost_key({**first, "output_tokens": 1})


def test_checkpoint_round_trip_keeps_everything() -> None:
    """A checkpoint record rebuilds the same entry and the same de-duplication state."""
    live = LiveSession.new("s1", START)
    live.apply(file_event("file.modified", "manuscript/ch5.md", key="k1"))
    live.apply(cost_event("r1", Decimal("0.15")))
    copy = LiveSession.from_checkpoint(live.checkpoint(START))
    assert copy.to_entry() == live.to_entry()
    assert copy.has_seen("k1")
    assert copy.knows_cost({"request_id": "r1"})
    assert copy.cost_ids_complete


def test_finalized_sets_status_end_and_duration() -> None:
    """Finalizing an entry fixes its end time and duration in minutes."""
    entry = HistoryEntry(session_id="s1", start_time=START, end_time=START + timedelta(minutes=165))
    done = finalized(entry, "interrupted", None)
    assert (done.status, done.duration_minutes) == ("interrupted", 165.0)
    assert duration_minutes(START, START - timedelta(minutes=1)) == 0.0


def test_unknown_extra_fields_survive() -> None:
    """Fields a newer version wrote into an entry are kept, not dropped."""
    entry = HistoryEntry.model_validate(
        {"session_id": "s1", "start_time": START, "mood": "productive"}
    )
    assert LiveSession.from_entry(entry).to_entry().model_extra == {"mood": "productive"}


EVENTS = st.lists(
    st.one_of(
        st.builds(
            file_event,
            st.sampled_from(["file.created", "file.modified", "file.deleted"]),
            st.sampled_from(["manuscript/a.md", "manuscript/b.md", "reference/c.md"]),
        ),
        st.builds(
            cost_event,
            st.sampled_from(["r1", "r2", "r3", "r4"]),
            st.sampled_from([Decimal("0.15"), Decimal("0.00000007"), None]),
        ),
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, data=st.data())
def test_redelivery_never_changes_the_entry(
    events: list[HistoryEvent], data: st.DataObject
) -> None:
    """Delivering any events again (at least once) gives the same entry as once."""
    once = LiveSession.new("s1", START)
    seen: set[str] = set()
    for record in events:
        if record.key not in seen:
            seen.add(record.key)
            once.apply(record)
    again = LiveSession.new("s1", START)
    delivered: list[HistoryEvent] = []
    for record in events:
        delivered.append(record)
        if data.draw(st.booleans()):
            delivered.append(record)
    for record in delivered:
        if not again.has_seen(record.key):
            again.apply(record)
    assert again.to_entry() == once.to_entry()


@settings(max_examples=100, deadline=None)
@given(events=EVENTS)
def test_an_event_applied_from_its_fields_folds_as_its_record(events: list[HistoryEvent]) -> None:
    """`apply_event` (the archiver's per-event path, no model) gives what `apply` gives."""
    by_record = LiveSession.new("s1", START)
    by_fields = LiveSession.new("s1", START)
    for record in events:
        changed = by_record.apply(record)
        assert by_fields.apply_event(record.key, record.topic, record.data, record.ts) == changed
    assert by_fields.to_entry() == by_record.to_entry()
    assert list(by_fields.seen) == list(by_record.seen)
    assert by_fields.cost_ids == by_record.cost_ids
