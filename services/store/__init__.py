"""The storage primitives: atomic JSON files and append-only JSON Lines logs."""

from services.store.atomic import (
    AtomicJsonFile,
    LoadOutcome,
    RetryPolicy,
    SaveOutcome,
    corrupt_name,
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
    "read_document",
]
