"""`CostTracker`: the seed's cost API, asyncio, backed by the service's cost ledger."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Final, TypeVar

from protocol.base import Document
from protocol.client._events import EventStream
from protocol.client._seed_api import Connection, SeedAPI, notify
from protocol.client._transport import ServiceClient
from protocol.costs import Budget, CostSeries, CostTotals
from protocol.events import CostLoggedData
from protocol.names import Op, Topic
from protocol.ops import CostEstimateResult, CostLogResult, CostWarningResult

__all__ = ["CostCallback", "CostTracker"]

CostCallback = Callable[[CostLoggedData], Awaitable[None] | None]
"""Called with the data of each `cost.logged` event."""

_CostCallbackT = TypeVar("_CostCallbackT", bound=CostCallback)


class _Unset:
    """Marks an argument left out, which `cost.set_budget` treats unlike `None`."""

    def __repr__(self) -> str:
        return "UNSET"


_UNSET: Final = _Unset()


def _extras(
    cache_read_tokens: int, cache_write_tokens: int, reasoning_tokens: int, provider: str | None
) -> dict[str, Any]:
    """The optional count fields worth sending (zeros and None are the defaults)."""
    extras: dict[str, Any] = {
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "provider": provider,
    }
    return {key: value for key, value in extras.items() if value}


class CostTracker(SeedAPI):
    """The seed's `CostTracker`, asyncio, backed by the service's cost ledger.

    Money is `Decimal` end to end (the reply is parsed with exact numbers).
    `session_total` is the last total this client saw, from a reply or a
    `cost.logged` event of any client; it never costs a round trip. Open with
    `await CostTracker.open(project)`, which subscribes to `cost.logged` and
    then reads `cost.totals`.
    """

    _NAME = "cost tracker"
    _TOPICS = (Topic.COST_LOGGED,)

    def __init__(
        self,
        client: ServiceClient,
        totals: CostTotals,
        stream: EventStream,
        *,
        owns_client: bool,
        timeout_s: float,
        retries: int,
    ) -> None:
        """Use `CostTracker.open`; this only wires already connected parts together."""
        self._totals = totals
        self._on_update: list[CostCallback] = []
        # Last: it starts the event task, which reads the state set above.
        super().__init__(
            client, stream, owns_client=owns_client, timeout_s=timeout_s, retries=retries
        )

    @classmethod
    async def _load(cls, connection: Connection) -> CostTracker:
        return cls(
            connection.client,
            await connection.ask(CostTotals, Op.COST_TOTALS),
            connection.stream,
            owns_client=connection.owns_client,
            timeout_s=connection.timeout_s,
            retries=connection.retries,
        )

    @property
    def session_total(self) -> Decimal:
        """Dollars spent in this session, as last seen."""
        return self._totals.session_total

    @property
    def last_totals(self) -> CostTotals:
        """Every total, as last seen (no round trip; `totals()` asks)."""
        return self._totals

    async def log_operation(
        self,
        operation: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        provider: str | None = None,
    ) -> CostLogResult:
        """Record an LLM call that happened; priced exactly, or flagged unpriced, never dropped.

        `input_tokens` counts every input token, the cached ones included (as
        genai-prices counts them); `reasoning_tokens` are part of `output_tokens`.
        """
        args: dict[str, Any] = {
            "operation": operation,
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        args.update(_extras(cache_read_tokens, cache_write_tokens, reasoning_tokens, provider))
        logged = await self._ask(CostLogResult, Op.COST_LOG, args)
        self._totals = logged.totals
        return logged

    async def log_usage(
        self,
        operation: str,
        usage: Mapping[str, Any],
        provider: str,
        *,
        model: str | None = None,
    ) -> CostLogResult:
        """Record a call from its provider's own report, in one request.

        `usage` is the provider's whole response body, or just its usage
        object, as JSON (e.g. `response.model_dump()` of the SDK's reply);
        `provider` is `"anthropic"`, `"openai"`, `"google"`... The service
        normalises it with genai-prices; `model` is needed only when `usage`
        does not name it (a bare usage object).
        """
        args: dict[str, Any] = {"operation": operation, "usage": dict(usage), "provider": provider}
        if model is not None:
            args["model"] = model
        logged = await self._ask(CostLogResult, Op.COST_LOG, args)
        self._totals = logged.totals
        return logged

    async def estimate(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int = 0,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        provider: str | None = None,
    ) -> CostEstimateResult:
        """What a call would cost, the budget warning it would trigger, and whether it may run.

        Raises `ServiceError` with code `unknown_model` for a model with no price.
        """
        args: dict[str, Any] = {
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        args.update(_extras(cache_read_tokens, cache_write_tokens, reasoning_tokens, provider))
        return await self._ask(CostEstimateResult, Op.COST_ESTIMATE, args)

    async def get_estimated_cost(
        self, model: str, input_tokens: int, output_tokens: int = 0
    ) -> Decimal:
        """The seed's estimate: just the dollars (see `estimate` for the warning)."""
        return (await self.estimate(model, input_tokens, output_tokens)).cost

    async def should_warn_budget(self) -> str | None:
        """The most severe budget warning now (from 80% of a limit), or None."""
        return (await self._ask(CostWarningResult, Op.COST_WARNING)).warning

    async def series(
        self,
        since: date | str | None = None,
        until: date | str | None = None,
        bucket: str = "day",
    ) -> CostSeries:
        """Exact spend per `bucket` ("hour", "day", "week", "month") over local dates.

        `since` is inclusive (default: 30 days ago), `until` exclusive (default:
        tomorrow), both in the writer's time zone; every bucket of the range is
        there, empty ones too, with totals by model and by operation.
        """
        args: dict[str, Any] = {"bucket": bucket}
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                args[name] = value.isoformat() if isinstance(value, date) else value
        return await self._ask(CostSeries, Op.COST_SERIES, args)

    async def totals(self) -> CostTotals:
        """Ask the service for every total."""
        self._totals = await self._ask(CostTotals, Op.COST_TOTALS)
        return self._totals

    async def reset_session(self) -> CostTotals:
        """Start the session's cost count again from zero; day/week/month totals stay."""
        self._totals = await self._ask(CostTotals, Op.COST_RESET_SESSION)
        return self._totals

    async def set_budget(
        self,
        *,
        daily_limit: Decimal | int | _Unset | None = _UNSET,
        weekly_limit: Decimal | int | _Unset | None = _UNSET,
        monthly_limit: Decimal | int | _Unset | None = _UNSET,
        warnings_enabled: bool | _Unset = _UNSET,
        daily_hard_limit: Decimal | int | _Unset | None = _UNSET,
        weekly_hard_limit: Decimal | int | _Unset | None = _UNSET,
        monthly_hard_limit: Decimal | int | _Unset | None = _UNSET,
    ) -> Budget:
        """Change limits: a left-out argument is unchanged, `None` removes that limit.

        `*_limit` warn; `*_hard_limit` make `estimate` answer `allowed=False` for a
        call that would pass them.
        """
        given = {
            "daily_limit": daily_limit,
            "weekly_limit": weekly_limit,
            "monthly_limit": monthly_limit,
            "warnings_enabled": warnings_enabled,
            "daily_hard_limit": daily_hard_limit,
            "weekly_hard_limit": weekly_hard_limit,
            "monthly_hard_limit": monthly_hard_limit,
        }
        args = {name: value for name, value in given.items() if not isinstance(value, _Unset)}
        return await self._ask(Budget, Op.COST_SET_BUDGET, args)

    def on_update(self, callback: _CostCallbackT) -> _CostCallbackT:
        """Call `callback(CostLoggedData)` after each operation any client logs; a decorator too."""
        self._on_update.append(callback)
        return callback

    async def _handle_event(self, data: Document) -> None:
        if isinstance(data, CostLoggedData):
            self._totals = data.totals
            await notify(self._on_update, data)
