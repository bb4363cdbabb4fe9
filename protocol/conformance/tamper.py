"""A deliberately wrong service: a proxy that changes one field of the replies.

It stands in front of a real service's command socket and forwards every
request unchanged, but in each reply that has the field `--field` (a dotted
path such as `result.current_state.stage`) it writes `--value` instead. Events
are not proxied. It writes a second project folder whose
`.session/run/endpoints.json` names the proxy as `command`, so any runner
pointed at that folder (`WF_PROJECT` for the Node.js runner) talks to it.

A conformance runner that passes against this double is not checking that
field: both runners' own tests use it to prove they fail.

    python -m protocol.conformance.tamper --project REAL --fake-project DIR \
        --field result.current_state.stage --value '"scoring"'

It prints one line `ready <endpoint>` once the fake endpoints.json is written,
and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import zmq

from protocol.conformance.matching import dumps_exact, loads_exact

__all__ = ["Tamper", "main", "tamper_reply"]


def tamper_reply(reply: Any, field: str, value: Any) -> bool:
    """Overwrite the field at dotted path `field` in `reply`; False when it has none."""
    *parents, last = field.split(".")
    node = reply
    for key in parents:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    if not isinstance(node, dict) or last not in node:
        return False
    node[last] = value
    return True


class Tamper:
    """The proxy: a ROUTER for clients, one DEALER to the real service."""

    def __init__(self, upstream: str, listen: str, field: str, value: Any) -> None:
        self._context = zmq.Context()
        self._front = self._context.socket(zmq.ROUTER)
        self._front.setsockopt(zmq.LINGER, 0)
        self._front.bind(listen)
        self.endpoint: str = self._front.getsockopt_string(zmq.LAST_ENDPOINT)
        self._back = self._context.socket(zmq.DEALER)
        self._back.setsockopt(zmq.LINGER, 0)
        self._back.connect(upstream)
        self._field, self._value = field, value
        self._clients: OrderedDict[str, bytes] = OrderedDict()
        self._stop = threading.Event()
        self.tampered = 0
        """Replies changed so far."""

    def serve(self) -> None:
        """Forward until `stop` is called."""
        poller = zmq.Poller()
        poller.register(self._front, zmq.POLLIN)
        poller.register(self._back, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(100):
                    if sock is self._front:
                        self._forward_request(self._front.recv_multipart())
                    else:
                        self._forward_reply(self._back.recv_multipart())
        finally:
            self._front.close(linger=0)
            self._back.close(linger=0)
            self._context.term()

    def stop(self) -> None:
        """Make `serve` return."""
        self._stop.set()

    def _forward_request(self, frames: list[bytes]) -> None:
        identity, payload = frames[0], frames[1:]
        if payload and payload[0] == b"":
            payload = payload[1:]
        try:
            request_id = str(json.loads(payload[-1]).get("id", "")) if len(payload) == 1 else ""
        except (ValueError, AttributeError):
            request_id = ""
        self._clients[request_id] = identity
        self._back.send_multipart([b"", *payload])

    def _forward_reply(self, frames: list[bytes]) -> None:
        reply = loads_exact(frames[-1])
        request_id = str(reply.get("id", ""))
        identity = self._clients.get(request_id)
        if identity is None and self._clients:
            identity = next(iter(self._clients.values()))  # an id the service could not read
        if identity is None:
            return
        if tamper_reply(reply, self._field, self._value):
            self.tampered += 1
        self._front.send_multipart([identity, b"", dumps_exact(reply)])


def main(argv: list[str] | None = None) -> int:
    """Run the proxy for a project and write the fake project's endpoints.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--project", type=Path, required=True, help="the real, running project")
    parser.add_argument("--fake-project", type=Path, required=True, help="folder to write")
    parser.add_argument("--field", default="result.current_state.stage")
    parser.add_argument("--value", default='"scoring"', help="JSON text of the new value")
    options = parser.parse_args(argv)
    real = json.loads((options.project / ".session/run/endpoints.json").read_text("utf-8"))
    run_dir = options.fake_project / ".session" / "run"
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    proxy = Tamper(
        real["command"],
        f"ipc://{run_dir / 'tamper.sock'}",
        options.field,
        loads_exact(options.value),
    )
    # The proxy stands in for the fake project's supervisor, so it holds that
    # project's lock as one does: clients check the lock, not only the pid.
    lock = os.open(run_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(lock, 0)
    os.write(lock, str(os.getpid()).encode("ascii"))
    (run_dir / "endpoints.json").write_text(
        json.dumps({**real, "command": proxy.endpoint, "supervisor_pid": os.getpid()}), "utf-8"
    )
    signal.signal(signal.SIGTERM, lambda *_: proxy.stop())
    signal.signal(signal.SIGINT, lambda *_: proxy.stop())
    sys.stdout.write(f"ready {proxy.endpoint}\n")
    sys.stdout.flush()
    proxy.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
