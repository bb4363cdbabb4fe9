"""What one LLM call costs, and where that price came from.

A model name is resolved in this order, first match wins:

1. **The user's overrides**: `<project>/.session/pricing.toml`, optional, the
   same format as `config/pricing.toml` (dollars per 1,000 tokens)::

       [models."my-finetune"]
       input = 0.002
       output = 0.008
       cache_read = 0.0002      # optional; cached tokens cost `input` without it

       [aliases]
       "house-model" = "my-finetune"

   `[meta]` may be left out. The file is read when the ledger starts; a file
   that does not parse is reported and ignored (the other sources still apply).
2. **genai-prices**, for every model it knows: current prices from the data
   bundled with the package, at the call's own time, with its tiers (e.g.
   claude-sonnet-4-5 above 200 k input tokens, gemini-1.5-pro above 128 k) and
   its cache-read, cache-write and reasoning prices. Its network updater is
   never started, so prices change only with the pinned package.
3. **`config/pricing.toml`**, the shipped table: the seed's short names
   (`claude-sonnet-3.5`, `claude-opus-3`, `gemini-flash`, `gemini-pro`) as
   aliases to the providers' current ids - genai-prices alone would take
   `gemini-pro` for Gemini 1.0 Pro - and prices only for models genai-prices
   lacks.

An alias (the user's first, then the shipped table's) is followed before a
name is looked up, so `gemini-pro` is priced as `gemini-1.5-pro` by
genai-prices, tiers included. Names are matched exactly, then
case-insensitively. No match is `None`: the caller records the call as
unpriced - never as $0.

Every price says where it came from (`price_source`): `override`,
`genai-prices@<version>` or `pricing.toml@<as_of>`.
"""

from __future__ import annotations

import contextlib
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config import ModelPrice, PricingTable, load_pricing
from services.cost.money import tidy
from services.cost.rates import (
    NO_RATES,
    PlainRates,
    Price,
    Route,
    conditions_change_within_day,
    plain_rates_of,
    table_price,
)
from services.cost.usage import TokenUsage, genai_usage

__all__ = [
    "KEEP_ALIVE_EVERY_S",
    "OVERRIDES_NAME",
    "Price",
    "PriceBook",
    "genai_prices_version",
    "load_genai_prices",
    "load_genai_prices_in_background",
]

OVERRIDES_NAME = "pricing.toml"
"""The user's price overrides, in `.session/`."""

_CACHED_NAMES = 1024


@dataclass(frozen=True)
class _Table:
    """One per-1K-tokens table with the `price_source` its prices carry."""

    source: str
    models: dict[str, ModelPrice]
    aliases: dict[str, str]

    def find(self, name: str) -> tuple[str, ModelPrice] | None:
        price = self.models.get(name)
        if price is not None:
            return name, price
        lowered = name.lower()
        for key, value in self.models.items():
            if key.lower() == lowered:
                return key, value
        return None

    def alias(self, name: str) -> str | None:
        target = self.aliases.get(name)
        if target is not None:
            return target
        lowered = name.lower()
        for key, value in self.aliases.items():
            if key.lower() == lowered:
                return value
        return None


_GENAI_LOAD = threading.Lock()
"""Held while genai-prices loads: a price needed meanwhile waits for the load
to finish, so no call is ever priced from a half-loaded package."""
_genai_loaded = False

KEEP_ALIVE_EVERY_S = 0.25
"""How often, by default, a price waiting for the background load says it is
still working: well inside the supervisor's window for a worker that owes a
reply (1.5 s by default), since the load can take longer on a busy machine."""


@dataclass
class _BackgroundLoad:
    """The load started by `load_genai_prices_in_background`, and who waits for it."""

    thread: threading.Thread
    start_now: threading.Event
    keep_alive: Callable[[], None] | None
    every_s: float


_background: _BackgroundLoad | None = None


def load_genai_prices() -> Any:
    """Import genai-prices and its bundled data, once per process; the module.

    It costs 0.1-0.2 s of CPU (more on a busy machine), so nobody pays it on
    the way to READY: the cost ledger starts it on a thread when it starts
    (`load_genai_prices_in_background`), and a price wanted before it is done
    waits for that thread, which stops waiting out its delay. While it waits,
    the main thread calls the ledger's `keep_alive` every `every_s`,
    so a load that is slow on a loaded machine is not mistaken for a hung
    ledger (and killed, and the request's retry killed again). Nothing here
    starts genai-prices' network updater.
    """
    background = _background
    if (
        not _genai_loaded
        and background is not None
        and background.thread is not threading.current_thread()
    ):
        background.start_now.set()
        while background.thread.is_alive():
            background.thread.join(background.every_s)
            if background.thread.is_alive() and background.keep_alive is not None:
                background.keep_alive()
    return _load_now()


def _load_now() -> Any:
    """The load itself, under the lock; at once when it is done already."""
    global _genai_loaded  # noqa: PLW0603 - once per process, under the lock
    with _GENAI_LOAD:
        import genai_prices
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()
        _genai_loaded = True
    return genai_prices


def load_genai_prices_in_background(
    delay_s: float = 0.0,
    keep_alive: Callable[[], None] | None = None,
    every_s: float = KEEP_ALIVE_EVERY_S,
) -> threading.Thread | None:
    """`load_genai_prices` on a daemon thread after `delay_s`; None when loaded already.

    Off the start-up path (docs/benchmarks.md, "Cold start"): the ledger says
    READY and answers what needs no genai-prices (totals, budgets, prices from
    overrides or the shipped table) without it, and the delay keeps the load's
    CPU away from the other workers while they start. A price needed sooner
    starts the load at once and waits for it, calling `keep_alive` every
    `every_s` meanwhile.
    A failure is not reported here: the next price that needs genai-prices
    meets it.
    """
    global _background  # noqa: PLW0603 - one load per process
    if _genai_loaded:
        return None
    start_now = threading.Event()

    def load() -> None:
        start_now.wait(delay_s)  # a one-off wait on a thread of its own, then it ends
        with contextlib.suppress(Exception):
            _load_now()

    thread = threading.Thread(target=load, name="genai-prices-load", daemon=True)
    _background = _BackgroundLoad(thread, start_now, keep_alive, every_s)
    thread.start()
    return thread


@cache
def genai_prices_version() -> str | None:
    """The installed genai-prices version, read without importing it.

    Read once per process (~4 ms through `importlib.metadata`): costs.json
    names it in every snapshot, twice a second while calls are logged, and
    the prices in use are those of the version loaded at start anyway.
    """
    # Imported here, not at the top: importlib.metadata and what it pulls
    # (email, zipfile, tempfile...) are ~10 ms the cost ledger needs only once
    # it writes costs.json, never before READY (docs/benchmarks.md, "Cold start,
    # second pass").
    from importlib import metadata

    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:
        return None


class PriceBook:
    """Resolves model names to exact prices: overrides, genai-prices, the shipped table."""

    def __init__(
        self,
        seed: PricingTable,
        overrides: PricingTable | None = None,
        *,
        use_genai_prices: bool = True,
        overrides_problem: str | None = None,
    ) -> None:
        self.seed = seed
        self.overrides = overrides
        self.overrides_problem = overrides_problem
        """Why an overrides file was ignored, for the log; None when fine or absent."""
        self.use_genai_prices = use_genai_prices
        self._overrides = (
            _Table("override", dict(overrides.models), dict(overrides.aliases))
            if overrides is not None
            else None
        )
        self._shipped = _Table(
            f"pricing.toml@{seed.meta.as_of}", dict(seed.models), dict(seed.aliases)
        )
        self._genai_missing: set[str] = set()
        self._genai: Any = None
        self._plain: dict[tuple[str, str | None, date], tuple[str, PlainRates] | None] = {}
        """genai-prices' plain rates by (name, provider, day): pricing a call in µs."""
        self._routes: dict[tuple[str, str | None, date], Route] = {}
        """Where a call without provider details is priced, by (model, provider, UTC day)."""

    @classmethod
    def load(cls, overrides_path: Path | None, *, use_genai_prices: bool = True) -> PriceBook:
        """The shipped table, with the user's overrides file when it exists."""
        overrides, problem = read_overrides(overrides_path) if overrides_path else (None, None)
        return cls(
            load_pricing(),
            overrides,
            use_genai_prices=use_genai_prices,
            overrides_problem=problem,
        )

    @property
    def as_of(self) -> str:
        """The date of the shipped table."""
        return self.seed.meta.as_of

    def describe(self) -> str:
        """One line on where prices come from, in the order they are consulted."""
        parts = []
        if self.overrides is not None:
            parts.append(f"{len(self.overrides.models)} override(s)")
        version = genai_prices_version()
        if self.use_genai_prices and version:
            parts.append(f"genai-prices {version}")
        parts.append(f"pricing.toml as of {self.as_of}")
        return "; ".join(parts)

    def price(
        self,
        model: str,
        input_tokens: int | TokenUsage,
        output_tokens: int = 0,
        *,
        at: datetime | None = None,
        provider: str | None = None,
    ) -> Price | None:
        """The exact cost of a call, or None when no source knows `model`.

        `input_tokens` may be a whole `TokenUsage` (cached and reasoning tokens);
        `provider` (genai-prices' id) narrows genai-prices' search when given.
        """
        usage = (
            input_tokens
            if isinstance(input_tokens, TokenUsage)
            else TokenUsage(input_tokens, output_tokens)
        )
        if usage.details is None:
            moment = at or datetime.now(UTC)
            key = (model, provider, moment.astimezone(UTC).date())
            route = self._routes.get(key)
            if route is None:
                route = self._route(model, provider, moment)
                if route is not None:  # None: the generic way decides, each time
                    if len(self._routes) >= _CACHED_NAMES:
                        self._routes.clear()
                    self._routes[key] = route
            if route is not None:
                return route.price(usage)
        return self._price_slowly(model, usage, at=at, provider=provider)

    def _price_slowly(
        self, model: str, usage: TokenUsage, *, at: datetime | None, provider: str | None
    ) -> Price | None:
        """`price` worked out from scratch: every source in order, for any usage."""
        target, override = self._resolve(model)
        if override is not None:
            return table_price(override[0], override[1], "override", usage)
        for candidate in dict.fromkeys([target or model, model]):
            priced = self._from_genai_prices(candidate, usage, at, provider)
            if priced is not None:
                return priced
            found = self._shipped.find(candidate)
            if found is not None:
                return table_price(found[0], found[1], self._shipped.source, usage)
        return None

    def _resolve(self, model: str) -> tuple[str | None, tuple[str, ModelPrice] | None]:
        """`model`'s target through the aliases (the user's first), and the user's
        override that prices it, if any: the first steps of `_price_slowly` and
        `_route` alike, so both follow one order."""
        user_alias = self._overrides.alias(model) if self._overrides is not None else None
        target = self._shipped.alias(user_alias or model) or user_alias
        if self._overrides is not None:
            for name in dict.fromkeys(n for n in (user_alias, model, target) if n):
                found = self._overrides.find(name)
                if found is not None:
                    return target, found
        return target, None

    def _route(self, model: str, provider: str | None, at: datetime) -> Route | None:
        """How `_price_slowly` prices a call on `model` without provider details, on
        `at`'s UTC day, whatever its token counts: the same sources in the same order,
        the arithmetic left for each call. None when genai-prices' generic way would
        decide (its own units, or a model it may not know): that is never cached."""
        target, override = self._resolve(model)
        if override is not None:
            return Route(NO_RATES, override[1], "override", override[0])
        for candidate in dict.fromkeys([target or model, model]):
            if self.use_genai_prices and candidate.lower() not in self._genai_missing:
                if self._genai is None:
                    self._genai = load_genai_prices()  # waits for a load in progress, if any
                fast = self._plain_rates(candidate, provider, at)
                if fast is None:
                    return None
                source = f"genai-prices@{self._genai.__version__}"
                return Route(fast[1], None, source, fast[0])
            found = self._shipped.find(candidate)
            if found is not None:
                return Route(NO_RATES, found[1], self._shipped.source, found[0])
        return Route(NO_RATES, None, "", "")

    def knows(self, model: str) -> bool:
        """Whether a call on `model` would be priced."""
        return self.price(model, 0, 0) is not None

    def _plain_rates(
        self, model: str, provider: str | None, at: datetime | None
    ) -> tuple[str, PlainRates] | None:
        """genai-prices' model id and plain rates for `model` at `at`, cached per day."""
        moment = at or datetime.now(UTC)
        key = (model.lower(), provider, moment.astimezone(UTC).date())
        if key in self._plain:
            return self._plain[key]
        if len(self._plain) >= _CACHED_NAMES:
            self._plain.clear()
        found: tuple[str, PlainRates] | None = None
        try:
            from genai_prices import data_snapshot
            from genai_prices.units import _get_registry

            snapshot = data_snapshot.get_snapshot()
            for provider_id in dict.fromkeys([provider, None]):
                try:
                    _found_provider, info = snapshot.find_provider_model(
                        model, None, provider_id, None
                    )
                    break
                except LookupError:
                    continue
            else:
                self._plain[key] = None
                return None
            if not conditions_change_within_day(info):
                rates = plain_rates_of(info.get_prices(moment), _get_registry())
                found = None if rates is None else (str(info.id), rates)
        except Exception:  # a fast path: anything odd takes the generic way
            found = None
        self._plain[key] = found
        return found

    def _from_genai_prices(
        self, model: str, usage: TokenUsage, at: datetime | None, provider: str | None
    ) -> Price | None:
        if not self.use_genai_prices or model.lower() in self._genai_missing:
            return None
        if len(self._genai_missing) >= _CACHED_NAMES:
            self._genai_missing.clear()
        if self._genai is None:
            self._genai = load_genai_prices()  # waits for a load in progress, if any
        genai = self._genai
        if usage.details is None:
            fast = self._plain_rates(model, provider, at)
            if fast is not None:
                model_id, rates = fast
                return Price(tidy(rates.cost(usage)), f"genai-prices@{genai.__version__}", model_id)
        calculation = None
        for provider_id in dict.fromkeys([provider, None]):
            try:
                calculation = genai.calc_price(
                    genai_usage(usage), model, provider_id=provider_id, genai_request_timestamp=at
                )
                break
            except LookupError:
                continue
            except Exception:
                # Third-party data and code: whatever goes wrong there means "no
                # price" (the call is recorded unpriced), never a call lost to an error.
                break
        if calculation is None:
            self._genai_missing.add(model.lower())
            return None
        return Price(
            tidy(Decimal(calculation.total_price)),
            f"genai-prices@{genai.__version__}",
            str(getattr(calculation.model, "id", model)),
        )


def read_overrides(path: Path) -> tuple[PricingTable | None, str | None]:
    """Parse the user's overrides: (table, None), (None, None) if absent, (None, why)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path}: {exc}"
    try:
        data = tomllib.loads(text, parse_float=Decimal)
        data.setdefault("meta", {}).setdefault("as_of", "override")
        return PricingTable.model_validate(data), None
    except (tomllib.TOMLDecodeError, ValidationError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        return None, f"{path}: {first[0] if first else type(exc).__name__}"
