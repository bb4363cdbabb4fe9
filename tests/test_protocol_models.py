"""Models of stored files and results: round trips, unknown fields, normalisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import strategies as s
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from protocol import (
    OP_ARGS,
    TOPIC_DATA,
    CostsDocument,
    Document,
    ErrorCode,
    HistoryDocument,
    Message,
    Preferences,
    ProtocolError,
    SessionDocument,
    dumps,
    dumps_line,
    dumps_pretty,
    loads_exact,
    parse_args,
)
from protocol.history_journal import decode_history_journal_line
from protocol.ledger import decode_ledger_line
from protocol.session_journal import decode_journal_line

DOCUMENT_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "SessionDocument": s.session_documents(),
    "Preferences": s.preferences(),
    "CostsDocument": s.costs_documents(),
    "CostOperation": s.cost_operations(),
    "Budget": s.budgets(),
    "CostTotals": s.cost_totals(),
    "BudgetWarning": s.budget_warnings(),
    "HistoryDocument": s.history_documents(),
    "HistoryEntry": s.history_entries(),
    "SessionStatusResult": s.session_status_results(),
    "SaveResult": s.save_results(),
    "SignificantActionResult": s.significant_action_results(),
    "CostLogResult": s.cost_log_results(),
    "CostEstimateResult": s.cost_estimate_results(),
    "CostWarningResult": s.cost_warning_results(),
    "CostSeries": s.cost_series(),
    "SupervisorStatus": s.supervisor_statuses(),
    "SupervisorRestartResult": s.supervisor_restart_results(),
    "EndpointsFile": s.endpoints_files(),
    "LedgerCheckpoint": s.ledger_checkpoints(),
    "SeriesCache": s.series_caches(),
}

any_stored_model = st.one_of(*DOCUMENT_STRATEGIES.values(), *s.EVENT_DATA_STRATEGIES.values())


def _assert_round_trip(model: BaseModel) -> None:
    for encode in (dumps, dumps_pretty):
        data = encode(model)
        again = type(model).model_validate(loads_exact(data))
        assert again == model
        assert encode(again) == data, "a re-save must write the same bytes"


@given(any_stored_model)
def test_every_stored_model_round_trips_through_both_encodings(model: BaseModel) -> None:
    """Any file, record or result written compactly or indented reads back equal, byte-stable."""
    _assert_round_trip(model)


@given(s.session_documents())
def test_session_document_round_trips(document: SessionDocument) -> None:
    """current.json saved and loaded is the same session (stage, files, queries, timestamps)."""
    _assert_round_trip(document)


@given(s.costs_documents())
def test_costs_document_round_trips_with_exact_money(document: CostsDocument) -> None:
    """costs.json saved and loaded has the same totals and operations to the last digit."""
    again = CostsDocument.model_validate(loads_exact(dumps_pretty(document)))
    assert again.session_total == document.session_total
    assert [op.cost for op in again.operations] == [op.cost for op in document.operations]
    assert again == document


@given(s.history_documents())
def test_history_document_round_trips(document: HistoryDocument) -> None:
    """history.json saved and loaded lists the same sessions in the same order."""
    _assert_round_trip(document)


@given(s.preferences())
def test_preferences_round_trip(prefs: Preferences) -> None:
    """preferences.json saved and loaded holds the same choices."""
    _assert_round_trip(prefs)


@given(
    st.one_of(
        s.ledger_lines().map(lambda m: (decode_ledger_line, m)),
        s.journal_lines().map(lambda m: (decode_journal_line, m)),
        s.history_journal_lines().map(lambda m: (decode_history_journal_line, m)),
    )
)
def test_every_stored_line_decodes_to_what_was_encoded(pair: tuple[Any, BaseModel]) -> None:
    """A ledger or journal line written by its model reads back as the same model, byte-stable."""
    decode, model = pair
    line = dumps_line(model)
    again = decode(line)
    assert again == model
    assert dumps_line(again) == line


def test_every_model_in_the_protocol_has_a_strategy() -> None:
    """Each stored model and every topic's data has a Hypothesis strategy (none forgotten)."""
    from protocol.schema import _NAMED

    strategy_names = set(DOCUMENT_STRATEGIES) | {"Request", "OkReply", "ErrorReply", "Event"}
    assert {model.__name__ for model in _NAMED.values()} <= strategy_names
    assert set(s.EVENT_DATA_STRATEGIES) == set(TOPIC_DATA)
    assert set(s.OP_ARGS_STRATEGIES) == set(OP_ARGS)


# --- unknown fields ---------------------------------------------------------


@given(
    st.one_of(
        s.with_extras(s.session_documents()),
        s.with_extras(s.preferences()),
        s.with_extras(s.costs_documents()),
        s.with_extras(s.cost_operations()),
        s.with_extras(s.history_documents()),
        s.with_extras(s.history_entries()),
        s.with_extras(s.budgets()),
    )
)
def test_unknown_fields_of_a_newer_version_are_kept_on_round_trip(model: Document) -> None:
    """A file written by a newer version keeps the fields we do not know through load and save."""
    assert model.model_extra
    again = type(model).model_validate(loads_exact(dumps_pretty(model)))
    assert again.model_extra == model.model_extra
    assert loads_exact(dumps(again)) == loads_exact(dumps(model))


def test_unknown_fields_nested_inside_a_document_are_kept() -> None:
    """Unknown fields in nested objects (an operation, the budget, the UI state) survive too."""
    newer = {
        "session_id": "2026-11-23-143022",
        "session_total": 0.5,
        "operations": [
            {
                "timestamp": "2026-11-23T14:31:00Z",
                "operation": "draft",
                "model": "gpt-4",
                "input_tokens": 10,
                "output_tokens": 5,
                "cost": 0.5,
                "cache_read_tokens": 3,
            }
        ],
        "budget": {"daily_limit": 5, "hourly_limit": 1.25},
        "currency": "USD",
    }
    document = CostsDocument.model_validate(loads_exact(dumps(newer)))
    written = loads_exact(dumps_pretty(document))
    assert written["currency"] == "USD"
    assert written["operations"][0]["cache_read_tokens"] == 3
    assert written["budget"]["hourly_limit"] == Decimal("1.25")

    session = SessionDocument.model_validate(
        {
            "session_id": "s",
            "project_name": "Novel",
            "created_at": "2026-11-23T14:30:22Z",
            "last_activity": "2026-11-23T14:30:22Z",
            "current_state": {"stage": "writing", "split_view": True},
            "open_files": [{"path": "manuscript/ch1.md", "selection": [1, 4]}],
        }
    )
    written = loads_exact(dumps_pretty(session))
    assert written["current_state"]["split_view"] is True
    assert written["open_files"][0]["selection"] == [1, 4]


@pytest.mark.parametrize("op", sorted(OP_ARGS, key=str))
def test_unknown_fields_in_request_args_are_rejected(op: str) -> None:
    """Every op's args model refuses a field it does not define, naming it."""
    model = OP_ARGS[op]  # type: ignore[index]
    assert model.model_config.get("extra") == "forbid"
    with pytest.raises(ProtocolError) as caught:
        parse_args(op, {"surprise_field": 1})
    assert caught.value.code is ErrorCode.INVALID_ARGS
    assert "surprise_field" in caught.value.message


def test_documents_allow_and_messages_forbid_unknown_fields() -> None:
    """The policy is set once: stored Documents keep extras, received Messages refuse them."""
    assert Document.model_config.get("extra") == "allow"
    assert Message.model_config.get("extra") == "forbid"
    for topic_model in TOPIC_DATA.values():
        assert issubclass(topic_model, Document)
    for args_model in OP_ARGS.values():
        assert issubclass(args_model, Message)


# --- validation and normalisation -----------------------------------------------


def test_models_are_frozen() -> None:
    """A loaded document cannot be changed in place; changes go through `model_copy`."""
    prefs = Preferences()
    with pytest.raises(ValidationError):
        prefs.theme = "dark"  # type: ignore[misc]
    assert prefs.model_copy(update={"theme": "dark"}).theme == "dark"


def test_timestamps_are_stored_in_utc() -> None:
    """A time given with an offset (or none) is stored in UTC and written with `Z`."""
    paris = timezone(timedelta(hours=1))
    document = SessionDocument(
        session_id="s",
        project_name="Novel",
        created_at=datetime(2026, 11, 23, 15, 30, 22, tzinfo=paris),
        last_activity=datetime(2026, 11, 23, 14, 30, 22),
    )
    assert document.created_at == datetime(2026, 11, 23, 14, 30, 22, tzinfo=UTC)
    assert document.created_at.utcoffset() == timedelta(0)
    assert document.last_activity.tzinfo is not None
    written = loads_exact(dumps(document))
    assert written["created_at"] == "2026-11-23T14:30:22Z"
    assert written["last_activity"] == "2026-11-23T14:30:22Z"


def test_preferences_default_to_the_seed_values() -> None:
    """An empty preferences.json gives the defaults: 30 s autosave, warn at 80%, system zone."""
    prefs = Preferences.model_validate({})
    assert prefs.autosave_interval_s == 30.0
    assert prefs.budget_warning_fraction == Decimal("0.8")
    assert prefs.timezone is None


def test_unknown_time_zone_is_refused_with_a_hint() -> None:
    """A misspelt zone name is refused, and the message suggests an IANA name."""
    with pytest.raises(ValidationError, match="IANA"):
        Preferences.model_validate({"timezone": "Europe/Pariss"})


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a\\b", "C:/x"])
def test_stored_paths_never_escape_the_project(bad: str) -> None:
    """A history entry whose path escapes the project does not validate."""
    entry = {"session_id": "s", "start_time": "2026-01-01T00:00:00Z", "files_modified": [bad]}
    with pytest.raises(ValidationError, match="files_modified"):
        HistoryDocument.model_validate({"sessions": [entry]})


def test_negative_money_limit_is_refused() -> None:
    """A negative budget limit in a stored file is refused rather than read as 'no limit'."""
    with pytest.raises(ValidationError, match="daily_limit"):
        CostsDocument.model_validate({"budget": {"daily_limit": -1}})


def test_not_a_number_is_refused_as_money() -> None:
    """NaN and Infinity are never accepted as an amount of money."""
    for value in (Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(ValidationError, match="session_total"):
            CostsDocument.model_validate({"session_total": value})


@given(s.timestamps())
def test_the_one_timestamp_text_reads_back_as_the_same_instant(moment: datetime) -> None:
    """`utc_text` writes UTC with `Z` and microseconds; `parse_ts` reads it back exactly."""
    from protocol.base import parse_ts, utc_text

    text = utc_text(moment)
    assert text.endswith("Z") and len(text) == len("2026-11-30T18:07:54.124688Z")
    expected = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert parse_ts(text) == expected and parse_ts(text).tzinfo is UTC


def test_the_timestamp_of_now_is_written_like_any_other() -> None:
    """`utc_text()` (every event's stamp) is the text `utc_text` writes for that instant."""
    from protocol.base import parse_ts, utc_text

    before = datetime.now(UTC)
    text = utc_text()
    after = datetime.now(UTC)
    assert before <= parse_ts(text) <= after
    assert text == utc_text(parse_ts(text)) and text.endswith("Z") and len(text) == 27


def test_the_timestamp_of_now_follows_the_clock_across_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`utc_text()` writes each clock reading as `datetime.now` would (microseconds rounded
    down), also when the second changes between two stamps."""
    import time

    from protocol import base

    readings = [1_764_556_799_999_999_999, 1_764_556_800_000_000_500, 1_764_556_800_123_456_789]
    for reading in readings:
        monkeypatch.setattr(time, "time_ns", lambda reading=reading: reading)
        expected = datetime.fromtimestamp(reading // 1000 / 1e6, UTC).replace(
            microsecond=reading // 1000 % 1_000_000
        )
        assert base.utc_text() == base.utc_text(expected)
    assert base.utc_text() == "2025-12-01T02:40:00.123456Z"


def test_parse_ts_takes_any_offset_and_refuses_what_is_no_timestamp() -> None:
    """Offsets are converted to UTC, a naive time is UTC, and a non-timestamp is an error."""
    from protocol.base import parse_ts

    assert parse_ts("2026-11-30T20:00:00+02:00") == datetime(2026, 11, 30, 18, tzinfo=UTC)
    assert parse_ts("2026-11-30T18:00:00") == datetime(2026, 11, 30, 18, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_ts("yesterday")
    with pytest.raises(TypeError):
        parse_ts(1_700_000_000)  # type: ignore[arg-type]
