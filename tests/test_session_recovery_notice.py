"""The recovery notice as state: in `session.status` and the document until acknowledged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_context import FailingDisk, FakeHarness, ok, on_disk, quiesce, start_session_writer

from protocol.names import Op
from services.session_writer import SessionWriter

SID = "2026-03-01-090000"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project folder of one test."""
    return tmp_path / "The Explants"


def _start(
    project: Path, owner: int, session_id: str = SID, **kwargs: Any
) -> tuple[SessionWriter, FakeHarness]:
    """A writer of `session_id` owned by supervisor `owner`; `kwargs` go to the writer."""
    options = {"supervisor_pid": owner}
    writer, harness = start_session_writer(
        project, session_id=session_id, options=options, **kwargs
    )
    assert isinstance(writer, SessionWriter)
    return writer, harness


def _crashed_session(project: Path) -> str:
    """A session whose supervisor died after a save; then a chapter written; its last save."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a supervisor pid that is dead and reaped
    writer, harness = _start(project, child.pid)
    stage = {"stage": "writing"}
    ok(harness.call(writer, Op.SESSION_SET_STAGE, stage, id="before-crash"))  # snapshots at once
    quiesce(harness, writer)
    saved = on_disk(project)["last_saved_at"]
    chapter = project / "manuscript" / "chapter-7.md"
    chapter.parent.mkdir(parents=True, exist_ok=True)
    chapter.write_text("written after the last save\n", encoding="utf-8")
    os.utime(chapter, (1e10, 1e10))  # clearly after the save, whatever the clock's grain
    return str(saved)


def test_an_interruption_is_state_until_the_ui_acknowledges_it(project: Path) -> None:
    """After a crash, status and document carry the notice; `session.ack_recovery` clears it."""
    last_save = _crashed_session(project)
    writer, harness = _start(project, os.getpid())  # the new supervisor resumes
    [event] = harness.published("session.recovered")  # announced, too
    notice = ok(harness.call(writer, Op.SESSION_STATUS))["recovery"]
    assert notice["interrupted_session_id"] == SID and notice["resumed"] is True
    assert notice["last_save_at"] == last_save == event["last_save_at"]
    assert notice["files_changed"] == ["manuscript/chapter-7.md"] == event["files_changed"]
    assert notice["duration_s"] >= 0 and notice["started_at"] <= notice["last_activity"]
    assert ok(harness.call(writer, Op.SESSION_GET))["recovery"] == notice
    assert on_disk(project)["recovery"] == notice  # readable without the service, too

    document = ok(harness.call(writer, Op.SESSION_ACK_RECOVERY))
    assert document["recovery"] is None
    assert ok(harness.call(writer, Op.SESSION_STATUS))["recovery"] is None
    quiesce(harness, writer)
    assert on_disk(project)["recovery"] is None
    assert harness.published("session.saved")[-1]["reason"] == "recovery_acknowledged"


def test_the_notice_outlives_a_restart_of_the_writer_alone(project: Path) -> None:
    """A writer killed and restarted under the same supervisor still shows the notice."""
    _crashed_session(project)
    _start(project, os.getpid())  # and this writer dies (kill -9): no stop
    again, harness = _start(project, os.getpid())
    assert not harness.published("session.recovered"), "a writer restart is no new interruption"
    assert ok(harness.call(again, Op.SESSION_STATUS))["recovery"]["interrupted_session_id"] == SID


def test_an_acknowledgement_is_durable_before_its_reply(project: Path) -> None:
    """An acknowledged notice stays cleared after a crash, even before any snapshot."""
    _crashed_session(project)
    disk = FailingDisk()
    writer, harness = _start(project, os.getpid(), snapshot_ops=disk)
    disk.failures = -1  # from now on no snapshot reaches the disk
    ok(harness.call(writer, Op.SESSION_ACK_RECOVERY))  # the journal has it now
    quiesce(harness, writer)
    assert on_disk(project)["recovery"] is not None, "the snapshot still shows the notice"
    again, harness2 = _start(project, os.getpid())
    assert ok(harness2.call(again, Op.SESSION_STATUS))["recovery"] is None


def test_a_fresh_session_over_an_interrupted_one_names_it(project: Path) -> None:
    """`--fresh` after a crash: the new session's notice names the interrupted session."""
    _crashed_session(project)
    fresh, harness = _start(project, os.getpid(), session_id="2026-03-02-100000")
    notice = ok(harness.call(fresh, Op.SESSION_STATUS))["recovery"]
    assert notice["resumed"] is False and notice["interrupted_session_id"] == SID


def test_acknowledging_without_a_notice_changes_nothing_a_ui_sees(project: Path) -> None:
    """`session.ack_recovery` with nothing to acknowledge answers ok and saves nothing."""
    writer, harness = _start(project, os.getpid())
    before = ok(harness.call(writer, Op.SESSION_GET))
    after = ok(harness.call(writer, Op.SESSION_ACK_RECOVERY))
    assert after["recovery"] is None
    assert {k: v for k, v in after.items() if k != "revision"} == {
        k: v for k, v in before.items() if k != "revision"
    }
    quiesce(harness, writer)
    assert "recovery_acknowledged" not in [e["reason"] for e in harness.published("session.saved")]


def test_an_unacknowledged_notice_carries_over_into_the_next_session(project: Path) -> None:
    """A clean stop and a new session do not drop a notice the UI never acknowledged."""
    _crashed_session(project)
    writer, _ = _start(project, os.getpid())
    writer.stop()  # clean: the supervisor (this process) lives
    fresh, harness = _start(project, os.getpid(), session_id="2026-03-02-100000")
    assert not harness.published("session.recovered"), "no new interruption"
    notice = ok(harness.call(fresh, Op.SESSION_STATUS))["recovery"]
    assert notice["interrupted_session_id"] == SID
