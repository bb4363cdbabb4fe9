"""The cost ledger host: replies leave before their events; each request is answered once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.internal import PUB, REP
from tests.host_harness import (
    FakeSupervisor,
    cost_event,
    cost_log_request,
    gated_ledger_host,
    host_signals,
    play,
)

Script = Callable[[FakeSupervisor], Any]
Run = Callable[..., Any]


@pytest.fixture
def ledger_host(tmp_path: Path) -> Iterator[Run]:
    """Run a real cost ledger host on this thread while `script` plays the supervisor.

    With `gate`, the ledger's first batch waits for it to be set: what the script
    sends meanwhile is queued and read in one go.
    """
    with host_signals() as lifeline:

        def run(script: Script, gate: threading.Event | None = None) -> Any:
            endpoint = f"inproc://ledger-{id(script)}"
            host, supervisor = gated_ledger_host(str(tmp_path), lifeline, endpoint, gate)
            return play(host, supervisor, script)

        yield run


def _replies_and_events(supervisor: FakeSupervisor, count: int) -> list[tuple[bytes, bytes]]:
    """The next `count` replies and events, in the order they came: (kind, token or topic)."""
    seen: list[tuple[bytes, bytes]] = []
    while len(seen) < count:
        frames = supervisor.next_message(10.0)[1:]
        if frames[0] in (REP, PUB):
            seen.append((frames[0], frames[1]))
    return seen


def test_a_cost_log_reply_goes_out_before_its_event(ledger_host: Any) -> None:
    """The supervisor gets each `cost.log` reply ahead of the `cost.logged` it caused."""

    def script(supervisor: FakeSupervisor) -> list[tuple[bytes, bytes]]:
        supervisor.send(cost_log_request(1, "first"))
        return _replies_and_events(supervisor, 2)

    assert ledger_host(script) == [(REP, (1).to_bytes(8, "big")), (PUB, b"cost.logged")]


def test_requests_read_before_an_event_are_answered_once(ledger_host: Any) -> None:
    """A request and an event read together get one reply, not two, and what follows one too."""
    gate = threading.Event()

    def script(supervisor: FakeSupervisor) -> list[bytes]:
        supervisor.send(cost_log_request(1, "first"))  # its batch waits for the gate
        supervisor.send(cost_log_request(2, "second"))
        topic, body = cost_event(1, "elsewhere")
        supervisor.send([b"EVT", (1).to_bytes(8, "big"), topic, body])
        supervisor.send(cost_log_request(3, "third"))
        gate.set()
        tokens: list[bytes] = []
        while not tokens or tokens[-1] != (3).to_bytes(8, "big"):
            frames = supervisor.next_message(10.0)[1:]
            if frames[0] == REP:
                tokens.append(frames[1])
        supervisor.send(cost_log_request(4, "fourth"))  # a marker: a late duplicate comes before it
        while tokens[-1] != (4).to_bytes(8, "big"):
            frames = supervisor.next_message(10.0)[1:]
            if frames[0] == REP:
                tokens.append(frames[1])
        return tokens

    tokens = ledger_host(script, gate)
    assert tokens == [(n).to_bytes(8, "big") for n in (1, 2, 3, 4)]
