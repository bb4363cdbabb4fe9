"""`supervisor inspect costs`: the budgets at a glance, read-only, running or not."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from test_cost_ledger import LedgerHarness

from protocol.codec import dumps
from services.cost.pricing import genai_prices_version
from services.cost.render import costs_summary, render_costs
from services.runtime.paths import ProjectPaths

NOW = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)


def files_under(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file below `folder` with its bytes, mode and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def spend(tmp_path: Path) -> LedgerHarness:
    """A project with some spending, a budget, an unpriced call; the ledger crashed after."""
    harness = LedgerHarness(tmp_path / "project", now=NOW, zone="Europe/Paris")
    ledger = harness.open()
    harness.one(ledger, harness.call("cost.set_budget", daily_limit=10, weekly_limit=None))
    harness.log(ledger, "gpt-4", 300_000, 0)  # $9.00: 90% of today
    harness.log(ledger, "gemini-flash", 1, 0)
    harness.log(ledger, "my-local-llm", 10, 10)
    harness.tick(ledger, 1.0)
    return harness


def test_render_shows_windows_against_budgets(tmp_path: Path) -> None:
    """Today, week and month show amount, limit, % used and a bar; then session and models."""
    harness = spend(tmp_path)
    text = render_costs(harness.paths, now=NOW)
    lines = text.splitlines()
    assert lines[0] == "Costs as of 2026-11-18 13:30 (Europe/Paris)"
    today = next(line for line in lines if line.strip().startswith("today"))
    assert "$9.000000075" in today or "$9.00" in today
    assert "$10.00" in today and "90%" in today and "[##################..]" in today
    assert "(+1 unpriced)" in today
    week = next(line for line in lines if "this week" in line)
    assert "no limit" in week
    month = next(line for line in lines if "this month" in line)
    assert "$500.00" in month and "1%" in month
    assert any(line.strip().startswith("session") and "s1, 3 operations" in line for line in lines)
    assert any("gpt-4" in line and "$9.00" in line for line in lines)
    assert any("gemini-flash" in line and "$0.000000075" in line for line in lines)
    assert any("unpriced" in line and "my-local-llm x1" in line for line in lines)
    assert any(line.strip().startswith("warning") and "Daily budget" in line for line in lines)
    assert any("pricing.toml as of 2026-11-30" in line for line in lines)
    projected = next(line for line in lines if line.strip().startswith("projected"))
    assert "$15.00" in projected  # $9.000000075 by 18 November, a 30-day month
    priced_by = next(line for line in lines if line.strip().startswith("priced by"))
    assert f"genai-prices@{genai_prices_version()} x2" in priced_by


def test_render_never_writes_even_over_a_torn_tail(tmp_path: Path) -> None:
    """Inspecting changes no byte, mode or time of any file, and skips a half-written line."""
    harness = spend(tmp_path)
    (ledger_file,) = harness.paths.ledger_dir.glob("*.jsonl")
    with ledger_file.open("ab") as handle:
        handle.write(b'{"kind":"op","id":"torn"')
    before = files_under(harness.paths.session_dir)
    summary = costs_summary(harness.paths, now=NOW)
    render_costs(harness.paths, now=NOW)
    assert files_under(harness.paths.session_dir) == before
    assert summary["daily_total"] == Decimal("9.000000075")
    assert summary["unpriced_operations"] == 1 and summary["session_id"] == "s1"


def test_render_works_on_a_project_that_never_ran(tmp_path: Path) -> None:
    """An empty project renders zeros against the default budgets and creates nothing."""
    paths = ProjectPaths.of(tmp_path)
    text = render_costs(paths, now=NOW)
    assert "$0.00 of     $50.00" in text and "empty" in text
    assert list(tmp_path.iterdir()) == []


def test_render_follows_the_session_in_current_json(tmp_path: Path) -> None:
    """The session shown is the one current.json names (a new session shows $0)."""
    harness = spend(tmp_path)
    harness.paths.current.write_bytes(
        dumps(
            {
                "session_id": "s2",
                "project_name": "p",
                "created_at": "2026-11-18T12:00:00Z",
                "last_activity": "2026-11-18T12:00:00Z",
            }
        )
    )
    summary = costs_summary(harness.paths, now=NOW)
    assert summary["session_id"] == "s2" and summary["session_total"] == 0
    assert summary["daily_total"] == Decimal("9.000000075")
