"""The reference client against a fake service that speaks the contract.

The fake is a ROUTER (commands) and an XPUB (events) in the test's own event
loop, announced by an endpoints.json like docs/protocol.md shows, so these tests
need neither the supervisor nor any worker. It keeps one reply per request id
(the idempotency the contract promises) and can lose or hold replies on
purpose, which is how re-sends and stale replies are provoked without sleeps.
"""

from __future__ import annotations

import ast
import asyncio
import fcntl
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest
import zmq
import zmq.asyncio

import protocol
from protocol.client import (
    ClientClosed,
    CostTracker,
    ServiceClient,
    ServiceError,
    ServiceUnavailable,
    Session,
    _seed_api,
    ensure_service,
    find_endpoints,
)
from protocol.codec import loads_exact
from protocol.envelopes import EndpointsFile, encode_error, encode_event, encode_ok
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import CostLoggedData, SessionSavedData
from protocol.names import Op, Topic, WorkerName

SESSION_ID = "2026-11-23-143022"
SHORT_TIMEOUT_S = 0.1
"""Per-attempt request timeout in these tests: long enough for a local round trip."""
GUARD_S = 3.0
"""How long a test waits for something that should happen at once; only a failure waits it."""
PRICES = {"claude-sonnet-3.5": (Decimal("0.003"), Decimal("0.015"))}
"""Dollars per 1K tokens (input, output), the seed's figures."""

Handler = Callable[[dict[str, Any]], Any]
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one test body in a fresh event loop (pytest-asyncio is not a dependency)."""
    return asyncio.run(asyncio.wait_for(coroutine, 15))


def session_document(**changes: Any) -> dict[str, Any]:
    """A current.json as the session writer would keep it."""
    document: dict[str, Any] = {
        "session_id": SESSION_ID,
        "project_name": "The Explants",
        "created_at": "2026-11-23T14:30:22Z",
        "last_activity": "2026-11-23T14:30:22Z",
        "current_state": {"stage": "creation", "screen": "home", "breadcrumb": ["Home"]},
        "open_files": [],
        "model_preferences": {},
        "recent_queries": [],
        "revision": 0,
        "owner_pid": os.getpid(),
        "last_saved_at": None,
        "ended_at": None,
    }
    document.update(changes)
    return document


def saved_data(revision: int) -> dict[str, Any]:
    """The data of a `session.saved` event."""
    return {"session_id": SESSION_ID, "saved_at": "2026-11-23T15:45:10Z", "revision": revision}


def endpoints_document(command: str, events: str, pid: int) -> dict[str, Any]:
    """An endpoints.json exactly as docs/protocol.md shows it."""
    return {
        "protocol": 1,
        "command": command,
        "events": events,
        "supervisor_pid": pid,
        "session_id": SESSION_ID,
        "started_at": "2026-11-23T14:30:22Z",
    }


_HELD_LOCKS: dict[Path, int] = {}


def hold_project_lock(project: Path) -> None:
    """Hold `project`'s supervisor lock from this process, as a live supervisor does."""
    run_dir = project / ".session" / "run"
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if project in _HELD_LOCKS:
        return
    fd = os.open(run_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD_LOCKS[project] = fd


@pytest.fixture(autouse=True)
def _release_project_locks() -> Iterator[None]:
    """Every lock a test held as a fake supervisor is released after it (as by its death)."""
    yield
    while _HELD_LOCKS:
        os.close(_HELD_LOCKS.popitem()[1])


def write_endpoints(project: Path, document: dict[str, Any]) -> None:
    """Announce a service the way the supervisor does (its appearance means ready).

    A document naming this process as its supervisor also takes the project's
    lock, as a real supervisor holds it for its whole life.
    """
    run_dir = project / ".session" / "run"
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if document.get("supervisor_pid") == os.getpid():
        hold_project_lock(project)
    (run_dir / "endpoints.json").write_text(json.dumps(document), encoding="utf-8")


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class FakeService:
    """A ROUTER and an XPUB answering like the service, with scriptable faults.

    `lose_first_reply`: ops whose first reply is never sent (applied, then lost).
    `hold_first_reply`: ops whose first reply is sent late, just before the
    reply to the next request with another id (a stale duplicate in flight).
    `lose_every_reply`: ops never answered.
    """

    def __init__(self, project: Path, *, announce: bool = True, name: str = "") -> None:
        self.project = project
        context = zmq.asyncio.Context.instance()
        run_dir = project / ".session" / "run"
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.xpub = context.socket(zmq.XPUB)
        self.xpub.setsockopt(zmq.LINGER, 0)
        self.xpub.setsockopt(zmq.SNDHWM, 0)
        self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.command = self._bind(self.router, run_dir / f"command{name}.sock")
        self.events = self._bind(self.xpub, run_dir / f"events{name}.sock")
        self.endpoints = endpoints_document(self.command, self.events, os.getpid())
        if announce:
            write_endpoints(project, self.endpoints)
        self.arrivals: list[dict[str, Any]] = []
        self.applied: Counter[str] = Counter()
        self.lose_first_reply: set[str] = set()
        self.hold_first_reply: set[str] = set()
        self.lose_every_reply: set[str] = set()
        self.subscribed = asyncio.Event()
        self.arrived = asyncio.Event()
        self.document = session_document()
        self.session_total = Decimal(0)
        self.handlers: dict[str, Handler] = {
            Op.SESSION_GET: lambda _args: self.document,
            Op.SESSION_SET_STAGE: self._set_stage,
            Op.COST_TOTALS: lambda _args: self._totals(),
            Op.COST_LOG: self._cost_log,
            Op.COST_ESTIMATE: self._cost_estimate,
        }
        self._replies: dict[str, bytes] = {}
        self._held: list[tuple[bytes, str, bytes]] = []
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    def _bind(sock: zmq.asyncio.Socket, path: Path) -> str:
        # The contract's fallback: tcp on the loopback when the ipc path is too long.
        if len(str(path)) > 100:
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            return f"tcp://127.0.0.1:{port}"
        endpoint = f"ipc://{path}"
        sock.bind(endpoint)
        return endpoint

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._serve()), loop.create_task(self._watch())]
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks)
        self.router.close(linger=0)
        self.xpub.close(linger=0)

    def ids_of(self, op: str) -> list[str]:
        """The ids of every arrival of `op`, re-sends included."""
        return [request["id"] for request in self.arrivals if request["op"] == op]

    async def publish(self, topic: str, source: str, seq: int, data: dict[str, Any]) -> None:
        """Publish one event in the contract's two frames."""
        frames = encode_event(topic, source, seq, datetime.now(UTC), data)
        await self.xpub.send_multipart(frames)

    async def _watch(self) -> None:
        while True:
            message = await self.xpub.recv()
            if message[:1] == b"\x01":
                self.subscribed.set()

    async def _serve(self) -> None:
        while True:
            identity, _delimiter, frame = await self.router.recv_multipart()
            request = loads_exact(frame)
            self.arrivals.append(request)
            self.arrived.set()
            rid, op = request["id"], request["op"]
            for held_identity, held_id, held_reply in list(self._held):
                if held_id != rid:
                    self._held.remove((held_identity, held_id, held_reply))
                    await self.router.send_multipart([held_identity, b"", held_reply])
            first = rid not in self._replies
            if first:
                self._replies[rid] = self._apply(rid, op, request.get("args", {}))
            reply = self._replies[rid]
            if op in self.lose_every_reply or (first and op in self.lose_first_reply):
                continue
            if first and op in self.hold_first_reply:
                self._held.append((identity, rid, reply))
                continue
            await self.router.send_multipart([identity, b"", reply])

    def _apply(self, rid: str, op: str, args: dict[str, Any]) -> bytes:
        handler = self.handlers.get(op)
        if handler is None:
            return encode_error(rid, ErrorCode.UNKNOWN_OP, f"unknown op {op!r}")
        try:
            result = handler(args)
        except ProtocolError as exc:
            return encode_error(rid, exc.code, exc.message)
        self.applied[op] += 1
        return encode_ok(rid, result)

    def _set_stage(self, args: dict[str, Any]) -> dict[str, Any]:
        state = {**self.document["current_state"], "stage": args["stage"]}
        revision = self.document["revision"] + 1
        self.document = {**self.document, "current_state": state, "revision": revision}
        return self.document

    def _totals(self) -> dict[str, Any]:
        total = self.session_total
        return {
            "session_total": total,
            "daily_total": total,
            "weekly_total": total,
            "monthly_total": total,
            "by_model": {"claude-sonnet-3.5": total} if total else {},
            "unpriced_operations": 0,
        }

    def _price(self, model: str, input_tokens: int, output_tokens: int) -> Decimal:
        if model not in PRICES:
            raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"no price for model {model!r}")
        per_input, per_output = PRICES[model]
        return (per_input * input_tokens + per_output * output_tokens) / 1000

    def _cost_log(self, args: dict[str, Any]) -> dict[str, Any]:
        cost = self._price(args["model"], args["input_tokens"], args["output_tokens"])
        self.session_total += cost
        operation = {**args, "timestamp": "2026-11-23T15:30:00Z", "cost": cost}
        return {"operation": operation, "totals": self._totals(), "warning": None}

    def _cost_estimate(self, args: dict[str, Any]) -> dict[str, Any]:
        cost = self._price(args["model"], args["input_tokens"], args.get("output_tokens", 0))
        return {"cost": cost, "warning": None}


def announced(project: Path) -> EndpointsFile:
    """The endpoints a live fake announced for `project`; the test fails if there are none."""
    endpoints = find_endpoints(project)
    assert endpoints is not None
    return endpoints


async def wait_for(event: asyncio.Event) -> None:
    """Wait for something that should happen at once, failing the test if it does not."""
    await asyncio.wait_for(event.wait(), GUARD_S)


# --------------------------------------------------------------------------- requests


def test_timeout_resends_the_same_id_and_a_duplicate_reply_is_not_applied_twice(
    tmp_path: Path,
) -> None:
    """A lost reply makes the client re-send the same id, and the late duplicate is dropped."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            fake.hold_first_reply.add(Op.COST_LOG)
            tracker = await CostTracker.open(tmp_path, timeout_s=SHORT_TIMEOUT_S, retries=2)
            try:
                logged = await tracker.log_operation(
                    "scene_generation", "claude-sonnet-3.5", 12450, 3200
                )
                totals = await tracker.totals()
            finally:
                await tracker.close()
        first_id, resent_id = fake.ids_of(Op.COST_LOG)
        assert first_id == resent_id
        assert fake.applied[Op.COST_LOG] == 1
        assert logged.operation.cost == Decimal("0.08535")
        assert totals.session_total == Decimal("0.08535")
        assert tracker.session_total == Decimal("0.08535")
        assert tracker.client.dropped_replies == 1

    run(body())


def test_last_timeout_raises_service_unavailable_with_the_id_to_resend(tmp_path: Path) -> None:
    """With no reply at all, every attempt carries one id, then ServiceUnavailable names it."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            fake.lose_every_reply.add(Op.SESSION_SET_STAGE)
            endpoints = announced(tmp_path)
            async with ServiceClient(endpoints) as client:
                with pytest.raises(ServiceUnavailable) as caught:
                    await client.request(
                        Op.SESSION_SET_STAGE, {"stage": "writing"}, timeout_s=0.05, retries=2
                    )
        ids = fake.ids_of(Op.SESSION_SET_STAGE)
        assert len(ids) == 3
        assert set(ids) == {caught.value.request_id}
        assert fake.applied[Op.SESSION_SET_STAGE] == 1

    run(body())


def test_resend_follows_a_service_that_came_back_elsewhere(tmp_path: Path) -> None:
    """After a timeout the client re-reads endpoints.json and re-sends the same id there."""

    async def body() -> None:
        moved = FakeService(tmp_path, announce=False, name="2")
        async with FakeService(tmp_path) as gone, moved as back:
            gone.lose_every_reply.add(Op.SESSION_SET_STAGE)
            endpoints = announced(tmp_path)
            async with ServiceClient(endpoints, project=tmp_path) as client:
                request = asyncio.ensure_future(
                    client.request(
                        Op.SESSION_SET_STAGE,
                        {"stage": "writing"},
                        timeout_s=SHORT_TIMEOUT_S,
                        retries=1,
                    )
                )
                await wait_for(gone.arrived)
                write_endpoints(tmp_path, back.endpoints)
                result = await request
                assert client.endpoints.command == back.command
        assert gone.ids_of(Op.SESSION_SET_STAGE) == back.ids_of(Op.SESSION_SET_STAGE)
        assert result["current_state"]["stage"] == "writing"

    run(body())


def test_close_fails_a_request_in_flight_with_client_closed(tmp_path: Path) -> None:
    """Closing the client ends a waiting request with ClientClosed, not a stray cancellation."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            fake.lose_every_reply.add(Op.SESSION_GET)
            endpoints = announced(tmp_path)
            client = ServiceClient(endpoints)
            request = asyncio.ensure_future(client.request(Op.SESSION_GET, timeout_s=0.3))
            await wait_for(fake.arrived)
            await client.close()
            with pytest.raises(ClientClosed):
                await request
            with pytest.raises(ClientClosed):
                await client.request(Op.SESSION_GET)

    run(body())


def test_error_reply_raises_service_error_with_its_code(tmp_path: Path) -> None:
    """An error reply becomes ServiceError carrying the contract's code and the request id."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            tracker = await CostTracker.open(tmp_path, timeout_s=SHORT_TIMEOUT_S)
            try:
                with pytest.raises(ServiceError) as caught:
                    await tracker.get_estimated_cost("gpt-9", 1000)
                estimate = await tracker.estimate("claude-sonnet-3.5", 1000, 1000)
            finally:
                await tracker.close()
        assert caught.value.code is ErrorCode.UNKNOWN_MODEL
        assert "gpt-9" in caught.value.message
        assert not caught.value.retryable
        assert caught.value.request_id == fake.ids_of(Op.COST_ESTIMATE)[0]
        assert estimate.cost == Decimal("0.018")

    run(body())


def test_invalid_args_are_refused_before_sending(tmp_path: Path) -> None:
    """A stage outside the five raises ServiceError invalid_args without a round trip."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            session = await Session.open(tmp_path, timeout_s=SHORT_TIMEOUT_S)
            try:
                with pytest.raises(ServiceError) as caught:
                    await session.set_stage("drafting")
                document = await session.set_stage("writing")
            finally:
                await session.close()
        assert caught.value.code is ErrorCode.INVALID_ARGS
        assert "stage" in caught.value.message
        assert len(fake.ids_of(Op.SESSION_SET_STAGE)) == 1
        assert document.current_state.stage == "writing"
        assert session.current_stage == "writing"
        assert session.data.revision == 1

    run(body())


# --------------------------------------------------------------------------- events


def test_session_saved_event_reaches_on_save_callbacks(tmp_path: Path) -> None:
    """A session.saved event calls every on_save callback, sync and async, with its data."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            session = await Session.open(tmp_path, timeout_s=SHORT_TIMEOUT_S)
            seen_sync: list[SessionSavedData] = []
            seen_async: list[SessionSavedData] = []
            delivered = asyncio.Event()

            @session.on_save
            def record(data: SessionSavedData) -> None:
                seen_sync.append(data)

            async def record_later(data: SessionSavedData) -> None:
                seen_async.append(data)
                delivered.set()

            session.on_save(record_later)
            try:
                await wait_for(fake.subscribed)
                saved = saved_data(revision=7)
                await fake.publish(Topic.SESSION_SAVED, WorkerName.SESSION_WRITER, 0, saved)
                await wait_for(delivered)
            finally:
                await session.close()
        assert [data.revision for data in seen_sync] == [7]
        assert seen_async == seen_sync
        assert session.last_save_time == datetime(2026, 11, 23, 15, 45, 10, tzinfo=UTC)

    run(body())


def test_cost_logged_event_reaches_on_update_callbacks(tmp_path: Path) -> None:
    """A cost.logged event (from any client) calls on_update and updates session_total exactly."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            tracker = await CostTracker.open(tmp_path, timeout_s=SHORT_TIMEOUT_S)
            seen: list[CostLoggedData] = []
            delivered = asyncio.Event()

            @tracker.on_update
            def record(data: CostLoggedData) -> None:
                seen.append(data)
                delivered.set()

            operation = {
                "timestamp": "2026-11-23T15:30:00Z",
                "operation": "query",
                "model": "gemini-flash",
                "input_tokens": 1,
                "output_tokens": 0,
                "cost": Decimal("0.00000007"),
            }
            totals = {**fake._totals(), "session_total": Decimal("2.47000007")}
            try:
                await wait_for(fake.subscribed)
                data = {"operation": operation, "totals": totals, "cost": Decimal("0.00000007")}
                await fake.publish(Topic.COST_LOGGED, WorkerName.COST_LEDGER, 0, data)
                await wait_for(delivered)
            finally:
                await tracker.close()
        assert len(seen) == 1
        assert seen[0].operation.cost == Decimal("0.00000007")
        assert tracker.session_total == Decimal("2.47000007")

    run(body())


async def collect(stream: Any, count: int) -> list[Any]:
    """The next `count` events of a stream."""
    events = []
    async for event in stream:
        events.append(event)
        if len(events) == count:
            break
    return events


def test_seq_jump_is_counted_as_missed_events(tmp_path: Path) -> None:
    """A jump from seq 6 to 9 counts two missed events, per source, on the stream and client."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            endpoints = announced(tmp_path)
            async with ServiceClient(endpoints) as client:
                stream = client.subscribe(["session."])
                await wait_for(fake.subscribed)
                saved = saved_data(revision=1)
                for seq in (5, 6, 9):
                    await fake.publish(Topic.SESSION_SAVED, WorkerName.SESSION_WRITER, seq, saved)
                moved = {"path": "manuscript/ch1.md"}
                await fake.publish(Topic.FILE_MODIFIED, WorkerName.FILE_WATCHER, 40, moved)
                await fake.publish(Topic.SESSION_SAVED, WorkerName.SESSION_WRITER, 10, saved)
                events = await asyncio.wait_for(collect(stream, 4), GUARD_S)
                assert [event.seq for event in events] == [5, 6, 9, 10]
                assert stream.gaps == 2
                assert stream.gaps_by_source == {WorkerName.SESSION_WRITER: 2}
                assert client.gaps == 2

    run(body())


def test_topics_filtered_out_do_not_look_like_gaps(tmp_path: Path) -> None:
    """Events of a source's other topics are tracked, not counted missed, and not delivered."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            endpoints = announced(tmp_path)
            async with ServiceClient(endpoints) as client:
                stream = client.subscribe(Topic.SESSION_SAVED)
                await wait_for(fake.subscribed)
                saved = saved_data(revision=1)
                failed = {
                    "session_id": SESSION_ID,
                    "attempt": 1,
                    "max_attempts": 3,
                    "error": "disk full",
                    "will_retry": True,
                }
                await fake.publish(Topic.SESSION_SAVED, WorkerName.SESSION_WRITER, 0, saved)
                await fake.publish(Topic.SESSION_SAVE_FAILED, WorkerName.SESSION_WRITER, 1, failed)
                await fake.publish(Topic.SESSION_SAVED, WorkerName.SESSION_WRITER, 2, saved)
                events = await asyncio.wait_for(collect(stream, 2), GUARD_S)
                assert [event.topic for event in events] == ["session.saved"] * 2
                assert stream.gaps == 0

    run(body())


# --------------------------------------------------------------------------- discovery


def zombie_pid() -> subprocess.Popen[bytes]:
    """A child that has exited but is not reaped yet: `kill(pid, 0)` still succeeds on it."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + GUARD_S
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    return child


def test_find_endpoints_ignores_a_file_whose_supervisor_is_dead(tmp_path: Path) -> None:
    """endpoints.json left behind by a dead supervisor means no service; a live pid's is used."""
    assert find_endpoints(tmp_path) is None
    document = endpoints_document("ipc:///x/command.sock", "ipc:///x/events.sock", dead_pid())
    write_endpoints(tmp_path, document)
    assert find_endpoints(tmp_path) is None
    zombie = zombie_pid()
    try:
        os.kill(zombie.pid, 0)  # a pid check alone would call it alive
        write_endpoints(tmp_path, {**document, "supervisor_pid": zombie.pid})
        assert find_endpoints(tmp_path) is None, "a zombie holds no lock: no service"
    finally:
        zombie.wait()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # alive, but not the project's supervisor: it does not hold the lock
        write_endpoints(tmp_path, {**document, "supervisor_pid": stranger.pid})
        assert find_endpoints(tmp_path) is None
    finally:
        stranger.kill()
        stranger.wait()
    write_endpoints(tmp_path, {**document, "supervisor_pid": os.getpid(), "transport": "ipc"})
    found = find_endpoints(tmp_path)
    assert found is not None
    assert found.command == "ipc:///x/command.sock"


def test_ensure_service_without_start_raises_when_nothing_runs(tmp_path: Path) -> None:
    """With start=False and no live service, ensure_service raises ServiceUnavailable at once."""
    with pytest.raises(ServiceUnavailable):
        ensure_service(tmp_path, start=False)


FAKE_SUPERVISOR = """
import json, os, subprocess, sys
project = sys.argv[sys.argv.index("--project") + 1]
run_dir = os.path.join(project, ".session", "run")
os.makedirs(run_dir, exist_ok=True)
# The detached daemon keeps our stdout open for its whole life, and holds the lock.
daemon = subprocess.Popen([sys.executable, "-c", (
    "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
    "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); time.sleep(30)"
), os.path.join(run_dir, "supervisor.lock")])
with open(os.path.join(project, "start.json"), "w") as record:
    json.dump({"argv": sys.argv[1:], "stdin": sys.stdin.read(), "daemon": daemon.pid}, record)
endpoints = {"protocol": 1, "command": "ipc:///x/c.sock", "events": "ipc:///x/e.sock",
             "supervisor_pid": daemon.pid, "session_id": "s", "started_at": "2026-11-23T14:30:22Z"}
with open(os.path.join(run_dir, "endpoints.json"), "w") as out:
    json.dump(endpoints, out)
print("ready")
"""


def test_ensure_service_starts_the_supervisor_detached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ensure_service runs `supervisor start --detach` with no stdin, not waiting on its daemon."""
    fake_dir = tmp_path / "bin"
    fake_dir.mkdir()
    (fake_dir / "supervisor.py").write_text(FAKE_SUPERVISOR, encoding="utf-8")
    project = tmp_path / "novel"
    monkeypatch.chdir(fake_dir)  # `python -m supervisor` finds the fake first
    began = time.monotonic()
    endpoints = ensure_service(project, timeout_s=5)
    elapsed = time.monotonic() - began
    record = json.loads((project / "start.json").read_text(encoding="utf-8"))
    os.kill(record["daemon"], 9)
    assert record["argv"] == ["start", "--project", str(project), "--detach"]
    assert record["stdin"] == ""
    assert endpoints.supervisor_pid == record["daemon"]
    assert elapsed < 3


@pytest.mark.parametrize(("ended", "expected"), [(False, True), (True, False)])
def test_was_interrupted_reads_the_snapshot_left_before_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ended: bool, expected: bool
) -> None:
    """A current.json without ended_at and with a dead owner means the last run was interrupted."""
    old = session_document(
        session_id="2026-11-22-090000",
        owner_pid=dead_pid(),
        ended_at="2026-11-22T10:00:00Z" if ended else None,
    )
    (tmp_path / ".session").mkdir()
    (tmp_path / ".session" / "current.json").write_text(json.dumps(old), encoding="utf-8")

    async def body() -> None:
        async with FakeService(tmp_path, announce=False) as fake:

            def start(project: Path, **_options: Any) -> EndpointsFile:
                write_endpoints(project, fake.endpoints)
                return EndpointsFile.model_validate(fake.endpoints)

            # Patched where `Session.open` looks it up, so no real supervisor starts.
            monkeypatch.setattr(_seed_api, "ensure_service", start)
            session = await Session.open(tmp_path, timeout_s=SHORT_TIMEOUT_S)
            await session.close()
        assert session.was_interrupted() is expected
        if expected:
            assert session.interrupted_session is not None
            assert session.interrupted_session.session_id == "2026-11-22-090000"
        assert session.session_id == SESSION_ID

    run(body())


def test_session_recovered_event_marks_the_session_interrupted(tmp_path: Path) -> None:
    """A session.recovered event seen while connected makes was_interrupted() true."""

    async def body() -> None:
        async with FakeService(tmp_path) as fake:
            session = await Session.open(tmp_path, timeout_s=SHORT_TIMEOUT_S)
            saved = asyncio.Event()
            session.on_save(lambda _data: saved.set())
            try:
                assert not session.was_interrupted()
                await wait_for(fake.subscribed)
                recovered = {"session_id": SESSION_ID, "resumed": True}
                await fake.publish(Topic.SESSION_RECOVERED, WorkerName.SESSION_WRITER, 0, recovered)
                # Events are handled in order: once the next one is seen, this one was.
                saved_event = saved_data(revision=1)
                await fake.publish(Topic.SESSION_SAVED, WorkerName.SESSION_WRITER, 1, saved_event)
                await wait_for(saved)
            finally:
                await session.close()
        assert session.was_interrupted()
        assert session.recovery is not None
        assert session.recovery.resumed

    run(body())


# --------------------------------------------------------------------------- layering

IO_MODULES = frozenset({"asyncio", "os", "shutil", "socket", "subprocess", "tempfile", "zmq"})
"""Top-level modules whose import would mean sockets, processes or file-system work."""


def imported_modules(source: str) -> set[str]:
    """Every module a Python source imports, `from a import b` also counted as `a.b`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_rest_of_protocol_neither_imports_the_client_nor_does_socket_io() -> None:
    """No protocol module outside the client imports it or a socket, process or file-system API."""
    modules = sorted(Path(protocol.__file__).parent.glob("*.py"))
    assert modules
    for module in modules:
        imported = imported_modules(module.read_text(encoding="utf-8"))
        clients = {name for name in imported if name.startswith("protocol.client")}
        io = {name for name in imported if name.split(".")[0] in IO_MODULES}
        assert not clients, f"{module.name} imports {clients}"
        assert not io, f"{module.name} imports {io}"
