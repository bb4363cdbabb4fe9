"""The storage primitives: atomic JSON files and append-only JSON Lines logs.

Names are imported on first use (PEP 562), so `services.store.fileops` can be
imported by `supervisor start` before the fork server starts, without paying
for pydantic and tenacity on that path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.store.atomic import (
        AtomicJsonFile,
        LoadOutcome,
        RetryPolicy,
        SaveOutcome,
        corrupt_name,
        previous_name,
        read_document,
    )
    from services.store.fileops import DATA_FILE_MODE, DIR_MODE, FileOps, ensure_private_dir
    from services.store.jsonl import BadLine, JsonLinesLog, TailRepair

__all__ = [
    "DATA_FILE_MODE",
    "DIR_MODE",
    "AtomicJsonFile",
    "BadLine",
    "FileOps",
    "JsonLinesLog",
    "LoadOutcome",
    "RetryPolicy",
    "SaveOutcome",
    "TailRepair",
    "corrupt_name",
    "ensure_private_dir",
    "previous_name",
    "read_document",
]

_HOMES = {
    "AtomicJsonFile": "atomic",
    "LoadOutcome": "atomic",
    "RetryPolicy": "atomic",
    "SaveOutcome": "atomic",
    "corrupt_name": "atomic",
    "previous_name": "atomic",
    "read_document": "atomic",
    "DATA_FILE_MODE": "fileops",
    "DIR_MODE": "fileops",
    "FileOps": "fileops",
    "ensure_private_dir": "fileops",
    "BadLine": "jsonl",
    "JsonLinesLog": "jsonl",
    "TailRepair": "jsonl",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
