"""Crash recovery: telling interrupted sessions from ended ones, resuming, starting fresh."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SpawnPython
from fake_context import FailingDisk, FakeHarness, ok, on_disk, quiesce, start_session_writer

from protocol.codec import dumps
from protocol.names import Op, Stage
from services.readonly.liveness import pid_alive
from services.runtime.paths import ProjectPaths
from services.session.journal import list_segments, read_segment
from services.session.recovery import (
    files_changed_since,
    inspect_previous,
    new_session_id,
)
from services.session_writer import SessionWriter

SID = "2026-03-01-090000"
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project folder of one test."""
    return tmp_path / "The Explants"


HOLD_LOCK = """
import sys, time
from pathlib import Path
from services.runtime.lock import SupervisorLock
SupervisorLock(Path({lock!r})).acquire()
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def live_supervisor(project: Path, spawn_python: SpawnPython) -> int:
    """The pid of a live process playing this project's supervisor (it holds the lock)."""
    paths = ProjectPaths.of(project)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    child = spawn_python(HOLD_LOCK.format(lock=str(paths.lock)))
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    return child.pid


def start(
    project: Path, supervisor: int, session_id: str = SID, **options: Any
) -> tuple[SessionWriter, FakeHarness]:
    """Start a writer owned by `supervisor` and let its start-up settle."""
    writer, harness = start_session_writer(
        project, session_id=session_id, options={"supervisor_pid": supervisor, **options}
    )
    assert isinstance(writer, SessionWriter)
    return writer, harness


def own(project: Path, **kwargs: Any) -> tuple[SessionWriter, FakeHarness]:
    """Start a writer whose supervisor is this (live) test process; `kwargs` go to the writer."""
    writer, harness = start_session_writer(project, session_id=SID, **kwargs)
    assert isinstance(writer, SessionWriter)
    return writer, harness


def snapshot_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root` with its bytes and modification time."""
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_no_previous_session(project: Path) -> None:
    """A project that never ran has no previous session to recover."""
    project.mkdir()
    assert inspect_previous(ProjectPaths.of(project)) is None


def test_seed_crash_recovery(project: Path, dead_pid: int) -> None:
    """A session whose supervisor died without a clean end is reported as interrupted."""
    writer, harness = start(project, dead_pid)
    harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "writing"})
    harness.call(writer, Op.SESSION_SAVE)
    harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "after-save"})  # journal only
    quiesce(harness, writer)
    del writer  # the crash: no stop()
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and previous.interrupted
    assert previous.session_id == SID and previous.ended_at is None
    assert previous.last_save_at is not None and previous.last_activity is not None
    assert previous.last_activity > previous.last_save_at  # the journal was read too
    assert previous.duration_minutes >= 0


def test_files_changed_since_the_last_save_are_listed(project: Path, dead_pid: int) -> None:
    """Recovery lists the writer's files changed after the last save, not editor litter."""
    writer, _ = start(project, dead_pid)
    saved_at = writer.autosave.last_save_at
    assert saved_at is not None
    chapter = project / "manuscript" / "volume-2" / "chapter-5.md"
    chapter.parent.mkdir(parents=True)
    for path in [
        chapter,
        project / "planning" / "outline.md",
        project / "manuscript" / ".ch.swp",
        project / "manuscript" / "ch.md~",
        project / "manuscript" / "4913",
        project / "manuscript" / "#ch.md#",
        project / "notes.md",
        project / "reference" / ".hidden" / "x.md",
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("words", encoding="utf-8")
    old = project / "reference" / "old.md"
    old.write_text("old", encoding="utf-8")
    stamp = (saved_at - timedelta(hours=1)).timestamp()
    os.utime(old, (stamp, stamp))
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None
    assert previous.files_changed == ["manuscript/volume-2/chapter-5.md", "planning/outline.md"]
    assert files_changed_since(ProjectPaths.of(project), datetime.now(UTC) + timedelta(1)) == []


def test_files_changed_are_never_read_through_a_link_out_of_the_project(
    project: Path, tmp_path: Path
) -> None:
    """A watched folder that is a symbolic link leading elsewhere is not walked."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.md").write_text("not the book's", encoding="utf-8")
    (project / "manuscript").mkdir(parents=True)
    (project / "manuscript" / "ch1.md").write_text("words", encoding="utf-8")
    (project / "reference").symlink_to(outside)
    since = datetime.now(UTC) - timedelta(hours=1)
    assert files_changed_since(ProjectPaths.of(project), since) == ["manuscript/ch1.md"]


def test_a_clean_stop_is_not_reported_as_interrupted(project: Path, dead_pid: int) -> None:
    """After a clean stop the previous session is ended, whatever became of its supervisor."""
    writer, _ = start(project, os.getpid())
    writer.stop()
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and not previous.interrupted and previous.ended_at is not None


def test_a_stop_after_the_supervisor_died_is_an_interruption(project: Path, dead_pid: int) -> None:
    """Workers stopping because their supervisor vanished do not claim a clean end."""
    writer, _ = start(project, dead_pid)
    writer.stop()
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and previous.interrupted


def test_the_end_marker_in_the_journal_counts_even_if_the_snapshot_failed(
    project: Path, dead_pid: int
) -> None:
    """The clean-end marker is durable in the journal before the final snapshot is tried."""
    writer, _ = start(project, os.getpid())
    writer.autosave.saver.current.path = project / "missing-folder" / "current.json"
    writer.stop()
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and previous.ended_at is not None and not previous.interrupted


def test_a_worker_restart_under_a_live_supervisor_is_not_an_interruption(
    project: Path, live_supervisor: int
) -> None:
    """kill -9 of the writer alone, while its supervisor lives, is not an interrupted session."""
    writer, harness = start(project, live_supervisor)
    harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "writing"})
    quiesce(harness, writer)  # then the writer dies, its threads with it
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and not previous.interrupted
    again, harness2 = start(project, live_supervisor)
    assert again.document.current_state.stage is Stage.WRITING
    assert not harness2.published("session.recovered")


def test_a_live_pid_that_is_not_the_supervisor_does_not_count(
    project: Path, live_supervisor: int
) -> None:
    """A recorded pid reused by an unrelated process (say after a reboot) is not a live owner."""
    start(project, os.getppid())  # alive, but the lock is held by someone else
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and previous.interrupted


def test_the_caller_is_never_the_previous_owner(project: Path, live_supervisor: int) -> None:
    """A new supervisor that happens to get the old owner's pid still sees the interruption."""
    start(project, os.getpid())
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and previous.interrupted


def test_inspecting_changes_no_file(project: Path, dead_pid: int) -> None:
    """`inspect_previous` reads the snapshot and journal without writing or moving anything."""
    writer, harness = start(project, dead_pid)
    harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "x"})
    segment = writer.journal.segment
    assert segment is not None
    with segment.open("ab") as handle:
        handle.write(b'{"kind": "op", "rev"')  # a torn tail the writer would cut
    (project / ".session" / "current.json").write_bytes(b"{corrupt")
    before = snapshot_files(project)
    previous = inspect_previous(ProjectPaths.of(project))
    assert snapshot_files(project) == before
    assert previous is not None and previous.session_id == SID


def test_resuming_keeps_the_session_and_announces_it(
    project: Path, dead_pid: int, live_supervisor: int
) -> None:
    """Resuming an interrupted session keeps its id and state and publishes session.recovered."""
    writer, harness = start(project, dead_pid)
    harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "enhancing"})
    quiesce(harness, writer)  # then the whole service dies
    created = writer.document.created_at
    resumed, harness2 = start(project, live_supervisor, recovered=True)
    assert resumed.document.session_id == SID and resumed.document.created_at == created
    assert resumed.document.current_state.stage is Stage.ENHANCING
    assert resumed.document.owner_pid == live_supervisor
    [event] = harness2.published("session.recovered")
    assert event["resumed"] is True and event["session_id"] == SID
    assert event["last_save_at"] is not None
    previous = inspect_previous(ProjectPaths.of(project))
    assert previous is not None and not previous.interrupted


def test_starting_fresh_hands_over_the_interrupted_session(
    project: Path, dead_pid: int, live_supervisor: int
) -> None:
    """--fresh starts a new session, names the interrupted one, and keeps the preferences."""
    writer, harness = start(project, dead_pid)
    harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "scoring"})
    harness.call(writer, Op.PREFERENCES_SET, {"values": {"theme": "dark"}})
    quiesce(harness, writer)  # then the whole service dies
    fresh_id = new_session_id(ProjectPaths.of(project))
    assert fresh_id != SID
    fresh, harness2 = start(project, live_supervisor, session_id=fresh_id, fresh=True)
    assert fresh.document.session_id == fresh_id
    assert fresh.document.current_state.stage is Stage.CREATION
    assert fresh.preferences.theme == "dark"
    [event] = harness2.published("session.recovered")
    assert event["resumed"] is False and event["interrupted_session_id"] == SID
    assert event["session_id"] == fresh_id


def test_a_clean_previous_session_is_not_announced(project: Path, live_supervisor: int) -> None:
    """A new session after a clean stop publishes no session.recovered."""
    writer, _ = start(project, live_supervisor)
    writer.stop()
    _, harness = start(
        project, live_supervisor, session_id=new_session_id(ProjectPaths.of(project))
    )
    assert not harness.published("session.recovered")


def test_new_session_ids_are_local_time(project: Path) -> None:
    """Session ids read as the local wall-clock time the session started."""
    project.mkdir()
    now = datetime(2026, 11, 23, 14, 30, 22, tzinfo=UTC)
    expected = now.astimezone().strftime("%Y-%m-%d-%H%M%S")
    session_id = new_session_id(ProjectPaths.of(project), now)
    assert session_id == expected
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-\d{6}", session_id)


def test_session_ids_are_unique_within_one_second(project: Path, live_supervisor: int) -> None:
    """Two sessions started in the same second get different ids."""
    paths = ProjectPaths.of(project)
    now = datetime.now(UTC)
    first = new_session_id(paths, now)
    writer, _ = start(project, live_supervisor, session_id=first)
    writer.stop()
    second = new_session_id(paths, now)
    assert second == f"{first}-2"
    history = {"sessions": [{"session_id": second, "start_time": "2026-01-01T00:00:00Z"}]}
    paths.history.write_bytes(dumps(history))
    assert new_session_id(paths, now) == f"{first}-3"
    paths.history.unlink()
    paths.history_gz.write_bytes(gzip.compress(dumps(history)))
    paths.archive_dir.mkdir()
    (paths.archive_dir / f"{first}-3.json.gz").write_bytes(b"")
    assert new_session_id(paths, now) == f"{first}-4"


def test_pid_alive_sees_through_zombies(dead_pid: int) -> None:
    """A dead process that was not reaped yet does not count as alive."""
    assert pid_alive(os.getpid()) and not pid_alive(dead_pid) and not pid_alive(None)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        assert not pid_alive(child.pid)
    finally:
        child.wait()


CHILD = r"""
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from fake_context import make_harness
from protocol.names import Op
from services.session_writer import SessionWriter

harness = make_harness(Path({project!r}), session_id={sid!r},
                       options={{"supervisor_pid": {sup}, "interval_s": 0.01}})
writer = SessionWriter(harness.ctx)
writer.start()
for i in range(40):
    harness.call(writer, Op.SESSION_ADD_RECENT_QUERY, {{"query": f"q{{i}}", "source": "s"}},
                 id=f"q-{{i}}")
    if i % 5 == 0:
        harness.call(writer, Op.SESSION_SET_STAGE, {{"stage": ["writing", "scoring"][i % 2]}})
    harness.settle(writer)
harness.call(writer, Op.SESSION_OPEN_FILE, {{"path": "manuscript/ch1.md", "cursor_line": 7}})
print("ok", writer.revision, flush=True)
time.sleep(60)
"""


def test_kill_9_right_after_ok_loses_nothing(project: Path, spawn_python: SpawnPython) -> None:
    """A writer killed with SIGKILL just after replying loses no acknowledged change."""
    project.mkdir(parents=True)
    child = spawn_python(
        CHILD.format(tests=str(TESTS), project=str(project), sid=SID, sup=os.getpid())
    )
    assert child.stdout is not None
    line = child.stdout.readline().split()
    child.kill()
    child.wait(10)
    assert line[0] == b"ok"
    writer, harness = own(project)
    assert writer.revision == int(line[1])
    assert [q.query for q in writer.document.recent_queries] == [f"q{i}" for i in range(30, 40)]
    assert writer.document.open_files[0].cursor_line == 7
    assert not harness.published("session.recovered")  # the supervisor lives: a worker restart
    ok(
        harness.call(
            writer, Op.SESSION_ADD_RECENT_QUERY, {"query": "q39", "source": "s"}, id="q-39"
        )
    )
    assert writer.revision == int(line[1])


def test_a_clean_stop_marks_the_end_and_compacts(project: Path) -> None:
    """A clean stop writes the clean-end marker and leaves a journal of one header."""
    writer, harness = own(project)
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "x"}))
    writer.stop()
    document = on_disk(project)
    assert document["ended_at"] is not None and document["current_state"]["screen"] == "x"
    segments = list_segments(project / ".session" / "journal")
    assert len(segments) == 1
    assert [r.kind for r in read_segment(segments[0]).records] == ["segment"]


def test_a_worker_restart_continues_silently(project: Path) -> None:
    """Restarting the writer alone keeps the session, records nothing new, announces nothing."""
    writer, _ = own(project)
    again, harness = own(project)
    harness.settle(again)
    assert again.document == writer.document and again.revision == writer.revision
    assert not harness.published("session.recovered")


def test_a_corrupt_snapshot_is_moved_aside_and_rebuilt_from_the_journal(project: Path) -> None:
    """current.json that does not parse is kept aside, reported, and the session rebuilt."""
    writer, harness = own(project)
    ok(harness.call(writer, Op.SESSION_SET_SCREEN, {"screen": "after-snapshot"}))
    current = project / ".session" / "current.json"
    current.write_bytes(b'{"session_id": "trunc')
    again, harness2 = own(project)
    assert again.document.session_id == SID
    assert again.document.current_state.screen == "after-snapshot"
    assert list((project / ".session").glob("current.json.corrupt-*"))
    assert "session.snapshot_corrupt" in harness2.log.events("error")
    assert on_disk(project)["current_state"]["screen"] == "after-snapshot"


def test_a_session_whose_start_is_in_the_journal_is_rebuilt_whole(project: Path) -> None:
    """If the journal still holds the session's start, a corrupt snapshot costs nothing."""
    disk = FailingDisk()
    disk.failures = -1  # the start-up snapshot fails: the journal keeps everything
    writer, harness = own(project, snapshot_ops=disk)
    ok(harness.call(writer, Op.SESSION_SET_STAGE, {"stage": "analyzing"}))
    quiesce(harness, writer)
    (project / ".session" / "current.json").write_bytes(b"garbage")
    again, harness2 = own(project)
    assert again.document.created_at == writer.document.created_at
    assert again.document.current_state.stage is Stage.ANALYZING
    assert "session.replay_problem" not in harness2.log.events("error")


def test_corrupt_preferences_are_moved_aside_and_defaults_restored(project: Path) -> None:
    """Preferences that do not parse are kept aside, reported, and replaced by defaults."""
    own(project)
    (project / ".session" / "preferences.json").write_text("{oops", encoding="utf-8")
    again, harness = own(project)
    assert again.preferences.theme == "system"
    assert list((project / ".session").glob("preferences.json.corrupt-*"))
    assert "session.preferences_corrupt" in harness.log.events("error")
