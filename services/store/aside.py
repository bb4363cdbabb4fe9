"""What start-up moved aside, said in sentences for the console.

Every owner moves an unreadable data file to `NAME.corrupt-<UTC>` and
rebuilds what it can (see `AtomicJsonFile.load`). `supervisor start` calls
`recovery_notes` once the service is ready and prints one line per file moved
aside since it began, with what took its place, so a person learns of it
without reading the worker logs. The time is read from the name, not the
file's mtime (a rename keeps the old mtime).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["REBUILT_FROM", "recovery_notes"]

REBUILT_FROM: dict[str, str] = {
    "current.json": "the session was rebuilt from its journal",
    "preferences.json": "defaults are in force; copy your values back from the moved file",
    "costs.json": "costs were rebuilt exactly from the cost ledger",
    "history.json": (
        "history was rebuilt from history.json.prev, the archive, "
        "the archiver's journal and the cost ledger"
    ),
    "history.json.gz": (
        "history was rebuilt from history.json.gz.prev, the archive, "
        "the archiver's journal and the cost ledger"
    ),
}
"""What replaces each data file that was moved aside."""

_STAMP = re.compile(r"^(?P<name>.+)\.corrupt-(?P<stamp>\d{8}T\d{12}Z)(?:-\d+)?$")


def recovery_notes(session_dir: Path, since: datetime) -> list[str]:
    """One sentence per data file moved aside at or after `since`, oldest first."""
    found: list[tuple[datetime, str]] = []
    try:
        entries = list(session_dir.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _STAMP.match(entry.name)
        if match is None:
            continue
        moved_at = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        if moved_at < since:
            continue
        name = match["name"]
        kind = "a folder" if entry.is_dir() else "unreadable"
        replaced = REBUILT_FROM.get(name, "it was rebuilt")
        found.append(
            (
                moved_at,
                f"Moved aside .session/{name} ({kind}) to .session/{entry.name}; {replaced}.",
            )
        )
    return [text for _, text in sorted(found)]
