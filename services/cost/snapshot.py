"""costs.json: the seed's shape, built from the ledger's state.

A snapshot for people and for readers that do not speak the protocol. It never
embeds the whole history (rewriting such a file costs 8 ms at 1 k operations
and a second at 100 k): `operations` is the current session's last
`SESSION_OPERATIONS_KEPT` operations, `operations_count` how many the session
has, and `operations_note` says where the rest are.

The file is rewritten within half a second of a change, on the ledger's main
loop, so under load every snapshot wrote the same 1,000 operations again
(~7% of the ledger's time at 2,000 `cost.log`/s). `OperationTexts` keeps
each operation's indented text from the snapshot that first wrote it, and
`costs_json` places those bytes where `dumps_pretty` would write them: the
same file, byte for byte (tests/test_cost_snapshot_text.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from protocol.base import utc_text
from protocol.codec import dumps_pretty
from services.cost.preferences import CostPreferences
from services.cost.state import LedgerState

__all__ = ["OperationTexts", "costs_document", "costs_json"]

_OPERATION_INDENT = b"\n    "
"""An operation's lines sit two levels deep in costs.json (`operations`, then the list)."""


def costs_document(
    state: LedgerState,
    *,
    preferences: CostPreferences,
    prices: str,
    warning: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The costs.json document (the `CostsDocument` shape) as plain data."""
    totals = state.totals()
    session = state.session
    kept = len(session.operations)
    note = None
    if session.count > kept:
        note = (
            f"the last {kept} of this session's {session.count} operations; "
            "every operation is in .session/ledger/"
        )
    return {
        "session_id": session.session_id,
        "session_total": totals["session_total"],
        "daily_total": totals["daily_total"],
        "weekly_total": totals["weekly_total"],
        "monthly_total": totals["monthly_total"],
        "operations": list(session.operations),
        "by_model": totals["by_model"],
        "budget": state.budget.as_dict(),
        "unpriced_operations": totals["unpriced_operations"],
        "timezone": preferences.zone_label,
        "day": state.windows["daily"].window.key,
        "week": state.windows["weekly"].window.key,
        "month": state.windows["monthly"].window.key,
        "updated_at": utc_text(now),
        "daily_unpriced": totals["daily_unpriced"],
        "weekly_unpriced": totals["weekly_unpriced"],
        "monthly_unpriced": totals["monthly_unpriced"],
        "unpriced_by_model": dict(session.unpriced_by_model),
        "operations_count": session.count,
        "operations_note": note,
        "warning": warning,
        "prices": prices,
    }


class OperationTexts:
    """Each kept operation's text as `dumps_pretty` indents it inside costs.json.

    Keyed by the operation's view object (held, so its id is never reused while
    it is a key): the state keeps the same view objects from call to call, and
    never changes one once it is kept.
    """

    def __init__(self) -> None:
        self._texts: dict[int, tuple[dict[str, Any], orjson.Fragment]] = {}

    def fragments(self, operations: Sequence[dict[str, Any]]) -> list[orjson.Fragment]:
        """The texts of `operations`, in order; those seen before are not written again."""
        texts = self._texts
        written: list[orjson.Fragment] = []
        for view in operations:
            entry = texts.get(id(view))
            if entry is None or entry[0] is not view:
                text = dumps_pretty(view)[:-1].replace(b"\n", _OPERATION_INDENT)
                entry = texts[id(view)] = (view, orjson.Fragment(text))
            written.append(entry[1])
        if len(texts) > 2 * len(written) + 64:  # forget the operations no longer kept
            kept = {id(view) for view in operations}
            self._texts = {key: entry for key, entry in texts.items() if key in kept}
        return written


def costs_json(document: dict[str, Any], texts: OperationTexts) -> bytes:
    """`dumps_pretty(document)` for a `costs_document`, its operations from `texts`.

    Raises TypeError where `dumps_pretty` would (a value JSON cannot hold).
    """
    operations = texts.fragments(document["operations"])
    return dumps_pretty({**document, "operations": operations})
