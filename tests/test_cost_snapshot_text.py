"""costs.json written from kept operation texts is byte for byte what `dumps_pretty` writes."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_cost_ledger import LedgerHarness

from protocol.codec import dumps_pretty
from services.cost.snapshot import OperationTexts, costs_document, costs_json

_AT = datetime(2026, 11, 30, 21, 0, 0, 123456, tzinfo=UTC)


@st.composite
def _views(draw: st.DrawFn) -> dict[str, Any]:
    cost = draw(
        st.one_of(
            st.none(),
            st.decimals(allow_nan=False, allow_infinity=False, places=9, min_value=0),
            st.sampled_from([Decimal("0.150"), Decimal("1E+2"), Decimal("0.000000075")]),
        )
    )
    return {
        "timestamp": _AT + timedelta(seconds=draw(st.integers(0, 10**6))),
        "operation": draw(st.text(max_size=12)),
        "model": draw(st.sampled_from(["gpt-4", 'claude\n"3"', "modèle ✓"])),
        "input_tokens": draw(st.integers(0, 10**12)),
        "cost": cost,
        "priced": cost is not None,
        "provider": draw(st.one_of(st.none(), st.just("openai"))),
    }


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(_views(), max_size=6), min_size=1, max_size=6))
def test_kept_texts_write_the_same_file(batches: list[list[dict[str, Any]]]) -> None:
    """Snapshot after snapshot, as operations come and the oldest go, the bytes are the
    ones `dumps_pretty` writes for the whole document."""
    texts = OperationTexts()
    kept: deque[dict[str, Any]] = deque(maxlen=8)
    for views in batches:
        kept.extend(views)
        document = {"session_id": "s", "operations": list(kept), "warning": "a\nb"}
        assert costs_json(document, texts) == dumps_pretty(document)


def test_the_ledger_writes_costs_json_as_the_plain_writer_would(tmp_path: Path) -> None:
    """costs.json after calls and snapshots equals `dumps_pretty` of the same document."""
    harness = LedgerHarness(tmp_path / "project")
    ledger = harness.open()
    for round_ in range(3):
        for _ in range(4):
            harness.log(ledger, "gpt-4", 1000 + round_, 10)
        harness.log(ledger, "my-local-llm", 10, 0)
        harness.tick(ledger, ledger.snapshot_delay_s)
        document = costs_document(
            ledger._state,
            preferences=ledger._prefs.current,
            prices=ledger._prices.describe(),
            warning=ledger._desk.current_warning(),
            now=harness.now,
        )
        assert harness.paths.costs.read_bytes() == dumps_pretty(document)
