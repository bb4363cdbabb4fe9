"""Pure changes to the session document and the preferences, one per op.

Nothing here reads a clock or the disk: every change takes the timestamp to
use, so replaying the journal with the recorded timestamps rebuilds exactly
the document whose change was acknowledged. Checks that need the disk (a path
whose symlinks leave the project) run before a change is journaled
(`services.session.confine`), never during replay: the disk may have changed
since, and a replay must not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from protocol.base import STORED_CONTEXT, Message
from protocol.envelopes import Event, describe_validation_error
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import CostLoggedData, FileEventData
from protocol.names import Op, Stage, Topic
from protocol.ops import (
    AddRecentQueryArgs,
    CloseFileArgs,
    NoArgs,
    OpenFileArgs,
    PreferencesSetArgs,
    SetBreadcrumbArgs,
    SetModelPreferenceArgs,
    SetScreenArgs,
    SetStageArgs,
)
from protocol.session import (
    MAX_RECENT_QUERIES,
    CurrentState,
    OpenFile,
    Preferences,
    RecentQuery,
    SessionDocument,
)

__all__ = [
    "ACTIVITY_TOPICS",
    "MAX_OPEN_FILES",
    "READ_OPS",
    "SAVE_OPS",
    "Change",
    "activity_detail",
    "apply_op",
    "merge_patch",
    "new_document",
    "patch_preferences",
    "record_activity",
]

MAX_OPEN_FILES = 1000
"""More open panes than any writer has; beyond it a client is looping, not writing."""

ACTIVITY_TOPICS: frozenset[str] = frozenset({Topic.FILE_CREATED.value, Topic.FILE_MODIFIED.value})
"""File events that count as the writer's activity and snapshot at once."""

READ_OPS: frozenset[Op] = frozenset({Op.SESSION_GET, Op.SESSION_STATUS, Op.PREFERENCES_GET})
"""Answered from memory: nothing to make durable."""

SAVE_OPS: frozenset[Op] = frozenset({Op.SESSION_SAVE, Op.SESSION_SIGNIFICANT_ACTION})
"""Write the snapshot before replying; they change no state, so a re-send is harmless."""


@dataclass(frozen=True)
class Change:
    """The outcome of one op: the new state, and why to snapshot at once (if so)."""

    document: SessionDocument
    preferences: Preferences
    snapshot_reason: str | None = None
    """`stage_changed`, `model_changed`, `preferences_changed`, `recovery_acknowledged`, or None."""


def new_document(
    *,
    session_id: str,
    project_name: str,
    created_at: datetime,
    revision: int,
    model_preferences: dict[Stage, str] | None = None,
    owner_pid: int | None = None,
    host: str | None = None,
) -> SessionDocument:
    """The document of a session that starts now: stage creation, nothing open."""
    return SessionDocument(
        session_id=session_id,
        project_name=project_name,
        created_at=created_at,
        last_activity=created_at,
        current_state=CurrentState(),
        model_preferences=dict(model_preferences or {}),
        revision=revision,
        owner_pid=owner_pid,
        host=host,
    )


def record_activity(document: SessionDocument, ts: datetime) -> SessionDocument:
    """Note activity at `ts`; `last_activity` never moves backwards (events may arrive late)."""
    if ts <= document.last_activity:
        return document
    return document.model_copy(update={"last_activity": ts})


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7396): objects merge, `null` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patch_preferences(
    preferences: Preferences, values: dict[str, Any], *, stored: bool = False
) -> Preferences:
    """Apply a partial update (merge patch) and validate the whole result.

    A removed key (`null`) falls back to its default. Fields a newer version
    wrote and we do not know are kept as they are. `stored=True` (replaying
    the journal) clamps an out-of-range number instead of refusing it.
    """
    merged = merge_patch(preferences.model_dump(mode="json"), values)
    try:
        return Preferences.model_validate(merged, context=STORED_CONTEXT if stored else None)
    except ValidationError as exc:
        raise ProtocolError(
            ErrorCode.INVALID_ARGS, f"preferences: {describe_validation_error(exc)}"
        ) from None


_Stamp = tuple[datetime, int | None]
"""When a change happened, and the journal revision it gets (None: leave it to the caller)."""


def _touch(document: SessionDocument, stamp: _Stamp, **update: Any) -> SessionDocument:
    ts, revision = stamp
    update["last_activity"] = max(ts, document.last_activity)
    if revision is not None:
        update["revision"] = revision
    return document.model_copy(update=update)


def _state(document: SessionDocument, **update: Any) -> CurrentState:
    return document.current_state.model_copy(update=update)


def _set_stage(doc: SessionDocument, prefs: Preferences, args: SetStageArgs, at: _Stamp) -> Change:
    changed = args.stage != doc.current_state.stage
    doc = _touch(doc, at, current_state=_state(doc, stage=args.stage))
    return Change(doc, prefs, "stage_changed" if changed else None)


def _set_screen(
    doc: SessionDocument, prefs: Preferences, args: SetScreenArgs, at: _Stamp
) -> Change:
    return Change(_touch(doc, at, current_state=_state(doc, screen=args.screen)), prefs)


def _set_breadcrumb(
    doc: SessionDocument, prefs: Preferences, args: SetBreadcrumbArgs, at: _Stamp
) -> Change:
    crumbs = list(args.breadcrumb)
    return Change(_touch(doc, at, current_state=_state(doc, breadcrumb=crumbs)), prefs)


def _open_file(doc: SessionDocument, prefs: Preferences, args: OpenFileArgs, at: _Stamp) -> Change:
    # The args were validated already: building the entry needs no second validation.
    opened = OpenFile.model_construct(
        path=args.path, cursor_line=args.cursor_line, cursor_col=args.cursor_col
    )
    files = list(doc.open_files)
    for index, entry in enumerate(files):
        if entry.path == args.path:
            files[index] = opened  # the pane keeps its place; only the cursor moves
            break
    else:
        if len(files) >= MAX_OPEN_FILES:
            raise ProtocolError(
                ErrorCode.INVALID_ARGS,
                f"{MAX_OPEN_FILES} files are already open; close some before opening more",
            )
        files.append(opened)
    return Change(_touch(doc, at, open_files=files), prefs)


def _close_file(
    doc: SessionDocument, prefs: Preferences, args: CloseFileArgs, at: _Stamp
) -> Change:
    files = [entry for entry in doc.open_files if entry.path != args.path]
    return Change(_touch(doc, at, open_files=files), prefs)


def _set_model(
    doc: SessionDocument, prefs: Preferences, args: SetModelPreferenceArgs, at: _Stamp
) -> Change:
    changed = doc.model_preferences.get(args.stage) != args.model
    doc = _touch(doc, at, model_preferences={**doc.model_preferences, args.stage: args.model})
    return Change(doc, prefs, "model_changed" if changed else None)


def _add_query(
    doc: SessionDocument, prefs: Preferences, args: AddRecentQueryArgs, at: _Stamp
) -> Change:
    query = RecentQuery.model_construct(query=args.query, timestamp=at[0], source=args.source)
    kept = [*doc.recent_queries, query][-MAX_RECENT_QUERIES:]
    return Change(_touch(doc, at, recent_queries=kept), prefs)


def _set_preferences(
    doc: SessionDocument, prefs: Preferences, args: PreferencesSetArgs, at: _Stamp
) -> Change:
    if at[1] is not None:
        doc = doc.model_copy(update={"revision": at[1]})
    return Change(doc, patch_preferences(prefs, args.values), "preferences_changed")


def _ack_recovery(doc: SessionDocument, prefs: Preferences, args: NoArgs, at: _Stamp) -> Change:
    # The UI's acknowledgement is no writing activity: last_activity stays.
    update: dict[str, Any] = {"recovery": None}
    if at[1] is not None:
        update["revision"] = at[1]
    acknowledged = doc.recovery is not None
    return Change(
        doc.model_copy(update=update), prefs, "recovery_acknowledged" if acknowledged else None
    )


_Apply = Callable[[SessionDocument, Preferences, Any, _Stamp], Change]

_CHANGES: dict[Op, tuple[type[Message], _Apply]] = {
    Op.SESSION_SET_STAGE: (SetStageArgs, _set_stage),
    Op.SESSION_SET_SCREEN: (SetScreenArgs, _set_screen),
    Op.SESSION_SET_BREADCRUMB: (SetBreadcrumbArgs, _set_breadcrumb),
    Op.SESSION_OPEN_FILE: (OpenFileArgs, _open_file),
    Op.SESSION_CLOSE_FILE: (CloseFileArgs, _close_file),
    Op.SESSION_SET_MODEL_PREFERENCE: (SetModelPreferenceArgs, _set_model),
    Op.SESSION_ADD_RECENT_QUERY: (AddRecentQueryArgs, _add_query),
    Op.PREFERENCES_SET: (PreferencesSetArgs, _set_preferences),
    Op.SESSION_ACK_RECOVERY: (NoArgs, _ack_recovery),
}


def apply_op(
    document: SessionDocument,
    preferences: Preferences,
    op: Op,
    args: Message,
    ts: datetime,
    *,
    revision: int | None = None,
) -> Change:
    """Apply one mutating op at time `ts`; `ProtocolError` (invalid_args) if it cannot apply.

    Every change of the document moves `last_activity` to `ts`; `revision`,
    when given, is the journal revision the new document carries (set in the
    same copy: replay speed is restart speed).
    """
    try:
        expected, change = _CHANGES[op]
    except KeyError:
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP, f"{op.value} does not change the session"
        ) from None
    if not isinstance(args, expected):
        raise ProtocolError(ErrorCode.INVALID_ARGS, f"{op.value} takes {expected.__name__}")
    return change(document, preferences, args, (ts, revision))


def activity_detail(event: Event, confirm_above: Decimal) -> dict[str, Any] | None:
    """What a `file.created`/`file.modified` or an expensive `cost.logged` adds to the journal.

    None for events that are not significant (other topics, a call at or below
    the confirm threshold, an unpriced call). `ValueError` for malformed data.
    """
    if event.topic in ACTIVITY_TOPICS:
        return {"path": FileEventData.model_validate(event.data).path}
    if event.topic == Topic.COST_LOGGED.value:
        data = CostLoggedData.model_validate(event.data)
        cost = data.cost if data.cost is not None else data.operation.cost
        if cost is None or cost <= confirm_above:
            return None
        return {"cost": cost, "operation": data.operation.operation}
    return None
