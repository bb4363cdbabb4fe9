"""Numbers at and beyond their bounds, and error replies that keep the id (issue 10, defect 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol.base import MAX_CURSOR
from protocol.envelopes import decode_request, peek_id
from protocol.errors import ErrorCode, ProtocolError
from protocol.idscan import scan_top_level_id
from protocol.ops import OP_ARGS, OpenFileArgs, parse_args
from protocol.schema import main as schema_main  # noqa: F401  (the exporter must import)


def _frame(args: dict[str, Any] | str, *, op: str = "session.open_file", v: str = "1") -> bytes:
    body = args if isinstance(args, str) else json.dumps(args)
    return f'{{"v": {v}, "id": "r-1", "op": "{op}", "args": {body}}}'.encode()


def _refusal(frame: bytes, *, exact: bool) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        request = decode_request(frame, exact=exact)
        parse_args(request.op, request.args, request_id=request.id)
    return caught.value


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize(
    "value", ["18446744073709551616", "2147483648", "1e400", "-1", "1.5", "true"]
)
def test_cursor_out_of_range_is_invalid_args_with_the_id(exact: bool, value: str) -> None:
    """A cursor of 2^64, 2^31, 1e400, -1, 1.5 or true is invalid_args naming the field."""
    error = _refusal(_frame(f'{{"path": "a.md", "cursor_line": {value}}}'), exact=exact)
    assert error.code is ErrorCode.INVALID_ARGS
    assert "cursor_line" in error.message
    assert error.request_id == "r-1"


@pytest.mark.parametrize("exact", [False, True])
def test_whole_floats_count_as_integers_like_the_schema(exact: bool) -> None:
    """`"v": 1.0` and a cursor of `7.0` are accepted as 1 and 7, as JSON Schema's integer is."""
    request = decode_request(_frame('{"path": "a.md", "cursor_line": 7.0}', v="1.0"), exact=exact)
    args = parse_args(request.op, request.args)
    assert isinstance(args, OpenFileArgs)
    assert args.cursor_line == 7 and type(args.cursor_line) is int


def test_cursor_at_its_bound_is_accepted() -> None:
    """The documented maximum itself is a legal cursor."""
    request = decode_request(_frame({"path": "a.md", "cursor_line": MAX_CURSOR}), exact=True)
    args = parse_args(request.op, request.args)
    assert isinstance(args, OpenFileArgs) and args.cursor_line == MAX_CURSOR


@pytest.mark.parametrize("exact", [False, True])
def test_tokens_beyond_bound_are_invalid_args(exact: bool) -> None:
    """cost.log with 10^12 + 1 tokens or 2^64 tokens is refused as invalid_args."""
    for tokens in (10**12 + 1, 2**64):
        frame = _frame(
            {"operation": "x", "model": "gpt-4", "input_tokens": tokens, "output_tokens": 0},
            op="cost.log",
        )
        assert _refusal(frame, exact=exact).code is ErrorCode.INVALID_ARGS


@pytest.mark.parametrize("exact", [False, True])
def test_deeply_nested_args_error_echoes_the_id(exact: bool) -> None:
    """A 1,000-deep or 100,000-deep args gets an error that carries the request's id."""
    for depth in (1_000, 100_000):
        deep = '{"a": ' * depth + "1" + "}" * depth
        error = _refusal(_frame(deep), exact=exact)
        assert error.request_id == "r-1"


def test_unparseable_frame_after_a_readable_id_keeps_the_id() -> None:
    """A lone surrogate or a cut frame after `"id"` still yields an error with that id."""
    for frame in (
        b'{"id": "keep-me", "v": 1, "op": "session.get", "args": {"q": "\\ud800"}}',
        b'{"v": 1, "id": "keep-me", "op": "session.get", "args": {"q": [1, 2',
        b'{"args": {"x": [[["}"]]]}, "id": "keep-me", "v": 1, "op": "session.get", "z": nul}',
    ):
        assert peek_id(frame) == "keep-me"
        assert _refusal(frame, exact=False).request_id == "keep-me"


def test_id_scan_ignores_nested_and_unusable_ids() -> None:
    """Only the top-level id counts; a nested `id`, a number or an empty string is no id."""
    assert scan_top_level_id(b'{"args": {"id": "inner"}, "x": [') is None
    assert scan_top_level_id(b'{"id": 5, "x": [') is None
    assert scan_top_level_id(b'{"id": "", "x": [') is None
    assert scan_top_level_id(b'[{"id": "a"}]') is None
    assert scan_top_level_id(b'{"a\\"b": "c", "id": "ok\\n", "x": [') == "ok\n"


def test_every_integer_arg_has_an_upper_bound_in_the_schema() -> None:
    """Every integer field of every op's args carries a documented maximum in its JSON Schema."""
    unbounded: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "integer" and "maximum" not in node:
                unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    for op, model in OP_ARGS.items():
        walk(model.model_json_schema(), op.value)
    assert unbounded == []
