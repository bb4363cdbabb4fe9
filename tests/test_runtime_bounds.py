"""Nothing a peer sends may grow the supervisor's memory: oversized subscriptions."""

from __future__ import annotations

from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from tests.conftest import SpawnPython
from tests.service import running_service

SUBSCRIPTION_BYTES = 4 * 1024 * 1024
HUGE = 17 * 1024 * 1024
"""Over `protocol.hard_frame_bytes` (16 MiB): ZeroMQ refuses it at its size header."""
RSS_BOUND_KIB = 16 * 1024
"""Allowed growth; without the bound one 4 MiB subscription costs 190-450 MiB."""

# Sends one huge subscription and reports whether the service dropped the
# connection. libzmq can segfault a process at teardown after it sent a
# multi-MiB subscription (measured), hence a child that leaves with os._exit.
_HUGE_SUBSCRIBER = """
import os, sys, zmq, zmq.utils.monitor as monitor
context = zmq.Context()
sub = context.socket(zmq.XSUB)
events = sub.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
sub.connect({endpoint!r})
seen = []
while events.poll(10000):
    seen.append(monitor.recv_monitor_message(events)["event"])
    if seen[-1] == zmq.EVENT_CONNECTED and len(seen) == 1:
        sub.send(b"\\x01" + b"t" * {size})
    if seen[-1] == zmq.EVENT_DISCONNECTED:
        break
print("dropped" if zmq.EVENT_DISCONNECTED in seen else "kept", flush=True)
os._exit(0)
"""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_huge_subscription_neither_grows_memory_nor_stops_the_service(
    tmp_path: Path, spawn_python: SpawnPython
) -> None:
    """A 4 MiB subscription is refused and its sender dropped; memory stays flat, requests work."""
    with running_service(tmp_path / "novel") as service:
        pid = service.process.pid
        assert service.request("supervisor.status")["ok"] is True
        before = _rss_kib(pid)
        code = _HUGE_SUBSCRIBER.format(
            endpoint=service.endpoints["events"], size=SUBSCRIPTION_BYTES
        )
        child = spawn_python(code)
        said, _ = child.communicate(timeout=60)
        assert service.request("supervisor.status")["ok"] is True
        grown = _rss_kib(pid) - before
        assert said.strip() == b"dropped"
        assert grown < RSS_BOUND_KIB, f"supervisor grew by {grown} KiB"
        assert service.request("session.set_stage", {"stage": "writing"})["ok"] is True


def test_frame_over_one_mib_is_refused_with_its_id(tmp_path: Path) -> None:
    """A 2 MiB request gets one bad_request reply that echoes its id, as docs/protocol.md says."""
    with running_service(tmp_path / "novel") as service:
        note = "x" * (2 * 1024 * 1024)
        reply = service.request("session.add_recent_query", {"query": note}, request_id="big-1")
        assert reply["id"] == "big-1"
        assert reply["ok"] is False
        assert reply["error"]["code"] == "bad_request"
        message = "request is 2097232 bytes; the limit is 1048576 bytes"  # as docs/protocol.md §5
        assert reply["error"]["message"] == message


def test_frame_over_the_hard_limit_drops_only_that_connection(tmp_path: Path) -> None:
    """A frame over 16 MiB gets no reply: its connection is dropped, reconnects, serves again."""
    with running_service(tmp_path / "novel") as service:
        sock = service.socket()
        assert service.request("supervisor.status", sock=sock)["ok"] is True
        events = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        try:
            sock.send_multipart([b"", b'{"v":1,"id":"huge","op":"x","args":"' + b"x" * HUGE])
            assert events.poll(20_000), "the service kept a connection that sent 17 MiB"
            assert recv_monitor_message(events)["event"] == zmq.EVENT_DISCONNECTED
            assert sock.poll(0) == 0  # no reply to the huge frame
            assert service.request("supervisor.status", sock=sock)["ok"] is True
        finally:
            sock.disable_monitor()
            events.close(linger=0)
