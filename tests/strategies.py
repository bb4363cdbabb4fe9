"""Hypothesis strategies for every model in `protocol/`.

Each strategy builds *valid* instances (what our own code writes or a correct
client sends); tests derive invalid input from them by breaking one thing.
Sizes are kept small so a property test runs in a fraction of a second.

`OP_ARGS_STRATEGIES` maps every op to the JSON-ready `args` a client may send
for it; `EVENT_DATA_STRATEGIES` does the same for every topic's `data`.
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

from hypothesis import strategies as st
from pydantic import BaseModel

from protocol import (
    Budget,
    BudgetWarning,
    CostOperation,
    CostsDocument,
    CostTotals,
    EndpointsFile,
    ErrorCode,
    ErrorReply,
    Event,
    HistoryDocument,
    HistoryEntry,
    OkReply,
    Op,
    Preferences,
    Request,
    SessionDocument,
    Stage,
    Topic,
    WorkerName,
    WorkerState,
)
from protocol.codec import dumps, loads_exact
from protocol.costs import CostSeries, SpendBucket
from protocol.envelopes import ErrorBody
from protocol.events import (
    CostLoggedData,
    CostUnpricedData,
    FileEventData,
    HistoryUpdatedData,
    PreferencesChangedData,
    SessionRecoveredData,
    SessionSavedData,
    SessionSaveFailedData,
    WorkerEventData,
)
from protocol.history_journal import HistoryCheckpoint, HistoryEnd, HistoryEvent, HistoryResume
from protocol.ledger import (
    CheckpointPosition,
    CheckpointSession,
    LedgerBudget,
    LedgerCheckpoint,
    LedgerOperation,
    LedgerReset,
    LedgerWarned,
    SeriesCache,
    SeriesCells,
)
from protocol.names import RestartRule
from protocol.ops import (
    CostEstimateResult,
    CostLogResult,
    CostWarningResult,
    SaveResult,
    SessionStatusResult,
    SignificantActionResult,
    SupervisorRestartResult,
    SupervisorStatus,
    WorkerStatus,
)
from protocol.session import CurrentState, NotebookLMSettings, OpenFile, RecentQuery
from protocol.session_journal import (
    CarriedReply,
    JournalActivity,
    JournalBegin,
    JournalEnd,
    JournalOp,
    JournalOwner,
    JournalSegment,
)

__all__ = [
    "EVENT_DATA_STRATEGIES",
    "OP_ARGS_STRATEGIES",
    "budget_warnings",
    "budgets",
    "cost_estimate_results",
    "cost_log_results",
    "cost_operations",
    "cost_series",
    "cost_totals",
    "cost_warning_results",
    "costs_documents",
    "endpoints_files",
    "error_replies",
    "events",
    "history_documents",
    "history_entries",
    "history_journal_lines",
    "journal_lines",
    "json_values",
    "ledger_checkpoints",
    "ledger_lines",
    "money",
    "ok_replies",
    "op_requests",
    "preferences",
    "project_paths",
    "requests",
    "save_results",
    "series_caches",
    "session_documents",
    "session_status_results",
    "significant_action_results",
    "supervisor_restart_results",
    "supervisor_statuses",
    "timestamps",
    "with_extras",
]

D = TypeVar("D", bound=BaseModel)

# --- scalars ---------------------------------------------------------------

short_text = st.text(max_size=30)
"""Any Unicode text (no surrogates), short."""

non_empty_text = st.text(min_size=1, max_size=30)
names = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=24)
"""Identifier-like text: session ids, model names, request ids."""

tokens = st.integers(min_value=0, max_value=10**12)
counts = st.integers(min_value=0, max_value=10**6)


def money(max_value: int = 10**6, max_places: int = 12) -> st.SearchStrategy[Decimal]:
    """Non-negative exact dollar amounts with up to `max_places` fraction digits."""
    return st.integers(min_value=0, max_value=max_places).flatmap(
        lambda places: st.decimals(
            min_value=0,
            max_value=max_value,
            places=places,
            allow_nan=False,
            allow_infinity=False,
        )
    )


_offsets: st.SearchStrategy[tzinfo] = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def timestamps() -> st.SearchStrategy[datetime]:
    """Datetimes in any fixed offset, or naive (the models read naive as UTC)."""
    low, high = datetime(1971, 1, 1), datetime(2200, 1, 1)
    aware = st.datetimes(min_value=low, max_value=high, timezones=st.just(UTC) | _offsets)
    return st.datetimes(min_value=low, max_value=high) | aware


def utc_timestamps() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes (what a model holds after validation)."""
    return st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )


_segment = st.text(
    alphabet=st.characters(
        exclude_characters="/\\:", exclude_categories=("Cc", "Cs"), max_codepoint=0x2FFF
    ),
    min_size=1,
    max_size=12,
).filter(lambda segment: segment not in {".", ".."})


def project_paths() -> st.SearchStrategy[str]:
    """Canonical project-relative paths (`manuscript/ch 1.md`), never escaping the root.

    No control characters (the watcher could never report such a name) and
    never under `.session/` (the service's own files).
    """
    return (
        st.lists(_segment, min_size=1, max_size=4)
        .map("/".join)
        .filter(lambda path: path.split("/", 1)[0] != ".session")
    )


stages = st.sampled_from(list(Stage))
float_seconds = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """JSON values as `loads_exact` returns them: fractions are Decimal, ints fit 64 bits."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**53), max_value=2**53)
        | money(max_value=10**9, max_places=10)
        | short_text
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(short_text, children, max_size=3)
        ),
        max_leaves=max_leaves,
    )


@st.composite
def with_extras(draw: st.DrawFn, models: st.SearchStrategy[D]) -> D:
    """A model read from a file that a newer version wrote: it has fields we do not know."""
    model = draw(models)
    plain = loads_exact(dumps(model))
    known = set(type(model).model_fields)
    extra_names = st.text(min_size=1, max_size=12).filter(lambda name: name not in known)
    extras = draw(st.dictionaries(extra_names, json_values(4), min_size=1, max_size=3))
    return type(model).model_validate({**extras, **plain})


# --- session.py ------------------------------------------------------------


def current_states() -> st.SearchStrategy[CurrentState]:
    """Where the writer is in the UI."""
    return st.builds(
        CurrentState,
        stage=stages,
        screen=short_text,
        breadcrumb=st.lists(short_text, max_size=4),
    )


def open_files() -> st.SearchStrategy[OpenFile]:
    """A file open in an editor pane."""
    return st.builds(OpenFile, path=project_paths(), cursor_line=counts, cursor_col=counts)


def recent_queries() -> st.SearchStrategy[RecentQuery]:
    """A question asked of a knowledge source."""
    return st.builds(RecentQuery, query=short_text, timestamp=timestamps(), source=short_text)


def session_documents() -> st.SearchStrategy[SessionDocument]:
    """current.json."""
    return st.builds(
        SessionDocument,
        session_id=names,
        project_name=short_text,
        created_at=timestamps(),
        last_activity=timestamps(),
        current_state=current_states(),
        open_files=st.lists(open_files(), max_size=3),
        model_preferences=st.dictionaries(stages, names, max_size=5),
        recent_queries=st.lists(recent_queries(), max_size=10),
        revision=counts,
        owner_pid=st.none() | st.integers(min_value=1, max_value=2**22),
        host=st.none() | short_text,
        last_saved_at=st.none() | timestamps(),
        ended_at=st.none() | timestamps(),
    )


def notebooklm_settings() -> st.SearchStrategy[NotebookLMSettings]:
    """A linked NotebookLM notebook, or none."""
    return st.builds(
        NotebookLMSettings,
        enabled=st.booleans(),
        notebook_url=st.none() | short_text,
        notebook_id=st.none() | short_text,
    )


_zones = st.sampled_from([None, "UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])
_autosave_s = st.floats(min_value=1, max_value=3600, allow_nan=False)
_fractions = st.integers(min_value=1, max_value=1000).map(lambda n: Decimal(n) / 1000)


def preferences() -> st.SearchStrategy[Preferences]:
    """preferences.json."""
    return st.builds(
        Preferences,
        model_preferences=st.dictionaries(stages, names, max_size=5),
        notebooklm=notebooklm_settings(),
        keyboard_shortcuts=st.dictionaries(short_text, short_text, max_size=3),
        theme=short_text,
        colors=st.dictionaries(short_text, short_text, max_size=3),
        autosave_interval_s=_autosave_s,
        timezone=_zones,
        budget_warning_fraction=_fractions,
        confirm_above=money(max_value=1000),
    )


# --- costs.py --------------------------------------------------------------


@st.composite
def cost_operations(draw: st.DrawFn) -> CostOperation:
    """One recorded LLM call; `cost` is None exactly when it was not priced."""
    priced = draw(st.booleans())
    return CostOperation(
        timestamp=draw(timestamps()),
        operation=draw(short_text),
        model=draw(names),
        input_tokens=draw(tokens),
        output_tokens=draw(tokens),
        cost=draw(money()) if priced else None,
        priced=priced,
        session_id=draw(st.none() | names),
        request_id=draw(st.none() | names),
        price_source=draw(st.none() | short_text),
    )


def _limits() -> st.SearchStrategy[Decimal | None]:
    return st.none() | money(max_value=100_000, max_places=2)


def budgets() -> st.SearchStrategy[Budget]:
    """Spending limits; None means no limit."""
    return st.builds(
        Budget,
        daily_limit=_limits(),
        weekly_limit=_limits(),
        monthly_limit=_limits(),
        warnings_enabled=st.booleans(),
    )


def cost_totals() -> st.SearchStrategy[CostTotals]:
    """The result of `cost.totals`."""
    return st.builds(
        CostTotals,
        session_total=money(),
        daily_total=money(),
        weekly_total=money(),
        monthly_total=money(),
        by_model=st.dictionaries(names, money(), max_size=3),
        unpriced_operations=counts,
    )


def budget_warnings() -> st.SearchStrategy[BudgetWarning]:
    """A budget warning as the UI shows it."""
    return st.builds(
        BudgetWarning,
        period=st.sampled_from(["daily", "weekly", "monthly"]),
        spent=money(),
        limit=money(),
        remaining=money(),
        fraction=money(max_value=10, max_places=6),
        exceeded=st.booleans(),
        window=names,
        message=short_text,
    )


def costs_documents() -> st.SearchStrategy[CostsDocument]:
    """costs.json."""
    return st.builds(
        CostsDocument,
        session_id=st.none() | names,
        session_total=money(),
        daily_total=money(),
        weekly_total=money(),
        monthly_total=money(),
        operations=st.lists(cost_operations(), max_size=4),
        by_model=st.dictionaries(names, money(), max_size=3),
        budget=budgets(),
        unpriced_operations=counts,
        timezone=_zones,
        day=st.none() | names,
        week=st.none() | names,
        month=st.none() | names,
        updated_at=st.none() | timestamps(),
    )


# --- history.py ------------------------------------------------------------


def history_entries() -> st.SearchStrategy[HistoryEntry]:
    """One session in history.json."""
    return st.builds(
        HistoryEntry,
        session_id=names,
        start_time=timestamps(),
        end_time=st.none() | timestamps(),
        duration_minutes=float_seconds,
        total_cost=money(),
        files_modified=st.lists(project_paths(), max_size=3),
        files_created=st.lists(project_paths(), max_size=3),
        operations_count=st.dictionaries(names, counts, max_size=3),
        status=st.sampled_from(["active", "ended", "interrupted"]),
    )


def history_documents() -> st.SearchStrategy[HistoryDocument]:
    """history.json, newest first (order is the writer's business, not the model's)."""
    return st.builds(HistoryDocument, sessions=st.lists(history_entries(), max_size=4))


# --- stored lines: ledger.py, session_journal.py, history_journal.py --------

_revs = st.integers(min_value=0, max_value=10**9)


@st.composite
def _ledger_operations(draw: st.DrawFn) -> LedgerOperation:
    priced = draw(st.booleans())
    return LedgerOperation(
        id=draw(names),
        ts=draw(timestamps()),
        session_id=draw(names),
        operation=draw(short_text),
        model=draw(names),
        input_tokens=draw(tokens),
        output_tokens=draw(tokens),
        cache_read_tokens=draw(tokens),
        cache_write_tokens=draw(tokens),
        reasoning_tokens=draw(tokens),
        provider=draw(st.none() | names),
        cost=draw(money()) if priced else None,
        priced=priced,
        price_source=draw(st.none() | short_text),
        totals=draw(st.none() | cost_totals()),
        warning=draw(st.none() | short_text),
    )


def ledger_lines() -> st.SearchStrategy[Any]:
    """One line of a ledger month file, of any kind."""
    budget = st.builds(
        LedgerBudget,
        id=st.none() | names,
        ts=timestamps(),
        session_id=names,
        budget=budgets(),
        carried=st.booleans(),
    )
    reset = st.builds(
        LedgerReset, id=names, ts=timestamps(), session_id=names, totals=st.none() | cost_totals()
    )
    warned = st.builds(
        LedgerWarned,
        ts=timestamps(),
        period=st.sampled_from(["daily", "weekly", "monthly"]),
        window=names,
        level=st.sampled_from(["warning", "exceeded"]),
        limit=money(),
        spent=money(),
        message=short_text,
    )
    return _ledger_operations() | budget | reset | warned


def series_caches() -> st.SearchStrategy[SeriesCache]:
    """ledger/series.json, the cost.series index."""
    text_money = money().map(str)
    cells = st.lists(
        st.tuples(
            counts,
            text_money,
            counts,
            st.dictionaries(names, text_money, max_size=2),
            st.dictionaries(names, text_money, max_size=2),
        ),
        max_size=3,
    )
    return st.builds(
        SeriesCache,
        position=st.builds(
            CheckpointPosition, file=names, offset=counts, digest=st.sampled_from(["", "ab" * 32])
        ),
        series=st.builds(SeriesCells, complete=st.booleans(), cells=cells),
    )


def ledger_checkpoints() -> st.SearchStrategy[LedgerCheckpoint]:
    """ledger/checkpoint.json."""
    text_money = money().map(str)
    session = st.builds(
        CheckpointSession,
        session_id=names,
        total=text_money,
        by_model=st.dictionaries(names, text_money, max_size=2),
        unpriced=counts,
        unpriced_by_model=st.dictionaries(names, counts, max_size=2),
        count=counts,
        operations=st.just([]),
    )
    return st.builds(
        LedgerCheckpoint,
        position=st.builds(
            CheckpointPosition, file=names, offset=counts, digest=st.sampled_from(["", "ab" * 32])
        ),
        buckets=st.lists(st.tuples(counts, text_money, counts), max_size=3),
        session=session,
        budget=st.just({"daily_limit": "50", "weekly_limit": None, "warnings_enabled": True}),
        fired=st.lists(st.tuples(names, names, names, names), max_size=2),
        applied_ids=st.lists(names, max_size=3),
    )


def journal_lines() -> st.SearchStrategy[Any]:
    """One line of a session journal segment, of any kind."""
    carried = st.builds(
        CarriedReply, id=names, op=names, rev=_revs, result=st.none() | json_values()
    )
    return st.one_of(
        st.builds(
            JournalSegment,
            segment=st.integers(min_value=1, max_value=10**6),
            base_rev=_revs,
            ts=timestamps(),
            carried=st.lists(carried, max_size=2),
            activity=st.lists(names, max_size=2),
        ),
        st.builds(
            JournalBegin,
            rev=_revs,
            session_id=names,
            ts=timestamps(),
            project_name=short_text,
            owner_pid=st.none() | counts,
            host=st.none() | names,
            model_preferences=st.dictionaries(names, names, max_size=2),
        ),
        st.builds(
            JournalOp,
            rev=_revs,
            session_id=names,
            id=names,
            op=names,
            args=st.dictionaries(names, json_values(), max_size=2),
            ts=timestamps(),
        ),
        st.builds(
            JournalActivity,
            rev=_revs,
            session_id=names,
            key=names,
            topic=names,
            path=st.none() | project_paths(),
            cost=st.none() | money(),
            operation=st.none() | names,
            ts=timestamps(),
        ),
        st.builds(
            JournalOwner,
            rev=_revs,
            session_id=names,
            owner_pid=st.none() | counts,
            host=st.none() | names,
            ts=timestamps(),
        ),
        st.builds(JournalEnd, rev=_revs, session_id=names, ts=timestamps()),
    )


def history_journal_lines() -> st.SearchStrategy[Any]:
    """One line of archive/live.jsonl, of any kind."""
    return st.one_of(
        st.builds(
            HistoryCheckpoint,
            entry=history_entries(),
            cost_ids=st.lists(names, max_size=3),
            cost_ids_complete=st.booleans(),
            seen=st.lists(names, max_size=3),
            ts=st.none() | timestamps(),
        ),
        st.builds(
            HistoryEvent,
            key=names,
            topic=names,
            data=st.dictionaries(names, json_values(), max_size=2),
            ts=timestamps(),
        ),
        st.builds(HistoryResume, ts=timestamps()),
        st.builds(HistoryEnd, ts=timestamps()),
    )


# --- ops.py results --------------------------------------------------------


def session_status_results() -> st.SearchStrategy[SessionStatusResult]:
    """`session.status`."""
    return st.builds(
        SessionStatusResult,
        session_id=names,
        dirty=st.booleans(),
        last_save_at=st.none() | timestamps(),
        seconds_since_save=st.none() | float_seconds,
        indicator=short_text,
        state=names,
        attempt=st.integers(min_value=0, max_value=10),
        max_attempts=st.integers(min_value=0, max_value=10),
        last_error=st.none() | short_text,
    )


def save_results() -> st.SearchStrategy[SaveResult]:
    """`session.save`."""
    return st.builds(SaveResult, saved=st.booleans(), saved_at=st.none() | timestamps())


def significant_action_results() -> st.SearchStrategy[SignificantActionResult]:
    """`session.significant_action`."""
    return st.builds(SignificantActionResult, saved_at=st.none() | timestamps())


def cost_log_results() -> st.SearchStrategy[CostLogResult]:
    """`cost.log`."""
    return st.builds(
        CostLogResult,
        operation=cost_operations(),
        totals=cost_totals(),
        warning=st.none() | short_text,
    )


def cost_estimate_results() -> st.SearchStrategy[CostEstimateResult]:
    """`cost.estimate`."""
    return st.builds(
        CostEstimateResult,
        cost=money(),
        warning=st.none() | short_text,
        confirm=st.booleans(),
    )


def cost_series() -> st.SearchStrategy[CostSeries]:
    """`cost.series`."""
    names = st.text(alphabet="abcdefghij-.0123456789", min_size=1, max_size=12)
    bucket = st.builds(
        SpendBucket,
        start=st.dates().map(lambda d: d.isoformat()),
        total=money(),
        by_model=st.dictionaries(names, money(), max_size=3),
        by_operation=st.dictionaries(names, money(), max_size=3),
        limit=st.none() | money(max_value=10_000, max_places=2),
        unpriced_operations=st.integers(min_value=0, max_value=1000),
    )
    return st.builds(
        CostSeries,
        buckets=st.lists(bucket, max_size=5),
        total=money(),
        unpriced_operations=st.integers(min_value=0, max_value=1000),
        bucket=st.sampled_from(["hour", "day", "week", "month"]),
    )


def cost_warning_results() -> st.SearchStrategy[CostWarningResult]:
    """`cost.warning`."""
    return st.builds(CostWarningResult, warning=st.none() | short_text)


def worker_statuses() -> st.SearchStrategy[WorkerStatus]:
    """One worker in `supervisor.status`."""
    return st.builds(
        WorkerStatus,
        name=st.sampled_from([w.value for w in WorkerName]),
        pid=st.none() | st.integers(min_value=1, max_value=2**22),
        state=st.sampled_from(list(WorkerState)),
        restarts=st.integers(min_value=0, max_value=100),
        started_at=st.none() | utc_timestamps(),
        uptime_s=st.none() | float_seconds,
        last_exit=st.none() | short_text,
    )


def supervisor_restart_results() -> st.SearchStrategy[SupervisorRestartResult]:
    """`supervisor.restart`."""
    return st.builds(SupervisorRestartResult, workers=st.lists(worker_statuses(), max_size=4))


def supervisor_statuses() -> st.SearchStrategy[SupervisorStatus]:
    """`supervisor.status`."""
    return st.builds(
        SupervisorStatus,
        session_id=names,
        workers=st.lists(worker_statuses(), max_size=4),
        supervisor_pid=st.none() | st.integers(min_value=1, max_value=2**22),
        started_at=st.none() | timestamps(),
        project=st.none() | short_text,
    )


# --- envelopes.py ----------------------------------------------------------


def endpoints_files() -> st.SearchStrategy[EndpointsFile]:
    """`.session/run/endpoints.json`."""
    return st.builds(
        EndpointsFile,
        command=names.map(lambda n: f"ipc:///tmp/{n}/command.sock"),
        events=names.map(lambda n: f"ipc:///tmp/{n}/events.sock"),
        supervisor_pid=st.integers(min_value=1, max_value=2**22),
        session_id=names,
        started_at=timestamps(),
    )


_request_ids = st.text(min_size=1, max_size=40)


def requests() -> st.SearchStrategy[Request]:
    """Well-formed request envelopes (any op name; args any JSON object)."""
    return st.builds(
        Request,
        id=_request_ids,
        op=st.sampled_from([op.value for op in Op]) | st.text(min_size=1, max_size=40),
        args=st.dictionaries(short_text, json_values(6), max_size=4),
    )


def ok_replies() -> st.SearchStrategy[OkReply]:
    """Successful replies with any JSON result (money exact)."""
    return st.builds(OkReply, id=_request_ids, result=json_values())


def error_replies() -> st.SearchStrategy[ErrorReply]:
    """Error replies with every contract code."""
    body = st.builds(ErrorBody, code=st.sampled_from(list(ErrorCode)), message=short_text)
    return st.builds(ErrorReply, id=st.just("") | _request_ids, error=body)


# --- ops.py args -----------------------------------------------------------

_no_args: st.SearchStrategy[dict[str, Any]] = st.just({})
_cursor = st.integers(min_value=0, max_value=10**6)
_model_names = st.sampled_from(["claude-sonnet-3.5", "gemini-flash", "gpt-4"]) | names


def _budget_args() -> st.SearchStrategy[dict[str, Any]]:
    limit = st.none() | money(max_value=100_000, max_places=4) | st.integers(0, 10_000)
    return st.fixed_dictionaries(
        {},
        optional={
            "daily_limit": limit,
            "weekly_limit": limit,
            "monthly_limit": limit,
            "warnings_enabled": st.booleans(),
        },
    )


def _preference_values() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "theme": short_text,
            "autosave_interval_s": st.integers(min_value=1, max_value=3600),
            "timezone": _zones,
            "model_preferences": st.dictionaries(stages.map(str), names, max_size=3),
            "keyboard_shortcuts": st.dictionaries(short_text, short_text, max_size=2),
        },
    )


OP_ARGS_STRATEGIES: dict[Op, st.SearchStrategy[dict[str, Any]]] = {
    Op.SESSION_GET: _no_args,
    Op.SESSION_STATUS: _no_args,
    Op.SESSION_SET_STAGE: st.fixed_dictionaries({"stage": stages.map(str)}),
    Op.SESSION_SET_SCREEN: st.fixed_dictionaries({"screen": non_empty_text}),
    Op.SESSION_SET_BREADCRUMB: st.fixed_dictionaries(
        {"breadcrumb": st.lists(short_text, max_size=6)}
    ),
    Op.SESSION_OPEN_FILE: st.fixed_dictionaries(
        {"path": project_paths()}, optional={"cursor_line": _cursor, "cursor_col": _cursor}
    ),
    Op.SESSION_CLOSE_FILE: st.fixed_dictionaries({"path": project_paths()}),
    Op.SESSION_SET_MODEL_PREFERENCE: st.fixed_dictionaries(
        {"stage": stages.map(str), "model": _model_names}
    ),
    Op.SESSION_ADD_RECENT_QUERY: st.fixed_dictionaries(
        {"query": non_empty_text, "source": non_empty_text}
    ),
    Op.SESSION_SIGNIFICANT_ACTION: st.fixed_dictionaries({"action": non_empty_text}),
    Op.SESSION_SAVE: _no_args,
    Op.SESSION_ACK_RECOVERY: _no_args,
    Op.PREFERENCES_GET: _no_args,
    Op.PREFERENCES_SET: st.fixed_dictionaries({"values": _preference_values()}),
    Op.COST_LOG: st.fixed_dictionaries(
        {
            "operation": non_empty_text,
            "model": _model_names,
            "input_tokens": tokens,
            "output_tokens": tokens,
        }
    ),
    Op.COST_ESTIMATE: st.fixed_dictionaries(
        {"model": _model_names, "input_tokens": tokens}, optional={"output_tokens": tokens}
    ),
    Op.COST_TOTALS: _no_args,
    Op.COST_WARNING: _no_args,
    Op.COST_SET_BUDGET: _budget_args(),
    Op.COST_RESET_SESSION: _no_args,
    Op.COST_SERIES: st.fixed_dictionaries(
        {},
        optional={
            "since": st.dates(max_value=date(2026, 12, 31)).map(lambda d: d.isoformat()),
            "bucket": st.sampled_from(["hour", "day", "week", "month"]),
        },
    ),
    Op.HISTORY_LIST: st.fixed_dictionaries(
        {}, optional={"limit": st.integers(min_value=1, max_value=10_000)}
    ),
    Op.SUPERVISOR_STATUS: _no_args,
    Op.SUPERVISOR_RESTART: st.fixed_dictionaries(
        {"worker": st.sampled_from([*(w.value for w in WorkerName), "all"])}
    ),
}
"""Valid `args` for every op, as a client would put them in a request."""


def op_requests() -> st.SearchStrategy[tuple[Op, dict[str, Any]]]:
    """A known op with valid args for it."""
    return st.sampled_from(list(OP_ARGS_STRATEGIES)).flatmap(
        lambda op: st.tuples(st.just(op), OP_ARGS_STRATEGIES[op])
    )


# --- events.py -------------------------------------------------------------


def _file_event(moved: bool) -> st.SearchStrategy[FileEventData]:
    dest = project_paths() if moved else st.none()
    return st.builds(FileEventData, path=project_paths(), dest_path=dest)


def _worker_event() -> st.SearchStrategy[WorkerEventData]:
    return st.builds(
        WorkerEventData,
        name=st.sampled_from([w.value for w in WorkerName]),
        pid=st.none() | st.integers(min_value=1, max_value=2**22),
        exit_code=st.none() | st.integers(min_value=-255, max_value=255),
        signal=st.none() | st.sampled_from(["SIGKILL", "SIGTERM"]),
        restarts=st.integers(min_value=0, max_value=100),
        state=st.none() | st.sampled_from([s.value for s in WorkerState]),
        reason=st.none() | short_text,
        rule=st.none() | st.sampled_from(RestartRule),
        restart_in_s=st.none() | st.floats(min_value=0, max_value=30, allow_nan=False),
    )


EVENT_DATA_STRATEGIES: dict[Topic, st.SearchStrategy[Any]] = {
    Topic.SESSION_SAVED: st.builds(
        SessionSavedData,
        session_id=names,
        saved_at=timestamps(),
        revision=counts,
        reason=st.sampled_from(["interval", "significant_action", "stop"]),
    ),
    Topic.SESSION_SAVE_FAILED: st.builds(
        SessionSaveFailedData,
        session_id=names,
        attempt=st.integers(min_value=1, max_value=3),
        max_attempts=st.just(3),
        error=short_text,
        will_retry=st.booleans(),
    ),
    Topic.SESSION_RECOVERED: st.builds(
        SessionRecoveredData,
        session_id=names,
        resumed=st.booleans(),
        last_save_at=st.none() | timestamps(),
        interrupted_session_id=st.none() | names,
        files_changed=st.lists(project_paths(), max_size=3),
    ),
    Topic.COST_LOGGED: st.builds(
        CostLoggedData,
        operation=cost_operations(),
        totals=cost_totals(),
        cost=st.none() | money(),
    ),
    Topic.BUDGET_WARNING: budget_warnings(),
    Topic.COST_UNPRICED: st.builds(
        CostUnpricedData, operation=cost_operations(), message=short_text
    ),
    Topic.FILE_CREATED: _file_event(moved=False),
    Topic.FILE_MODIFIED: _file_event(moved=False),
    Topic.FILE_DELETED: _file_event(moved=False),
    Topic.FILE_MOVED: _file_event(moved=True),
    Topic.WORKER_STARTED: _worker_event(),
    Topic.WORKER_EXITED: _worker_event(),
    Topic.WORKER_FAILED: _worker_event(),
    Topic.HISTORY_UPDATED: st.builds(
        HistoryUpdatedData,
        session_id=names,
        status=st.sampled_from(["active", "ended", "interrupted"]),
    ),
    Topic.PREFERENCES_CHANGED: st.builds(
        PreferencesChangedData, session_id=names, revision=counts, preferences=preferences()
    ),
}
"""A valid `data` model for every topic."""


@st.composite
def events(draw: st.DrawFn) -> Event:
    """An event envelope whose `data` is valid for its topic."""
    topic = draw(st.sampled_from(list(EVENT_DATA_STRATEGIES)))
    data = draw(EVENT_DATA_STRATEGIES[topic])
    return Event(
        topic=topic.value,
        source=draw(st.sampled_from([w.value for w in WorkerName])),
        seq=draw(counts),
        ts=draw(timestamps()),
        data=loads_exact(dumps(data)),
    )
