"""Find a request's `id` in a frame that does not parse as a whole.

A request nested 1,000 levels deep, or with a value no parser accepts after a
perfectly readable id, must still get an error reply the client can match
(docs/protocol.md: every malformed request gets an error reply). This scan
walks only the top-level object: it skips nested values by counting brackets
(strings and their escapes included) and never recurses, so depth costs
nothing. Pure: bytes in, a string or None out.
"""

from __future__ import annotations

import json

__all__ = ["scan_top_level_id"]

_WHITESPACE = b" \t\r\n"
_MAX_ID_CHARS = 256


def _skip_ws(frame: bytes, at: int) -> int:
    while at < len(frame) and frame[at] in _WHITESPACE:
        at += 1
    return at


def _string_end(frame: bytes, at: int) -> int:
    """Index just past the string starting with the quote at `at` (-1 if unterminated)."""
    at += 1
    while at < len(frame):
        byte = frame[at]
        if byte == 0x5C:  # backslash: skip the escaped byte
            at += 2
            continue
        if byte == 0x22:
            return at + 1
        at += 1
    return -1


def _value_end(frame: bytes, at: int) -> int:
    """Index just past the value starting at `at`, without parsing it (-1 if cut)."""
    depth = 0
    while at < len(frame):
        byte = frame[at]
        if byte == 0x22:
            at = _string_end(frame, at)
            if at < 0:
                return -1
            if depth == 0:
                return at
            continue
        if byte in b"[{":
            depth += 1
        elif byte in b"]}":
            if depth == 0:
                return at  # the end of the enclosing object
            depth -= 1
            if depth == 0:
                return at + 1
        elif depth == 0 and byte in b",":
            return at
        at += 1
    return -1


def _member(frame: bytes, at: int) -> tuple[bytes, int, int] | None:
    """The key, value start and value end of the member at `at` (None if malformed)."""
    at = _skip_ws(frame, at)
    if at >= len(frame) or frame[at] != 0x22:
        return None
    key_end = _string_end(frame, at)
    if key_end < 0:
        return None
    colon = _skip_ws(frame, key_end)
    if colon >= len(frame) or frame[colon] != 0x3A:  # ":"
        return None
    start = _skip_ws(frame, colon + 1)
    end = _value_end(frame, start)
    return None if end < 0 else (frame[at:key_end], start, end)


def scan_top_level_id(frame: bytes) -> str | None:
    """The string value of the top-level `"id"` key, or None when there is none."""
    at = _skip_ws(frame, 0)
    if at >= len(frame) or frame[at] != 0x7B:  # "{"
        return None
    at += 1
    while (member := _member(frame, at)) is not None:
        key, start, end = member
        if key == b'"id"':
            return _as_id(frame[start:end])
        at = _skip_ws(frame, end)
        if at >= len(frame) or frame[at] != 0x2C:  # ","
            return None
        at += 1
    return None


def _as_id(token: bytes) -> str | None:
    if not token.startswith(b'"') or len(token) > 8 * _MAX_ID_CHARS:
        return None
    try:
        value = json.loads(token)
    except ValueError:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ID_CHARS:
        return None
    try:
        value.encode("utf-8")  # a lone surrogate could not be echoed back
    except UnicodeEncodeError:
        return None
    return value
