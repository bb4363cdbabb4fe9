"""The restart rules: start a worker, see it ready, see it die, decide what next.

Pure decisions over `WorkerSlot`s, with the process side behind one callable
(`spawn`) and the time passed in as `now`: the supervisor's loop drives this
with real children and `time.monotonic()`, unit tests with fake children and
a fake clock. What happens to a worker is decided here and nowhere else:

- a worker counts as running only once it says READY;
- a crash restarts it (at once, or after a back-off: `RestartPolicy`), and
  what it had in flight is re-delivered to its replacement (`RequestRouter`);
- too many crashes mark it `failed`, while the others keep serving;
- a worker that is not ready in time, or stops beating, is killed;
- the service is ready once every worker is running or failed (`all_settled`);
- `supervisor.restart` stops a worker gracefully and starts it again, or
  brings a failed one back with its restart intensity forgotten.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from config import SupervisorSettings
from protocol.envelopes import encode_error, encode_ok
from protocol.errors import ErrorCode
from protocol.events import WorkerEventData
from protocol.internal import WorkerHello
from protocol.names import RestartRule, Topic, WorkerName, WorkerState
from protocol.ops import SupervisorRestartArgs, SupervisorRestartResult, WorkerStatus
from services.runtime.children import describe_exit
from services.runtime.eventbus import EventBus
from services.runtime.lifecycle import Trigger
from services.runtime.liveness import judge_liveness, liveness_deadline
from services.runtime.routing import RequestRouter
from services.runtime.slots import WorkerProcess, WorkerSlot, all_settled, restart_hint
from services.runtime.stopping import (
    SendStop,
    ask_to_stop,
    escalate_overdue,
    stop_reached_ready,
)
from services.runtime.worker import ReplyCache

__all__ = ["NOT_READY_IN_TIME", "RESTART_REQUESTED", "Spawn", "WorkerSupervision"]

NOT_READY_IN_TIME = "not ready in time"
RESTART_REQUESTED = "restart requested"
_REMEMBERED_RESTARTS = 64
_MAX_SLEEP_S = 60.0
"""The loop's timers run at least this often even with nothing due: an idle tree
sleeps, and a stray zombie (a fork server's grandchild) is reaped within a minute."""

Spawn = Callable[[WorkerSlot], WorkerProcess]
"""Start a process for a worker (forked or cold) and hand it its assignment."""


@dataclass(eq=False)
class _RestartWaiter:
    """A `supervisor.restart` answered once its workers are running (or failed again)."""

    request_id: str
    routes: list[list[bytes]]
    names: tuple[WorkerName, ...]
    deadline: float


class WorkerSupervision:
    """Every worker's life, across its incarnations, by the restart rules."""

    def __init__(
        self,
        slots: Mapping[WorkerName, WorkerSlot],
        settings: SupervisorSettings,
        *,
        spawn: Spawn,
        send_stop: SendStop,
        bus: EventBus,
        router: RequestRouter,
        is_stopping: Callable[[], bool],
        touch_timers: Callable[[], None],
        on_settled: Callable[[], None],
        log: Any,
        clock: Callable[[], float] = time.monotonic,
        stop_reached: Callable[[WorkerName], bool] | None = None,
    ) -> None:
        self.slots = slots
        self.settings = settings
        self._spawn = spawn
        self._send_stop = send_stop
        self._clock = clock
        self._restart_waiters: dict[str, _RestartWaiter] = {}
        self._restart_answers = ReplyCache(_REMEMBERED_RESTARTS)
        """Reply frames of finished restarts by id: a re-sent id is not a second restart."""
        self.bus = bus
        self.router = router
        self._is_stopping = is_stopping
        self._stop_reached = stop_reached or (lambda _name: is_stopping())
        """Whether the service's stop has come to a worker: from then on it never restarts.
        Before that (a later stop phase) a worker that dies restarts as usual, so it
        can still stop cleanly and flush what it owns."""
        self._touch_timers = touch_timers
        self._on_settled = on_settled
        self.log = log
        self.settled = False
        """Every worker was running or failed at least once: the service is ready."""

    # -- start and ready ------------------------------------------------------------

    def start(self, slot: WorkerSlot, now: float) -> None:
        """Start a new incarnation of `slot`'s worker; it is starting until READY."""
        child = self._spawn(slot)
        slot.child = child
        slot.move(Trigger.SPAWN)
        slot.restart_at = None
        slot.ready_deadline = now + self.settings.ready_timeout_s
        slot.kill_reason = None
        slot.stop_when_ready = False
        self._touch_timers()
        self.log.info("worker.spawned", worker=slot.name.value, pid=child.pid)

    def on_ready(self, slot: WorkerSlot, hello: WorkerHello, now: float) -> None:
        """READY: the worker serves; hand it what waited for it."""
        slot.health = hello.health
        current = slot.child is not None and hello.pid == slot.child.pid
        if current and stop_reached_ready(slot, now, self.settings, self._send_stop):
            self._touch_timers()  # asked to stop while it was starting: STOP now
            return
        if slot.state is not WorkerState.STARTING:
            return  # a READY racing a stop or a kill: the exit will tell
        slot.move(Trigger.READY)
        slot.ready_deadline = None
        slot.last_seen = now
        slot.owed_since = None  # what it owes is counted from its READY on
        slot.running_since = now
        pid = slot.child.pid if slot.child else None
        if slot.child is not None:
            slot.started_at = slot.child.started_at
        self.log.info("worker.ready", worker=slot.name.value, pid=pid)
        self.bus.publish_own(
            Topic.WORKER_STARTED,
            WorkerEventData(
                name=slot.name.value, pid=pid, restarts=slot.policy.total, state=slot.state.value
            ),
        )
        self.router.flush(slot)
        self.bus.flush(slot)
        if slot.queued or slot.events:
            # It was killed right after its READY: what it could not take waits,
            # in order, for the next incarnation (its exit restarts it).
            self.log.warning(
                "worker.gone_after_ready",
                worker=slot.name.value,
                pid=pid,
                requests_waiting=len(slot.queued),
                events_waiting=len(slot.events),
            )
        self._check_settled()
        self._answer_restarts(now)

    def _check_settled(self) -> None:
        if not self.settled and all_settled(self.slots.values()):
            self.settled = True
            self._on_settled()

    # -- exits ----------------------------------------------------------------------

    def on_exit(self, slot: WorkerSlot, returncode: int, now: float) -> None:
        """The worker's process ended (any cause): restart, give up, or let it be."""
        child = slot.child
        code, sig = describe_exit(returncode)
        ran_s = None if slot.running_since is None else now - slot.running_since
        slot.ready_deadline = None
        slot.child = None
        slot.running_since = None
        slot.last_exit = f"signal {sig}" if sig else f"exit {code}"
        if slot.kill_reason:
            slot.last_exit += f" ({slot.kill_reason})"
        data = WorkerEventData(
            name=slot.name.value,
            pid=child.pid if child else None,
            exit_code=code,
            signal=sig,
            restarts=slot.policy.total,
            reason=slot.kill_reason,
        )
        if slot.state is WorkerState.STOPPING:
            slot.move(Trigger.EXIT)
            requested, slot.restart_requested = slot.restart_requested, False
            if requested and not self._is_stopping():
                self._exited(data, slot, RestartRule.REQUESTED, 0.0)
                slot.requeue_after_crash(now + self.settings.request_wait_s)
                self.start(slot, now)
            else:
                self._exited(data, slot, RestartRule.STOPPING, None)
                self.router.fail_waiting(slot, "the service is stopping")
                self._answer_restarts(now)
            return
        decision = slot.policy.on_exit(now, ran_s=ran_s)
        self.log.warning(
            "worker.exited",
            worker=slot.name.value,
            pid=data.pid,
            exit_code=code,
            signal=sig,
            reason=slot.kill_reason,
            ran_s=None if ran_s is None else round(ran_s, 3),
            rule=decision.rule.value,
            restart_in_s=decision.delay_s,
        )
        if decision.delay_s is None:
            self._give_up(slot, data, decision.rule)
            return
        slot.move(Trigger.EXIT)
        self._exited(data, slot, decision.rule, decision.delay_s)
        slot.requeue_after_crash(now + self.settings.request_wait_s)
        slot.restart_at = now + decision.delay_s
        self._touch_timers()
        if decision.delay_s == 0 and not self._stop_reached(slot.name):
            self.start(slot, now)

    def _exited(
        self, data: WorkerEventData, slot: WorkerSlot, rule: RestartRule, delay_s: float | None
    ) -> None:
        update = {"state": slot.state.value, "rule": rule, "restart_in_s": delay_s}
        self.bus.publish_own(Topic.WORKER_EXITED, data.model_copy(update=update))

    def failure_message(self, slot: WorkerSlot) -> str:
        """What a user reads when `slot`'s worker has failed: why, and what to run."""
        return (
            f"{slot.name.value} failed: it crashed more than {self.settings.max_restarts} times "
            f"in {self.settings.restart_window_s:g} s; {restart_hint(slot.name)}"
        )

    def _give_up(self, slot: WorkerSlot, data: WorkerEventData, rule: RestartRule) -> None:
        slot.move(Trigger.GIVE_UP)
        self._exited(data, slot, rule, None)
        message = self.failure_message(slot)
        self.log.error("worker.failed", worker=slot.name.value, message=message)
        self.bus.publish_own(
            Topic.WORKER_FAILED,
            data.model_copy(update={"state": slot.state.value, "reason": message, "rule": rule}),
        )
        self.router.fail_waiting(slot, message)
        self._check_settled()
        self._answer_restarts(self._clock())

    def kill(self, slot: WorkerSlot, reason: str) -> None:
        """SIGKILL a worker that must go (hung, or not ready in time); its exit restarts it."""
        if slot.child is None or slot.kill_reason:
            return
        slot.kill_reason = reason
        slot.ready_deadline = None
        self._touch_timers()
        self.log.warning(
            "worker.killing", worker=slot.name.value, pid=slot.child.pid, reason=reason
        )
        slot.child.signal(signal.SIGKILL)

    # -- supervisor.restart -------------------------------------------------------

    def restart_op(self, route: list[bytes], request_id: str, args: SupervisorRestartArgs) -> None:
        """`supervisor.restart`: restart, answer once every named worker is back.

        The id is an idempotency key like any other: a re-send while the
        restart runs waits for the same answer, and a re-send after it gets
        the first answer again, without a second restart.
        """
        answered = self._restart_answers.get(request_id)
        if answered is not None:
            self.router.reply(route, answered)
            return
        waiter = self._restart_waiters.get(request_id)
        if waiter is not None:
            waiter.routes.append(route)
            return
        now = self._clock()
        names = tuple(name for name in args.names() if name in self.slots)
        self.restart(names, now)
        # Long enough for a stop that escalates to SIGKILL, then a start.
        deadline = now + 2 * self.settings.stop_grace_s + self.settings.ready_timeout_s
        self._restart_waiters[request_id] = _RestartWaiter(request_id, [route], names, deadline)
        self._touch_timers()
        self._answer_restarts(now)

    def restart(self, names: tuple[WorkerName, ...], now: float) -> None:
        """Restart these workers: a running one gracefully, a failed one afresh.

        A running (or starting) worker is asked to stop as in a clean stop and
        started again once it exited; its requests wait meanwhile. A failed
        worker's restart intensity is forgotten (like `systemctl
        reset-failed`) and it starts at once, as does one in back-off.
        """
        for name in names:
            slot = self.slots[name]
            self.log.info("worker.restart_requested", worker=name.value, state=slot.state.value)
            if slot.state is WorkerState.FAILED:
                slot.policy.reset()
                slot.move(Trigger.RESET)
                self.start(slot, now)
            elif slot.state in {WorkerState.RUNNING, WorkerState.STARTING}:
                slot.restart_requested = True
                slot.kill_reason = RESTART_REQUESTED
                ask_to_stop(slot, now, self.settings, self._send_stop)
                self._touch_timers()
            elif slot.state is WorkerState.STOPPING:
                slot.restart_requested = True
            else:  # back-off, or stopped: no process to stop
                self.start(slot, now)

    def _answer_restarts(self, now: float) -> None:
        """Answer every `supervisor.restart` whose workers are back (or that waited too long)."""
        if not self._restart_waiters:
            return
        stopping = self._is_stopping()
        for request_id, waiter in list(self._restart_waiters.items()):
            slots = [self.slots[name] for name in waiter.names]
            back = all(
                slot.state in {WorkerState.RUNNING, WorkerState.FAILED}
                and not slot.restart_requested
                for slot in slots
            )
            if not (back or stopping or now >= waiter.deadline):
                continue
            del self._restart_waiters[request_id]
            if stopping:
                frame = encode_error(request_id, ErrorCode.UNAVAILABLE, "the service is stopping")
            else:
                statuses = [s for s in self.worker_statuses(now) if s.name in waiter.names]
                frame = encode_ok(request_id, SupervisorRestartResult(workers=statuses))
                self._restart_answers.put(request_id, frame)
            for route in waiter.routes:
                self.router.reply(route, frame)

    def worker_statuses(self, now: float) -> list[WorkerStatus]:
        """Every worker as `supervisor.status` shows it."""
        return [
            WorkerStatus(
                name=slot.name.value,
                pid=slot.child.pid if slot.child else None,
                state=slot.state,
                restarts=slot.policy.total,
                started_at=slot.started_at if slot.state is WorkerState.RUNNING else None,
                uptime_s=round(now - slot.child.started_mono, 3)
                if slot.child and slot.state is WorkerState.RUNNING
                else None,
                last_exit=slot.last_exit,
                health=slot.health,
            )
            for slot in self.slots.values()
        ]

    # -- timers ---------------------------------------------------------------------

    def next_deadline(self, now: float) -> float:
        """The earliest time `run_timers` has something to do (at most `_MAX_SLEEP_S` away)."""
        # Only the deadline of the state the worker is in counts: a stale one
        # from an earlier state would make the loop spin.
        deadlines: list[float] = [now + _MAX_SLEEP_S]
        for slot in self.slots.values():
            state = slot.state
            if state is WorkerState.BACKOFF and slot.restart_at is not None:
                deadlines.append(slot.restart_at)
            elif state is WorkerState.STARTING and slot.ready_deadline is not None:
                deadlines.append(slot.ready_deadline)
            elif state is WorkerState.STOPPING and slot.stop_deadline is not None:
                deadlines.append(slot.stop_deadline)
            elif state is WorkerState.RUNNING:
                deadlines.append(liveness_deadline(slot, self.settings, now))
            deadlines.extend(p.deadline for p in slot.queued if p.deadline is not None)
        deadlines.extend(waiter.deadline for waiter in self._restart_waiters.values())
        return min(deadlines)

    def run_timers(self, now: float) -> None:
        """Restart after back-off, kill the late and the hung, expire waiting requests."""
        for slot in self.slots.values():
            state = slot.state
            if state is WorkerState.BACKOFF and slot.restart_at is not None:
                if now >= slot.restart_at and not self._stop_reached(slot.name):
                    self.start(slot, now)
            elif state is WorkerState.STARTING and slot.ready_deadline is not None:
                if now >= slot.ready_deadline:
                    self.kill(slot, NOT_READY_IN_TIME)
            elif state is WorkerState.STOPPING:
                if escalate_overdue(slot, now, self.settings, self.log):
                    self._touch_timers()
            else:
                reason = judge_liveness(slot, now, self.settings)
                if reason is not None:
                    self.kill(slot, reason)
            self.router.expire(slot, now)
        self._answer_restarts(now)
