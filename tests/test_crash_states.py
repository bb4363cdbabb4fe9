"""Power cuts at every write: the quick crash-state exploration (issue 10, proof 9).

`python -m bench crash` runs the full exploration (about 10,000 states);
here each worker's workload runs small, and every state it could leave is
still checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash_explore import explore
from bench.crashfs import CrashRecorder, crash_states
from services.store import AtomicJsonFile
from services.store.jsonl import JsonLinesLog


@pytest.mark.parametrize("workload", ["session_writer", "cost_ledger", "history_archiver"])
def test_no_crash_state_loses_an_acknowledged_operation(workload: str, tmp_path: Path) -> None:
    """Every crash state of a short workload keeps every acknowledged op and readable files."""
    report = explore(workload, 6, tmp_path, restart_every=10)
    assert report.checked >= 50, report.line()
    assert report.problems == [], "\n".join(report.problems[:10])


def test_the_explorer_finds_a_missing_journal_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the journal's fsync taken out, the explorer reports lost acknowledged ops."""
    original = JsonLinesLog._write_durably

    def unsynced(self: JsonLinesLog, data: bytes, *, fsync: bool = True) -> None:
        original(self, data, fsync=False)

    monkeypatch.setattr(JsonLinesLog, "_write_durably", unsynced)
    report = explore("session_writer", 4, tmp_path, restart_every=1000)
    assert any("acknowledged open_file lost" in problem for problem in report.problems)


def test_a_save_without_its_folder_fsync_can_be_undone(tmp_path: Path) -> None:
    """An atomic save's rename is undone in some state until its folder fsync is recorded."""
    path = tmp_path / ".session" / "current.json"
    store = AtomicJsonFile(path)
    store.save({"v": 1})
    recorder = CrashRecorder(tmp_path)
    with recorder.recording():
        store.save({"v": 2})
    before_fsync = [s for s in recorder.snapshots if s.label.startswith("rename")][-1]
    contents = {state.files.get(".session/current.json") for state in crash_states(before_fsync)}
    assert contents == {b'{\n  "v": 1\n}\n', b'{\n  "v": 2\n}\n'}
    after = recorder.snapshots[-1]
    assert after.label.startswith("fsync_dir")
    assert {state.files[".session/current.json"] for state in crash_states(after)} == {
        b'{\n  "v": 2\n}\n'
    }
    assert {state.files[".session/current.json.prev"] for state in crash_states(after)} == {
        b'{\n  "v": 1\n}\n'
    }
