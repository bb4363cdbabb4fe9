"""The round trip's floors answer like the service: the benchmark compares like with like."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from bench.hop_floor import MinimalBroker
from protocol.envelopes import encode_ok_json

_RESULT = b'{"session_id":"s","open_files":[]}'


@pytest.mark.parametrize("checks", [False, True], ids=["plain", "with our checks"])
def test_a_floor_answers_session_get_with_the_services_reply_bytes(
    tmp_path: Path, checks: bool
) -> None:
    """Both floors answer a `session.get` with the bytes a worker host would send."""
    reply = encode_ok_json("rt", _RESULT)
    floor = MinimalBroker(tmp_path, _RESULT if checks else reply, checks=checks)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    client = context.socket(zmq.REQ)
    client.setsockopt(zmq.LINGER, 0)
    try:
        client.connect(floor.command)
        client.send(b'{"v":1,"id":"rt","op":"session.get","args":{}}')
        assert client.poll(10_000), "the floor did not answer"
        assert client.recv() == reply
    finally:
        client.close(linger=0)
        floor.close(quit_sent=False)
        context.term()
