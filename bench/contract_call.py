"""What one `cost.log` of the contract floor is, and what it costs.

The args checked as docs/protocol.md says (each field's type and bounds,
token counts integers from 0 to 10^12 where `3.0` is 3 and `true` or `"3"`
are not, cached and reasoning tokens within their totals, no unknown field),
and the price from a per-model table, exact with Decimal. Plain Python: the
contract floor's ledger (`bench/contract_ledger.py`) uses nothing of ours.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Any, NamedTuple

__all__ = ["MONEY", "PRICES", "Call", "Price", "checked_call"]

MONEY = Context(prec=60, traps=[Inexact, InvalidOperation])
"""Every sum and product of money: exact, or an error, never rounded."""
MAX_TOKENS = 10**12
MAX_TEXT_CHARS = 10_000


_FIELDS = frozenset(
    {
        "operation",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "provider",
        "usage",
    }
)


class Call(NamedTuple):
    """One checked `cost.log`."""

    operation: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    provider: str | None


def _tokens(args: dict[str, Any], name: str, *, required: bool) -> int:
    value = args.get(name)
    if value is None:
        if required or name in args:
            raise ValueError(f"{name} is required" if required else f"{name} must be an integer")
        return 0
    if type(value) is float and value.is_integer():  # JSON Schema's integer: 3.0 is 3
        value = int(value)
    if type(value) is not int:  # bool is a subclass of int: refused here too
        raise ValueError(f"{name} must be an integer")
    if not 0 <= value <= MAX_TOKENS:
        raise ValueError(f"{name} must be from 0 to {MAX_TOKENS}")
    return value


def _text(args: dict[str, Any], name: str, longest: int) -> str:
    value = args.get(name)
    if type(value) is not str or not 1 <= len(value) <= longest:
        raise ValueError(f"{name} must be a string of 1 to {longest} characters")
    return value


def checked_call(args: dict[str, Any]) -> Call:
    """`cost.log`'s args as the contract allows them, or ValueError saying why not."""
    unknown = args.keys() - _FIELDS
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))} is not a known field")
    if args.get("usage") is not None:
        raise ValueError("usage reports are not priced by this floor; send token counts")
    provider = args.get("provider")
    call = Call(
        _text(args, "operation", MAX_TEXT_CHARS),
        _text(args, "model", 200),
        _tokens(args, "input_tokens", required=True),
        _tokens(args, "output_tokens", required=True),
        _tokens(args, "cache_read_tokens", required=False),
        _tokens(args, "cache_write_tokens", required=False),
        _tokens(args, "reasoning_tokens", required=False),
        None if provider is None else _text(args, "provider", 100),
    )
    if call.cache_read_tokens + call.cache_write_tokens > call.input_tokens:
        raise ValueError("cache_read_tokens + cache_write_tokens exceed input_tokens")
    if call.reasoning_tokens > call.output_tokens:
        raise ValueError("reasoning_tokens exceed output_tokens")
    return call


class Price(NamedTuple):
    """Dollars per token, worked out once from the per-million prices."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    source: str

    def of(self, call: Call) -> Decimal:
        """The exact cost of `call` (cached input at its own rates, reasoning as output)."""
        uncached = call.input_tokens - call.cache_read_tokens - call.cache_write_tokens
        return MONEY.add(
            MONEY.add(
                MONEY.multiply(uncached, self.input),
                MONEY.multiply(call.output_tokens, self.output),
            ),
            MONEY.add(
                MONEY.multiply(call.cache_read_tokens, self.cache_read),
                MONEY.multiply(call.cache_write_tokens, self.cache_write),
            ),
        )


def _per_million(inp: str, out: str, read: str, write: str) -> Price:
    def per_token(text: str) -> Decimal:
        return MONEY.divide(Decimal(text), 1_000_000)

    return Price(
        per_token(inp), per_token(out), per_token(read), per_token(write), "genai-prices@0.2.3"
    )


PRICES: dict[str, Price] = {
    "claude-sonnet-3.5": _per_million("3", "15", "0.30", "3.75"),
    "claude-sonnet-4-5": _per_million("3", "15", "0.30", "3.75"),
    "gpt-4o": _per_million("2.5", "10", "1.25", "2.5"),
}
"""The models the bench may name, at genai-prices' per-million rates."""
