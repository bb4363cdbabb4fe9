"""The typed shape of `defaults.toml` and `pricing.toml`.

No field has a default here on purpose: `defaults.toml` is the one place a
default value is written, and a key missing from it is an error at start-up
rather than a silent second value in Python. Numbers are Decimal where they
are money, so a price is never a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AutosaveSettings",
    "BudgetSettings",
    "CliSettings",
    "ForkServerSettings",
    "HistorySettings",
    "LedgerSettings",
    "LoggingSettings",
    "ModelPrice",
    "PricingMeta",
    "PricingTable",
    "ProtocolSettings",
    "Settings",
    "StoreSettings",
    "SupervisorSettings",
    "WatchSettings",
]

Positive = Annotated[float, Field(gt=0)]
Seconds = Annotated[float, Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AutosaveSettings(_Section):
    """When current.json is snapshotted."""

    interval_s: Positive
    max_replay_records: Annotated[int, Field(ge=1)]


class HistorySettings(_Section):
    """How much history.json keeps, and the archiver's timing."""

    size: Annotated[int, Field(ge=1)]
    compress_above_bytes: Annotated[int, Field(ge=1024)]
    save_delay_s: Seconds
    min_save_gap_s: Seconds
    reconcile_delay_s: Seconds
    retry_journal_s: Positive
    event_window_s: Annotated[float, Field(ge=0, le=0.5)]


class BudgetSettings(_Section):
    """Default budget and warning thresholds."""

    warning_fraction: Annotated[Decimal, Field(gt=0, le=1)]
    confirm_above: Annotated[Decimal, Field(ge=0)]
    daily_limit: Decimal | None
    weekly_limit: Decimal | None
    monthly_limit: Decimal | None


class LedgerSettings(_Section):
    """The cost ledger's caches: costs.json and the checkpoint; when prices load."""

    prices_load_delay_s: Seconds
    snapshot_delay_s: Seconds
    checkpoint_every_records: Annotated[int, Field(ge=1)]
    checkpoint_max_age_s: Positive
    checkpoint_retry_s: Positive


class WatchSettings(_Section):
    """The file watcher's grouping of raw events and its safety net."""

    settle_s: Seconds
    max_hold_s: Seconds
    blind_rescan_interval_s: Positive
    poll_interval_s: Annotated[int, Field(ge=1)]


class StoreSettings(_Section):
    """Retry policy of atomic saves (tenacity)."""

    attempts: Annotated[int, Field(ge=1, le=20)]
    wait_initial_s: Seconds
    wait_max_s: Seconds


class SupervisorSettings(_Section):
    """Timing of supervision: heartbeats, restarts, waits, stops."""

    heartbeat_interval_s: Positive
    heartbeat_liveness: Annotated[int, Field(ge=1)]
    idle_heartbeat_s: Positive
    ready_timeout_s: Positive
    request_wait_s: Positive
    stop_grace_s: Positive
    backoff_initial_s: Positive
    backoff_max_s: Positive
    max_restarts: Annotated[int, Field(ge=0)]
    restart_window_s: Positive
    fork_server: bool
    fork_server_retry_s: Positive
    fork_server_max_failures: Annotated[int, Field(ge=0)]
    spare_worker: bool
    stable_s: Seconds


class ForkServerSettings(_Section):
    """How long the supervisor waits on the fork server."""

    fork_timeout_s: Positive
    startup_timeout_s: Positive
    reparent_timeout_s: Positive


class CliSettings(_Section):
    """Waits of the command line."""

    detach_ready_timeout_s: Positive
    stop_timeout_s: Positive
    query_timeout_s: Positive
    restart_wait_s: Positive
    logs_follow_poll_s: Positive
    logs_follow_lines: Annotated[int, Field(ge=0)]
    liveness_check_s: Positive
    watch_redraw_s: Positive
    report_days: Annotated[int, Field(ge=1, le=366)]


class ProtocolSettings(_Section):
    """Limits of the wire."""

    max_frame_bytes: Annotated[int, Field(ge=1024)]
    hard_frame_bytes: Annotated[int, Field(ge=1024)]
    event_hwm: Annotated[int, Field(ge=0)]
    idempotency_entries: Annotated[int, Field(ge=16)]


class LoggingSettings(_Section):
    """Log rotation."""

    max_bytes: Annotated[int, Field(ge=4096)]
    backups: Annotated[int, Field(ge=0)]


class Settings(_Section):
    """Everything in `defaults.toml`, typed."""

    autosave: AutosaveSettings
    history: HistorySettings
    budget: BudgetSettings
    ledger: LedgerSettings
    watch: WatchSettings
    store: StoreSettings
    supervisor: SupervisorSettings
    fork_server: ForkServerSettings
    cli: CliSettings
    protocol: ProtocolSettings
    logging: LoggingSettings


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
