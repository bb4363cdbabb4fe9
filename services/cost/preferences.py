"""The three preferences the ledger follows, read (never written) from preferences.json.

`timezone` (default: the system's), `budget_warning_fraction` and
`confirm_above` (defaults: `[budget]` in config/defaults.toml). The session
writer owns preferences.json: the ledger reads it once at start, then follows
the writer's `preferences.changed` events (published at the writer's start
and with every change, before the `preferences.set` reply), so it never polls
the file. A file that does not parse at start leaves the defaults in force
until the writer's event arrives, moments later.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from config import Settings
from protocol.session import Preferences
from services.cost.windows import zone_named
from services.store import read_document

__all__ = ["CostPreferences", "PreferenceWatch"]


@dataclass(frozen=True)
class CostPreferences:
    """What the ledger takes from the writer's preferences."""

    zone: ZoneInfo
    zone_name: str | None
    """The preference as written; None means 'the system's zone'."""
    warning_fraction: Decimal
    confirm_above: Decimal

    @property
    def zone_label(self) -> str:
        """The zone for people: its IANA name, or what the system uses."""
        return self.zone_name or str(self.zone.key)


class PreferenceWatch:
    """Follows the writer's preferences: preferences.json at start, then its events."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self.problem: str | None = None
        self.current = self._defaults()
        self._read_file()

    def _defaults(self) -> CostPreferences:
        budget = self.settings.budget
        return CostPreferences(
            zone_named(None), None, budget.warning_fraction, budget.confirm_above
        )

    def _read_file(self) -> None:
        """Start from preferences.json (its defaults when absent; unparsable: a `problem`)."""
        outcome = read_document(self.path, Preferences)
        if outcome.value is not None:
            self.apply(outcome.value)
        elif outcome.status != "missing":
            self.problem = outcome.error

    def apply(self, prefs: Preferences) -> bool:
        """Take the writer's preferences (a `preferences.changed`, idempotent); True if
        what the ledger uses changed. A field the writer never set keeps config's default."""
        before = self.current
        chosen = prefs.model_fields_set
        defaults = self.settings.budget
        self.current = CostPreferences(
            zone=zone_named(prefs.timezone),
            zone_name=prefs.timezone,
            warning_fraction=(
                prefs.budget_warning_fraction
                if "budget_warning_fraction" in chosen
                else defaults.warning_fraction
            ),
            confirm_above=(
                prefs.confirm_above if "confirm_above" in chosen else defaults.confirm_above
            ),
        )
        self.problem = None
        return self.current != before
