"""bench.cost_floor: each cost.log floor does the work it stands in for (the contract one, ours)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
import zmq
from test_cost_ledger import START, LedgerHarness

from bench import contract_ledger
from bench.contract_ledger import CostLedger
from bench.cost_floor import MinimalLedger
from bench.cost_load import CLIENTS, Op, run_clients
from protocol.codec import dumps, loads_exact
from protocol.costs import CostOperation, CostTotals
from protocol.envelopes import encode_ok
from protocol.ledger import LedgerOperation, decode_ledger_line
from protocol.ops import CostLogResult

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


_CONTRACT_ARGS = {
    "operation": "scene_generation",
    "model": "claude-sonnet-3.5",
    "input_tokens": 12450,
    "output_tokens": 3200,
}


def _contract_request(request_id: str, args: object = None, op: str = "cost.log") -> bytes:
    return orjson.dumps(
        {"v": 1, "id": request_id, "op": op, "args": _CONTRACT_ARGS if args is None else args}
    )


_NOW = datetime.now(UTC)


def _ledger() -> CostLedger:
    return CostLedger(ZoneInfo("UTC"), _NOW)


def test_contract_floor_answers_in_our_shapes_with_exact_amounts() -> None:
    """Its reply, ledger line and event read as ours do, every key there, every amount exact."""
    ledger = _ledger()
    lines, replies, events = ledger.batch([_contract_request(f"c{k}") for k in range(3)], _NOW)
    result = loads_exact(replies[-1])["result"]
    CostLogResult.model_validate(result)
    assert list(result) == ["operation", "totals", "warning"]
    assert set(result["operation"]) == set(CostOperation.model_fields)
    assert set(result["totals"]) == set(CostTotals.model_fields)
    assert result["operation"]["cost"] == Decimal("0.08535")
    assert result["totals"]["session_total"] == Decimal("0.25605")  # 3 x 0.08535, not a float
    assert b'"session_total":0.25605,' in replies[-1]
    assert result["totals"]["by_model"] == {"claude-sonnet-3.5": Decimal("0.25605")}
    line = decode_ledger_line(lines[-1])
    assert isinstance(line, LedgerOperation)
    assert list(orjson.loads(lines[-1])) == list(LedgerOperation.model_fields)  # ours, in order
    assert line.totals == CostTotals.model_validate(result["totals"])
    assert [topic for topic, _ in events] == [b"cost.logged"] * 3
    assert set(orjson.loads(events[-1][1])) == {"operation", "totals", "cost"}


def test_contract_floor_refuses_bad_args_without_remembering_the_id() -> None:
    """A refused id stays free: its corrected re-send is applied; a re-sent applied id is not."""
    ledger = _ledger()
    refused = [
        {**_CONTRACT_ARGS, "foo": 1},
        {**_CONTRACT_ARGS, "input_tokens": "3"},
        {**_CONTRACT_ARGS, "input_tokens": True},
        {**_CONTRACT_ARGS, "output_tokens": 10**12 + 1},
        {**_CONTRACT_ARGS, "cache_read_tokens": 12451},
        {**_CONTRACT_ARGS, "operation": ""},
    ]
    lines, replies, _ = ledger.batch([_contract_request("r", args) for args in refused], _NOW)
    assert lines == []
    assert [orjson.loads(reply)["error"]["code"] for reply in replies] == ["invalid_args"] * 6
    first = ledger.batch(
        [_contract_request("r", {**_CONTRACT_ARGS, "input_tokens": 12450.0})], _NOW
    )
    again = ledger.batch([_contract_request("r", {**_CONTRACT_ARGS, "input_tokens": 1})], _NOW)
    assert len(first[0]) == 1
    assert again == ([], first[1], [])  # nothing written or published, the first answer


def test_contract_floor_warns_once_per_level_and_says_so_in_each_reply() -> None:
    """Past 80% then 100% of the daily $50: a warned line and event each; replies say so."""
    ledger = _ledger()
    warned: list[bytes] = []
    topics: list[bytes] = []
    last = b""
    for start in range(0, 600, 8):
        lines, replies, events = ledger.batch(
            [_contract_request(f"w{k}") for k in range(start, start + 8)], _NOW
        )
        warned += [line for line in lines if b'"kind":"warned"' in line]
        topics += [topic for topic, _ in events if topic != b"cost.logged"]
        last = replies[-1]
    assert [decode_ledger_line(line).model_dump()["level"] for line in warned] == [
        "warning",
        "exceeded",
    ]
    assert topics == [b"budget.warning", b"budget.warning"]
    warning = orjson.loads(last)["result"]["warning"]
    assert warning == "Daily budget exceeded: $51.21 spent of $50.00 (102%); $1.21 over the limit."


def test_contract_floor_checks_envelopes_in_its_broker(tmp_path: Path) -> None:
    """Bad frames and other ops are refused by the broker; each logged call is archived once."""
    floor = MinimalLedger(tmp_path, name="contract", work="contract")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(floor.command)
    try:
        answers = []
        for frame in (
            b"not json",
            orjson.dumps({"v": 2, "id": "a", "op": "cost.log"}),
            _contract_request("b", {}, op="cost.totals"),
            _contract_request("c"),
            _contract_request("c"),
        ):
            sock.send_multipart([b"", frame])
            assert sock.poll(10_000), "no reply"
            answers.append(orjson.loads(sock.recv_multipart()[-1]))
        codes = [answer.get("error", {}).get("code") for answer in answers]
        assert codes == ["bad_request", "bad_request", "unknown_op", None, None]
        assert answers[3] == answers[4]
        deadline = time.monotonic() + 10
        while not _lines(floor.archive_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        archived = [orjson.loads(line) for line in _lines(floor.archive_path)]
        assert [event["data"]["operation"]["request_id"] for event in archived] == ["c"]
        assert archived[0]["source"] == "cost_ledger"
    finally:
        sock.close(linger=0)
        floor.close()


def test_contract_floor_forgets_the_oldest_answer_past_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Like ours, it remembers a bounded number of ids: past it, the oldest is applied anew."""
    monkeypatch.setattr(contract_ledger, "REMEMBERED_IDS", 3)
    ledger = _ledger()
    for request_id in ("a", "b", "c", "d"):
        ledger.batch([_contract_request(request_id)], _NOW)
    assert len(ledger.batch([_contract_request("d")], _NOW)[0]) == 0  # remembered: nothing written
    assert len(ledger.batch([_contract_request("a")], _NOW)[0]) == 1  # forgotten: logged again


def _masked(frame: bytes) -> bytes:
    """`frame` with its times and session id blanked: what differs between two ledgers."""
    return re.sub(rb'"(timestamp|ts|session_id)":"[^"]*"', rb'"\1":"-"', frame)


def _our_lines(harness: LedgerHarness) -> list[bytes]:
    """Every line our ledger wrote, as bytes, but the budget it carries at start (the
    floor has only the default budget and writes none)."""
    return [
        line
        for path in sorted(harness.paths.ledger_dir.glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if not line.startswith(b'{"kind":"budget"')
    ]


def test_contract_floor_answers_what_our_ledger_answers(tmp_path: Path) -> None:
    """The same calls at the same moment: our ledger's reply, lines and event, byte for byte."""
    harness = LedgerHarness(tmp_path / "project", now=START)
    ours = harness.open()
    floor = CostLedger(ZoneInfo("UTC"), START)
    calls = [  # $30 each, then unpriced and cached: past 80% and 100% of each default limit
        *([("claude-sonnet-3.5", 10_000_000, 0)] * 8),
        ("gpt-9-ultra", 10, 2),
        *([("claude-sonnet-3.5", 10_000_000, 0)] * 10),
    ]
    warned = 0
    for number, (model, input_tokens, output_tokens) in enumerate(calls):
        args = {
            "operation": "scene_generation",
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": number,
        }
        written = len(_our_lines(harness))
        (outcome,) = ours.handle_batch([harness.call("cost.log", f"q{number}", **args)])
        lines, (reply,), events = floor.batch([_contract_request(f"q{number}", args)], START)
        assert _masked(reply) == _masked(encode_ok(f"q{number}", outcome))
        assert [_masked(line) for line in lines] == [
            _masked(line) for line in _our_lines(harness)[written:]
        ]
        logged = next(data for topic, data in reversed(harness.events) if topic == "cost.logged")
        assert _masked(events[0][1]) == _masked(dumps(logged))
        warned += len(lines) - 1
    assert warned == 5  # the day's $50 passed at once by $60, then 80% and 100% of week and month
    warning = orjson.loads(reply)["result"]["warning"]
    assert warning.startswith("Daily budget exceeded: $540.00 spent of $50.00 (1079%)")
    assert warning.endswith(" 1 unpriced call not included.")
