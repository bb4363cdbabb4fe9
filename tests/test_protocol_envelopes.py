"""protocol.envelopes: request, reply and event frames, and every way a frame can be wrong."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import error_replies, events, ok_replies, op_requests, requests

from protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    OP_ARGS,
    ErrorCode,
    ErrorReply,
    Event,
    OkReply,
    Op,
    ProtocolError,
    Request,
    decode_event,
    decode_reply,
    decode_request,
    encode_error,
    encode_event,
    encode_ok,
    encode_request,
    parse_args,
    parse_event_data,
)
from protocol.codec import dumps


def _request_error(frame: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_request(frame)
    return caught.value


def _args_error(op: str, args: dict[str, Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_args(op, args, request_id="c1-000001")
    return caught.value


# --- round trips -----------------------------------------------------------


@given(requests())
def test_request_round_trips(request: Request) -> None:
    """A request encoded by a client decodes (money exact) to the same request."""
    frame = encode_request(request.id, request.op, request.args)
    assert decode_request(frame, exact=True) == request


@given(op_requests())
def test_every_op_with_valid_args_is_accepted(op_and_args: tuple[Op, dict[str, Any]]) -> None:
    """For every op, valid args sent over the wire validate against that op's args model."""
    op, args = op_and_args
    request = decode_request(encode_request("c1-000017", op.value, args), exact=True)
    parsed = parse_args(request.op, request.args, request_id=request.id)
    assert type(parsed).model_validate(parsed.model_dump()) == parsed


@given(ok_replies())
def test_ok_reply_round_trips(reply: OkReply) -> None:
    """A successful reply decodes to the same id and result, money exact."""
    decoded = decode_reply(encode_ok(reply.id, reply.result))
    assert isinstance(decoded, OkReply)
    assert decoded == reply


@given(error_replies())
def test_error_reply_round_trips(reply: ErrorReply) -> None:
    """An error reply decodes to the same id, code and message."""
    decoded = decode_reply(encode_error(reply.id, reply.error.code, reply.error.message))
    assert isinstance(decoded, ErrorReply)
    assert decoded == reply


@given(events())
def test_event_round_trips_and_its_data_validates(event: Event) -> None:
    """An event's two frames decode to the same envelope, and its data to its topic's model."""
    frames = encode_event(event.topic, event.source, event.seq, event.ts, event.data)
    assert frames[0] == event.topic.encode()
    decoded = decode_event(frames)
    assert decoded == event
    parse_event_data(decoded.topic, decoded.data)


def test_error_reply_without_a_readable_id_has_an_empty_id() -> None:
    """When the request's id could not be read, the error reply still parses, with id ``""``."""
    decoded = decode_reply(encode_error(None, ErrorCode.BAD_REQUEST, "not JSON"))
    assert isinstance(decoded, ErrorReply)
    assert decoded.id == ""
    assert decoded.error.code is ErrorCode.BAD_REQUEST


def test_money_in_a_reply_stays_exact() -> None:
    """A cost in a reply reaches the client as the exact Decimal, not a float."""
    decoded = decode_reply(encode_ok("c1", {"cost": Decimal("0.00000007")}))
    assert isinstance(decoded, OkReply)
    assert decoded.result["cost"] == Decimal("0.00000007")
    assert isinstance(decoded.result["cost"], Decimal)


# --- malformed frames --------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        pytest.param(b"not json", ["JSON"], id="not-json"),
        pytest.param(b"", ["JSON"], id="empty"),
        pytest.param(b'{"v": 1, "id": "a", "op": "x"', ["JSON"], id="truncated"),
        pytest.param(b'{"v":1,"id":"\xff\xfe","op":"session.get"}', ["UTF-8"], id="not-utf8"),
        pytest.param(b"[1, 2]", ["object", "list"], id="array"),
        pytest.param(b'"hello"', ["object", "str"], id="string"),
        pytest.param(b'{"id": "a", "op": "session.get"}', ["missing", "v"], id="missing-v"),
        pytest.param(b'{"v": 1, "op": "session.get"}', ["missing", "id"], id="missing-id"),
        pytest.param(b'{"v": 1, "id": "a"}', ["missing", "op"], id="missing-op"),
        pytest.param(b'{"v": 2, "id": "a", "op": "session.get"}', ["version", "2"], id="v2"),
        pytest.param(b'{"v": "1", "id": "a", "op": "session.get"}', ["version"], id="v-str"),
        pytest.param(b'{"v": true, "id": "a", "op": "session.get"}', ["version"], id="v-bool"),
        pytest.param(b'{"v": 1, "id": 17, "op": "session.get"}', ["id"], id="id-int"),
        pytest.param(b'{"v": 1, "id": null, "op": "session.get"}', ["id"], id="id-null"),
        pytest.param(b'{"v": 1, "id": "", "op": "session.get"}', ["id"], id="id-empty"),
        pytest.param(b'{"v": 1, "id": "a", "op": 5}', ["op"], id="op-int"),
        pytest.param(b'{"v": 1, "id": "a", "op": "x", "idd": 1}', ["idd"], id="unknown-field"),
    ],
)
def test_malformed_request_is_bad_request_naming_the_problem(
    frame: bytes, words: list[str]
) -> None:
    """Every malformed frame raises bad_request with a message naming what is wrong."""
    error = _request_error(frame)
    assert error.code is ErrorCode.BAD_REQUEST
    for word in words:
        assert word in error.message


@pytest.mark.parametrize(
    ("args", "kind"),
    [([1, 2], "list"), ("stage", "str"), (None, "NoneType"), (7, "int")],
)
def test_args_that_are_not_an_object_are_invalid_args(args: Any, kind: str) -> None:
    """`args` that is not a JSON object is invalid_args; the message names `args` and its type."""
    frame = dumps({"v": 1, "id": "c1-9", "op": "session.set_stage", "args": args})
    error = _request_error(frame)
    assert error.code is ErrorCode.INVALID_ARGS
    assert "args" in error.message
    assert kind in error.message
    assert error.request_id == "c1-9"


def test_frame_over_one_mib_is_refused_before_parsing() -> None:
    """A frame over 1 MiB is bad_request and the message gives its size and the limit."""
    padding = "x" * DEFAULT_MAX_FRAME_BYTES
    frame = dumps({"v": 1, "id": "big", "op": "session.set_screen", "args": {"screen": padding}})
    error = _request_error(frame)
    assert error.code is ErrorCode.BAD_REQUEST
    assert str(len(frame)) in error.message
    assert str(DEFAULT_MAX_FRAME_BYTES) in error.message


def test_frame_of_exactly_one_mib_is_accepted() -> None:
    """The limit is inclusive: a frame of exactly 1 MiB still parses."""
    head = b'{"v": 1, "id": "edge", "op": "session.get"}'
    frame = head + b" " * (DEFAULT_MAX_FRAME_BYTES - len(head))
    assert len(frame) == DEFAULT_MAX_FRAME_BYTES
    assert decode_request(frame).id == "edge"


def test_readable_id_is_kept_on_errors_so_the_client_can_match_the_reply() -> None:
    """A request whose id was readable gets an error carrying that id."""
    error = _request_error(b'{"v": 2, "id": "c1-000042", "op": "session.get"}')
    assert error.request_id == "c1-000042"
    unreadable = _request_error(b'{"v": 1, "id": 42, "op": "session.get"}')
    assert unreadable.request_id is None


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(frame: bytes) -> None:
    """Whatever bytes arrive, decoding either succeeds or raises ProtocolError."""
    for exact in (False, True):
        try:
            decode_request(frame, exact=exact)
        except ProtocolError as error:
            assert error.code in {ErrorCode.BAD_REQUEST, ErrorCode.INVALID_ARGS}


def test_deeply_nested_frame_is_bad_request() -> None:
    """A frame nested thousands deep is refused with bad_request instead of crashing the parser."""
    frame = b"[" * 100_000 + b"]" * 100_000
    assert _request_error(frame).code is ErrorCode.BAD_REQUEST


def test_deeply_nested_frame_is_bad_request_in_exact_mode() -> None:
    """With exact money parsing too, a frame nested thousands deep is bad_request."""
    frame = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ProtocolError) as caught:
        decode_request(frame, exact=True)
    assert caught.value.code is ErrorCode.BAD_REQUEST


# --- ops and their args ----------------------------------------------------


@pytest.mark.parametrize("op", ["session.rename", "cost", "", "SESSION.GET", "supervisor.stop"])
def test_unknown_op_is_unknown_op_naming_it(op: str) -> None:
    """An op no worker answers is unknown_op, and the message quotes it."""
    error = _args_error(op, {})
    assert error.code is ErrorCode.UNKNOWN_OP
    assert repr(op) in error.message
    assert error.request_id == "c1-000001"


_LONG = "x" * 10_001

_COST_LOG = {"operation": "draft", "model": "gpt-4", "input_tokens": 1, "output_tokens": 1}


@pytest.mark.parametrize(
    ("op", "args", "field", "words"),
    [
        ("session.set_stage", {"stage": "editing"}, "stage", ["creation", "scoring"]),
        ("session.set_stage", {}, "stage", ["required"]),
        ("session.set_stage", {"stage": 3}, "stage", []),
        ("cost.log", {**_COST_LOG, "input_tokens": -1}, "input_tokens", ["greater"]),
        ("cost.log", {**_COST_LOG, "output_tokens": "12"}, "output_tokens", ["integer"]),
        ("cost.log", {**_COST_LOG, "input_tokens": 1.5}, "input_tokens", ["integer"]),
        ("cost.log", {**_COST_LOG, "input_tokens": 12.5}, "input_tokens", ["integer"]),
        ("cost.log", {**_COST_LOG, "input_tokens": True}, "input_tokens", ["integer"]),
        ("cost.log", {**_COST_LOG, "input_tokens": 10**13}, "input_tokens", ["less"]),
        ("cost.log", {**_COST_LOG, "model": ""}, "model", []),
        ("cost.estimate", {"model": "gpt-4", "input_tokens": "12"}, "input_tokens", []),
        ("session.add_recent_query", {"query": _LONG, "source": "s"}, "query", ["10000"]),
        ("session.set_screen", {"screen": _LONG}, "screen", ["10000"]),
        ("session.set_breadcrumb", {"breadcrumb": ["ok", _LONG]}, "breadcrumb.1", ["10000"]),
        ("session.significant_action", {"action": ""}, "action", []),
        ("session.open_file", {"path": "../x"}, "path", [".."]),
        ("session.open_file", {"path": "manuscript/../../x"}, "path", [".."]),
        ("session.open_file", {"path": "C:/novel/a.md"}, "path", ["relative"]),
        ("session.open_file", {"path": "a\\b"}, "path", ["'/'"]),
        ("session.open_file", {"path": "C:/x"}, "path", ["relative"]),
        ("session.open_file", {"path": ""}, "path", ["empty"]),
        ("session.open_file", {"path": "."}, "path", ["inside"]),
        ("session.open_file", {"path": "a\x00b"}, "path", ["NUL"]),
        ("session.open_file", {"path": "a.md", "cursor_line": -1}, "cursor_line", []),
        ("session.close_file", {"path": "../../etc/shadow"}, "path", [".."]),
        ("cost.set_budget", {"daily_limit": -5}, "daily_limit", ["greater"]),
        ("cost.set_budget", {"monthly_limit": "lots"}, "monthly_limit", []),
        ("cost.set_budget", {"warnings_enabled": "yes"}, "warnings_enabled", []),
        ("history.list", {"limit": 0}, "limit", []),
        ("history.list", {"limit": "5"}, "limit", []),
        ("preferences.set", {"values": {"colour": "red"}}, "colour", ["known"]),
    ],
)
def test_invalid_args_name_the_field(
    op: str, args: dict[str, Any], field: str, words: list[str]
) -> None:
    """Wrong args are invalid_args with a message that names the field (and the rule)."""
    error = _args_error(op, args)
    assert error.code is ErrorCode.INVALID_ARGS
    assert field in error.message
    for word in words:
        assert word in error.message


def test_text_of_exactly_ten_thousand_characters_is_accepted() -> None:
    """The text limit is inclusive: 10,000 characters is still a valid query."""
    parse_args("session.add_recent_query", {"query": "q" * 10_000, "source": "bible"})


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("./manuscript//ch1.md", "manuscript/ch1.md"), ("planning/./notes.md", "planning/notes.md")],
)
def test_harmless_path_spellings_are_normalised(raw: str, clean: str) -> None:
    """`.` segments and doubled slashes are accepted and stored in canonical form."""
    parsed = parse_args("session.open_file", {"path": raw})
    assert parsed.model_dump()["path"] == clean


@given(op_requests(), st.text(min_size=1, max_size=12))
def test_unknown_field_in_args_is_rejected(
    op_and_args: tuple[Op, dict[str, Any]], extra: str
) -> None:
    """A field an op does not take (a typo, a newer client) is invalid_args naming it."""
    op, args = op_and_args
    assume(extra not in args and extra not in OP_ARGS[op].model_fields)
    error = _args_error(op.value, {**args, extra: 1})
    assert error.code is ErrorCode.INVALID_ARGS
    assert extra in error.message


def test_event_with_a_mismatched_topic_frame_is_refused() -> None:
    """An event whose topic frame disagrees with its envelope is refused, not delivered."""
    frames = encode_event("file.created", "file_watcher", 1, "2026-01-01T00:00:00Z", {"path": "a"})
    with pytest.raises(ProtocolError, match="topic"):
        decode_event([b"file.deleted", frames[1]])
    with pytest.raises(ProtocolError, match="2 frames"):
        decode_event(frames[1:])


def test_event_data_for_an_unknown_topic_is_refused() -> None:
    """Data for a topic that does not exist raises bad_request quoting the topic."""
    with pytest.raises(ProtocolError, match=r"'file\.renamed'"):
        parse_event_data("file.renamed", {"path": "a"})


def test_event_data_with_an_escaping_path_is_refused() -> None:
    """A file event whose path leaves the project is refused and names `path`."""
    with pytest.raises(ProtocolError, match="path") as caught:
        parse_event_data("file.created", {"path": "../outside.md"})
    assert caught.value.code is ErrorCode.BAD_REQUEST
