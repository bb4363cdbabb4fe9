"""The floor of one supervisor hop: a minimal broker and worker with our framing.

`session.get` through the supervisor crosses two processes and four socket
hops; a direct REQ/REP pair crosses one process and two. Part of the gap is
ours (decoding, bookkeeping) and part is the price of any Python broker on
pyzmq. To tell them apart the round-trip benchmark measures, in the same run,
the least a broker can do with the same framing:

- client REQ -> broker ROUTER (routing id, empty delimiter, request);
- broker ROUTER -> worker DEALER with a routing id: `REQ token request`;
- worker -> broker: `REP token reply`; broker -> client: route and reply.

Plain `recv_multipart`/`send_multipart`, one `zmq.Poller` over the two
sockets, a dict of pending tokens, no decoding, the same reply bytes. What we
spend above this is what the supervisor and the worker host add.

`MinimalBroker(..., checks=True)` is the same pair doing the checks the
contract asks of ours, with our functions: the broker reads each request's
envelope (`read_request`, so a bad one could be answered before any worker
sees it) and the worker decodes and validates it once (`read_request`,
`parse_args`, a `Call`) and encodes its reply with the request's id
(`encode_ok_json`). The gap between the two floors is the price of those
checks in CPython; the gap between us and the checked floor is ours.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["MinimalBroker", "rotate"]

_BROKER = r"""
import sys, zmq
ctx = zmq.Context()
front = ctx.socket(zmq.ROUTER); front.bind(sys.argv[1])
back = ctx.socket(zmq.ROUTER); back.bind(sys.argv[2])
worker = back.recv_multipart()[0]          # the worker's hello: its routing id
poller = zmq.Poller()
poller.register(front, zmq.POLLIN); poller.register(back, zmq.POLLIN)
pending = {}; counter = 0
while True:
    ready = dict(poller.poll())
    if front in ready:
        frames = front.recv_multipart()
        if frames[-1] == b"quit":
            back.send_multipart([worker, b"STOP"])
            front.send_multipart([*frames[:-1], b""])
            break
        counter += 1
        token = counter.to_bytes(8, "big")
        pending[token] = frames[:-1]
        back.send_multipart([worker, b"REQ", token, frames[-1]])
    if back in ready:
        frames = back.recv_multipart()
        front.send_multipart([*pending.pop(frames[2]), frames[3]])
"""

_CHECKED_BROKER = _BROKER.replace(
    "import sys, zmq\n",
    "import sys, zmq\nsys.path.insert(0, sys.argv[3])\n"
    "from protocol.envelopes import read_request\n",
).replace("        counter += 1\n", "        read_request(frames[-1])\n        counter += 1\n")

_WORKER_LOOP = r"""
ctx = zmq.Context()
dealer = ctx.socket(zmq.DEALER); dealer.setsockopt(zmq.ROUTING_ID, b"worker")
dealer.connect(sys.argv[1]); dealer.send(b"READY")
while True:
    frames = dealer.recv_multipart()
    if frames[0] == b"STOP":
        break
"""
"""Both floor workers: connect, say READY, and read requests until STOP (the body follows)."""

_CHECKED_WORKER = (
    r"""
import sys, zmq
sys.path.insert(0, sys.argv[2])
from protocol.envelopes import encode_ok_json, read_request
from protocol.ops import OP_BY_NAME, parse_args
from services.runtime.worker import Call
result = sys.stdin.buffer.read()
"""
    + _WORKER_LOOP
    + r"""    request = read_request(frames[2])
    args = parse_args(request.op, request.args, request_id=request.id)
    call = Call(id=request.id, op=OP_BY_NAME[request.op], args=args)
    dealer.send_multipart([b"REP", frames[1], encode_ok_json(call.id, result)])
"""
)

_WORKER = (
    r"""
import sys, zmq
reply = sys.stdin.buffer.read()
"""
    + _WORKER_LOOP
    + r"""    dealer.send_multipart([b"REP", frames[1], reply])
"""
)


class MinimalBroker:
    """The floor's two processes: a broker (front and back ROUTER) and its worker."""

    def __init__(self, folder: Path, reply: bytes, *, checks: bool = False) -> None:
        """`reply`: the reply frame, or with `checks` the result's JSON only."""
        name = "checked" if checks else "floor"
        self.command = f"ipc://{folder / f'{name}-front.sock'}"
        backend = f"ipc://{folder / f'{name}-back.sock'}"
        root = str(Path(__file__).resolve().parents[1])
        broker, worker = (_CHECKED_BROKER, _CHECKED_WORKER) if checks else (_BROKER, _WORKER)
        self._broker = subprocess.Popen([sys.executable, "-c", broker, self.command, backend, root])
        self._worker = subprocess.Popen(
            [sys.executable, "-c", worker, backend, root], stdin=subprocess.PIPE
        )
        if self._worker.stdin is None:
            raise RuntimeError("the floor's worker has no stdin")
        self._worker.stdin.write(reply)
        self._worker.stdin.close()

    @property
    def pids(self) -> list[int]:
        """Broker and worker."""
        return [self._broker.pid, self._worker.pid]

    def close(self, quit_sent: bool) -> None:
        """Reap both (after a client sent `quit`), or kill them."""
        for process in (self._broker, self._worker):
            if not quit_sent:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def rotate(
    actions: Sequence[Callable[[], object]], *, rounds: int, warmup: int = 2
) -> list[list[float]]:
    """Time each action once per round, rotating which goes first.

    The harness's `interleave` for more than two: a burst of noise on a shared
    machine lands on every figure alike, so their ratios stay honest.
    """
    for _ in range(warmup):
        for action in actions:
            action()
    samples: list[list[float]] = [[] for _ in actions]
    count = len(actions)
    timer = time.perf_counter
    for index in range(rounds):
        for offset in range(count):
            which = (index + offset) % count
            started = timer()
            actions[which]()
            samples[which].append(timer() - started)
    return samples
