"""Typed settings loaded from `defaults.toml` and `pricing.toml`.

The TOML files ship inside this package (package data), so they are found the
same way from a checkout and from an installed wheel. Numbers are parsed as
Decimal where they are money, so a price is never a float.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from importlib import resources
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AutosaveSettings",
    "BudgetSettings",
    "HistorySettings",
    "LoggingSettings",
    "ModelPrice",
    "PricingTable",
    "ProtocolSettings",
    "Settings",
    "StoreSettings",
    "SupervisorSettings",
    "load_pricing",
    "load_settings",
    "read_package_toml",
]

Positive = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AutosaveSettings(_Section):
    """When current.json is snapshotted."""

    interval_s: Positive = 30.0


class HistorySettings(_Section):
    """How much history.json keeps."""

    size: Annotated[int, Field(ge=1)] = 20
    compress_above_bytes: Annotated[int, Field(ge=1024)] = 1_048_576


class BudgetSettings(_Section):
    """Default budget and warning thresholds."""

    warning_fraction: Annotated[Decimal, Field(gt=0, le=1)] = Decimal("0.8")
    confirm_above: Annotated[Decimal, Field(ge=0)] = Decimal("0.10")
    daily_limit: Decimal | None = Decimal(50)
    weekly_limit: Decimal | None = Decimal(200)
    monthly_limit: Decimal | None = Decimal(500)


class StoreSettings(_Section):
    """Retry policy of atomic saves (tenacity)."""

    attempts: Annotated[int, Field(ge=1, le=20)] = 3
    wait_initial_s: Annotated[float, Field(ge=0)] = 0.05
    wait_max_s: Annotated[float, Field(ge=0)] = 1.0


class SupervisorSettings(_Section):
    """Timing of supervision: heartbeats, restarts, waits, stops."""

    heartbeat_interval_s: Positive = 0.5
    heartbeat_liveness: Annotated[int, Field(ge=1)] = 3
    ready_timeout_s: Positive = 10.0
    request_wait_s: Positive = 5.0
    stop_grace_s: Positive = 3.0
    backoff_initial_s: Positive = 0.1
    backoff_max_s: Positive = 5.0
    max_restarts: Annotated[int, Field(ge=0)] = 5
    restart_window_s: Positive = 30.0
    fork_server: bool = True


class ProtocolSettings(_Section):
    """Limits of the wire."""

    max_frame_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    hard_frame_bytes: Annotated[int, Field(ge=1024)] = 16_777_216
    event_hwm: Annotated[int, Field(ge=0)] = 100_000
    idempotency_entries: Annotated[int, Field(ge=16)] = 4096


class LoggingSettings(_Section):
    """Log rotation."""

    max_bytes: Annotated[int, Field(ge=4096)] = 5_242_880
    backups: Annotated[int, Field(ge=0)] = 3


class Settings(_Section):
    """Everything in `defaults.toml`, typed."""

    autosave: AutosaveSettings = AutosaveSettings()
    history: HistorySettings = HistorySettings()
    budget: BudgetSettings = BudgetSettings()
    store: StoreSettings = StoreSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    protocol: ProtocolSettings = ProtocolSettings()
    logging: LoggingSettings = LoggingSettings()


class ModelPrice(_Section):
    """Dollars per 1,000 tokens.

    `cache_read` and `cache_write` price the cached share of the input tokens;
    left out, cached tokens cost the `input` rate (never less than billed).
    """

    # Bounded so every cost (tokens x price) and every total stays exact within
    # the ledger's 60-digit Decimal context: a price can never make a call unloggable.
    input: Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=15)]
    output: Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=15)]
    cache_read: Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=15)] | None = None
    cache_write: Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=15)] | None = None


class PricingMeta(_Section):
    """Where a price table came from and when it was true."""

    as_of: str
    source: str = ""
    unit: str = "USD per 1K tokens"


class PricingTable(_Section):
    """`pricing.toml`: prices per canonical id and aliases to those ids."""

    meta: PricingMeta
    models: dict[str, ModelPrice] = {}
    aliases: dict[str, str] = {}


def read_package_toml(name: str) -> dict[str, Any]:
    """Parse a TOML file shipped in this package, floats as Decimal."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text, parse_float=Decimal)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """The shipped defaults, with `overrides` (same shape, any depth) on top."""
    data = read_package_toml("defaults.toml")
    if overrides:
        data = _merge(data, overrides)
    return Settings.model_validate(data)


def load_pricing() -> PricingTable:
    """The shipped, dated price table."""
    return PricingTable.model_validate(read_package_toml("pricing.toml"))
