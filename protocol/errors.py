"""Error codes of the command channel and the one exception that carries them.

A client branches on `code`; the `message` is for a person. The exception is
raised by the pure decoders and by workers alike, so whoever catches it can
answer with the contract's code without guessing whose fault it was.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode", "ProtocolError"]


class ErrorCode(StrEnum):
    """The contract's error codes (docs/protocol.md)."""

    BAD_REQUEST = "bad_request"
    """Not JSON, not an object, missing `v`/`id`/`op`, or a frame over the size limit."""
    UNKNOWN_OP = "unknown_op"
    """The op is well formed but no worker answers it."""
    INVALID_ARGS = "invalid_args"
    """The op exists but its args are wrong; the message says which and why."""
    UNKNOWN_MODEL = "unknown_model"
    """A price was asked for a model we have no price for."""
    UNAVAILABLE = "unavailable"
    """The owning worker was not back within the request wait."""
    INTERNAL = "internal"
    """Our bug, not the caller's; the request may be re-sent with the same id."""


class ProtocolError(Exception):
    """A request that cannot be answered with a result.

    `request_id` is set when the id could be read from the bad request, so the
    error reply can still be matched by the client.
    """

    def __init__(self, code: ErrorCode, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {self.message!r})"
