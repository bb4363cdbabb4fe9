"""bench.cost_floor: the cost.log floor does the durable work it stands in for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import zmq

from bench.cost_floor import MinimalLedger
from bench.cost_load import CLIENTS, Op, run_clients

_ARGS = {
    "operation": "scene_generation",
    "model": "m",
    "input_tokens": 12450,
    "output_tokens": 3200,
}


def _request(request_id: str) -> bytes:
    return orjson.dumps({"v": 1, "id": request_id, "op": "cost.log", "args": _ARGS})


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def _drive(floor: MinimalLedger, per_client: int) -> dict[str, list[bytes]]:
    """8 clients log `per_client` costs each, then each sends its first id again."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    replies: dict[str, list[bytes]] = {}
    lock = threading.Lock()

    def open_client() -> tuple[Op, Callable[[], None]]:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(floor.command)
        first: list[str] = []

        def op(request_id: str) -> None:
            first.append(request_id)
            for sent in (request_id, first[0]) if len(first) == per_client else (request_id,):
                sock.send_multipart([b"", _request(sent)])
                assert sock.poll(10_000), f"no reply to {sent}"
                frames = sock.recv_multipart()
                with lock:
                    replies.setdefault(sent, []).append(frames[-1])

        return op, lambda: sock.close(linger=0)

    run_clients(per_client, open_client, "t")
    return replies


def test_floor_answers_each_request_once_and_keeps_every_operation(tmp_path: Path) -> None:
    """Each cost.log gets its reply, a repeated id the same one; both files hold each op once."""
    floor = MinimalLedger(tmp_path)
    try:
        replies = _drive(floor, per_client=20)
        ids = {f"t-c{c}-{k}" for c in range(CLIENTS) for k in range(20)}
        assert set(replies) == ids
        for request_id, answers in replies.items():
            decoded = [orjson.loads(answer) for answer in answers]
            assert all(reply["id"] == request_id and reply["ok"] for reply in decoded)
            assert decoded[0]["result"]["cost"] == "0.08535"
            assert len(set(answers)) == 1  # a repeated id is answered as the first time
        ledger = [orjson.loads(line)["id"] for line in _lines(floor.ledger_path)]
        assert sorted(ledger) == sorted(ids)  # fsynced before the reply: all there now
        deadline = time.monotonic() + 10
        while len(_lines(floor.archive_path)) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.01)
        archived = [
            orjson.loads(line)["data"]["operation"]["id"] for line in _lines(floor.archive_path)
        ]
        assert sorted(archived) == sorted(ids)
    finally:
        floor.close()


def test_floor_without_events_runs_no_archiver(tmp_path: Path) -> None:
    """The lean floor answers and keeps its ledger, and has no archiver process or file."""
    floor = MinimalLedger(tmp_path, events=False, name="lean")
    try:
        replies = _drive(floor, per_client=3)
        assert len(replies) == CLIENTS * 3
        assert len(_lines(floor.ledger_path)) == CLIENTS * 3
        assert set(floor.pids) == {"broker", "ledger"}
        assert not floor.archive_path.exists()
    finally:
        floor.close()
