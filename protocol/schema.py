"""JSON Schemas of every file and message, generated from the models.

The library part is pure (`all_schemas`, `render`); `python -m protocol.schema`
writes them to `protocol/schemas/` and `--check` fails when the committed
files drift from the models, so clients in other languages can trust them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from protocol.codec import dumps_pretty
from protocol.costs import (
    Budget,
    BudgetWarning,
    CostOperation,
    CostsDocument,
    CostSeries,
    CostTotals,
)
from protocol.envelopes import EndpointsFile, ErrorReply, Event, OkReply, Request
from protocol.events import TOPIC_DATA
from protocol.history import HistoryDocument, HistoryEntry
from protocol.history_journal import HISTORY_JOURNAL_LINE
from protocol.internal import (
    EventAck,
    EventBatch,
    EventDelivery,
    ForkReply,
    ForkRequest,
    Heartbeat,
    StopRequest,
    WorkerAssignment,
    WorkerHello,
    WorkerPublish,
    WorkerPublishBatch,
    WorkerReply,
    WorkerRequest,
)
from protocol.ledger import LEDGER_LINE, LedgerCheckpoint, SeriesCache
from protocol.ops import (
    OP_ARGS,
    CostEstimateResult,
    CostLogResult,
    CostWarningResult,
    SaveResult,
    SessionStatusResult,
    SignificantActionResult,
    SupervisorRestartResult,
    SupervisorStatus,
)
from protocol.session import Preferences, SessionDocument
from protocol.session_journal import JOURNAL_LINE

__all__ = ["SCHEMA_DIR", "all_schemas", "main", "render"]

SCHEMA_DIR = Path(__file__).parent / "schemas"

_NAMED: dict[str, type[BaseModel]] = {
    "file.current": SessionDocument,
    "file.preferences": Preferences,
    "file.costs": CostsDocument,
    "file.history": HistoryDocument,
    "file.endpoints": EndpointsFile,
    "file.ledger_checkpoint": LedgerCheckpoint,
    "file.ledger_series": SeriesCache,
    "record.cost_operation": CostOperation,
    "record.history_entry": HistoryEntry,
    "envelope.request": Request,
    "envelope.ok_reply": OkReply,
    "envelope.error_reply": ErrorReply,
    "envelope.event": Event,
    "result.budget": Budget,
    "result.budget_warning": BudgetWarning,
    "result.cost_totals": CostTotals,
    "result.cost_log": CostLogResult,
    "result.cost_estimate": CostEstimateResult,
    "result.cost_warning": CostWarningResult,
    "result.cost_series": CostSeries,
    "result.session_status": SessionStatusResult,
    "result.save": SaveResult,
    "result.significant_action": SignificantActionResult,
    "result.supervisor_status": SupervisorStatus,
    "result.supervisor_restart": SupervisorRestartResult,
}

_INTERNAL: dict[str, type[BaseModel]] = {
    "internal.assignment": WorkerAssignment,
    "internal.hello": WorkerHello,
    "internal.heartbeat": Heartbeat,
    "internal.reply": WorkerReply,
    "internal.publish": WorkerPublish,
    "internal.publish_batch": WorkerPublishBatch,
    "internal.ack": EventAck,
    "internal.request": WorkerRequest,
    "internal.event": EventDelivery,
    "internal.event_batch": EventBatch,
    "internal.stop": StopRequest,
    "internal.fork_request": ForkRequest,
    "internal.fork_reply": ForkReply,
}


_LINES: dict[str, TypeAdapter[Any]] = {
    "line.ledger": LEDGER_LINE,
    "line.session_journal": JOURNAL_LINE,
    "line.history_journal": HISTORY_JOURNAL_LINE,
}
"""Unions keyed on `kind`: one line of each JSON Lines file (the yearly archive's
lines are `record.history_entry`)."""


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema by file stem, e.g. `args.session.set_stage`."""
    models: dict[str, type[BaseModel]] = dict(_NAMED)
    models.update(_INTERNAL)
    models.update({f"args.{op.value}": model for op, model in OP_ARGS.items()})
    models.update({f"event.{topic.value}": model for topic, model in TOPIC_DATA.items()})
    schemas: dict[str, dict[str, Any]] = {}
    for stem, model in models.items():
        schemas[stem] = model.model_json_schema(mode="validation")
    for stem, adapter in _LINES.items():
        schemas[stem] = adapter.json_schema(mode="validation")
    for stem, schema in schemas.items():
        schema["$id"] = f"writers-factory/{stem}.schema.json"
    return dict(sorted(schemas.items()))


def render(schema: dict[str, Any]) -> bytes:
    """The bytes a schema file holds (stable, indented)."""
    return dumps_pretty(schema)


def main(argv: list[str] | None = None) -> int:
    """Write the schemas, or with `--check` report drift and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m protocol.schema")
    parser.add_argument("--check", action="store_true", help="fail when files differ")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    options = parser.parse_args(argv)
    wanted = {f"{stem}.schema.json": render(schema) for stem, schema in all_schemas().items()}
    folder: Path = options.dir
    present = {path.name for path in folder.glob("*.schema.json")} if folder.exists() else set()
    drift = sorted(
        name
        for name, data in wanted.items()
        if name not in present or (folder / name).read_bytes() != data
    ) + sorted(present - set(wanted))
    if options.check:
        for name in drift:
            print(f"schema drift: {name}", file=sys.stderr)
        return 1 if drift else 0
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(present - set(wanted)):
        (folder / name).unlink()
    for name, data in wanted.items():
        (folder / name).write_bytes(data)
    print(f"wrote {len(wanted)} schemas to {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
