"""The three preferences the ledger follows, read (never written) from preferences.json.

`timezone` (default: the system's), `budget_warning_fraction` and
`confirm_above` (defaults: `[budget]` in config/defaults.toml). The session
writer owns preferences.json; the ledger re-reads it when its modification
time or size changes, at most once per `ledger.preferences_poll_s`. A file that does
not parse leaves the last good values in force.
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
    """Follows preferences.json by modification time; read-only."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self.problem: str | None = None
        self._stamp: tuple[int, int] | None = None
        self.current = self._defaults()
        self.poll()

    def _defaults(self) -> CostPreferences:
        budget = self.settings.budget
        return CostPreferences(
            zone_named(None), None, budget.warning_fraction, budget.confirm_above
        )

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def poll(self) -> bool:
        """Re-read the file if it changed; True when the values changed."""
        stamp = self._stat()
        if stamp == self._stamp and self._stamp is not None:
            return False
        self._stamp = stamp
        before = self.current
        if stamp is None:
            self.current, self.problem = self._defaults(), None
            return self.current != before
        outcome = read_document(self.path, Preferences)
        if outcome.value is None:
            if outcome.status == "missing":
                self.current = self._defaults()
            else:
                self.problem = outcome.error  # keep the last good values
            return self.current != before
        prefs, self.problem = outcome.value, None
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
        return self.current != before
