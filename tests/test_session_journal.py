"""The session journal's segments, compaction and replay (services.session.journal/replay)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fake_context import quiesce, start_session_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.codec import dumps_line
from protocol.names import Op, Stage
from protocol.session import Preferences
from protocol.session_journal import (
    CarriedReply,
    JournalActivity,
    JournalBegin,
    JournalEnd,
    JournalOp,
    JournalOwner,
    JournalSegment,
)
from services.session.journal import (
    SessionJournal,
    drop_segments,
    list_segments,
    read_journal,
    read_segment,
    segment_name,
)
from services.session.replay import replay
from services.session.state import new_document

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SID = "2026-03-01-090000"


def ts(minutes: int) -> datetime:
    """A recorded timestamp `minutes` after T0."""
    return T0 + timedelta(minutes=minutes)


def begin(rev: int, session_id: str = SID) -> JournalBegin:
    """A journal record that starts a session."""
    return JournalBegin(
        rev=rev,
        session_id=session_id,
        ts=ts(0),
        project_name="Book",
        owner_pid=1,
        host="h",
        model_preferences={},
    )


def op(
    rev: int, name: str, args: dict[str, Any], request_id: str | None = None, session_id: str = SID
) -> JournalOp:
    """A journal record of one client mutation."""
    return JournalOp(
        rev=rev, session_id=session_id, id=request_id or f"r{rev}", op=name, args=args, ts=ts(rev)
    )


HEADER = dumps_line(JournalSegment(segment=1, base_rev=0, ts=T0))
"""A segment header line as the writer writes it."""


def test_segments_are_numbered_and_start_with_a_header(tmp_path: Path) -> None:
    """Each rotation starts a zero-padded segment whose first line says where it starts."""
    journal = SessionJournal(tmp_path / "journal")
    journal.open()
    assert journal.segment is None
    assert journal.rotate(base_rev=0, carried=[], created_at=T0) == []
    journal.append_many([begin(1)])
    obsolete = journal.rotate(
        base_rev=1, carried=[CarriedReply(id="r1", op="x", rev=1)], created_at=T0
    )
    assert [p.name for p in obsolete] == [segment_name(1)]
    assert [p.name for p in list_segments(tmp_path / "journal")] == ["000001.jsonl", "000002.jsonl"]
    header = read_segment(tmp_path / "journal" / "000002.jsonl").records[0]
    assert isinstance(header, JournalSegment) and header.base_rev == 1 and header.ts == T0
    assert header.carried == [CarriedReply(id="r1", op="x", rev=1)]
    journal.close()


def test_reopening_reads_every_record_in_order(tmp_path: Path) -> None:
    """Records written across segments come back in the order they were written."""
    journal = SessionJournal(tmp_path)
    journal.open()
    journal.rotate(base_rev=0, carried=[], created_at=T0)
    journal.append_many([begin(1), op(2, "session.set_screen", {"screen": "a"})])
    journal.rotate(base_rev=2, carried=[], created_at=T0)
    journal.append_many([op(3, "session.set_screen", {"screen": "b"})])
    journal.close()
    again = SessionJournal(tmp_path)
    contents = again.open()
    kinds = [(r.kind, getattr(r, "rev", None)) for r in contents.records]
    assert kinds == [("segment", None), ("begin", 1), ("op", 2), ("segment", None), ("op", 3)]
    again.append_many([op(4, "session.set_screen", {"screen": "c"})])
    assert again.segment == tmp_path / "000002.jsonl"
    again.close()


def test_a_torn_last_line_is_cut_and_never_replayed(tmp_path: Path) -> None:
    """A line cut by a crash was never acknowledged: it is removed and not applied."""
    journal = SessionJournal(tmp_path)
    journal.open()
    journal.rotate(base_rev=0, carried=[], created_at=T0)
    journal.append_many([begin(1)])
    journal.close()
    newest = tmp_path / "000001.jsonl"
    with newest.open("ab") as handle:
        handle.write(b'{"kind": "op", "rev": 2, "session_id": "x", "op": "sess')
    contents = SessionJournal(tmp_path).open()
    assert contents.repair is not None and contents.repair.removed_bytes > 0
    assert [r.kind for r in contents.records] == ["segment", "begin"]
    assert newest.read_bytes().endswith(b"\n")


def test_reading_is_read_only_even_with_a_torn_tail(tmp_path: Path) -> None:
    """Inspecting the journal never changes a byte, torn tail included."""
    path = tmp_path / segment_name(1)
    path.write_bytes(HEADER + b'{"kind": "be')
    before = path.read_bytes()
    read = read_segment(path)
    assert read.records == [JournalSegment(segment=1, base_rev=0, ts=T0)]
    assert read.torn_bytes == len(b'{"kind": "be')
    assert read_journal(tmp_path) == read.records
    assert path.read_bytes() == before


def test_a_bad_line_in_the_middle_is_skipped_and_kept(tmp_path: Path) -> None:
    """A damaged complete line is reported and skipped; the lines after it still count."""
    path = tmp_path / segment_name(1)
    end = dumps_line(JournalEnd(rev=1, session_id=SID, ts=T0))
    path.write_bytes(HEADER + b'not json\n[1]\n{"kind": "x"}\n{"kind": "op", "rev": 2}\n' + end)
    read = read_segment(path)
    assert [r.kind for r in read.records] == ["segment", "end"]
    assert [bad.offset for bad in read.bad_lines] == [
        len(HEADER),
        len(HEADER) + 9,
        len(HEADER) + 13,
        len(HEADER) + 27,
    ]
    assert b"not json" in path.read_bytes()


def test_drop_segments_deletes_only_what_it_is_given(tmp_path: Path) -> None:
    """Compaction deletes the covered segments and nothing else."""
    for number in (1, 2, 3):
        (tmp_path / segment_name(number)).write_bytes(b"{}\n")
    dropped = drop_segments(
        [tmp_path / segment_name(1), tmp_path / segment_name(2), tmp_path / "missing.jsonl"]
    )
    assert [p.name for p in dropped] == ["000001.jsonl", "000002.jsonl"]
    assert [p.name for p in list_segments(tmp_path)] == ["000003.jsonl"]


def test_replay_rebuilds_a_session_from_its_start_record() -> None:
    """With no snapshot, the journal alone rebuilds the whole session."""
    records = [
        begin(1),
        op(2, "session.set_stage", {"stage": "writing"}),
        op(3, "session.open_file", {"path": "manuscript/a.md", "cursor_line": 4}),
        JournalActivity(
            rev=4, session_id=SID, key="k", topic="file.modified", path="manuscript/a.md", ts=ts(30)
        ),
    ]
    out = replay(None, Preferences(), records)
    assert out.document is not None and out.rebuilt and not out.problems
    assert out.document.current_state.stage is Stage.WRITING
    assert out.document.open_files[0].cursor_line == 4
    assert out.document.last_activity == T0 + timedelta(minutes=30)
    assert out.document.revision == out.revision == 4
    assert [r.id for r in out.replies] == ["r2", "r3"]
    assert out.activity_keys == ["k"]


def test_replay_uses_recorded_timestamps() -> None:
    """Replaying twice gives the same document: no clock is read."""
    records = [begin(1), op(2, "session.add_recent_query", {"query": "q", "source": "cognee"})]
    first = replay(None, Preferences(), records).document
    assert first == replay(None, Preferences(), records).document
    assert first is not None and first.recent_queries[0].timestamp == T0 + timedelta(minutes=2)


def test_replay_skips_what_the_snapshot_holds_but_remembers_ids() -> None:
    """Records at or below the snapshot revision change nothing, yet their ids stay applied."""
    snapshot = new_document(session_id=SID, project_name="Book", created_at=T0, revision=2)
    records = [
        op(2, "session.set_stage", {"stage": "scoring"}, "old"),
        op(3, "session.set_screen", {"screen": "new"}, "new"),
    ]
    out = replay(snapshot, Preferences(), records)
    assert out.document is not None
    assert out.document.current_state.stage is Stage.CREATION
    assert out.document.current_state.screen == "new"
    by_id = {r.id: r for r in out.replies}
    assert by_id["old"].result is None and by_id["new"].result is out.document
    assert out.applied == 1


def test_replay_carries_ids_from_segment_headers() -> None:
    """Ids carried through compaction are remembered, with a result when one was kept."""
    header = JournalSegment(
        segment=7,
        base_rev=40,
        ts=T0,
        carried=[
            CarriedReply(id="a", op="session.set_stage", rev=39),
            CarriedReply(id="b", op="preferences.set", rev=40, result={"theme": "x"}),
        ],
    )
    out = replay(None, Preferences(), [header])
    assert out.revision == 40
    assert [(r.id, r.result) for r in out.replies] == [("a", None), ("b", {"theme": "x"})]


def test_replay_without_start_record_rebuilds_what_it_can_and_says_so() -> None:
    """Changes of a session whose start is lost still apply to a fresh document, loudly."""
    out = replay(
        None,
        Preferences(),
        [op(5, "session.set_stage", {"stage": "analyzing"})],
        project_name="Book",
    )
    assert out.document is not None and out.document.session_id == SID
    assert out.document.project_name == "Book"
    assert out.document.current_state.stage is Stage.ANALYZING
    assert any("rebuilt" in problem for problem in out.problems)


def test_replay_applies_preferences_across_sessions() -> None:
    """A preference change applies even if its session was replaced; session changes do not."""
    records = [
        begin(1, "old"),
        op(2, "preferences.set", {"values": {"theme": "dark"}}, session_id="old"),
        begin(3, "new"),
        op(4, "session.set_screen", {"screen": "x"}, session_id="old"),
    ]
    out = replay(None, Preferences(), records)
    assert out.preferences.theme == "dark"
    assert out.document is not None and out.document.session_id == "new"
    assert out.document.current_state.screen == "home"
    assert any("belongs to session old" in problem for problem in out.problems)


def test_replay_skips_bad_records_and_applies_the_rest() -> None:
    """A record refused by validation or out of order does not stop the replay of the others."""
    records = [
        begin(1),
        op(2, "session.set_stage", {"stage": "no-such-stage"}),
        op(3, "session.set_stage", {"stage": "drafting"}),
        op(4, "session.set_stage", {"stage": "enhancing"}),
        op(4, "session.set_screen", {"screen": "duplicate"}),
        op(5, "session.no_such_op", {}),
    ]
    out = replay(None, Preferences(), records)
    assert out.document is not None
    assert out.document.current_state.stage is Stage.ENHANCING
    assert out.document.current_state.screen == "home"
    assert len(out.problems) == 4  # two refused stages, the duplicate rev, the unknown op


def test_end_and_owner_records_mark_the_clean_end_and_the_new_owner() -> None:
    """An end record sets the clean-end marker; an owner record reopens the session."""
    ended = replay(
        None, Preferences(), [begin(1), JournalEnd(rev=2, session_id=SID, ts=ts(9))]
    ).document
    assert ended is not None and ended.ended_at == T0 + timedelta(minutes=9)
    reopened = replay(
        ended,
        Preferences(),
        [JournalOwner(rev=3, session_id=SID, owner_pid=77, host="h", ts=ts(10))],
    ).document
    assert reopened is not None and reopened.ended_at is None and reopened.owner_pid == 77


_OPS: list[tuple[Op, Callable[[Any], dict[str, Any]]]] = [
    (Op.SESSION_SET_STAGE, lambda n: {"stage": list(Stage)[n % 5].value}),
    (Op.SESSION_SET_SCREEN, lambda n: {"screen": f"s{n}"}),
    (Op.SESSION_SET_BREADCRUMB, lambda n: {"breadcrumb": ["Home"] * (n % 3)}),
    (Op.SESSION_OPEN_FILE, lambda n: {"path": f"manuscript/{n % 3}.md", "cursor_line": n}),
    (Op.SESSION_CLOSE_FILE, lambda n: {"path": f"manuscript/{n % 3}.md"}),
    (Op.SESSION_SET_MODEL_PREFERENCE, lambda n: {"stage": "writing", "model": f"m{n % 2}"}),
    (Op.SESSION_ADD_RECENT_QUERY, lambda n: {"query": f"q{n}", "source": "s"}),
    (Op.PREFERENCES_SET, lambda n: {"values": {"theme": f"t{n}"}}),
    (Op.SESSION_SAVE, lambda n: {}),
]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(st.integers(0, len(_OPS) - 1), st.integers(0, 20)), max_size=25),
    batch=st.integers(1, 4),
)
def test_a_restart_rebuilds_exactly_the_acknowledged_state(
    steps: list[tuple[int, int]], batch: int
) -> None:
    """Whatever the mix of changes, saves and batches, a restarted writer has the same state."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "book"
        writer, harness = start_session_writer(project)
        calls = [harness.make_call(_OPS[k][0], _OPS[k][1](n)) for k, n in steps]
        for index in range(0, len(calls), batch):
            writer.handle_batch(calls[index : index + batch])
            harness.run_callbacks()
        quiesce(harness, writer)  # a crash after the last save finished (threads die too)
        again, _ = start_session_writer(project)
        assert again.preferences == writer.preferences
        assert again.document.model_dump(exclude={"last_saved_at"}) == writer.document.model_dump(
            exclude={"last_saved_at"}
        )
