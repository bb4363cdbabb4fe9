"""`cost.log` args of the common shape, checked by hand instead of by pydantic.

Every `cost.log` (the hot op: an LLM call reported as it happens) is
validated once, in the ledger's worker host, before the ledger sees it, and
`CostLogArgs.model_validate` with its two Python validators was ~6 us of the
call's path to its reply. The common shape - `operation`, `model`,
`input_tokens`, `output_tokens`, optionally the three shares and `provider`,
as plain JSON strings and integers - is checked here against the same bounds
and rules, and the model is built without a second look (as
`BaseModel.model_construct` builds one, minus its per-field loop).

Anything else (`usage`, a null where a value is required, `3.0` for an
integer, a value out of bounds, a rule broken, an unknown key) returns None
and goes through the model, which accepts or names the fault as it always
did: this check never accepts what the model would refuse, and what it
accepts equals the model's result (tests/test_quick_args.py, against
`model_validate`, for any args).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from protocol.base import MAX_TEXT_CHARS

__all__ = ["quick_cost_log_args"]

M = TypeVar("M", bound=BaseModel)

_MAX_TOKENS = 10**12
"""`protocol.ops.Tokens`' bound."""
_MAX_MODEL_CHARS = 200
"""`protocol.ops.ModelName`'s bound."""
_MAX_PROVIDER_CHARS = 100
"""`protocol.ops.ProviderName`'s bound."""
_KEYS = frozenset(
    {
        "operation",
        "model",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "provider",
    }
)
"""The fields the common shape may give (never `usage`)."""

_new = object.__new__
_set = object.__setattr__


def quick_cost_log_args(args: dict[str, Any], model: type[M]) -> M | None:
    """`model` (`CostLogArgs`) for args of the common shape, or None: validate them instead."""
    if not _KEYS.issuperset(args):
        return None
    get = args.get
    operation, name = get("operation"), get("model")
    given_in, given_out = get("input_tokens"), get("output_tokens")
    read, write, reasoning = (
        get("cache_read_tokens", 0),
        get("cache_write_tokens", 0),
        get("reasoning_tokens", 0),
    )
    provider = get("provider")
    if not (
        type(operation) is str
        and 1 <= len(operation) <= MAX_TEXT_CHARS
        and type(name) is str
        and 1 <= len(name) <= _MAX_MODEL_CHARS
        and (
            provider is None
            or (type(provider) is str and 1 <= len(provider) <= _MAX_PROVIDER_CHARS)
        )
        and type(given_in) is int
        and type(given_out) is int
        and type(read) is int
        and type(write) is int
        and type(reasoning) is int
        and 0 <= given_in <= _MAX_TOKENS
        and 0 <= given_out <= _MAX_TOKENS
        and 0 <= read <= _MAX_TOKENS
        and 0 <= write <= _MAX_TOKENS
        and 0 <= reasoning <= _MAX_TOKENS
        and read + write <= given_in
        and reasoning <= given_out
    ):
        return None
    built = _new(model)
    _set(
        built,
        "__dict__",
        {  # the model's field order
            "model": name,
            "input_tokens": given_in,
            "output_tokens": given_out,
            "cache_read_tokens": read,
            "cache_write_tokens": write,
            "reasoning_tokens": reasoning,
            "provider": provider,
            "usage": None,
            "operation": operation,
        },
    )
    _set(built, "__pydantic_fields_set__", set(args))
    _set(built, "__pydantic_extra__", None)
    _set(built, "__pydantic_private__", None)
    return built
