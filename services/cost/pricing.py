"""What one LLM call costs, and where that price came from.

A model name is resolved in this order, first match wins:

1. **The user's overrides**: `<project>/.session/pricing.toml`, optional, the
   same format as `config/pricing.toml` (dollars per 1,000 tokens)::

       [models."my-finetune"]
       input = 0.002
       output = 0.008

       [aliases]
       "house-model" = "my-finetune"

   `[meta]` may be left out. The file is read when the ledger starts; a file
   that does not parse is reported and ignored (the other sources still apply).
2. **`config/pricing.toml`**: the seed's dated table and its short names
   (`claude-sonnet-3.5`, `claude-opus-3`, `gemini-flash`, `gemini-pro`,
   `gpt-4`, `gpt-4-turbo`). It is consulted before genai-prices on purpose:
   genai-prices maps `gemini-pro` to Gemini 1.0 Pro, our alias does not.
3. **genai-prices**: every current model id, from the data bundled with the
   package, priced at the call's own time (tiered prices included). It is
   imported only when the first two miss (the import costs ~0.2 s), and its
   network updater is never started.

An alias may point from one source to another (an override alias to a seed id,
a seed alias to an id only genai-prices knows). Names are matched exactly,
then case-insensitively. No match is `None`: the caller records the call as
unpriced - never as $0.

Every price says where it came from (`price_source`): `override`,
`pricing.toml@<as_of>` or `genai-prices@<version>`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config import ModelPrice, PricingTable, load_pricing
from services.cost.money import MONEY, tidy

__all__ = ["OVERRIDES_NAME", "Price", "PriceBook", "genai_prices_version"]

OVERRIDES_NAME = "pricing.toml"
"""The user's price overrides, in `.session/`."""

_THOUSAND = Decimal(1000)
_CACHED_NAMES = 1024


@dataclass(frozen=True)
class Price:
    """The exact cost of one call and the source of its price."""

    cost: Decimal
    source: str
    model_id: str
    """The id the price belongs to (an alias resolved)."""


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


def genai_prices_version() -> str | None:
    """The installed genai-prices version, read without importing it."""
    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:
        return None


class PriceBook:
    """Resolves model names to exact prices: overrides, pricing.toml, genai-prices."""

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
        self._tables: list[_Table] = []
        if overrides is not None:
            self._tables.append(_Table("override", dict(overrides.models), dict(overrides.aliases)))
        self._tables.append(
            _Table(f"pricing.toml@{seed.meta.as_of}", dict(seed.models), dict(seed.aliases))
        )
        self._genai_missing: set[str] = set()
        self._genai: Any = None
        self._resolved: dict[str, tuple[str, ModelPrice, str] | None] = {}
        """Table lookups by model name (names come from clients: bounded)."""

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
        """One line on where prices come from, for people."""
        parts = [f"pricing.toml as of {self.as_of}"]
        if self.overrides is not None:
            parts.insert(0, f"{len(self.overrides.models)} override(s)")
        version = genai_prices_version()
        if self.use_genai_prices and version:
            parts.append(f"genai-prices {version} for other models")
        return "; ".join(parts)

    def price(
        self, model: str, input_tokens: int, output_tokens: int, *, at: datetime | None = None
    ) -> Price | None:
        """The exact cost of a call, or None when no source knows `model`."""
        found = self._from_tables(model)
        if found is not None:
            model_id, rate, source = found
            cost = MONEY.add(
                MONEY.multiply(Decimal(input_tokens), rate.input),
                MONEY.multiply(Decimal(output_tokens), rate.output),
            )
            return Price(tidy(MONEY.divide(cost, _THOUSAND)), source, model_id)
        for candidate in dict.fromkeys([self._alias_target(model) or model, model]):
            priced = self._from_genai_prices(candidate, input_tokens, output_tokens, at)
            if priced is not None:
                return priced
        return None

    def knows(self, model: str) -> bool:
        """Whether a call on `model` would be priced."""
        return self.price(model, 0, 0) is not None

    def _alias_target(self, model: str) -> str | None:
        for table in self._tables:
            target = table.alias(model)
            if target is not None:
                return target
        return None

    def _from_tables(self, model: str) -> tuple[str, ModelPrice, str] | None:
        if model in self._resolved:
            return self._resolved[model]
        if len(self._resolved) >= _CACHED_NAMES:
            self._resolved.clear()
        found = self._resolved[model] = self._lookup_tables(model)
        return found

    def _lookup_tables(self, model: str) -> tuple[str, ModelPrice, str] | None:
        names = [model]
        target = self._alias_target(model)
        if target is not None:
            names.insert(0, target)
        for name in names:
            for table in self._tables:
                found = table.find(name)
                if found is not None:
                    return found[0], found[1], table.source
        return None

    def _from_genai_prices(
        self, model: str, input_tokens: int, output_tokens: int, at: datetime | None
    ) -> Price | None:
        if not self.use_genai_prices or model in self._genai_missing:
            return None
        if len(self._genai_missing) >= _CACHED_NAMES:
            self._genai_missing.clear()
        if self._genai is None:
            import genai_prices  # late: 0.2 s, and only when our tables miss

            self._genai = genai_prices
        genai = self._genai
        try:
            calculation = genai.calc_price(
                genai.Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                model,
                genai_request_timestamp=at,
            )
        except LookupError:
            self._genai_missing.add(model)
            return None
        except Exception:
            # Third-party data and code: whatever goes wrong there means "no price"
            # (the call is recorded unpriced), never a call lost to an error.
            self._genai_missing.add(model)
            return None
        cost = Decimal(calculation.total_price)
        return Price(
            tidy(cost),
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
