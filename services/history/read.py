"""history.json and the yearly archive, read-only: `services.readonly.history`.

The archiver's readers live in the neutral `services.readonly` package so
other processes can read its files without importing this worker's package;
they are named here too, for the archiver's own modules.
"""

from __future__ import annotations

from services.readonly.history import (
    HistoryRead,
    history_source,
    list_sessions,
    merge_sessions,
    newest_first,
    parse_history,
    read_history,
    read_history_file,
)

__all__ = [
    "HistoryRead",
    "history_source",
    "list_sessions",
    "merge_sessions",
    "newest_first",
    "parse_history",
    "read_history",
    "read_history_file",
]
