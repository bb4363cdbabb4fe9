"""The supervisor under fire: real processes, real SIGKILLs, real malformed frames."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from service import pid_alive, run_cli, running_service, start_service

pytestmark = pytest.mark.slow

READ_OPS = {
    "session_writer": "session.get",
    "cost_ledger": "cost.totals",
    "history_archiver": "history.list",
}


def _wait(predicate: Any, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _wait_subscribed(service: Any, sub: zmq.Socket[bytes], timeout_s: float = 5.0) -> None:
    """Return once `sub`'s subscriptions are in force at the event socket, not after a guess.

    A probe subscription, made after the others, travels the same connection:
    when an event it selects arrives, every earlier subscription has arrived
    too. The probe event is a `session.saved` the test provokes.
    """
    probe = b"session.saved"
    sub.setsockopt(zmq.SUBSCRIBE, probe)
    deadline = time.monotonic() + timeout_s
    screens = itertools.count()
    while True:
        service.request("session.set_screen", {"screen": f"probe-{next(screens)}"})
        service.request("session.save")
        if sub.poll(50):
            topic, _ = sub.recv_multipart()
            if topic == probe:
                break
        assert time.monotonic() < deadline, "the subscription never took effect"
    sub.setsockopt(zmq.UNSUBSCRIBE, probe)
    while sub.poll(0):
        sub.recv_multipart()  # probe events still on their way


def test_kill_9_of_each_worker_while_requests_flow_answers_every_request(tmp_path: Path) -> None:
    """Requests sent while each worker is SIGKILLed all get ok replies; the worker is back."""
    with running_service(tmp_path / "novel") as service:
        stop = threading.Event()
        answers: list[dict[str, Any]] = []
        errors: list[BaseException] = []

        def load() -> None:
            sock = service.socket()
            while not stop.is_set():
                for op in READ_OPS.values():
                    try:
                        answers.append(service.request(op, sock=sock, timeout_s=8))
                    except BaseException as exc:
                        errors.append(exc)
                        return

        threads = [threading.Thread(target=load) for _ in range(2)]
        for thread in threads:
            thread.start()
        for name in ("session_writer", "cost_ledger", "history_archiver", "file_watcher"):
            before = service.wait_running(name)
            os.kill(before["pid"], signal.SIGKILL)
            _wait(
                lambda n=name, p=before["pid"]: service.worker(n)["pid"] not in (None, p), 5, name
            )
            after = service.wait_running(name)
            assert after["restarts"] == 1
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        assert not errors, errors
        assert answers and all(reply["ok"] for reply in answers), [
            a for a in answers if not a["ok"]
        ]


def test_request_waits_for_a_restarting_worker(tmp_path: Path) -> None:
    """A request sent right after its worker was killed is delivered to the replacement."""
    with running_service(tmp_path / "novel") as service:
        pid = service.wait_running("cost_ledger")["pid"]
        os.kill(pid, signal.SIGKILL)
        reply = service.request("cost.totals", timeout_s=6)
        assert reply["ok"], reply
        assert service.worker("cost_ledger")["pid"] != pid


def test_worker_events_announce_exit_and_restart_with_rising_seq(tmp_path: Path) -> None:
    """A subscriber sees worker.exited (with the signal) then worker.started, seq rising by one."""
    with running_service(tmp_path / "novel") as service:
        sub = service.context.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"worker.")
        sub.connect(service.endpoints["events"])
        _wait_subscribed(service, sub)
        pid = service.wait_running("history_archiver")["pid"]
        os.kill(pid, signal.SIGKILL)
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e["topic"] == "worker.started" for e in seen):
            if sub.poll(100):
                topic, body = sub.recv_multipart()
                event = json.loads(body)
                assert event["topic"] == topic.decode()
                if event["topic"].startswith("worker."):  # not a late probe event
                    seen.append(event)
        sub.close(linger=0)
        exited = next(e for e in seen if e["topic"] == "worker.exited")
        started = next(e for e in seen if e["topic"] == "worker.started")
        assert exited["data"]["name"] == "history_archiver"
        assert exited["data"]["signal"] == "SIGKILL"
        assert started["source"] == exited["source"] == "supervisor"
        assert started["seq"] == exited["seq"] + 1


def test_kill_9_of_the_supervisor_leaves_no_orphan_and_next_start_takes_over(
    tmp_path: Path,
) -> None:
    """Workers exit within 1 s of the supervisor's SIGKILL; a new start takes the lock over."""
    project = tmp_path / "novel"
    service = start_service(project)
    try:
        pids = service.worker_pids()
        assert len(pids) == 4
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()
        took = _wait(lambda: not any(pid_alive(pid) for pid in pids), 3, "workers to exit")
        assert took < 1.0, f"workers outlived the supervisor by {took:.2f} s"
    finally:
        service.stop()
    with running_service(project) as second:
        assert second.status()["session_id"]
        assert all(w["state"] == "running" for w in second.status()["workers"])


def test_second_start_is_refused_with_the_running_pid(tmp_path: Path) -> None:
    """`supervisor start` on a served project exits 1 and names the running supervisor."""
    project = tmp_path / "novel"
    with running_service(project) as service:
        result = run_cli(project, "start")
        assert result.returncode == 1
        assert f"already running (pid {service.process.pid})" in result.stderr


def test_stale_lock_file_is_taken_over(tmp_path: Path) -> None:
    """A lock file naming a dead pid (a crashed supervisor) does not prevent a start."""
    project = tmp_path / "novel"
    run_dir = project / ".session" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "supervisor.lock").write_text("999999\n")
    (run_dir / "endpoints.json").write_text('{"stale": true}')
    with running_service(project) as service:
        assert service.endpoints["supervisor_pid"] == service.process.pid


def test_status_and_stop_exit_3_when_nothing_runs(tmp_path: Path) -> None:
    """status and stop say so and exit 3 when no service runs for the project."""
    project = tmp_path / "novel"
    project.mkdir()
    status = run_cli(project, "status", "--json")
    assert status.returncode == 3
    assert json.loads(status.stdout)["running"] is False
    assert run_cli(project, "stop").returncode == 3


def test_status_json_lists_every_worker_and_stop_is_clean(tmp_path: Path) -> None:
    """status --json shows the four workers running; stop exits 0 and removes endpoints.json."""
    project = tmp_path / "novel"
    with running_service(project) as service:
        status = run_cli(project, "status", "--json")
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        names = {w["name"]: w for w in document["workers"]}
        assert set(names) == {"session_writer", "cost_ledger", "file_watcher", "history_archiver"}
        assert all(w["state"] == "running" and w["pid"] for w in names.values())
        human = run_cli(project, "status")
        assert "session_writer" in human.stdout and "running" in human.stdout
        stopped = run_cli(project, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert service.process.wait(timeout=10) == 0
        assert not (project / ".session" / "run" / "endpoints.json").exists()


def test_hung_worker_is_killed_and_restarted(tmp_path: Path) -> None:
    """A worker that stops heartbeating (SIGSTOP) is killed and replaced."""
    with running_service(tmp_path / "novel") as service:
        pid = service.wait_running("session_writer")["pid"]
        os.kill(pid, signal.SIGSTOP)
        _wait(lambda: service.worker("session_writer")["pid"] not in (None, pid), 5, "replacement")
        entry = service.wait_running("session_writer")
        assert "missed heartbeats" in (entry["last_exit"] or "")
        assert service.request("session.get")["ok"]
        assert not pid_alive(pid)


def test_worker_crashing_at_start_backs_off_then_fails_while_others_serve(tmp_path: Path) -> None:
    """A worker that cannot start (its folder is a file) ends failed; the rest keep answering."""
    project = tmp_path / "novel"
    (project / ".session").mkdir(parents=True)
    (project / ".session" / "archive").write_text("not a folder")
    service = start_service(project, config={"supervisor": {"request_wait_s": 0.5}})
    try:
        entry = service.worker("history_archiver")
        _wait(lambda: service.worker("history_archiver")["state"] == "failed", 15, "failed state")
        entry = service.worker("history_archiver")
        assert entry["restarts"] == 5
        reply = service.request("history.list")
        assert reply["ok"] is False and reply["error"]["code"] == "unavailable"
        assert "history_archiver" in reply["error"]["message"]
        assert service.request("session.get")["ok"]
        assert service.request("cost.totals")["ok"]
    finally:
        service.stop()


MALFORMED: list[tuple[list[bytes], str]] = [
    ([b"", b"not json"], "bad_request"),
    ([b"", b"[1, 2]"], "bad_request"),
    ([b"", b'{"v": 1, "op": "session.get"}'], "bad_request"),
    ([b"", b'{"v": 2, "id": "x", "op": "session.get"}'], "bad_request"),
    ([b"", b'{"v": 1, "id": 7, "op": "session.get"}'], "bad_request"),
    ([b"", b"\xff\xfe"], "bad_request"),
    ([b"", b"{" + b" " * (1024 * 1024 + 10) + b"}"], "bad_request"),
    ([b"", b'{"v":1,"id":"m","op":"a"}', b"extra"], "bad_request"),
    ([b"", b'{"v": 1, "id": "u", "op": "session.fly"}'], "unknown_op"),
    ([b"", b'{"v": 1, "id": "w", "op": "nothing.here"}'], "unknown_op"),
    (
        [b"", b'{"v": 1, "id": "a", "op": "session.set_stage", "args": {"stage": "x"}}'],
        "invalid_args",
    ),
    (
        [
            b"",
            b'{"v": 1, "id": "n", "op": "cost.log", "args": {"operation": "x", "model": "m",'
            b' "input_tokens": -5, "output_tokens": 1}}',
        ],
        "invalid_args",
    ),
    ([b"", b'{"v": 1, "id": "s", "op": "session.get", "args": []}'], "invalid_args"),
]


def test_malformed_frames_get_error_replies_and_crash_nothing(tmp_path: Path) -> None:
    """Every malformed request gets the contract's error code; no process restarts."""
    with running_service(tmp_path / "novel") as service:
        sock = service.socket()
        for frames, code in MALFORMED:
            sock.send_multipart(frames)
            assert sock.poll(5000), f"no reply to {frames[1][:40]!r}"
            reply = json.loads(sock.recv_multipart()[-1])
            assert reply["ok"] is False, reply
            assert reply["error"]["code"] == code, (frames[1][:60], reply)
            assert reply["error"]["message"]
        no_delimiter = service.socket()
        no_delimiter.send(b'{"v": 1, "id": "plain", "op": "session.get"}')
        assert no_delimiter.poll(5000)
        assert json.loads(no_delimiter.recv())["ok"] is True
        assert all(w["restarts"] == 0 for w in service.status()["workers"])


def test_long_project_path_serves_over_short_ipc_paths(tmp_path: Path) -> None:
    """A project path too long for socket paths is still served over ipc from the runtime folder."""
    project = tmp_path / ("a-very-long-folder-name-for-a-novel-" * 3) / "novel"
    with running_service(project) as service:
        endpoints = service.endpoints
        for name in ("command", "events"):
            assert endpoints[name].startswith(f"ipc://{endpoints['runtime_dir']}/")
            assert len(endpoints[name]) - len("ipc://") <= 100
        assert service.request("session.get")["ok"]


def _parent_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def test_workers_are_forked_children_of_the_supervisor(tmp_path: Path) -> None:
    """Workers come from the fork server yet are the supervisor's own children (it reaps them)."""
    with running_service(tmp_path / "novel") as service:
        for pid in service.worker_pids():
            assert _parent_of(pid) == service.process.pid
            # Forked, not a fresh interpreter: the early fork server is itself a fork
            # of the supervisor (its command line), a replacement one says its module.
            assert b"services.runtime.host" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_a_killed_fork_server_is_replaced_and_restarts_keep_working(tmp_path: Path) -> None:
    """SIGKILL of the fork server harms no worker; a worker killed afterwards still comes back."""
    with running_service(tmp_path / "novel") as service:
        workers = set(service.worker_pids())
        server = _fork_server_pid(service)
        assert server not in workers and _parent_of(server) == service.process.pid
        os.kill(server, signal.SIGKILL)
        time.sleep(0.2)
        assert set(service.worker_pids()) == workers
        victim = service.wait_running("cost_ledger")["pid"]
        os.kill(victim, signal.SIGKILL)
        assert service.request("cost.totals", timeout_s=8)["ok"]
        assert service.wait_running("cost_ledger")["pid"] != victim


def test_without_the_fork_server_workers_are_fresh_interpreters(tmp_path: Path) -> None:
    """With fork_server = false every worker is spawned cold and restarts still work."""
    config = {"supervisor": {"fork_server": False}}
    with running_service(tmp_path / "novel", config=config) as service:
        pid = service.wait_running("session_writer")["pid"]
        assert b"services.runtime.host" in Path(f"/proc/{pid}/cmdline").read_bytes()
        os.kill(pid, signal.SIGKILL)
        assert service.request("session.get", timeout_s=8)["ok"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fork_server_pid(service: Any) -> int:
    pid: int = service.status()["fork_server_pid"]
    return pid


def test_a_failed_worker_leaves_the_supervisor_idle(tmp_path: Path) -> None:
    """After a worker is marked failed, the supervisor does not spin (CPU stays near zero)."""
    project = tmp_path / "novel"
    (project / ".session").mkdir(parents=True)
    (project / ".session" / "archive").write_text("not a folder")
    with running_service(project) as service:
        _wait(lambda: service.worker("history_archiver")["state"] == "failed", 15, "failed")
        before = _cpu_seconds(service.process.pid)
        time.sleep(1.0)
        assert _cpu_seconds(service.process.pid) - before < 0.2


def test_a_stuck_fork_server_costs_no_healthy_worker(tmp_path: Path) -> None:
    """With the fork server frozen, a killed worker still comes back and no other is killed."""
    with running_service(tmp_path / "novel") as service:
        os.kill(_fork_server_pid(service), signal.SIGSTOP)
        victim = service.wait_running("cost_ledger")["pid"]
        os.kill(victim, signal.SIGKILL)
        assert service.request("cost.totals", timeout_s=8)["ok"]
        time.sleep(0.5)
        restarts = {w["name"]: w["restarts"] for w in service.status()["workers"]}
        assert restarts == {
            "session_writer": 0,
            "cost_ledger": 1,
            "file_watcher": 0,
            "history_archiver": 0,
        }
