"""The lean hop: the supervisor routes by a cheap envelope check, replies pass as bytes.

`read_request` replaces building a pydantic `Request` on the hot path; these
tests hold it to what a full JSON parser reads, whatever sits inside `args`
(nested "op" and "id" keys, escapes, fractions), and check the bytes the
supervisor hands over and the JSON the worker host reuses.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import zmq
from hypothesis import given
from hypothesis import strategies as st
from runtime_fakes import Rig
from strategies import json_values, short_text

from protocol.codec import dumps, loads_exact
from protocol.envelopes import (
    DEFAULT_MAX_FRAME_BYTES,
    _read_request,
    encode_ok,
    encode_ok_json,
    read_request,
)
from protocol.errors import ErrorCode, ProtocolError
from protocol.names import Op, WorkerName, owner_of
from protocol.session import SessionDocument
from services.runtime.frames import messages

_ids = st.text(min_size=1, max_size=40)
_ops = st.sampled_from([op.value for op in Op if owner_of(op.value) is not None])
_tricky_keys = st.sampled_from(["op", "id", "v", "args", 'o"p', "op\\", "\u00e9op"]) | short_text


def _nested_args() -> st.SearchStrategy[dict[str, Any]]:
    """Args whose values hide "op"/"id" keys and strings that look like envelopes."""
    decoys = st.sampled_from(
        ['{"op": "cost.log"}', '", "op": "history.list', "\\", '"', "op", "\u2028"]
    )
    values = json_values(6) | decoys
    nested = st.recursive(
        values,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(_tricky_keys, children, max_size=3)
        ),
        max_leaves=10,
    )
    return st.dictionaries(_tricky_keys, nested, max_size=4)


def _frame(envelope: dict[str, Any], *, spaced: bool) -> bytes:
    if spaced:
        return json.dumps(envelope, indent=1, ensure_ascii=True, default=str).encode()
    return dumps(envelope)


@given(
    request_id=_ids,
    op=_ops,
    args=_nested_args(),
    order=st.permutations(["v", "id", "op", "args"]),
    spaced=st.booleans(),
)
def test_the_cheap_check_reads_exactly_what_a_full_parser_reads(
    request_id: str, op: str, args: dict[str, Any], order: list[str], spaced: bool
) -> None:
    """Whatever `args` hides (nested op/id keys, escapes), id, op and args are the top level's."""
    values = {"v": 1, "id": request_id, "op": op, "args": args}
    frame = _frame({key: values[key] for key in order}, spaced=spaced)
    expected = loads_exact(frame)
    parts = read_request(frame, exact=True)
    assert (parts.id, parts.op, parts.args) == (expected["id"], expected["op"], expected["args"])


@given(request_id=_ids, op=_ops, args=_nested_args())
def test_the_supervisor_hands_the_clients_bytes_to_the_owner_of_the_top_level_op(
    request_id: str, op: str, args: dict[str, Any]
) -> None:
    """A request goes, byte for byte, to the worker owning its top-level op."""
    rig = Rig(workers=tuple(WorkerName)[:4])
    rig.start_all()
    rig.backend.take()
    frame = dumps({"v": 1, "id": request_id, "op": op, "args": args})
    rig.router.on_request([b"client-1", b"", frame])
    [message] = rig.backend.take()
    owner = owner_of(op)
    assert owner is not None
    assert message[0] == owner.value.encode()
    assert message[1] == b"REQ"
    assert message[3] == frame
    assert rig.replies() == []


def test_a_bad_envelope_for_a_restarting_worker_is_answered_at_once() -> None:
    """A malformed request is `bad_request` now, not held for the 5 s a restart may take."""
    rig = Rig()
    rig.start_all()
    rig.crash(WorkerName.SESSION_WRITER)
    bad = b'{"v": 2, "id": "r1", "op": "session.get", "args": {"op": "cost.log"}}'
    rig.router.on_request([b"client-1", b"", bad])
    [reply] = rig.replies()
    assert reply["id"] == "r1"
    assert reply["error"]["code"] == ErrorCode.BAD_REQUEST.value
    assert "unsupported protocol version 2" in reply["error"]["message"]


def test_an_unknown_op_is_refused_by_the_supervisor_even_with_a_known_op_inside_args() -> None:
    """The top-level op decides: `args.op` naming a real op does not route the request."""
    rig = Rig()
    rig.start_all()
    rig.backend.take()
    frame = b'{"v": 1, "id": "r2", "op": "session.nope", "args": {"op": "session.get"}}'
    rig.router.on_request([b"client-1", b"", frame])
    [reply] = rig.replies()
    assert reply["error"]["code"] == ErrorCode.UNKNOWN_OP.value
    assert rig.backend.take() == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b'{"v": 1, "id": "a", "op": "session.get", "args": []}', ErrorCode.INVALID_ARGS),
        (b'{"v": 1, "id": "a", "op": "session.get", "args": null}', ErrorCode.INVALID_ARGS),
        (b'{"v": 1, "id": "a", "op": "session.get", "extra": 1}', ErrorCode.BAD_REQUEST),
        (b'{"v": true, "id": "a", "op": "session.get"}', ErrorCode.BAD_REQUEST),
        (b'{"id": "a", "op": "session.get"}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "id": "", "op": "session.get"}', ErrorCode.BAD_REQUEST),
        (b'{"v": 1, "id": "a", "op": 7}', ErrorCode.BAD_REQUEST),
    ],
)
def test_envelope_errors_keep_their_codes(frame: bytes, code: ErrorCode) -> None:
    """Each envelope fault gets the contract's code from the cheap check."""
    with pytest.raises(ProtocolError) as caught:
        read_request(frame)
    assert caught.value.code is code


def test_fractions_are_exact_wherever_they_are_and_whole_numbers_stay_ints() -> None:
    """Money deep in args is Decimal for an exact worker; a frame without fractions is unchanged."""
    frame = b'{"v": 1, "id": "m", "op": "preferences.set", "args": {"a": [{"b": 0.1}], "n": 3}}'
    args = read_request(frame, exact=True).args
    assert args == {"a": [{"b": Decimal("0.1")}], "n": 3}
    assert isinstance(args["a"][0]["b"], Decimal)
    assert isinstance(read_request(frame).args["a"][0]["b"], float)
    whole = read_request(b'{"v": 1, "id": "w", "op": "cost.totals", "args": {"n": 3}}', exact=True)
    assert whole.args == {"n": 3}
    assert type(whole.args["n"]) is int


@given(request_id=_ids, result=json_values())
def test_a_reused_result_encodes_to_the_same_reply_bytes(request_id: str, result: Any) -> None:
    """Splicing a result's JSON into a reply gives exactly `encode_ok`'s bytes."""
    assert encode_ok_json(request_id, dumps(result)) == encode_ok(request_id, result)


def test_a_session_document_reply_is_the_same_bytes_reused_or_not() -> None:
    """The session writer's reused document JSON matches a fresh encoding of the reply."""
    document = SessionDocument.model_validate(
        {
            "session_id": "2026-11-23-143022",
            "project_name": "novel",
            "created_at": "2026-11-23T14:30:22Z",
            "last_activity": "2026-11-23T14:30:22Z",
        }
    )
    assert encode_ok_json("c1-1", dumps(document)) == encode_ok("c1-1", document)


def test_a_polled_read_of_an_empty_socket_returns_instead_of_blocking() -> None:
    """If the poller's news is stale, the first read gives up instead of hanging the loop."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull = context.socket(zmq.PULL)
    push = context.socket(zmq.PUSH)
    try:
        pull.bind("inproc://hop")
        push.connect("inproc://hop")
        assert list(messages(pull, 10, polled=True)) == []
        push.send(b"a", zmq.SNDMORE)
        push.send(b"b")
        push.send(b"c")
        assert pull.poll(1000)
        assert list(messages(pull, 10, polled=True)) == [[b"a", b"b"], [b"c"]]
    finally:
        push.close(linger=0)
        pull.close(linger=0)
        context.term()


_envelope_values = st.one_of(
    st.just(1),
    st.just(True),
    st.just(1.0),
    st.integers(-2, 3),
    st.text(max_size=3),
    st.text(min_size=250, max_size=260),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(short_text, st.integers() | st.floats(allow_nan=False), max_size=2),
)


@given(
    envelope=st.dictionaries(
        st.sampled_from(["v", "id", "op", "args", "extra"]), _envelope_values, max_size=5
    ),
    exact=st.booleans(),
)
def test_the_one_pass_check_and_the_full_path_agree_on_every_envelope(
    envelope: dict[str, Any], exact: bool
) -> None:
    """Well-formed or not, a request reads the same (parts, or code and message) both ways."""
    frame = json.dumps(envelope).encode()

    def outcome(read: Any) -> Any:
        try:
            parts = read(frame)
        except ProtocolError as exc:
            return ("error", exc.code, exc.message, exc.request_id)
        return ("ok", parts.id, parts.op, parts.args)

    fast = outcome(lambda data: read_request(data, exact=exact))
    full = outcome(lambda data: _read_request(data, max_bytes=DEFAULT_MAX_FRAME_BYTES, exact=exact))
    assert fast == full
