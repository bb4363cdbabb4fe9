"""`cost.series`: exact spend per hour, day, week or month, equal to the ledger's lines."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_cost_ledger import LedgerHarness

from protocol.costs import CostSeries
from protocol.errors import ErrorCode, ProtocolError
from services.cost_ledger import CostLedger

PARIS = ZoneInfo("Europe/Paris")
MODELS = ["claude-sonnet-3.5", "gemini-pro", "gpt-4", "my-local-llm"]
OPERATIONS = ["scene_generation", "voice_test", "analysis"]


def fill_october(harness: LedgerHarness, count: int = 300) -> None:
    """Log `count` calls at random moments of October 2026 (Paris), oldest first."""
    rng = random.Random(11)
    start = datetime(2026, 9, 30, 22, 0, tzinfo=UTC)  # 1 October, midnight in Paris
    moments = sorted(start + timedelta(seconds=rng.randrange(31 * 86_400)) for _ in range(count))
    harness.now = moments[0]
    ledger = harness.open()
    for moment in moments:
        harness.now = moment
        harness.log(
            ledger,
            rng.choice(MODELS),
            rng.randrange(1, 300_000),
            rng.randrange(0, 5_000),
            operation=rng.choice(OPERATIONS),
        )
    ledger.stop()


def series(harness: LedgerHarness, **args: Any) -> CostSeries:
    """Ask a (re)started ledger for a series, as of 5 November 2026."""
    harness.now = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
    ledger = harness.open()
    assert ledger.wait_series(30)  # the index loads in the background after a start
    return CostSeries.model_validate(harness.one(ledger, harness.call("cost.series", **args)))


@pytest.fixture
def october(tmp_path: Path) -> LedgerHarness:
    """A Paris project whose ledger holds 300 calls in October 2026."""
    harness = LedgerHarness(tmp_path / "project", zone="Europe/Paris")
    fill_october(harness)
    return harness


def test_a_month_by_day_equals_the_sum_of_the_ledger_lines_exactly(october: LedgerHarness) -> None:
    """Each local day's total, model and operation figures are the exact sums of its lines."""
    result = series(october, since="2026-10-01", until="2026-11-01")
    assert [b.start for b in result.buckets] == [
        (date(2026, 10, 1) + timedelta(days=n)).isoformat() for n in range(31)
    ]
    expected: dict[str, dict[str, Any]] = {}
    unpriced = 0
    for op in october.records("op"):
        day = datetime.fromisoformat(op["ts"]).astimezone(PARIS).date().isoformat()
        cell = expected.setdefault(day, {"total": Decimal(0), "models": {}, "ops": {}})
        if op["cost"] is None:
            unpriced += 1
            continue
        cell["total"] += op["cost"]
        cell["models"][op["model"]] = cell["models"].get(op["model"], 0) + op["cost"]
        cell["ops"][op["operation"]] = cell["ops"].get(op["operation"], 0) + op["cost"]
    for bucket in result.buckets:
        cell = expected.get(bucket.start, {"total": Decimal(0), "models": {}, "ops": {}})
        assert bucket.total == cell["total"], bucket.start
        assert bucket.by_model == cell["models"] and bucket.by_operation == cell["ops"]
        assert bucket.limit == Decimal(50)  # the daily limit beside each day
    assert result.total == sum(c["total"] for c in expected.values())
    assert result.unpriced_operations == unpriced > 0
    assert result.timezone == "Europe/Paris"


def test_empty_buckets_are_included_so_a_chart_needs_no_gap_filling(
    october: LedgerHarness,
) -> None:
    """A range with no operations still has one zero bucket per day."""
    result = series(october, since="2026-11-01", until="2026-11-08")
    assert len(result.buckets) == 7
    assert all(b.total == 0 and b.by_model == {} for b in result.buckets)


def test_hours_follow_the_local_clock_across_a_dst_change(october: LedgerHarness) -> None:
    """25 October 2026 in Paris has 25 hours; hour buckets carry no limit."""
    result = series(october, since="2026-10-25", until="2026-10-26", bucket="hour")
    assert len(result.buckets) == 25
    assert result.buckets[0].start == "2026-10-25T00:00+02:00"
    assert result.buckets[-1].start == "2026-10-25T23:00+01:00"
    assert all(b.limit is None for b in result.buckets)
    day = series(october, since="2026-10-25", until="2026-10-26")
    assert result.total == day.total


def test_weeks_and_months_add_up_to_the_same_total(october: LedgerHarness) -> None:
    """ISO weeks start on Monday, months on the 1st; both sum to the month's exact total."""
    by_day = series(october, since="2026-10-01", until="2026-11-01")
    weeks = series(october, since="2026-10-01", until="2026-11-01", bucket="week")
    months = series(october, since="2026-10-01", until="2026-11-01", bucket="month")
    assert weeks.buckets[0].start == "2026-09-28" and weeks.buckets[-1].start == "2026-10-26"
    assert [b.start for b in months.buckets] == ["2026-10-01"]
    assert months.buckets[0].limit == Decimal(500) and weeks.buckets[0].limit == Decimal(200)
    assert weeks.total == months.total == by_day.total == months.buckets[0].total


def test_defaults_are_the_last_30_days_to_tomorrow_by_day(october: LedgerHarness) -> None:
    """No args: since 30 days ago, until tomorrow (local), one bucket a day."""
    result = series(october)
    assert result.since == "2026-10-06" and result.until == "2026-11-06"
    assert len(result.buckets) == 31 and result.bucket == "day"


def test_a_start_without_checkpoint_rebuilds_older_months_when_asked(
    october: LedgerHarness,
) -> None:
    """Months a start did not replay are read once in the background, calls meanwhile kept."""
    expected = series(october, since="2026-10-01", until="2026-11-01")
    october.now = datetime(2026, 12, 20, tzinfo=UTC)
    december = october.open()
    october.log(december, "gpt-4", 1000, 0)
    december.stop()
    (october.paths.ledger_dir / "checkpoint.json").unlink()
    (october.paths.ledger_dir / "series.json").unlink()
    october.now = datetime(2027, 1, 20, tzinfo=UTC)  # October is past the start's lookback
    posted: list[Callable[[], None]] = []
    main_thread_only = october.context("s1")
    ledger = CostLedger(
        replace(main_thread_only, call_soon_threadsafe=posted.append),
        clock=lambda: october.now,
        monotonic=lambda: october.mono,
    )
    ledger.start()
    assert ledger.loaded_info["files_read"] == ["2026-12.jsonl"]
    october.log(ledger, "gpt-4", 2000, 0)  # logged while older months are being read
    assert not ledger.wait_series(30)  # read, but handed over on the main thread only
    incomplete = october.one(ledger, october.call("cost.series", since="2026-10-01"))
    assert incomplete["complete"] is False
    for callback in posted:
        callback()
    call = october.call("cost.series", since="2026-10-01", until="2026-11-01")
    again = CostSeries.model_validate(october.one(ledger, call))
    assert again.complete and again.buckets == expected.buckets and again.total == expected.total
    january = CostSeries.model_validate(
        october.one(ledger, october.call("cost.series", since="2027-01-20", until="2027-01-21"))
    )
    assert january.total == Decimal("0.06")  # the call logged during the rebuild is kept


def test_the_series_survives_a_restart_from_its_saved_index(october: LedgerHarness) -> None:
    """A restart loads series.json (not the checkpoint) and answers with the same figures."""
    first = series(october, since="2026-10-01", until="2026-11-01", bucket="week")
    checkpoint = (october.paths.ledger_dir / "checkpoint.json").read_bytes()
    assert b"series" not in checkpoint  # start-up does not grow with the ledger's age
    assert (october.paths.ledger_dir / "series.json").exists()
    assert series(october, since="2026-10-01", until="2026-11-01", bucket="week") == first


def test_a_saved_index_the_ledger_no_longer_matches_is_ignored(october: LedgerHarness) -> None:
    """series.json pointing at a line that changed is not trusted: the files are read."""
    expected = series(october, since="2026-10-01", until="2026-11-01")
    saved = october.paths.ledger_dir / "series.json"
    document = json.loads(saved.read_bytes())
    first_bucket = document["series"]["cells"][0][0]
    document["series"]["cells"] = [[first_bucket, "999", 0, {"gpt-4": "999"}, {"x": "999"}]]
    saved.write_text(json.dumps(document), encoding="utf-8")
    assert series(october, since="2026-10-01", until="2026-11-01").total == 999  # trusted...
    document["position"]["digest"] = "0" * 64  # ...until it no longer matches the ledger
    saved.write_text(json.dumps(document), encoding="utf-8")
    assert series(october, since="2026-10-01", until="2026-11-01") == expected


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"since": "2026-10-02", "until": "2026-10-01"}, "before"),
        ({"since": "2020-01-01", "until": "2026-01-01", "bucket": "hour"}, "buckets"),
        ({"bucket": "fortnight"}, "bucket"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_bad_ranges_are_invalid_args(tmp_path: Path, args: dict[str, Any], words: str) -> None:
    """A reversed range, too many buckets or a bad bucket name is refused in words."""
    harness = LedgerHarness(tmp_path / "project")
    ledger = harness.open()
    with pytest.raises(ProtocolError) as caught:
        harness.one(ledger, harness.call("cost.series", **args))
    assert caught.value.code == ErrorCode.INVALID_ARGS and words in caught.value.message


def test_operations_logged_during_a_rebuild_are_added_to_it() -> None:
    """An index handed over by a rebuild gains the operations noted while it was read."""
    from services.cost.series import SeriesIndex

    live = SeriesIndex(complete=False)
    live.pending = []
    live.add(10, "gpt-4", "analysis", Decimal("0.5"))
    rebuilt = SeriesIndex()
    rebuilt.add(3, "gpt-4", "analysis", Decimal("0.25"))
    adopted = live.adopt(rebuilt)
    assert adopted.complete and adopted.pending is None
    assert adopted.span(0, 20).total == Decimal("0.75")


def test_a_saved_index_read_back_remembers_its_closed_days() -> None:
    """An index read from series.json sums its past days once, like one built live."""
    from zoneinfo import ZoneInfo

    from services.cost.series import SeriesIndex

    live = SeriesIndex()
    for bucket in range(0, 96 * 3, 7):  # three UTC days from the epoch
        live.add(bucket, "gpt-4", "analysis", Decimal("0.25"))
    again = SeriesIndex.from_json(live.to_json())
    again.warm_days(ZoneInfo("UTC"))
    assert (0, 96) in again._spans and again.span(0, 96).total == live.span(0, 96).total


def test_the_saved_index_has_its_committed_shape(october: LedgerHarness) -> None:
    """series.json as the ledger writes it validates against `SeriesCache` and its schema."""
    import jsonschema

    from protocol.ledger import SeriesCache

    series(october, since="2026-10-01", until="2026-11-01")
    raw = (october.paths.ledger_dir / "series.json").read_bytes()
    cache = SeriesCache.model_validate_json(raw)
    assert cache.series.cells, "the index saved no bucket"
    schema_path = Path(__file__).parents[1] / "protocol/schemas/file.ledger_series.schema.json"
    jsonschema.validate(json.loads(raw), json.loads(schema_path.read_text()))
