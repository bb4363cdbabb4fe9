"""kill -9 of the archiver mid-session loses nothing it had accepted."""

from __future__ import annotations

import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import SpawnPython

from protocol.names import WorkerName
from services.history_archiver import HistoryArchiver
from services.inprocess import make_context

CHILD = """
import itertools, sys, time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from protocol.envelopes import Event
from protocol.names import WorkerName
from services.history_archiver import HistoryArchiver
from services.inprocess import make_context

ctx, _ = make_context(Path({project!r}), WorkerName.HISTORY_ARCHIVER, session_id="s-crash")
worker = HistoryArchiver(ctx)
worker.start()
print("ready", flush=True)
seq = itertools.count()
for n in itertools.count():
    worker.on_event(Event(topic="file.created", source="file_watcher", seq=next(seq),
                          ts=datetime.now(UTC), data={{"path": f"manuscript/f{{n}}.md"}}))
    print(f"file {{n}}", flush=True)
    operation = {{"timestamp": "2026-11-23T15:30:00Z", "operation": "scene_generation",
                 "model": "gemini-flash", "input_tokens": 1, "output_tokens": 1,
                 "cost": Decimal("0.00000007"), "session_id": "s-crash", "request_id": f"r{{n}}"}}
    worker.on_event(Event(topic="cost.logged", source="cost_ledger", seq=next(seq),
                          ts=datetime.now(UTC), data={{"operation": operation, "totals": {{}}}}))
    print(f"cost {{n}}", flush=True)
    deadline = worker.next_deadline()
    if deadline is not None and time.monotonic() >= deadline:
        worker.tick(time.monotonic())  # history.json snapshots race with the kill
"""


def _acked(lines: list[str], kind: str) -> int:
    numbers = [int(line.split()[1]) for line in lines if line.startswith(f"{kind} ")]
    return max(numbers) + 1 if numbers else 0


@pytest.mark.parametrize("kill_after_lines", [20, 600])
@pytest.mark.parametrize("next_session", ["s-crash", "s-next"], ids=["restart", "new-session"])
def test_kill_9_mid_session_loses_no_accepted_event(
    tmp_path: Path, spawn_python: SpawnPython, kill_after_lines: int, next_session: str
) -> None:
    """Every file and operation acknowledged before SIGKILL is in the entry after restart."""
    project = tmp_path / "book"
    project.mkdir()
    child = spawn_python(CHILD.format(project=str(project)))
    assert child.stdout is not None
    lines: list[str] = []
    give_up = time.monotonic() + 15
    while len(lines) < kill_after_lines and time.monotonic() < give_up:
        line = child.stdout.readline().decode()
        if not line:
            break
        lines.append(line.strip())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=5)
    lines += [line.decode().strip() for line in child.stdout.readlines()]
    files, operations = _acked(lines, "file"), _acked(lines, "cost")
    assert files > 0

    ctx, _ = make_context(project, WorkerName.HISTORY_ARCHIVER, session_id=next_session)
    restarted = HistoryArchiver(ctx)
    restarted.start()
    if next_session == "s-crash":
        entry = restarted.live.to_entry()
        assert entry.status == "active"  # the same session continues
    else:
        entry = next(e for e in restarted.others if e.session_id == "s-crash")
        assert entry.status == "interrupted"
        assert entry.end_time is not None and entry.end_time > entry.start_time
    assert {f"manuscript/f{n}.md" for n in range(files)} <= set(entry.files_created)
    assert len(entry.files_created) in {files, files + 1}  # one more may be on disk, not yet acked
    counted = entry.operations_count.get("scene_generation", 0)
    assert counted in {operations, operations + 1}
    assert entry.total_cost == Decimal("0.00000007") * counted  # exact, never doubled
    restarted.stop()
