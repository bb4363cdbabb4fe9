"""The floor of one `cost.log`: a minimal broker, ledger and archiver with our framing.

A `cost.log` through the tree crosses three processes and eight ZeroMQ
messages: the request in, to the ledger, the reply back and out, the
`cost.logged` event published by the ledger, fanned out to the public XPUB
and to the archiver as an `EVT`, and the archiver's `ACK`. Part of its CPU is
ours (validation, pricing, totals, bookkeeping) and part is the price of any
Python on pyzmq doing the same durable work. To tell them apart the stack
benchmark runs, in the same run and with the same 8 clients, the least that
does what we promise:

- broker: ROUTER front, ROUTER back, an XPUB; `REQ token request` to the
  ledger (a DEALER with a routing id), `REP token reply` routed back by a
  token dict; a ledger's `PUB topic ts data` becomes one event (byte
  concatenation, no decoding) sent to the XPUB and, as `EVT number topic
  event`, to the archiver; the event is kept until the archiver ACKs its
  number (at least once, as ours).
- ledger: for each batch of requests that arrived together, parse each
  (orjson), skip an id already answered (an in-memory dict: the same reply
  again), price it with Decimal at a fixed price, append one JSON line per
  operation, **one fsync per batch**, then reply; then publish one event per
  operation.
- archiver: for each batch of events, skip a request id already seen, append
  a line per event, then one ACK for the batch. No fsync, as ours for batches
  of `cost.logged` only (`services/history_archiver.py`: those are in the
  ledger, fsynced before their `ok`).

Plain `recv_multipart`/`send_multipart`, one `zmq.Poller` in the broker, the
workers block in `recv`. With `events=False` the ledger publishes nothing and
no archiver runs: what the event leg costs in the floor.

That ledger prices at a fixed rate and answers `{"cost": ...}`, so it shows
pyzmq's share, not the price of our promises. `work="contract"` is the same
three processes doing the contract's work with the least plain Python: the
broker checks each envelope (`bad_request`, `unknown_op`) before a worker sees
it and stamps events with their source and a `seq` per source; the ledger is
`bench/contract_ledger.py` (args checked, Decimal prices from a table, the
totals and windows, budget warnings, our line, reply and event); the archiver
dedups on the operation's `request_id`.
"""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path
from typing import Literal

__all__ = ["MinimalLedger"]

_START_TIMEOUT_S = 30.0
"""Time for the three interpreters to import pyzmq and say READY on a loaded machine."""

_LIFELINE = r"""
import os, sys, threading
def _lifeline():  # the bench holds our stdin: when it dies, so do we
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=_lifeline, daemon=True).start()
"""

_BROKER_SOCKETS = r"""
front_at, back_at, events_at, workers = sys.argv[1:5]
ctx = zmq.Context()
front = ctx.socket(zmq.ROUTER); front.bind(front_at)
back = ctx.socket(zmq.ROUTER); back.bind(back_at)
xpub = ctx.socket(zmq.XPUB); xpub.bind(events_at)
waiting = set(workers.encode().split(b","))
while waiting:                              # each worker's hello: its routing id
    waiting.discard(back.recv_multipart()[0])
sys.stdout.write("ready\n"); sys.stdout.flush()
"""
"""Both brokers' start: the front, back and event sockets bound, every worker's hello read."""

_BROKER = (
    _LIFELINE
    + "import sys, zmq\n"
    + _BROKER_SOCKETS
    + r"""
poller = zmq.Poller()
poller.register(front, zmq.POLLIN); poller.register(back, zmq.POLLIN)
pending = {}; unacked = {}; counter = 0; seq = 0
LEDGER = b"ledger"; ARCHIVER = b"archiver"
while True:
    for sock, _ in poller.poll():
        if sock is front:
            frames = front.recv_multipart()
            counter += 1
            token = counter.to_bytes(8, "big")
            pending[token] = frames[:-1]
            back.send_multipart([LEDGER, b"REQ", token, frames[-1]])
            continue
        frames = back.recv_multipart()
        kind = frames[1]
        if kind == b"REP":
            front.send_multipart([*pending.pop(frames[2]), frames[3]])
        elif kind == b"PUB":
            seq += 1
            event = b'{"v":1,"seq":%d,"topic":"%s","ts":"%s","data":%s}' % (
                seq, frames[2], frames[3], frames[4])
            xpub.send_multipart([frames[2], event])
            number = b"%d" % seq
            unacked[number] = event
            back.send_multipart([ARCHIVER, b"EVT", number, frames[2], event])
        elif kind == b"ACK":
            for number in frames[2:]:
                unacked.pop(number, None)
"""
)

_LEDGER = (
    _LIFELINE
    + r"""
import os, sys, zmq, orjson
from datetime import datetime, timezone
from decimal import Decimal
back_at, path, events = sys.argv[1], sys.argv[2], sys.argv[3] == "events"
PER_MILLION_IN = Decimal("3"); PER_MILLION_OUT = Decimal("15"); MILLION = Decimal(1000000)
EVENTS = int(zmq.EVENTS); POLLIN = int(zmq.POLLIN); UTC = timezone.utc
ctx = zmq.Context()
dealer = ctx.socket(zmq.DEALER); dealer.setsockopt(zmq.ROUTING_ID, b"ledger")
dealer.connect(back_at); dealer.send(b"READY")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
answered = {}
while True:
    batch = [dealer.recv_multipart()]
    while dealer.getsockopt(EVENTS) & POLLIN:
        batch.append(dealer.recv_multipart())
    lines = []; replies = []; records = []
    for _req, token, body in batch:
        request = orjson.loads(body)
        request_id = request["id"]
        reply = answered.get(request_id)
        if reply is None:
            args = request["args"]
            cost = (Decimal(args["input_tokens"]) * PER_MILLION_IN
                    + Decimal(args["output_tokens"]) * PER_MILLION_OUT) / MILLION
            record = orjson.dumps({
                "id": request_id, "timestamp": datetime.now(UTC),
                "operation": args["operation"], "model": args["model"],
                "input_tokens": args["input_tokens"], "output_tokens": args["output_tokens"],
                "cost": str(cost)})
            lines.append(record); records.append(record)
            reply = orjson.dumps({"v": 1, "id": request_id, "ok": True,
                                  "result": {"cost": str(cost)}})
            answered[request_id] = reply
        replies.append((token, reply))
    if lines:
        os.write(fd, b"\n".join(lines) + b"\n")
        os.fsync(fd)                                  # group commit: one per batch
    for token, reply in replies:
        dealer.send_multipart([b"REP", token, reply])
    if events:
        for record in records:
            stamp = datetime.now(UTC).isoformat().encode()
            dealer.send_multipart([b"PUB", b"cost.logged", stamp, b'{"operation":%s}' % record])
"""
)

_ARCHIVER = (
    _LIFELINE
    + r"""
import os, sys, zmq, orjson
back_at, path = sys.argv[1], sys.argv[2]
EVENTS = int(zmq.EVENTS); POLLIN = int(zmq.POLLIN)
ctx = zmq.Context()
dealer = ctx.socket(zmq.DEALER); dealer.setsockopt(zmq.ROUTING_ID, b"archiver")
dealer.connect(back_at); dealer.send(b"READY")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
seen = set()
while True:
    batch = [dealer.recv_multipart()]
    while dealer.getsockopt(EVENTS) & POLLIN:
        batch.append(dealer.recv_multipart())
    lines = []; numbers = []
    for _evt, number, _topic, event in batch:
        request_id = orjson.loads(event)["data"]["operation"]["id"]
        if request_id not in seen:                    # at least once: count it once
            seen.add(request_id)
            lines.append(event)
        numbers.append(number)
    if lines:
        os.write(fd, b"\n".join(lines) + b"\n")       # cost.logged only: no fsync, as ours
    dealer.send_multipart([b"ACK", *numbers])
"""
)


_CONTRACT_BROKER = (
    _LIFELINE
    + "import sys, zmq, orjson\n"
    + _BROKER_SOCKETS
    + r"""
MAX_FRAME_BYTES = 1048576; FIELDS = frozenset(("v", "id", "op", "args"))
SOURCES = {b"ledger": b"cost_ledger"}; OPS = {"cost.log": b"ledger"}

def fault(body):
    # (id, code, message) of a request the contract refuses before any worker sees it
    if len(body) > MAX_FRAME_BYTES:
        return "", "bad_request", f"request is {len(body)} bytes; the limit is {MAX_FRAME_BYTES}"
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return "", "bad_request", f"request is not valid UTF-8 JSON: {exc}"
    if type(request) is not dict:
        return "", "bad_request", "a request is a JSON object"
    request_id = request.get("id")
    if type(request_id) is not str or not 1 <= len(request_id) <= 256:
        return "", "bad_request", "id must be a string of 1 to 256 characters"
    if not FIELDS.issuperset(request):
        return request_id, "bad_request", f"{sorted(set(request) - FIELDS)} not known in a request"
    version, op = request.get("v"), request.get("op")
    if type(version) is not int or version != 1:
        return request_id, "bad_request", f"unsupported protocol version {version!r}"
    if type(op) is not str or not 1 <= len(op) <= 128:
        return request_id, "bad_request", "op must be a string of 1 to 128 characters"
    if type(request.get("args", {})) is not dict:
        return request_id, "invalid_args", "args must be a JSON object"
    if op not in OPS:
        return request_id, "unknown_op", f"unknown op {op!r} (this floor serves cost.log)"
    return None

poller = zmq.Poller()
poller.register(front, zmq.POLLIN); poller.register(back, zmq.POLLIN)
pending = {}; unacked = {}; seqs = {}; counter = 0; delivered = 0
ARCHIVER = b"archiver"
while True:
    for sock, _ in poller.poll():
        if sock is front:
            frames = front.recv_multipart()
            refused = fault(frames[-1])
            if refused:
                request_id, code, message = refused
                front.send_multipart([*frames[:-1], orjson.dumps(
                    {"v": 1, "id": request_id, "ok": False,
                     "error": {"code": code, "message": message}})])
                continue
            counter += 1
            token = counter.to_bytes(8, "big")
            pending[token] = frames[:-1]
            back.send_multipart([b"ledger", b"REQ", token, frames[-1]])
            continue
        frames = back.recv_multipart()
        kind = frames[1]
        if kind == b"REP":
            front.send_multipart([*pending.pop(frames[2]), frames[3]])
        elif kind == b"PUB":
            source = SOURCES[frames[0]]
            seq = seqs[source] = seqs.get(source, -1) + 1     # per source, from 0
            topic = frames[2]
            event = b'{"v":1,"topic":"%s","source":"%s","seq":%d,"ts":"%s","data":%s}' % (
                topic, source, seq, frames[3], frames[4])
            xpub.send_multipart([topic, event])
            if topic == b"cost.logged":                       # what the archiver subscribes to
                delivered += 1
                number = b"%d" % delivered
                unacked[number] = event
                back.send_multipart([ARCHIVER, b"EVT", number, topic, event])
        elif kind == b"ACK":
            for number in frames[2:]:
                unacked.pop(number, None)
"""
)
"""The broker of `work="contract"`: the plain broker, plus the envelope checks the
contract asks before any worker sees a request (`bad_request`, then `unknown_op`,
answered by the broker), and events stamped with their source and a `seq` per
source, as ours; only `cost.logged` goes to the archiver, as it subscribes."""

_CONTRACT_ARCHIVER = _ARCHIVER.replace('["operation"]["id"]', '["operation"]["request_id"]')
"""The archiver of `work="contract"`: the same, on the operation's `request_id`."""

_PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""Where `python -m bench.contract_ledger` finds `bench`."""


class MinimalLedger:
    """The floor's processes: broker, ledger, and (with events) the archiver.

    `command` takes our clients' requests unchanged (`["", request]` from a
    DEALER); the ledger's lines go to `ledger_path`, the archiver's to
    `archive_path`. Ready when built: every worker said READY to the broker.
    Each process reads its stdin to the end and then exits, so none outlives
    the bench, even one killed with -9.
    """

    def __init__(
        self,
        folder: Path,
        *,
        events: bool = True,
        name: str = "floor",
        work: Literal["plain", "contract"] = "plain",
    ) -> None:
        """`work="contract"`: the broker checks envelopes and the ledger is
        `bench/contract_ledger.py`, which does what the contract promises (its
        events are part of that, so it always runs with them)."""
        if work == "contract" and not events:
            raise ValueError("the contract's work includes its events: the contract floor has them")
        folder.mkdir(parents=True, exist_ok=True)
        self.command = f"ipc://{folder / f'{name}-front.sock'}"
        backend = f"ipc://{folder / f'{name}-back.sock'}"
        published = f"ipc://{folder / f'{name}-events.sock'}"
        self.events = published
        """The floor's public event endpoint (an XPUB, as ours)."""
        self.ledger_path = folder / f"{name}-ledger.jsonl"
        self.archive_path = folder / f"{name}-archive.jsonl"
        workers = "ledger,archiver" if events else "ledger"
        contract = work == "contract"
        self._broker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CONTRACT_BROKER if contract else _BROKER,
                self.command,
                backend,
                published,
                workers,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {"broker": self._broker}
        if contract:  # a module of its own (linted, typed, tested), none of the product's
            ledger = ["-m", "bench.contract_ledger", backend, str(self.ledger_path)]
        else:
            ledger = ["-c", _LEDGER, backend, str(self.ledger_path)]
            ledger.append("events" if events else "quiet")
        self.processes["ledger"] = subprocess.Popen(
            [sys.executable, *ledger], stdin=subprocess.PIPE, cwd=_PROJECT_ROOT
        )
        if events:
            archiver = _CONTRACT_ARCHIVER if contract else _ARCHIVER
            self.processes["archiver"] = subprocess.Popen(
                [sys.executable, "-c", archiver, backend, str(self.archive_path)],
                stdin=subprocess.PIPE,
            )
        said = self._broker.stdout
        assert said is not None
        if not select.select([said], [], [], _START_TIMEOUT_S)[0] or said.readline() != b"ready\n":
            self.close()
            raise RuntimeError("the cost.log floor did not start: its workers never said READY")

    @property
    def pids(self) -> dict[str, int]:
        """Each process's pid by its role, for the CPU meter."""
        return {role: process.pid for role, process in self.processes.items()}

    def close(self) -> None:
        """Stop and reap every process (their files are written as they go)."""
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
