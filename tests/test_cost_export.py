"""`supervisor inspect costs --since DATE --csv`: the ledger's operations for a spreadsheet."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from test_cost_ledger import LedgerHarness

from services.cli.inspect import inspect
from services.cost.export import CSV_COLUMNS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def logged(tmp_path: Path) -> LedgerHarness:
    """A Paris project with calls on 1 and 2 November 2026 (one cached, one unpriced)."""
    harness = LedgerHarness(tmp_path / "project", zone="Europe/Paris")
    harness.now = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)  # 1 November in Paris
    ledger = harness.open()
    harness.log(ledger, "gemini-flash", 1, 0)
    harness.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    call = harness.call(
        "cost.log",
        operation="chapter_review",
        model="gpt-4o",
        input_tokens=2_006,
        output_tokens=300,
        cache_read_tokens=1_920,
        provider="openai",
    )
    harness.one(ledger, call)
    harness.log(ledger, "my-local-llm", 10, 10)
    ledger.stop()
    return harness


def rows(text: str) -> list[dict[str, str]]:
    """The CSV's rows as dicts (the header checked)."""
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def test_every_operation_is_a_row_with_exact_money(
    logged: LedgerHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each call is one row: every digit of its cost, unpriced empty (not 0), local dates."""
    assert inspect(logged.project, "costs", as_json=False, as_csv=True) == 0
    first, cached, unpriced = rows(capsys.readouterr().out)
    assert first["cost"] == "0.000000075" and first["local_date"] == "2026-11-01"
    assert first["timestamp"] == "2026-10-31T23:30:00.000000Z"
    assert cached["cache_read_tokens"] == "1920" and cached["provider"] == "openai"
    assert Decimal(cached["cost"]) == Decimal("0.005615")
    assert cached["price_source"].startswith("genai-prices@")
    assert unpriced["cost"] == "" and unpriced["priced"] == "false"


def test_since_is_a_local_date(logged: LedgerHarness, capsys: pytest.CaptureFixture[str]) -> None:
    """--since 2026-11-02 starts at midnight in Paris: the 1 November call is left out."""
    assert inspect(logged.project, "costs", as_json=False, as_csv=True, since="2026-11-02") == 0
    assert [row["model"] for row in rows(capsys.readouterr().out)] == ["gpt-4o", "my-local-llm"]


def test_a_bad_since_is_a_usage_error(
    logged: LedgerHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since that is not a date, or --csv on another file, exits 2 with the reason."""
    assert inspect(logged.project, "costs", as_json=False, as_csv=True, since="last week") == 2
    assert "not a date" in capsys.readouterr().err
    assert inspect(logged.project, "session", as_json=False, as_csv=True) == 2


def test_the_command_line_writes_the_csv(logged: LedgerHarness) -> None:
    """`supervisor inspect costs --since DATE --csv` prints the CSV on stdout."""
    result = subprocess.run(
        [
            *(sys.executable, str(ROOT / "supervisor.py"), "inspect", "costs", "--csv"),
            *("--since", "2026-11-01", "--project", str(logged.project)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert len(rows(result.stdout)) == 3
