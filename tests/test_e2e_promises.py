"""The user's promises, checked through the real process tree with real SIGKILLs.

An `ok` reply means on disk; a crash of anything loses nothing acknowledged;
a clean stop is not an interruption; `--fresh` starts anew and the history
keeps the interrupted session.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from service import RunningService, run_cli, running_service, start_service

pytestmark = pytest.mark.slow


def ok(reply: dict[str, Any]) -> Any:
    """The result of an ok reply (fails the test with the error otherwise)."""
    assert reply["ok"], reply
    return reply["result"]


def _crash_whole_tree(service: RunningService) -> None:
    service.crash()


def test_kill_9_of_the_writer_right_after_ok_loses_nothing(tmp_path: Path) -> None:
    """Changes acknowledged just before the session writer's SIGKILL are all there after it."""
    with running_service(tmp_path / "novel", config={"autosave": {"interval_s": 3600}}) as svc:
        ok(svc.request("session.set_stage", {"stage": "enhancing"}))
        ok(svc.request("session.open_file", {"path": "manuscript/ch5.md", "cursor_line": 142}))
        ok(svc.request("session.add_recent_query", {"query": "Who is Noni?", "source": "cognee"}))
        os.kill(svc.worker("session_writer")["pid"], signal.SIGKILL)
        document = ok(svc.request("session.get"))
        assert document["current_state"]["stage"] == "enhancing"
        assert document["open_files"] == [
            {"path": "manuscript/ch5.md", "cursor_line": 142, "cursor_col": 0}
        ]
        assert [q["query"] for q in document["recent_queries"]] == ["Who is Noni?"]


def test_crash_of_the_whole_tree_resumes_same_session_and_state(tmp_path: Path) -> None:
    """After SIGKILL of every process, start (no terminal) says so and resumes id and state."""
    project = tmp_path / "novel"
    service = start_service(project, config={"autosave": {"interval_s": 3600}})
    try:
        session_id = ok(service.request("session.get"))["session_id"]
        ok(service.request("session.set_breadcrumb", {"breadcrumb": ["Home", "Act 4"]}))
        ok(service.request("session.set_stage", {"stage": "analyzing"}))  # snapshots now
        deadline = time.monotonic() + 5
        while ok(service.request("session.status"))["dirty"] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # a clearly later mtime than the snapshot's save time
        # The watcher would report the file and the writer would snapshot at once;
        # freeze the watcher so the file is really "changed since the last save".
        os.kill(service.worker("file_watcher")["pid"], signal.SIGSTOP)
        (project / "manuscript").mkdir(exist_ok=True)
        (project / "manuscript" / "late.md").write_text("written after the last save\n")
        _crash_whole_tree(service)
    finally:
        service.stop()
    with running_service(project) as again:
        text = again.log_text()
        assert "was interrupted" in text
        assert "manuscript/late.md" in text
        document = ok(again.request("session.get"))
        assert document["session_id"] == session_id
        assert document["current_state"]["stage"] == "analyzing"
        assert document["current_state"]["breadcrumb"] == ["Home", "Act 4"]


def test_clean_stop_is_not_reported_as_interrupted(tmp_path: Path) -> None:
    """After `supervisor stop`, the next start begins a new session without a recovery notice."""
    project = tmp_path / "novel"
    with running_service(project) as first:
        first_id = ok(first.request("session.get"))["session_id"]
        ok(first.request("session.set_stage", {"stage": "writing"}))
        assert run_cli(project, "stop").returncode == 0
        first.process.wait(timeout=10)
    current = json.loads((project / ".session" / "current.json").read_text())
    assert current["ended_at"] is not None
    with running_service(project) as second:
        assert "interrupted" not in second.log_text()
        assert ok(second.request("session.get"))["session_id"] != first_id
        history = ok(second.request("history.list"))
        statuses = {entry["session_id"]: entry["status"] for entry in history}
        assert statuses[first_id] == "ended"


def test_fresh_after_a_crash_starts_anew_and_history_keeps_the_interrupted(
    tmp_path: Path,
) -> None:
    """`--fresh` after a crash starts a new session; the old one is in history as interrupted."""
    project = tmp_path / "novel"
    service = start_service(project)
    try:
        old_id = ok(service.request("session.get"))["session_id"]
        ok(
            service.request(
                "cost.log",
                {
                    "operation": "scene_generation",
                    "model": "claude-sonnet-3.5",
                    "input_tokens": 1000,
                    "output_tokens": 1000,
                },
            )
        )
        # The archiver journals the cost.logged event before it answers for it:
        # once history.list shows the cost, the crash below cannot lose it.
        deadline = time.monotonic() + 5
        while not any(
            entry["session_id"] == old_id and Decimal(str(entry["total_cost"])) > 0
            for entry in ok(service.request("history.list"))
        ):
            assert time.monotonic() < deadline, "the archiver never saw the cost"
            time.sleep(0.01)
        _crash_whole_tree(service)
    finally:
        service.stop()
    with running_service(project, "--fresh") as fresh:
        new_id = ok(fresh.request("session.get"))["session_id"]
        assert new_id != old_id
        history = {entry["session_id"]: entry for entry in ok(fresh.request("history.list"))}
        assert history[old_id]["status"] == "interrupted"
        assert Decimal(str(history[old_id]["total_cost"])) == Decimal("0.018")
        assert history[new_id]["status"] == "active"


def test_kill_9_of_the_ledger_under_concurrent_load_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """Eight clients log costs while the ledger is SIGKILLed twice: every ok is counted once."""
    with running_service(tmp_path / "novel") as svc:
        acknowledged: list[str] = []
        lock = threading.Lock()
        failures: list[Any] = []

        def client(index: int) -> None:
            sock = svc.socket()
            for k in range(40):
                request_id = f"c{index}-{k}"
                args = {
                    "operation": "scene",
                    "model": "gemini-flash",
                    "input_tokens": 1 + k,
                    "output_tokens": index,
                }
                reply: dict[str, Any] = {}
                for _attempt in range(6):  # as a client should: re-send the same id
                    try:
                        reply = svc.request(
                            "cost.log", args, request_id=request_id, timeout_s=3, sock=sock
                        )
                    except TimeoutError:
                        continue
                    if reply["ok"] or reply["error"]["code"] not in {"internal", "unavailable"}:
                        break
                if reply.get("ok"):
                    with lock:
                        acknowledged.append(request_id)
                else:
                    failures.append(reply)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for _ in range(2):
            time.sleep(0.3)
            os.kill(svc.wait_running("cost_ledger")["pid"], signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures
        assert len(acknowledged) == 320
        totals = ok(svc.request("cost.totals"))
        expected = sum(
            (
                Decimal(1 + k) * Decimal("0.000000075") + Decimal(i) * Decimal("0.0000003")
                for i in range(8)
                for k in range(40)
            ),
            Decimal(0),
        )
        assert Decimal(str(totals["session_total"])) == expected
        ledger_ids = [
            json.loads(line).get("id")
            for path in sorted((svc.project / ".session" / "ledger").glob("*.jsonl"))
            for line in path.read_text().splitlines()
            if line.strip()
        ]
        logged = [rid for rid in ledger_ids if rid in set(acknowledged)]
        assert sorted(logged) == sorted(acknowledged), "lost or duplicated ledger lines"


def test_kill_9_of_the_archiver_mid_session_loses_no_file_or_operation(tmp_path: Path) -> None:
    """Files and operations seen around an archiver SIGKILL all end up in the session's entry."""
    project = tmp_path / "novel"
    with running_service(project) as svc:
        (project / "manuscript").mkdir(exist_ok=True)
        for index in range(3):
            (project / "manuscript" / f"before-{index}.md").write_text("draft\n")
            ok(
                svc.request(
                    "cost.log",
                    {
                        "operation": f"op{index}",
                        "model": "gpt-4",
                        "input_tokens": 100,
                        "output_tokens": 100,
                    },
                )
            )
        time.sleep(0.3)
        os.kill(svc.wait_running("history_archiver")["pid"], signal.SIGKILL)
        for index in range(3):
            (project / "manuscript" / f"after-{index}.md").write_text("draft\n")
            ok(
                svc.request(
                    "cost.log",
                    {
                        "operation": "late",
                        "model": "gpt-4",
                        "input_tokens": 100,
                        "output_tokens": 100,
                    },
                )
            )
        session_id = ok(svc.request("session.get"))["session_id"]
        deadline = time.monotonic() + 10
        while True:
            entries = {e["session_id"]: e for e in ok(svc.request("history.list"))}
            entry = entries.get(session_id, {})
            created = set(entry.get("files_created", []))
            if len(created) >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert created == {
            f"manuscript/{kind}-{i}.md" for kind in ("before", "after") for i in range(3)
        }
        assert entry["operations_count"] == {"op0": 1, "op1": 1, "op2": 1, "late": 3}
        assert Decimal(str(entry["total_cost"])) == Decimal("0.054")
