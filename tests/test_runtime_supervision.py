"""The supervisor's restart, routing and re-delivery rules, without a real tree.

Fake children, sockets and clock (`runtime_fakes`): each test drives the same
`WorkerSupervision`, `RequestRouter` and `EventBus` the supervisor runs.
"""

from __future__ import annotations

import signal

import pytest
from runtime_fakes import Rig, request_frames

from protocol.names import Topic, WorkerName, WorkerState
from services.runtime.liveness import MISSED_HEARTBEATS
from services.runtime.routing import MAX_DELIVERIES
from services.runtime.stopping import StagedStop
from services.runtime.supervision import NOT_READY_IN_TIME

SW = WorkerName.SESSION_WRITER
CL = WorkerName.COST_LEDGER


def test_a_worker_runs_only_after_ready_and_the_service_is_ready_once_all_run() -> None:
    """Started workers are `starting`; READY makes them running; readiness is announced once."""
    rig = Rig()
    for slot in rig.slots.values():
        rig.supervision.start(slot, rig.clock.now)
    assert rig.state(SW) is WorkerState.STARTING
    rig.ready(SW)
    assert rig.state(SW) is WorkerState.RUNNING
    assert rig.settled_calls == 0
    rig.ready(CL)
    assert rig.settled_calls == 1
    started = [e for e in rig.published() if e["topic"] == Topic.WORKER_STARTED]
    assert [e["data"]["name"] for e in started] == ["session_writer", "cost_ledger"]
    rig.crash(CL)
    rig.ready(CL)
    assert rig.settled_calls == 1


def test_a_worker_that_fails_at_start_does_not_hold_the_others_back() -> None:
    """A worker that crash-loops to `failed` before READY still lets the service become ready."""
    rig = Rig(overrides={"supervisor": {"max_restarts": 2}})
    for slot in rig.slots.values():
        rig.supervision.start(slot, rig.clock.now)
    rig.ready(SW)
    for _ in range(3):
        rig.crash(CL, returncode=1)
        rig.tick(10.0)
        rig.beat(SW)
    assert rig.state(CL) is WorkerState.FAILED
    assert rig.settled_calls == 1


def test_the_first_crash_restarts_at_once_and_says_so() -> None:
    """kill -9 of a running worker spawns its replacement at the same instant."""
    rig = Rig()
    rig.start_all()
    rig.published()
    first = rig.child(SW)
    rig.crash(SW)
    assert rig.child(SW) is not first
    assert rig.state(SW) is WorkerState.STARTING
    exited = next(e for e in rig.published() if e["topic"] == Topic.WORKER_EXITED)
    assert exited["data"]["signal"] == "SIGKILL"
    assert exited["data"]["pid"] == first.pid


def test_a_crash_loop_backs_off_then_fails_and_answers_waiting_requests() -> None:
    """Quick repeated crashes wait longer each time, then the worker fails with a clear reason."""
    rig = Rig(overrides={"supervisor": {"max_restarts": 3, "backoff_initial_s": 0.1}})
    rig.start_all()
    rig.crash(CL, returncode=1)  # first: at once
    assert rig.state(CL) is WorkerState.STARTING
    rig.crash(CL, returncode=1)
    assert rig.state(CL) is WorkerState.BACKOFF
    spawned = len(rig.children[CL])
    rig.tick(0.05)
    assert len(rig.children[CL]) == spawned, "restarted before its back-off elapsed"
    rig.tick(0.06)
    assert rig.state(CL) is WorkerState.STARTING
    rig.crash(CL, returncode=1)
    assert rig.slot(CL).restart_at == pytest.approx(rig.clock.now + 0.2)
    rig.tick(0.2)
    rig.router.on_request(request_frames("r1", "cost.totals"))
    rig.crash(CL, returncode=1)
    assert rig.state(CL) is WorkerState.FAILED
    (reply,) = rig.replies()
    assert reply["error"]["code"] == "unavailable"
    assert "`supervisor restart cost_ledger`" in reply["error"]["message"]
    assert any(e["topic"] == Topic.WORKER_FAILED for e in rig.published())
    rig.router.on_request(request_frames("r2", "cost.totals"))
    assert rig.replies()[0]["error"]["code"] == "unavailable"


def test_a_silent_worker_is_killed_for_missed_heartbeats_and_not_before() -> None:
    """A worker that owes a reply is SIGKILLed only once it was silent longer than the window."""
    rig = Rig()
    rig.start_all()
    rig.router.on_request(request_frames("r1", "session.get"))
    rig.router.on_request(request_frames("r2", "cost.totals"))
    window = (
        rig.settings.supervisor.heartbeat_interval_s * rig.settings.supervisor.heartbeat_liveness
    )
    rig.tick(window * 0.9)
    rig.beat(CL)
    rig.tick(window * 0.2)
    assert not rig.child(CL).killed
    assert rig.child(SW).killed
    assert rig.slot(SW).kill_reason == MISSED_HEARTBEATS
    rig.crash(SW)
    assert "missed heartbeats" in (rig.slot(SW).last_exit or "")


def test_the_short_window_counts_from_when_the_work_was_handed() -> None:
    """A worker idle for long, then handed a request, gets the whole short window to answer."""
    rig = Rig()
    rig.start_all()
    sup = rig.settings.supervisor
    window = sup.heartbeat_interval_s * sup.heartbeat_liveness
    rig.tick(sup.idle_heartbeat_s * 0.9)  # idle and silent: well past the short window
    rig.router.on_request(request_frames("r1", "session.get"))
    rig.tick(window * 0.9)
    assert not rig.child(SW).killed, "killed before its short window ran out"
    rig.tick(window * 0.2)
    assert rig.slot(SW).kill_reason == MISSED_HEARTBEATS
    assert not rig.child(CL).killed


def test_an_unacknowledged_event_is_owed_like_a_reply() -> None:
    """A worker that does not ACK a delivered event is judged by the short window."""
    rig = Rig()
    rig.start_all()
    sup = rig.settings.supervisor
    window = sup.heartbeat_interval_s * sup.heartbeat_liveness
    rig.bus.fan_out(b"file.created", b"file_watcher", b"2026-11-30T18:00:00Z", b'{"path":"a.md"}')
    assert rig.slot(SW).unacked
    rig.tick(window * 1.1)
    assert rig.slot(SW).kill_reason == MISSED_HEARTBEATS
    assert not rig.child(CL).killed


def test_an_idle_worker_is_judged_by_the_idle_window() -> None:
    """A worker that owes nothing may stay silent for one idle beat plus the short window."""
    rig = Rig()
    rig.start_all()
    sup = rig.settings.supervisor
    idle_window = sup.idle_heartbeat_s + sup.heartbeat_interval_s * sup.heartbeat_liveness
    rig.tick(idle_window * 0.95)
    rig.beat(CL)
    assert not rig.child(SW).killed
    rig.tick(idle_window * 0.1)
    assert rig.slot(SW).kill_reason == MISSED_HEARTBEATS
    assert not rig.child(CL).killed


def test_an_answered_request_ends_the_short_window() -> None:
    """Once a worker answered all it owed, silence is judged by the idle window again."""
    rig = Rig()
    rig.start_all()
    sup = rig.settings.supervisor
    window = sup.heartbeat_interval_s * sup.heartbeat_liveness
    rig.router.on_request(request_frames("r1", "session.get"))
    rig.tick(window * 0.5)
    rig.slot(SW).inflight.clear()  # the reply came back
    rig.beat(SW)
    rig.tick(window * 2)
    assert not rig.child(SW).killed


def test_a_worker_not_ready_in_time_is_killed() -> None:
    """A worker that never says READY is killed after the ready timeout."""
    rig = Rig()
    rig.supervision.start(rig.slot(SW), rig.clock.now)
    rig.tick(rig.settings.supervisor.ready_timeout_s - 0.01)
    assert not rig.child(SW).killed
    rig.tick(0.02)
    assert rig.child(SW).signals == [signal.SIGKILL]
    assert rig.slot(SW).kill_reason == NOT_READY_IN_TIME


def test_requests_route_by_op_prefix_to_the_running_owner() -> None:
    """session.* goes to the session writer and cost.* to the ledger, as the client sent it."""
    rig = Rig()
    rig.start_all()
    rig.router.on_request(request_frames("a", "session.get"))
    rig.router.on_request(request_frames("b", "cost.totals"))
    sent = rig.backend.take()
    assert [(m[0], m[1]) for m in sent] == [(b"session_writer", b"REQ"), (b"cost_ledger", b"REQ")]
    assert rig.replies() == []


def test_requests_for_a_starting_worker_wait_and_are_delivered_in_order() -> None:
    """Requests sent while their worker restarts are handed over, in order, once it is READY."""
    rig = Rig()
    rig.start_all()
    rig.crash(SW)
    for request_id in ("w1", "w2", "w3"):
        rig.router.on_request(request_frames(request_id, "session.get"))
    assert rig.handed_requests(SW) == []
    rig.ready(SW)
    assert [r["id"] for _, r in rig.handed_requests(SW)] == ["w1", "w2", "w3"]


def test_a_request_waits_no_longer_than_request_wait_s() -> None:
    """A worker that does not come back in time gets its waiting requests answered unavailable."""
    rig = Rig()
    rig.start_all()
    rig.crash(SW)
    rig.router.on_request(request_frames("late", "session.get"))
    rig.beat(CL)
    rig.tick(rig.settings.supervisor.request_wait_s - 0.1)
    assert rig.replies() == []
    rig.beat(CL)
    rig.tick(0.2)
    (reply,) = rig.replies()
    assert reply["id"] == "late" and reply["error"]["code"] == "unavailable"


def test_a_request_in_flight_is_redelivered_to_the_replacement_with_the_same_id() -> None:
    """A crash with a request in flight hands the same request to the next incarnation."""
    rig = Rig()
    rig.start_all()
    rig.router.on_request(request_frames("inflight", "session.get"))
    ((token, request),) = rig.handed_requests(SW)
    rig.crash(SW)
    rig.ready(SW)
    ((again_token, again),) = rig.handed_requests(SW)
    assert again == request and again_token == token


def test_a_request_that_crashes_its_worker_max_deliveries_times_is_answered_internal() -> None:
    """The MAX_DELIVERIES promise: never handed over more often, then answered `internal`."""
    rig = Rig(overrides={"supervisor": {"max_restarts": 50, "backoff_initial_s": 0.01}})
    rig.start_all()
    rig.router.on_request(request_frames("poison", "session.get"))
    deliveries = len(rig.handed_requests(SW))
    for _ in range(MAX_DELIVERIES + 2):
        rig.crash(SW)
        rig.tick(1.0)
        for slot in rig.slots.values():
            rig.beat(slot.name)
        if rig.state(SW) is WorkerState.STARTING:
            rig.ready(SW)
        deliveries += len(rig.handed_requests(SW))
    assert deliveries == MAX_DELIVERIES
    (reply,) = rig.replies()
    assert reply["id"] == "poison" and reply["error"]["code"] == "internal"
    assert f"crashed {MAX_DELIVERIES} times" in reply["error"]["message"]


def test_unacknowledged_events_are_redelivered_after_a_crash() -> None:
    """An event delivered but not ACKed reaches the next incarnation of its subscriber."""
    rig = Rig(workers=(WorkerName.HISTORY_ARCHIVER, WorkerName.FILE_WATCHER))
    rig.start_all()
    rig.backend.take()
    rig.bus.fan_out(b"file.created", b"file_watcher", b"2026-11-30T18:00:00Z", b'{"path":"a.md"}')
    first = [m for m in rig.backend.take() if m[1] == b"EVT"]
    assert len(first) == 1
    rig.crash(WorkerName.HISTORY_ARCHIVER)
    rig.ready(WorkerName.HISTORY_ARCHIVER)
    again = [m for m in rig.backend.take() if m[1] == b"EVT"]
    assert again == first


@pytest.mark.parametrize(
    ("op", "args", "code"),
    [
        ("supervisor.status", {"x": 1}, "invalid_args"),
        ("supervisor.status", {}, None),
        ("supervisor.fly", {}, "unknown_op"),
    ],
)
def test_the_supervisors_own_ops_check_their_args(
    op: str, args: dict[str, int], code: str | None
) -> None:
    """supervisor.status with any args key is invalid_args; an unknown supervisor op unknown_op."""
    rig = Rig()
    rig.start_all()
    rig.router.on_request(request_frames("s", op, args))
    (reply,) = rig.replies()
    if code is None:
        assert reply["ok"] is True
    else:
        assert reply["error"]["code"] == code and reply["error"]["message"]


def test_the_staged_stop_asks_then_escalates_to_sigterm_then_sigkill() -> None:
    """A worker that ignores STOP gets SIGTERM after the grace, then SIGKILL after another."""
    rig = Rig(workers=(WorkerName.FILE_WATCHER, SW))
    rig.start_all()
    rig.backend.take()
    grace = rig.settings.supervisor.stop_grace_s
    stop = StagedStop(
        rig.slots,
        rig.settings.supervisor,
        send_stop=lambda slot: rig.backend.send(slot.identity),
        fail_waiting=rig.router.fail_waiting,
        touch_timers=lambda: None,
        log=rig.supervision.log,
    )
    rig.stopping = True
    stop.begin(rig.clock.now)
    assert [m[0] for m in rig.backend.take()] == [b"file_watcher"], "sources of events stop first"
    assert not stop.advance(rig.clock.advance(grace + 0.01))
    assert rig.child(WorkerName.FILE_WATCHER).signals == [signal.SIGTERM]
    assert not stop.advance(rig.clock.advance(grace + 0.01))
    assert rig.child(WorkerName.FILE_WATCHER).signals == [signal.SIGTERM, signal.SIGKILL]
    rig.crash(WorkerName.FILE_WATCHER)
    assert rig.state(WorkerName.FILE_WATCHER) is WorkerState.STOPPED
    assert not stop.advance(rig.clock.now)
    assert [m[0] for m in rig.backend.take()] == [b"session_writer"]
    rig.crash(SW, returncode=0)
    assert stop.advance(rig.clock.now)
    assert len(rig.children[SW]) == 1, "nothing restarts while stopping"


def test_a_worker_killed_before_its_stop_phase_restarts_and_is_then_stopped_cleanly() -> None:
    """A worker whose phase has not come yet is restarted when it dies, so its phase
    finds it running and it flushes (the soak's cost ledger, killed for missed beats
    while the file watcher stopped, left costs.json short of the ledger)."""
    rig = Rig(workers=(WorkerName.FILE_WATCHER, SW, CL))
    rig.start_all()
    rig.backend.take()
    stop = rig.begin_staged_stop()
    assert [m[0] for m in rig.backend.take()] == [b"file_watcher"]
    rig.crash(CL)  # e.g. SIGKILLed for missed heartbeats on a loaded machine
    assert rig.state(CL) is WorkerState.STARTING, "restarted: its stop phase has not come"
    assert len(rig.children[CL]) == 2
    rig.ready(CL)
    rig.crash(WorkerName.FILE_WATCHER, returncode=0)
    assert rig.state(WorkerName.FILE_WATCHER) is WorkerState.STOPPED
    assert not stop.advance(rig.clock.now)
    assert sorted(m[0] for m in rig.backend.take()) == [b"cost_ledger", b"session_writer"]
    assert rig.state(CL) is WorkerState.STOPPING, "asked to stop: it writes its final state"
    rig.crash(CL, returncode=0)
    rig.crash(SW)  # its phase came: no restart any more
    rig.tick(1.0)
    assert stop.advance(rig.clock.now)
    assert len(rig.children[CL]) == 2 and len(rig.children[SW]) == 1


def test_a_worker_killed_after_serving_for_seconds_restarts_at_once_every_time() -> None:
    """Five kills 2 s apart each restart at once; worker.exited names the stable-run rule."""
    rig = Rig()
    rig.start_all()
    rig.published()
    for _ in range(5):
        rig.clock.advance(2.0)
        rig.crash(SW)
        assert rig.state(SW) is WorkerState.STARTING, "backed off after a stable run"
        rig.ready(SW)
        exited = next(e for e in rig.published() if e["topic"] == Topic.WORKER_EXITED)
        assert exited["data"]["rule"] == "stable_run"
        assert exited["data"]["restart_in_s"] == 0


def test_worker_exited_names_the_backoff_and_intensity_rules_of_a_crash_loop() -> None:
    """A worker dying right after READY is a crash loop: back-off, then failed by intensity."""
    rig = Rig(overrides={"supervisor": {"max_restarts": 2, "backoff_initial_s": 0.1}})
    rig.start_all()
    rules = []
    for _ in range(3):
        rig.crash(CL, returncode=1)
        rig.tick(0.5)
        rig.beat(SW)
        if rig.state(CL) is WorkerState.STARTING:
            rig.ready(CL)
        rules += [
            (e["data"]["rule"], e["data"]["restart_in_s"])
            for e in rig.published()
            if e["topic"] == Topic.WORKER_EXITED
        ]
    assert rules == [("first_crash", 0), ("backoff", 0.1), ("intensity", None)]


# -- supervisor.restart ------------------------------------------------------------


def _restart(rig: Rig, worker: str, request_id: str = "rs") -> None:
    rig.router.on_request(request_frames(request_id, "supervisor.restart", {"worker": worker}))


def test_restart_of_a_running_worker_stops_it_gracefully_and_answers_once_it_is_back() -> None:
    """STOP, exit, a new process, READY, then the reply; requests sent meanwhile wait for it."""
    rig = Rig()
    rig.start_all()
    rig.backend.take()
    rig.published()
    old = rig.child(CL)
    _restart(rig, "cost_ledger")
    assert rig.backend.take() == [[b"cost_ledger", b"STOP"]]
    assert rig.state(CL) is WorkerState.STOPPING
    rig.router.on_request(request_frames("meanwhile", "cost.totals"))
    assert rig.replies() == [] and rig.handed_requests(CL) == []
    rig.crash(CL, returncode=0)
    assert rig.child(CL) is not old and rig.state(CL) is WorkerState.STARTING
    exited = next(e for e in rig.published() if e["topic"] == Topic.WORKER_EXITED)
    assert exited["data"]["rule"] == "requested" and exited["data"]["reason"] == "restart requested"
    assert rig.replies() == []
    rig.ready(CL)
    (reply,) = rig.replies()
    assert reply["id"] == "rs" and reply["ok"] is True
    (status,) = reply["result"]["workers"]
    assert (status["name"], status["state"], status["pid"]) == (
        "cost_ledger",
        "running",
        rig.child(CL).pid,
    )
    assert status["restarts"] == 0, "a requested restart is no crash"
    assert [r["id"] for _, r in rig.handed_requests(CL)] == ["meanwhile"]


def test_restart_brings_a_failed_worker_back_with_its_intensity_forgotten() -> None:
    """A failed worker starts again on request, and its next crash restarts at once."""
    rig = Rig(overrides={"supervisor": {"max_restarts": 1}})
    rig.start_all()
    rig.crash(CL, returncode=1)
    rig.ready(CL)
    rig.crash(CL, returncode=1)
    assert rig.state(CL) is WorkerState.FAILED
    failed = next(e for e in rig.published() if e["topic"] == Topic.WORKER_FAILED)
    assert "supervisor restart cost_ledger" in failed["data"]["reason"]
    rig.router.on_request(request_frames("refused", "cost.totals"))
    assert "`supervisor restart cost_ledger`" in rig.replies()[0]["error"]["message"]
    _restart(rig, "cost_ledger")
    assert rig.state(CL) is WorkerState.STARTING
    rig.ready(CL)
    assert rig.replies()[0]["result"]["workers"][0]["state"] == "running"
    rig.crash(CL, returncode=1)
    assert rig.state(CL) is WorkerState.STARTING, "the old crashes still counted"


def test_restart_all_restarts_every_worker_and_answers_when_all_are_back() -> None:
    """`all` stops every worker; the reply waits for the last one's READY."""
    rig = Rig()
    rig.start_all()
    rig.backend.take()
    _restart(rig, "all")
    assert sorted(m[0] for m in rig.backend.take()) == [b"cost_ledger", b"session_writer"]
    for name in (SW, CL):
        rig.crash(name, returncode=0)
    rig.ready(SW)
    assert rig.replies() == []
    rig.ready(CL)
    (reply,) = rig.replies()
    assert [w["name"] for w in reply["result"]["workers"]] == ["session_writer", "cost_ledger"]


def test_a_resent_restart_id_is_not_a_second_restart() -> None:
    """The same id re-sent during and after the restart gets the one answer; one restart."""
    rig = Rig()
    rig.start_all()
    _restart(rig, "session_writer", request_id="once")
    _restart(rig, "session_writer", request_id="once")
    rig.crash(SW, returncode=0)
    rig.ready(SW)
    first, second = rig.replies()
    assert first == second and first["ok"] is True
    _restart(rig, "session_writer", request_id="once")
    assert rig.replies() == [first]
    assert len(rig.children[SW]) == 2


def test_a_restart_that_ignores_stop_is_escalated_then_completed() -> None:
    """A worker that does not exit on STOP gets SIGTERM after the grace, then comes back."""
    rig = Rig()
    rig.start_all()
    old = rig.child(SW)
    _restart(rig, "session_writer")
    rig.beat(CL)
    rig.tick(rig.settings.supervisor.stop_grace_s + 0.01)
    assert old.signals == [signal.SIGTERM]
    rig.crash(SW, returncode=-15)
    rig.ready(SW)
    assert rig.replies()[0]["ok"] is True


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"worker": "nobody"}, "invalid_args"),
        ({}, "invalid_args"),
        ({"worker": "all", "x": 1}, "invalid_args"),
    ],
)
def test_restart_refuses_bad_args(args: dict[str, str], code: str) -> None:
    """An unknown worker, a missing one or an extra key is invalid_args, and nothing restarts."""
    rig = Rig()
    rig.start_all()
    rig.router.on_request(request_frames("bad", "supervisor.restart", args))
    (reply,) = rig.replies()
    assert reply["error"]["code"] == code
    assert all(len(children) == 1 for children in rig.children.values())


def test_restart_while_the_service_stops_is_unavailable() -> None:
    """No restart once the service is stopping: the reply says so."""
    rig = Rig()
    rig.start_all()
    rig.stopping = True
    _restart(rig, "cost_ledger")
    (reply,) = rig.replies()
    assert reply["error"]["code"] == "unavailable"
