"""Token counts of one call, as the client gave them or as its provider reported them.

The names are genai-prices' `Usage` names, and so are the conventions: every
count is a share of the one before it, never added on top.

- `input_tokens` counts every input token, cached or not (OpenAI's
  `prompt_tokens` does; Anthropic's `input_tokens` does not, so its
  `cache_read_input_tokens` and `cache_creation_input_tokens` are added in).
- `cache_read_tokens` and `cache_write_tokens` are the part of `input_tokens`
  read from or written to the provider's prompt cache.
- `reasoning_tokens` are the part of `output_tokens` spent thinking (billed as
  output; genai-prices' `output_reasoning_tokens`).

A client that has the provider's response gives it whole (or just its usage
object) with the provider's name; `extract_usage` of genai-prices normalises
it, trying each of the provider's API flavours (OpenAI: chat completions,
then responses) until one fits. Its full `Usage` is kept in `details`, so a
call is priced from everything the provider reported (a 1-hour cache write,
a web search), while the ledger records the four counts above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CallUsage",
    "ProviderUsage",
    "TokenUsage",
    "call_usage",
    "from_provider_usage",
    "genai_usage",
]

_FLAVOUR_ORDER = ("default", "chat", "responses")
"""Flavours tried first (in this order); a provider's others follow."""


@dataclass(frozen=True)
class TokenUsage:
    """What one call used (see the module docstring for what each count covers)."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    details: Any = None
    """genai-prices' own `Usage` when the provider's response was given, else None."""

    def __post_init__(self) -> None:
        cached = self.cache_read_tokens + self.cache_write_tokens
        if cached > self.input_tokens:
            raise ValueError(
                f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens "
                f"({self.input_tokens}); input_tokens counts every input token, cached or not"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed output_tokens "
                f"({self.output_tokens}); output_tokens counts reasoning tokens too"
            )

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the plain input rate."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    def counts(self) -> dict[str, int]:
        """The counts a ledger record keeps."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


@dataclass(frozen=True)
class ProviderUsage:
    """A provider's usage, normalised: the counts and the model its body named."""

    usage: TokenUsage
    model: str | None
    provider: str
    """genai-prices' id of the provider (`anthropic`, `openai`, `google`...)."""
    flavour: str


def genai_usage(usage: TokenUsage) -> Any:
    """The genai-prices `Usage` to price `usage` with."""
    if usage.details is not None:
        return usage.details
    from genai_prices import Usage  # late: 0.2 s the first time

    extras = {
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens,
    }
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        **{key: value for key, value in extras.items() if value},
    )


def _wrapped(data: Mapping[str, Any], root: Any) -> Mapping[str, Any]:
    """`data` as a whole body: a bare usage object is put where the extractor looks."""
    steps = [root] if isinstance(root, str) else list(root)
    if not all(isinstance(step, str) for step in steps):
        return data
    probe: Any = data
    for step in steps:
        if not isinstance(probe, Mapping) or step not in probe:
            break
        probe = probe[step]
    else:
        return data  # already a whole body
    wrapped: Any = data
    for step in reversed(steps):
        wrapped = {step: wrapped}
    result: Mapping[str, Any] = wrapped
    return result


def _count(usage: Any, key: str) -> int:
    value = usage.reported_value(key)
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"{key} must be a whole number of tokens, got {value!r}")
    return int(value)


def from_provider_usage(data: Mapping[str, Any], provider: str) -> ProviderUsage:
    """Normalise a provider's response body or usage object with genai-prices.

    Raises ValueError, in words for the client, when the provider is unknown or
    the data fits none of its API flavours.
    """
    from genai_prices import data_snapshot  # late: 0.2 s the first time

    snapshot = data_snapshot.get_snapshot()
    try:
        found = snapshot.find_provider(None, provider, None)
    except LookupError:
        raise ValueError(
            f"unknown provider {provider!r}; use genai-prices' ids such as "
            "'anthropic', 'openai' or 'google'"
        ) from None
    extractors = list(found.extractors or [])
    extractors.sort(
        key=lambda e: (
            _FLAVOUR_ORDER.index(e.api_flavor)
            if e.api_flavor in _FLAVOUR_ORDER
            else len(_FLAVOUR_ORDER)
        )
    )
    problems: list[str] = []
    for extractor in extractors:
        try:
            model, usage = extractor.extract(_wrapped(data, extractor.root))
            counts = TokenUsage(
                input_tokens=_count(usage, "input_tokens"),
                output_tokens=_count(usage, "output_tokens"),
                cache_read_tokens=_count(usage, "cache_read_tokens"),
                cache_write_tokens=_count(usage, "cache_write_tokens"),
                reasoning_tokens=_count(usage, "output_reasoning_tokens"),
                details=usage,
            )
        except (ValueError, TypeError, ArithmeticError) as exc:
            problems.append(f"{extractor.api_flavor}: {exc}")
            continue
        return ProviderUsage(counts, model, found.id, extractor.api_flavor)
    detail = "; ".join(problems) if problems else "no usage extractor"
    raise ValueError(f"usage fits no {found.id} response or usage object ({detail})")


@dataclass(frozen=True)
class CallUsage:
    """A `cost.log`/`cost.estimate` call's model, counts and provider, resolved."""

    model: str
    usage: TokenUsage
    provider: str | None


def call_usage(args: Any, request_id: str) -> CallUsage:
    """The counts of a call's args (`_CallUsage`): given, or normalised from `usage`.

    Raises `ProtocolError` (`invalid_args`) with the reason when a provider's
    usage cannot be read or names no model.
    """
    provider = args.provider.strip().lower() if args.provider else None
    if args.usage is None:  # the common case: no import, nothing to normalise
        usage = TokenUsage(
            args.input_tokens,
            args.output_tokens or 0,
            args.cache_read_tokens,
            args.cache_write_tokens,
            args.reasoning_tokens,
        )
        return CallUsage(args.model, usage, provider)
    from protocol.errors import ErrorCode, ProtocolError

    try:
        found = from_provider_usage(args.usage, provider or "")
    except ValueError as exc:
        raise ProtocolError(ErrorCode.INVALID_ARGS, str(exc), request_id=request_id) from None
    model = args.model or found.model
    if not model:
        raise ProtocolError(
            ErrorCode.INVALID_ARGS,
            "model is required: the usage given does not name the model",
            request_id=request_id,
        )
    return CallUsage(model, found.usage, found.provider)
