"""The session writer worker, driven in-process: durability, auto-save, indicator, events."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fake_context import (
    CountingDisk,
    FailingDisk,
    FakeHarness,
    ok,
    on_disk,
    quiesce,
    start_session_writer,
)

from protocol.codec import loads_exact
from protocol.envelopes import Event
from protocol.errors import ErrorCode, ProtocolError
from protocol.names import Op, Stage
from services.session.journal import list_segments, read_segment
from services.session_writer import SessionWriter

SID = "2026-03-01-090000"


def start(project: Path, **kwargs: Any) -> tuple[SessionWriter, FakeHarness]:
    """Start a writer of `SID` owned by this process, its start-up snapshot done."""
    writer, harness = start_session_writer(project, **{"session_id": SID, **kwargs})
    assert isinstance(writer, SessionWriter)
    return writer, harness


def status(harness: FakeHarness, writer: SessionWriter) -> dict[str, Any]:
    """The `session.status` result."""
    result: dict[str, Any] = ok(harness.call(writer, Op.SESSION_STATUS))
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project folder of one test."""
    return tmp_path / "The Explants"


def test_seed_save_and_load(project: Path) -> None:
    """A saved stage is on disk and is there when the session is loaded again."""
    writer, harness = start(project)
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "writing"}))
    saved = ok(harness.call(writer, Op.SESSION_SAVE))
    quiesce(harness, writer)
    assert on_disk(project)["current_state"]["stage"] == "writing"
    assert saved["saved"] is True or status(harness, writer)["dirty"] is False
    loaded, _ = start(project)
    assert loaded.document.current_state.stage is Stage.WRITING
    assert on_disk(project)["project_name"] == "The Explants"


def test_seed_auto_save_workflow_with_short_interval(project: Path) -> None:
    """Quiet changes reach current.json at the next interval; model changes at once."""
    writer, harness = start(project, options={"interval_s": 0.05})
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "scene_editor"}))
    ok(harness.call(writer, Op.SESSION_SET_BREADCRUMB, {"breadcrumb": ["Home", "Writing"]}))
    assert on_disk(project)["current_state"]["screen"] == "home"
    assert status(harness, writer)["indicator"] == "○ Unsaved changes"
    harness.settle(writer, now=writer.autosave.next_at)  # the interval's save point
    quiesce(harness, writer)
    assert on_disk(project)["current_state"]["screen"] == "scene_editor"
    assert harness.published("session.saved")[-1]["reason"] == "interval"
    assert status(harness, writer)["indicator"].startswith("● Auto-saved ")
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "writing"}))
    ok(
        harness.call(
            writer, Op.SESSION_SET_MODEL_PREFERENCE, {"stage": "writing", "model": "claude"}
        )
    )
    quiesce(harness, writer)
    loaded, _ = start(project)
    assert loaded.document.current_state.stage is Stage.WRITING
    assert loaded.document.model_preferences == {Stage.WRITING: "claude"}
    assert on_disk(project)["model_preferences"] == {"writing": "claude"}


def test_a_save_with_nothing_changed_writes_nothing(project: Path) -> None:
    """`session.save` with nothing new says so and leaves the file untouched."""
    writer, harness = start(project)
    path = project / ".session" / "current.json"
    before = (path.stat().st_mtime_ns, path.read_bytes(), len(harness.events))
    result = ok(harness.call(writer, Op.SESSION_SAVE))
    assert result["saved"] is False and result["saved_at"] is not None
    writer.tick(writer.autosave.next_at + 1)
    quiesce(harness, writer)
    assert (path.stat().st_mtime_ns, path.read_bytes(), len(harness.events)) == before


def test_a_batch_costs_one_fsync_and_reads_none(project: Path) -> None:
    """Several changes arriving together are made durable with a single fsync."""
    ops = CountingDisk()
    writer, harness = start(project, journal_ops=ops)
    ops.fsyncs = 0
    outcomes = harness.batch(
        writer,
        [
            (Op.SESSION_SET_SCREEN, {"screen": "a"}),
            (Op.SESSION_GET, None),
            (Op.SESSION_SET_BREADCRUMB, {"breadcrumb": ["Home"]}),
            (Op.SESSION_ADD_RECENT_QUERY, {"query": "q", "source": "cognee"}),
            (Op.SESSION_OPEN_FILE, {"path": "manuscript/a.md"}),
            (Op.SESSION_STATUS, None),
        ],
    )
    assert ops.fsyncs == 1
    revisions = [ok(o)["revision"] for o in outcomes if "revision" in ok(o)]
    assert revisions == sorted(revisions) and len(set(revisions)) == 4
    ops.fsyncs = 0
    harness.batch(
        writer, [(Op.SESSION_GET, None), (Op.PREFERENCES_GET, None), (Op.SESSION_STATUS, None)]
    )
    assert ops.fsyncs == 0


def test_a_resent_id_is_applied_once(project: Path) -> None:
    """Re-sending a request with the same id returns the first answer and changes nothing."""
    writer, harness = start(project)
    first = harness.call(
        writer,
        Op.SESSION_ADD_RECENT_QUERY,
        {"query": "Who is Noni?", "source": "cognee"},
        id="c1-1",
    )
    revision = writer.revision
    again = harness.call(
        writer,
        Op.SESSION_ADD_RECENT_QUERY,
        {"query": "Who is Noni?", "source": "cognee"},
        id="c1-1",
    )
    assert again is first and writer.revision == revision
    assert len(writer.document.recent_queries) == 1
    other = harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "x"}, id="c1-1")
    assert isinstance(other, ProtocolError) and "already used" in other.message


def test_a_resent_id_is_applied_once_across_a_restart(project: Path) -> None:
    """After a crash and restart, a re-sent request is still not applied twice."""
    writer, harness = start(project)
    first = ok(
        harness.call(
            writer, Op.SESSION_ADD_RECENT_QUERY, {"query": "q", "source": "cognee"}, id="c1-1"
        )
    )
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "later"}))
    again, harness2 = start(project)  # no stop(): the first writer "crashed"
    answer = ok(
        harness2.call(
            again, Op.SESSION_ADD_RECENT_QUERY, {"query": "q", "source": "cognee"}, id="c1-1"
        )
    )
    assert len(again.document.recent_queries) == 1
    assert answer["recent_queries"] == first["recent_queries"]
    assert answer["revision"] == first["revision"]


def test_a_resent_id_is_applied_once_after_compaction_and_restart(project: Path) -> None:
    """Ids survive the journal compaction that follows a snapshot, and a restart."""
    writer, harness = start(project)
    ok(harness.call(writer, Op.SESSION_ADD_RECENT_QUERY, {"query": "q", "source": "s"}, id="q1"))
    first_prefs = ok(
        harness.call(writer, Op.PREFERENCES_SET, {"values": {"theme": "dark"}}, id="p1")
    )
    quiesce(harness, writer)
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "x"}))
    assert ok(harness.call(writer, Op.SESSION_SAVE))["saved"] is True
    segments = list_segments(project / ".session" / "journal")
    assert len(segments) == 1 and read_segment(segments[0]).records[0].kind == "segment"
    again, harness2 = start(project)
    revision = again.revision
    answer = ok(
        harness2.call(again, Op.SESSION_ADD_RECENT_QUERY, {"query": "q", "source": "s"}, id="q1")
    )
    assert len(again.document.recent_queries) == 1 and again.revision == revision
    assert answer["current_state"]["screen"] == "x"  # the state now, which includes the change
    assert (
        ok(harness2.call(again, Op.PREFERENCES_SET, {"values": {"theme": "dark"}}, id="p1"))
        == first_prefs
    )


def test_symlinks_that_escape_the_project_are_refused(project: Path, tmp_path: Path) -> None:
    """A path that leaves the project through a symbolic link is invalid_args, and not stored."""
    writer, harness = start(project)
    (tmp_path / "outside").mkdir()
    (project / "manuscript").mkdir()
    (project / "reference").mkdir()
    (project / "manuscript" / "out").symlink_to(tmp_path / "outside")
    (project / "manuscript" / "bible").symlink_to(project / "reference")
    revision = writer.revision
    refused = harness.call(writer, Op.SESSION_OPEN_FILE, {"path": "manuscript/out/secret.md"})
    assert isinstance(refused, ProtocolError) and refused.code is ErrorCode.INVALID_ARGS
    assert "outside the project root" in refused.message
    assert writer.revision == revision and writer.document.open_files == []
    inside = ok(harness.call(writer, Op.SESSION_OPEN_FILE, {"path": "manuscript/bible/cast.md"}))
    assert inside["open_files"][0]["path"] == "manuscript/bible/cast.md"


def test_absolute_paths_inside_the_project_are_stored_relative(project: Path) -> None:
    """An absolute path inside the project is stored relative; one elsewhere is refused."""
    writer, harness = start(project)
    inside = ok(
        harness.call(writer, Op.SESSION_OPEN_FILE, {"path": str(project / "manuscript" / "ch1.md")})
    )
    assert inside["open_files"][0]["path"] == "manuscript/ch1.md"
    refused = harness.call(writer, Op.SESSION_OPEN_FILE, {"path": "/etc/passwd"})
    assert isinstance(refused, ProtocolError) and refused.code is ErrorCode.INVALID_ARGS
    assert "outside the project root" in refused.message
    closed = ok(
        harness.call(
            writer, Op.SESSION_CLOSE_FILE, {"path": str(project / "manuscript" / "ch1.md")}
        )
    )
    assert closed["open_files"] == []


def _refusal(harness: FakeHarness, writer: SessionWriter, path: str) -> ProtocolError:
    """The error `session.open_file {path}` gets, whether args validation or the writer says no."""
    try:
        outcome = harness.call(writer, Op.SESSION_OPEN_FILE, {"path": path})
    except ProtocolError as exc:
        return exc
    assert isinstance(outcome, ProtocolError), f"{path!r} was accepted"
    return outcome


def test_the_services_own_files_are_never_an_open_file(project: Path) -> None:
    """`.session/...`, by name, absolute path or a link into it, is invalid_args and not stored."""
    writer, harness = start(project)
    (project / "manuscript").mkdir()
    (project / "manuscript" / "inside").symlink_to(project / ".session")
    revision = writer.revision
    for path in (
        ".session/current.json",
        "./.session/costs.json",
        str(project / ".session" / "current.json"),
        "manuscript/inside/current.json",
    ):
        refused = _refusal(harness, writer, path)
        assert refused.code is ErrorCode.INVALID_ARGS, path
        assert ".session/" in refused.message, path
    assert writer.revision == revision and writer.document.open_files == []


def test_a_name_the_watcher_could_never_report_is_refused(project: Path) -> None:
    """A newline or another control character in a path is invalid_args, as the watcher skips it."""
    from services.readonly.filters import is_reportable

    writer, harness = start(project)
    for path in ("manuscript/two\nlines.md", "manuscript/tab\there.md", "manuscript/bell\x07.md"):
        assert not is_reportable(path)
        refused = _refusal(harness, writer, path)
        assert refused.code is ErrorCode.INVALID_ARGS
        assert "control characters" in refused.message
    assert writer.document.open_files == []


def test_an_open_file_can_be_closed_even_if_its_folder_now_escapes(
    project: Path, tmp_path: Path
) -> None:
    """Closing only forgets a pane, so it works even when the disk changed under it."""
    writer, harness = start(project)
    (project / "notes").mkdir()
    ok(harness.call(writer, Op.SESSION_OPEN_FILE, {"path": "notes/a.md"}))
    (project / "notes").rmdir()
    (project / "notes").symlink_to(tmp_path)
    assert (
        ok(harness.call(writer, Op.SESSION_CLOSE_FILE, {"path": "notes/a.md"}))["open_files"] == []
    )


def test_a_failing_disk_shows_the_failed_state_and_recovers(project: Path) -> None:
    """When current.json cannot be written, replies still succeed, the status says so, and the
    next save point writes it."""
    disk = FailingDisk()
    writer, harness = start(project, snapshot_ops=disk)
    disk.failures = -1
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "enhancing"}))
    quiesce(harness, writer)
    failed = harness.published("session.save_failed")
    assert [(f["attempt"], f["final"]) for f in failed] == [(1, False), (2, False), (3, True)]
    assert all(f["will_retry"] for f in failed)
    shown = status(harness, writer)
    assert shown["state"] == "failed" and shown["dirty"] is True
    assert shown["indicator"] == "⚠ Auto-save failed — changes are safe in the journal; will retry"
    assert "Input/output error" in shown["last_error"]
    assert len(list_segments(project / ".session" / "journal")) > 1  # the journal is kept
    again, _ = start(project, session_id=SID)  # nothing acknowledged was lost meanwhile
    assert again.document.current_state.stage is Stage.ENHANCING
    disk.failures = 0
    writer.tick(writer.autosave.next_at)  # the next save point
    quiesce(harness, writer)
    assert status(harness, writer)["state"] == "saved"
    assert on_disk(project)["current_state"]["stage"] == "enhancing"
    assert len(list_segments(project / ".session" / "journal")) == 1


def test_the_indicator_shows_a_retry_in_flight(project: Path) -> None:
    """While tenacity retries, the status bar says which attempt is running."""
    disk = FailingDisk()
    writer, harness = start(project, snapshot_ops=disk)
    disk.failures, disk.hold_at = 1, disk.calls + 2
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "scoring"}))
    assert disk.held.wait(5)
    shown = status(harness, writer)
    assert shown["indicator"] == "⚠ Auto-save failed — retrying (2/3)"
    assert (shown["state"], shown["attempt"], shown["max_attempts"]) == ("retrying", 2, 3)
    disk.gate.set()
    quiesce(harness, writer)
    assert status(harness, writer)["state"] == "saved"


def test_an_explicit_save_on_a_failing_disk_is_an_error_and_can_be_resent(project: Path) -> None:
    """`session.save` promises the snapshot: a failed one is an error; the same id works later."""
    disk = FailingDisk()
    writer, harness = start(project, snapshot_ops=disk)
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "x"}))
    disk.failures = -1
    refused = harness.call(writer, Op.SESSION_SAVE, id="save-1")
    assert isinstance(refused, ProtocolError) and refused.code is ErrorCode.INTERNAL
    assert "safe in the journal" in refused.message
    disk.failures = 0
    assert ok(harness.call(writer, Op.SESSION_SAVE, id="save-1"))["saved"] is True


def test_a_journal_failure_changes_nothing_and_can_be_resent(project: Path) -> None:
    """If the journal cannot be fsynced nothing changes and the reply says so; a re-send applies."""
    disk = CountingDisk()
    writer, harness = start(project, journal_ops=disk)
    revision = writer.revision
    disk.fail = True
    stage = harness.make_call(Op.SESSION_SET_STAGE, {"stage": "writing"}, id="c-1")
    outcomes = writer.handle_batch([stage, harness.make_call(Op.SESSION_GET), stage])
    assert isinstance(outcomes[0], ProtocolError) and outcomes[0].code is ErrorCode.INTERNAL
    assert outcomes[2] is outcomes[0]  # a re-send in the same batch shares the failure
    assert ok(outcomes[1])["current_state"]["stage"] == "creation"
    assert writer.revision == revision
    disk.fail = False
    assert ok(writer.handle_batch([stage])[0])["revision"] == revision + 1
    assert ok(writer.handle_batch([stage])[0])["revision"] == revision + 1
    assert writer.revision == revision + 1


def test_a_snapshot_never_holds_uncommitted_changes(project: Path) -> None:
    """A save that finishes in the middle of a batch never lets the next snapshot run ahead of
    the journal, so a change whose journal write failed cannot hide a later one."""
    disk, journal = FailingDisk(), CountingDisk()
    writer, harness = start(project, snapshot_ops=disk, journal_ops=journal)
    disk.hold_at = disk.calls + 1
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "writing"}))  # a save, held
    assert disk.held.wait(5)
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "scoring"}))  # a save waits its turn
    real_clock = writer.clock

    def clock() -> datetime:
        if not disk.gate.is_set():  # inside the next batch: the held save ends now
            disk.gate.set()
            assert writer.autosave.saver.wait_idle(5)
            journal.fail = True
        return real_clock()

    writer.clock = clock
    ghost = harness.make_call(Op.SESSION_SET_SCREEN, {"screen": "ghost"})
    outcomes = writer.handle_batch([ghost, harness.make_call(Op.SESSION_STATUS)])
    writer.clock, journal.fail = real_clock, False
    assert isinstance(outcomes[0], ProtocolError)
    quiesce(harness, writer)
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "real"}))
    again, _ = start(project)
    assert again.document.current_state.screen == "real"
    assert again.document.current_state.stage is Stage.SCORING


def test_saving_never_blocks_a_reply(project: Path) -> None:
    """A slow disk delays the snapshot, never the answer to a request."""
    disk = FailingDisk()
    writer, harness = start(project, snapshot_ops=disk)
    disk.delay_s = 0.4
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "writing"}))  # starts a snapshot
    began = time.perf_counter()
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "editor"}))
    shown = status(harness, writer)
    assert time.perf_counter() - began < disk.delay_s  # a blocked reply would wait it out
    assert shown["indicator"] == "◌ Saving…"
    disk.delay_s = 0
    quiesce(harness, writer)


def test_preferences_are_partial_validated_durable_and_persisted(project: Path) -> None:
    """A partial preferences update keeps the rest, refuses bad values and survives restarts."""
    writer, harness = start(project)
    result = ok(
        harness.call(
            writer,
            Op.PREFERENCES_SET,
            {
                "values": {
                    "theme": "dark",
                    "confirm_above": Decimal("0.25"),
                    "timezone": "Europe/Paris",
                    "model_preferences": {"writing": "claude"},
                    "keyboard_shortcuts": {"save": "ctrl+s"},
                    "notebooklm": {"enabled": True},
                    "budget_warning_fraction": Decimal("0.9"),
                }
            },
        )
    )
    assert result["theme"] == "dark" and result["confirm_above"] == Decimal("0.25")
    bad = harness.call(writer, Op.PREFERENCES_SET, {"values": {"autosave_interval_s": -1}})
    assert isinstance(bad, ProtocolError) and "autosave_interval_s" in bad.message
    assert ok(harness.call(writer, Op.PREFERENCES_GET))["autosave_interval_s"] == 30
    quiesce(harness, writer)
    on_file = loads_exact((project / ".session" / "preferences.json").read_bytes())
    assert on_file["timezone"] == "Europe/Paris" and on_file["confirm_above"] == Decimal("0.25")
    again, _ = start(project, session_id="2026-03-02-090000")
    assert again.preferences.notebooklm.enabled is True
    assert again.document.model_preferences == {Stage.WRITING: "claude"}  # new sessions start there


def test_the_interval_preference_takes_effect_at_once(project: Path) -> None:
    """Changing the auto-save interval reschedules the next save point immediately."""
    writer, harness = start(project)
    assert writer.next_deadline() is None  # nothing to save: an idle writer has no timer
    ok(harness.call(writer, Op.PREFERENCES_SET, {"values": {"autosave_interval_s": 1.5}}))
    assert writer.next_deadline() == pytest.approx(time.monotonic() + 1.5, abs=0.2)
    assert status(harness, writer)["interval_s"] == 1.5


def test_the_supervisor_interval_overrides_the_preference(project: Path) -> None:
    """`supervisor start --interval 5` wins over the stored preference for that run."""
    writer, harness = start(project, options={"interval_s": 5})
    assert writer.preferences.autosave_interval_s == 30
    assert status(harness, writer)["interval_s"] == 5


def test_a_file_event_is_activity_and_saves_at_once(project: Path) -> None:
    """A file saved in the editor updates last activity and snapshots at once, once."""
    writer, harness = start(project)
    when = datetime.now(UTC) + timedelta(seconds=5)
    event = harness.deliver(writer, "file.modified", {"path": "manuscript/ch1.md"}, ts=when)
    quiesce(harness, writer)
    assert harness.published("session.saved")[-1]["reason"] == "file.modified"
    assert loads_exact(f'"{on_disk(project)["last_activity"]}"') == when.isoformat().replace(
        "+00:00", "Z"
    )
    revision, saves = writer.revision, len(harness.published("session.saved"))
    writer.on_event(event)  # the supervisor re-delivers until acknowledged
    restarted, harness2 = start(project)
    restarted.on_event(event)
    assert restarted.revision == revision and len(harness.published("session.saved")) == saves
    harness2.deliver(restarted, "file.modified", {"path": "../escape.md"})
    assert "session.event_ignored" in harness2.log.events("warning")


def test_an_event_the_journal_refused_is_not_acknowledged(project: Path) -> None:
    """If the journal cannot take a file event, it is refused (no ACK) and taken when re-sent."""
    disk = CountingDisk()
    writer, harness = start(project, journal_ops=disk)
    revision, saves = writer.revision, len(harness.published("session.saved"))
    event = Event(
        topic="file.modified",
        source="file_watcher",
        seq=7,
        ts=datetime.now(UTC),
        data={"path": "manuscript/ch1.md"},
    )
    disk.fail = True
    with pytest.raises(OSError):
        writer.on_event(event)  # the host does not acknowledge an event that raised
    assert writer.revision == revision
    disk.fail = False
    writer.on_event(event)  # the supervisor delivers it again
    quiesce(harness, writer)
    assert writer.revision == revision + 1
    assert len(harness.published("session.saved")) == saves + 1


def test_an_expensive_call_saves_at_once_and_a_cheap_one_does_not(project: Path) -> None:
    """A `cost.logged` above the confirm threshold is a significant action."""
    writer, harness = start(project)

    def logged(cost: str) -> dict[str, Any]:
        operation = {
            "timestamp": "2026-03-01T09:00:00Z",
            "operation": "scene_generation",
            "model": "claude-sonnet-3.5",
            "input_tokens": 10,
            "output_tokens": 10,
            "cost": Decimal(cost),
        }
        return {"operation": operation, "totals": {}, "cost": Decimal(cost)}

    revision = writer.revision
    harness.deliver(writer, "cost.logged", logged("0.05"), source="cost_ledger")
    assert writer.revision == revision
    harness.deliver(writer, "cost.logged", logged("0.15"), source="cost_ledger")
    quiesce(harness, writer)
    assert writer.revision == revision + 1
    assert harness.published("session.saved")[-1]["reason"] == "cost.logged"


def test_significant_action_saves_before_replying(project: Path) -> None:
    """`session.significant_action` returns only when the snapshot is on disk."""
    writer, harness = start(project)
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "voice_lab"}))
    result = ok(harness.call(writer, Op.SESSION_SIGNIFICANT_ACTION, {"action": "voice_test"}))
    assert result["saved_at"] is not None
    assert on_disk(project)["current_state"]["screen"] == "voice_lab"
    saved = harness.published("session.saved")[-1]
    assert (saved["reason"], saved["action"]) == ("significant_action", "voice_test")


def test_status_dirty_means_the_snapshot_is_behind(project: Path) -> None:
    """`dirty` says the snapshot lags the journal; the revisions show by how much."""
    writer, harness = start(project)
    assert status(harness, writer)["dirty"] is False
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "x"}))
    shown = status(harness, writer)
    assert shown["dirty"] is True and shown["state"] == "unsaved"
    assert shown["revision"] == shown["snapshot_revision"] + 1
