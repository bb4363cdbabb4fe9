"""Settings of the service: `defaults.toml` is the one place a default is written.

The TOML files ship inside this package (package data). From a checkout or an
installed wheel they are plain files beside this one and are read by path;
`importlib.resources` (whose imports cost every process ~5 ms on the cold
start's critical path) is used only when the package is not on disk, e.g.
inside a zip archive. This module reads them;
`config.settings` holds their typed shape (pydantic), imported only when a
typed name is first used, so `default_value` stays cheap enough for the
command line to call before its heavy imports.
"""

from __future__ import annotations

import importlib
import tomllib
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.settings import (
        AutosaveSettings,
        BudgetSettings,
        CliSettings,
        ForkServerSettings,
        HistorySettings,
        LedgerSettings,
        LoggingSettings,
        ModelPrice,
        PricingTable,
        ProtocolSettings,
        Settings,
        StoreSettings,
        SupervisorSettings,
        WatchSettings,
    )

__all__ = [
    "AutosaveSettings",
    "BudgetSettings",
    "CliSettings",
    "ForkServerSettings",
    "HistorySettings",
    "LedgerSettings",
    "LoggingSettings",
    "ModelPrice",
    "PricingTable",
    "ProtocolSettings",
    "Settings",
    "StoreSettings",
    "SupervisorSettings",
    "WatchSettings",
    "default_value",
    "load_pricing",
    "load_settings",
    "raw_defaults",
    "read_package_toml",
]

_TYPED = frozenset(__all__[:14])


def __getattr__(name: str) -> Any:
    """The typed settings models, imported on first use (pydantic costs ~0.2 s)."""
    if name in _TYPED:
        return getattr(importlib.import_module("config.settings"), name)
    raise AttributeError(f"module 'config' has no attribute {name!r}")


def read_package_toml(name: str) -> dict[str, Any]:
    """Parse a TOML file shipped in this package, floats as Decimal."""
    beside = Path(__file__).with_name(name)
    if beside.is_file():
        text = beside.read_text(encoding="utf-8")
    else:  # not a folder on disk (a zip archive): ask the package's loader
        from importlib import resources

        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text, parse_float=Decimal)


@cache
def _shipped_defaults() -> dict[str, Any]:
    return read_package_toml("defaults.toml")


def raw_defaults() -> dict[str, Any]:
    """`defaults.toml` as parsed (a fresh copy), without the typed models."""
    return {section: dict(values) for section, values in _shipped_defaults().items()}


def default_value(section: str, key: str) -> Any:
    """One shipped default, e.g. `default_value("supervisor", "fork_server")`; KeyError if absent.

    Cheap (no pydantic), for code that runs before the heavy imports.
    """
    return _shipped_defaults()[section][key]


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
    from config.settings import Settings

    data = raw_defaults()
    if overrides:
        data = _merge(data, overrides)
    return Settings.model_validate(data)


def load_pricing() -> PricingTable:
    """The shipped, dated price table."""
    from config.settings import PricingTable

    return PricingTable.model_validate(read_package_toml("pricing.toml"))
