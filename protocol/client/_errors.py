"""What the client raises on purpose, named by whose fault it is."""

from __future__ import annotations

from protocol.errors import ErrorCode

__all__ = ["ClientClosed", "ClientError", "ServiceError", "ServiceUnavailable"]

_RETRYABLE_CODES = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})


class ClientError(Exception):
    """Base of everything this client raises on purpose."""


class ServiceUnavailable(ClientError):
    """Nothing answered: no service runs, it could not start, or every attempt timed out.

    Safe to retry a mutation with the same `request_id`: the service applies an
    id once, so a request that did arrive is not applied twice.
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class ServiceError(ClientError):
    """The request was refused with one of the contract's error codes.

    Usually the service said so. For the typed methods of `Session` and
    `CostTracker` the client checks the args with the same pure validators the
    service uses and raises this (`code` `invalid_args`) before sending, so a
    caller branches on `code` the same way either way. A reply whose result does
    not match the contract is reported as `internal`: the service's bug.
    """

    def __init__(self, code: ErrorCode, message: str, *, request_id: str | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        """True when re-sending the same `request_id` later may succeed."""
        return self.code in _RETRYABLE_CODES

    def __repr__(self) -> str:
        return f"ServiceError({self.code.value!r}, {self.message!r})"


class ClientClosed(ClientError):
    """The client (or session) was closed by this program; it cannot be used again."""
