"""The args and results of every op: one model per op, looked up by name.

`OP_ARGS` is the tagged union keyed on `op`, kept as a table so the supervisor,
the workers, the schema exporter and the docs all read the same source.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StrictBool, StrictInt, ValidationError, field_validator, model_validator

from protocol.base import (
    MAX_CURSOR,
    WHOLE_NUMBER,
    ClientPath,
    Document,
    Message,
    Money,
    ShortText,
    Timestamp,
)
from protocol.costs import CostOperation, CostTotals
from protocol.envelopes import describe_validation_error
from protocol.errors import ErrorCode, ProtocolError
from protocol.names import Op, Stage, WorkerName, WorkerState
from protocol.quick_args import quick_cost_log_args
from protocol.session import Preferences, RecoveryNotice

__all__ = [
    "OP_ARGS",
    "OP_BY_NAME",
    "AddRecentQueryArgs",
    "CloseFileArgs",
    "CostEstimateArgs",
    "CostEstimateResult",
    "CostLogArgs",
    "CostLogResult",
    "CostSeriesArgs",
    "CostWarningResult",
    "HistoryListArgs",
    "NoArgs",
    "OpenFileArgs",
    "PreferencesSetArgs",
    "SaveResult",
    "SessionStatusResult",
    "SetBreadcrumbArgs",
    "SetBudgetArgs",
    "SetModelPreferenceArgs",
    "SetScreenArgs",
    "SetStageArgs",
    "SignificantActionArgs",
    "SignificantActionResult",
    "SupervisorRestartArgs",
    "SupervisorRestartResult",
    "SupervisorStatus",
    "WorkerStatus",
    "parse_args",
]

Tokens = Annotated[StrictInt, Field(ge=0, le=10**12), WHOLE_NUMBER]
"""Tokens of one call: 0 to 10^12 (a thousand billion; no real call comes near)."""
Cursor = Annotated[StrictInt, Field(ge=0, le=MAX_CURSOR), WHOLE_NUMBER]
"""A cursor line or column: 0 to 2^31 - 1."""
NonEmptyText = Annotated[ShortText, Field(min_length=1)]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]
ProviderName = Annotated[str, Field(min_length=1, max_length=100)]
Limit = Annotated[Money, Field(ge=0)]


class NoArgs(Message):
    """An op that takes nothing."""


class SetStageArgs(Message):
    """`session.set_stage`."""

    stage: Stage


class SetScreenArgs(Message):
    """`session.set_screen`."""

    screen: NonEmptyText


class SetBreadcrumbArgs(Message):
    """`session.set_breadcrumb`."""

    breadcrumb: Annotated[list[ShortText], Field(max_length=200)]


class OpenFileArgs(Message):
    """`session.open_file`: the path must stay inside the project."""

    path: ClientPath
    cursor_line: Cursor = 0
    cursor_col: Cursor = 0


class CloseFileArgs(Message):
    """`session.close_file`."""

    path: ClientPath


class SetModelPreferenceArgs(Message):
    """`session.set_model_preference`."""

    stage: Stage
    model: ModelName


class AddRecentQueryArgs(Message):
    """`session.add_recent_query`."""

    query: NonEmptyText
    source: NonEmptyText


class SignificantActionArgs(Message):
    """`session.significant_action`: saves the snapshot now."""

    action: NonEmptyText


class PreferencesSetArgs(Message):
    """`preferences.set`: a partial update; unknown keys are refused."""

    values: dict[str, Any]

    @field_validator("values")
    @classmethod
    def _known_keys(cls, values: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(values) - set(Preferences.model_fields))
        if unknown:
            known = ", ".join(sorted(Preferences.model_fields))
            raise ValueError(f"unknown preference(s) {', '.join(unknown)}; known: {known}")
        return values


class _CallUsage(Message):
    """What a call used: token counts, or the provider's own usage report.

    Counts follow genai-prices' `Usage`: `input_tokens` counts every input
    token, cached or not; `cache_read_tokens` and `cache_write_tokens` are part
    of it; `reasoning_tokens` are part of `output_tokens`. Or `usage` is the
    provider's response body (or just its usage object) as JSON, with
    `provider`; the ledger normalises it and the token fields are left out.
    """

    model: ModelName | None = None
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    provider: ProviderName | None = None
    usage: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _counts_or_usage(self) -> Self:
        counts = _COUNT_FIELDS & self.model_fields_set
        if self.usage is not None:
            if self.provider is None:
                raise ValueError("usage needs provider (e.g. 'anthropic', 'openai', 'google')")
            if counts:
                raise ValueError(
                    f"give either usage or token counts, not both ({', '.join(sorted(counts))})"
                )
            return self
        if self.model is None:
            raise ValueError("model is required (it may be left out only with usage)")
        if self.input_tokens is None:
            raise ValueError("input_tokens is required (or usage with provider)")
        cached = self.cache_read_tokens + self.cache_write_tokens
        if cached > self.input_tokens:
            raise ValueError(
                f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens "
                f"({self.input_tokens}): input_tokens counts every input token, cached or not"
            )
        if self.reasoning_tokens > (self.output_tokens or 0):
            raise ValueError(
                f"reasoning_tokens ({self.reasoning_tokens}) exceed output_tokens "
                f"({self.output_tokens or 0}): output_tokens counts reasoning tokens too"
            )
        return self


_COUNT_FIELDS = frozenset(
    {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"}
)


class CostLogArgs(_CallUsage):
    """`cost.log`: one LLM call that happened."""

    operation: NonEmptyText

    @model_validator(mode="after")
    def _output_counted(self) -> Self:
        if self.usage is None and self.output_tokens is None:
            raise ValueError("output_tokens is required (or usage with provider)")
        return self


class CostEstimateArgs(_CallUsage):
    """`cost.estimate`: what a call would cost, which warning it would trigger, if it may run.

    `output_tokens` defaults to 0 (an estimate before the answer is written).
    """


class CostSeriesArgs(Message):
    """`cost.series`: spend per bucket over local dates `[since, until)` in the writer's zone.

    `since` defaults to 30 days before today, `until` to tomorrow (both in the
    writer's time zone); `bucket` to `"day"`.
    """

    since: date | None = None
    until: date | None = None
    bucket: Literal["hour", "day", "week", "month"] = "day"

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        return self


class SetBudgetArgs(Message):
    """`cost.set_budget`: absent fields are unchanged, `null` removes a limit."""

    daily_limit: Limit | None = None
    weekly_limit: Limit | None = None
    monthly_limit: Limit | None = None
    warnings_enabled: StrictBool | None = None
    daily_hard_limit: Limit | None = None
    weekly_hard_limit: Limit | None = None
    monthly_hard_limit: Limit | None = None


class HistoryListArgs(Message):
    """`history.list`."""

    limit: Annotated[StrictInt, Field(ge=1, le=10_000), WHOLE_NUMBER] | None = None


class SupervisorRestartArgs(Message):
    """`supervisor.restart`: one worker by name, or `"all"`."""

    worker: WorkerName | Literal["all"]

    def names(self) -> tuple[WorkerName, ...]:
        """The workers to restart, in the order they are started."""
        if self.worker == "all":
            return tuple(WorkerName)
        return (WorkerName(self.worker),)


OP_ARGS: dict[Op, type[Message]] = {
    Op.SESSION_GET: NoArgs,
    Op.SESSION_STATUS: NoArgs,
    Op.SESSION_SET_STAGE: SetStageArgs,
    Op.SESSION_SET_SCREEN: SetScreenArgs,
    Op.SESSION_SET_BREADCRUMB: SetBreadcrumbArgs,
    Op.SESSION_OPEN_FILE: OpenFileArgs,
    Op.SESSION_CLOSE_FILE: CloseFileArgs,
    Op.SESSION_SET_MODEL_PREFERENCE: SetModelPreferenceArgs,
    Op.SESSION_ADD_RECENT_QUERY: AddRecentQueryArgs,
    Op.SESSION_SIGNIFICANT_ACTION: SignificantActionArgs,
    Op.SESSION_SAVE: NoArgs,
    Op.SESSION_ACK_RECOVERY: NoArgs,
    Op.PREFERENCES_GET: NoArgs,
    Op.PREFERENCES_SET: PreferencesSetArgs,
    Op.COST_LOG: CostLogArgs,
    Op.COST_ESTIMATE: CostEstimateArgs,
    Op.COST_TOTALS: NoArgs,
    Op.COST_WARNING: NoArgs,
    Op.COST_SET_BUDGET: SetBudgetArgs,
    Op.COST_RESET_SESSION: NoArgs,
    Op.COST_SERIES: CostSeriesArgs,
    Op.HISTORY_LIST: HistoryListArgs,
    Op.SUPERVISOR_STATUS: NoArgs,
    Op.SUPERVISOR_RESTART: SupervisorRestartArgs,
}


OP_BY_NAME: dict[str, Op] = {op.value: op for op in Op}
"""Each op by its name: a dict lookup per request instead of an enum call (~1 us)."""
_ARGS_BY_NAME: dict[str, type[Message]] = {op.value: model for op, model in OP_ARGS.items()}


def parse_args(op: str, args: dict[str, Any], *, request_id: str | None = None) -> Message:
    """Validate `args` for `op`, raising `ProtocolError` (`unknown_op`/`invalid_args`).

    `cost.log` args of the common shape are checked by hand (`protocol.quick_args`).
    """
    if op == "cost.log" and type(args) is dict:
        quick = quick_cost_log_args(args, CostLogArgs)
        if quick is not None:
            return quick
    try:
        model = _ARGS_BY_NAME[op]
    except (KeyError, TypeError):
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP, f"unknown op {op!r}", request_id=request_id
        ) from None
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise ProtocolError(
            ErrorCode.INVALID_ARGS, describe_validation_error(exc), request_id=request_id
        ) from None


class SessionStatusResult(Document):
    """`session.status`: the truth about saving, and the status-bar text."""

    session_id: str
    dirty: bool
    last_save_at: Timestamp | None
    seconds_since_save: float | None
    indicator: str
    state: str = "saved"
    attempt: int = 0
    max_attempts: int = 0
    last_error: str | None = None
    recovery: RecoveryNotice | None = None
    """The interruption to show until `session.ack_recovery` (also in the session document)."""


class SaveResult(Document):
    """`session.save`: `saved` is False when nothing had changed."""

    saved: bool
    saved_at: Timestamp | None


class SignificantActionResult(Document):
    """`session.significant_action`."""

    saved_at: Timestamp | None


class CostLogResult(Document):
    """`cost.log`: the recorded operation, the new totals, any warning."""

    operation: CostOperation
    totals: CostTotals
    warning: str | None = None


class CostEstimateResult(Document):
    """`cost.estimate`: what the call would cost and the warning it would trigger."""

    cost: Money
    warning: str | None = None
    confirm: bool = False
    price_source: str | None = None
    allowed: bool = True
    """False when the call would pass a hard limit (`reason` says which)."""
    reason: str | None = None


class CostWarningResult(Document):
    """`cost.warning`: the most severe current warning, or null."""

    warning: str | None = None


class WorkerStatus(Document):
    """One worker in `supervisor.status`."""

    name: str
    pid: int | None
    state: WorkerState
    restarts: int
    started_at: datetime | None
    uptime_s: float | None = None
    last_exit: str | None = None
    health: dict[str, Any] = {}
    """What the worker last reported about itself (e.g. the watcher polling)."""


class SupervisorStatus(Document):
    """`supervisor.status` (and `supervisor status --json`)."""

    session_id: str
    workers: list[WorkerStatus]
    supervisor_pid: int | None = None
    started_at: Timestamp | None = None
    project: str | None = None
    fork_server_pid: int | None = None
    """The fork server's pid (workers are forked from it), or null when there is none."""


class SupervisorRestartResult(Document):
    """`supervisor.restart`: the restarted workers once each is running (or failed again)."""

    workers: list[WorkerStatus]
