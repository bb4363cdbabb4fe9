"""The pure changes of the session document and preferences (services.session.state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.envelopes import Event
from protocol.errors import ErrorCode, ProtocolError
from protocol.names import Op, Stage
from protocol.ops import SetStageArgs, parse_args
from protocol.session import MAX_RECENT_QUERIES, OpenFile, Preferences, SessionDocument
from services.session.autosave import SaveState, age_text, indicator_text
from services.session.state import (
    MAX_OPEN_FILES,
    activity_detail,
    apply_op,
    merge_patch,
    new_document,
    patch_preferences,
    record_activity,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def doc() -> SessionDocument:
    """A fresh document at T0."""
    return new_document(
        session_id="2026-03-01-090000", project_name="The Explants", created_at=T0, revision=1
    )


def apply(
    document: SessionDocument,
    op: Op,
    args: dict[str, Any],
    minutes: int = 1,
    prefs: Preferences | None = None,
) -> Any:
    """Apply `op` with client-shaped args, `minutes` after T0."""
    return apply_op(
        document, prefs or Preferences(), op, parse_args(op, args), T0 + timedelta(minutes=minutes)
    )


def test_new_document_has_the_seed_shape() -> None:
    """A new session starts in the creation stage on the home screen with nothing open."""
    document = doc()
    assert document.current_state.stage is Stage.CREATION
    assert document.current_state.breadcrumb == ["Home"]
    assert document.open_files == [] and document.recent_queries == []
    assert document.created_at == document.last_activity == T0
    assert document.ended_at is None


def test_stage_change_moves_last_activity_and_asks_for_a_snapshot() -> None:
    """Changing the stage is a significant action; setting the same stage again is not."""
    change = apply(doc(), Op.SESSION_SET_STAGE, {"stage": "writing"})
    assert change.document.current_state.stage is Stage.WRITING
    assert change.document.last_activity == T0 + timedelta(minutes=1)
    assert change.snapshot_reason == "stage_changed"
    again = apply(change.document, Op.SESSION_SET_STAGE, {"stage": "writing"}, minutes=2)
    assert again.snapshot_reason is None
    assert again.document.last_activity == T0 + timedelta(minutes=2)


def test_invalid_stage_names_the_five_stages() -> None:
    """A stage outside the five is refused with a message that lists them."""
    with pytest.raises(ProtocolError) as caught:
        parse_args(Op.SESSION_SET_STAGE, {"stage": "drafting"})
    assert caught.value.code is ErrorCode.INVALID_ARGS
    for stage in Stage:
        assert stage.value in caught.value.message


def test_screen_and_breadcrumb_are_stored_as_given() -> None:
    """The screen and the breadcrumb trail (a list of strings) are kept exactly."""
    crumbs = ["Home", "Writing", "Chapter 5", "Scene 5.3"]
    document = apply(doc(), Op.SESSION_SET_BREADCRUMB, {"breadcrumb": crumbs}).document
    document = apply(document, Op.SESSION_SET_SCREEN, {"screen": "scene_editor"}).document
    assert document.current_state.breadcrumb == crumbs
    assert document.current_state.screen == "scene_editor"


def test_breadcrumb_must_be_a_list_of_strings() -> None:
    """A breadcrumb that is not a list of strings is invalid_args."""
    with pytest.raises(ProtocolError):
        parse_args(Op.SESSION_SET_BREADCRUMB, {"breadcrumb": "Home"})
    with pytest.raises(ProtocolError):
        parse_args(Op.SESSION_SET_BREADCRUMB, {"breadcrumb": ["Home", 3]})


def test_opening_an_open_file_moves_its_cursor_in_place() -> None:
    """Re-opening a file updates its cursor without reordering the panes."""
    document = apply(doc(), Op.SESSION_OPEN_FILE, {"path": "manuscript/a.md"}).document
    document = apply(document, Op.SESSION_OPEN_FILE, {"path": "manuscript/b.md"}).document
    document = apply(
        document,
        Op.SESSION_OPEN_FILE,
        {"path": "manuscript/a.md", "cursor_line": 142, "cursor_col": 23},
    ).document
    assert [f.path for f in document.open_files] == ["manuscript/a.md", "manuscript/b.md"]
    assert (document.open_files[0].cursor_line, document.open_files[0].cursor_col) == (142, 23)
    document = apply(document, Op.SESSION_CLOSE_FILE, {"path": "manuscript/a.md"}).document
    assert [f.path for f in document.open_files] == ["manuscript/b.md"]


def test_closing_a_file_that_is_not_open_changes_only_the_activity() -> None:
    """Closing a file that is not open is harmless: the open panes stay, only the time moves."""
    before = apply(doc(), Op.SESSION_OPEN_FILE, {"path": "manuscript/a.md"}).document
    change = apply(before, Op.SESSION_CLOSE_FILE, {"path": "manuscript/never.md"}, minutes=2)
    assert change.document.last_activity == T0 + timedelta(minutes=2)
    assert change.document.model_copy(update={"last_activity": before.last_activity}) == before
    assert change.snapshot_reason is None


@pytest.mark.parametrize(
    "args",
    [
        {"path": "manuscript/a.md", "cursor_line": -1},
        {"path": "manuscript/a.md", "cursor_col": -5},
        {"path": "../outside.md"},
        {"path": "/etc/../passwd"},
        {"path": "manuscript\\a.md"},
    ],
)
def test_bad_open_file_args_are_refused(args: dict[str, Any]) -> None:
    """Negative cursors and paths that leave the project by their spelling are invalid_args."""
    with pytest.raises(ProtocolError) as caught:
        parse_args(Op.SESSION_OPEN_FILE, args)
    assert caught.value.code is ErrorCode.INVALID_ARGS


def test_open_files_are_capped() -> None:
    """A client that opens files in a loop is stopped with a clear message."""
    files = [OpenFile(path=f"m/{i}.md") for i in range(MAX_OPEN_FILES)]
    document = doc().model_copy(update={"open_files": files})
    with pytest.raises(ProtocolError, match="already open"):
        apply(document, Op.SESSION_OPEN_FILE, {"path": "m/one-more.md"})


@settings(max_examples=40, deadline=None)
@given(queries=st.lists(st.text(min_size=1, max_size=8), max_size=25))
def test_recent_queries_keep_the_last_ten(queries: list[str]) -> None:
    """Only the last ten queries are kept, oldest first, each with its time and source."""
    document = doc()
    for minute, query in enumerate(queries):
        document = apply(
            document,
            Op.SESSION_ADD_RECENT_QUERY,
            {"query": query, "source": "cognee"},
            minutes=minute,
        ).document
    kept = document.recent_queries
    assert [q.query for q in kept] == queries[-MAX_RECENT_QUERIES:]
    assert all(q.source == "cognee" for q in kept)
    assert [q.timestamp for q in kept] == sorted(q.timestamp for q in kept)


def test_model_change_is_significant_only_when_it_changes() -> None:
    """Choosing a new model for a stage asks for a snapshot; choosing the same one does not."""
    change = apply(doc(), Op.SESSION_SET_MODEL_PREFERENCE, {"stage": "writing", "model": "claude"})
    assert change.document.model_preferences == {Stage.WRITING: "claude"}
    assert change.snapshot_reason == "model_changed"
    same = apply(
        change.document, Op.SESSION_SET_MODEL_PREFERENCE, {"stage": "writing", "model": "claude"}
    )
    assert same.snapshot_reason is None


def test_apply_refuses_args_of_another_op() -> None:
    """A mismatched args model is invalid_args, not a crash."""
    with pytest.raises(ProtocolError) as caught:
        apply_op(doc(), Preferences(), Op.SESSION_SET_SCREEN, SetStageArgs(stage=Stage.WRITING), T0)
    assert caught.value.code is ErrorCode.INVALID_ARGS


def test_merge_patch_follows_rfc_7396() -> None:
    """Objects merge, null removes, other values replace (RFC 7396 examples)."""
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch(["a"], {"a": "b"}) == {"a": "b"}


def test_preferences_partial_update_keeps_the_rest() -> None:
    """Setting one preference leaves every other as it was; nested settings merge."""
    prefs = patch_preferences(Preferences(), {"theme": "dark", "notebooklm": {"enabled": True}})
    prefs = patch_preferences(
        prefs, {"notebooklm": {"notebook_id": "nb-1"}, "keyboard_shortcuts": {"save": "ctrl+s"}}
    )
    assert prefs.theme == "dark"
    assert prefs.notebooklm.enabled is True and prefs.notebooklm.notebook_id == "nb-1"
    assert prefs.keyboard_shortcuts == {"save": "ctrl+s"}
    prefs = patch_preferences(prefs, {"theme": None, "keyboard_shortcuts": {"save": None}})
    assert prefs.theme == "system" and prefs.keyboard_shortcuts == {}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"autosave_interval_s": 0}, "autosave_interval_s"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"budget_warning_fraction": 1.5}, "budget_warning_fraction"),
        ({"confirm_above": -1}, "confirm_above"),
        ({"model_preferences": {"drafting": "claude"}}, "model_preferences"),
    ],
)
def test_invalid_preferences_name_the_field(values: dict[str, Any], field: str) -> None:
    """A preference that does not validate is invalid_args naming the field."""
    with pytest.raises(ProtocolError) as caught:
        patch_preferences(Preferences(), values)
    assert caught.value.code is ErrorCode.INVALID_ARGS
    assert field in caught.value.message


def test_unknown_preference_keys_are_refused() -> None:
    """A typo in a preference name is refused before anything changes."""
    with pytest.raises(ProtocolError, match="unknown preference"):
        parse_args(Op.PREFERENCES_SET, {"values": {"themes": "dark"}})


def test_preference_money_stays_exact() -> None:
    """The confirm threshold keeps its exact decimal digits."""
    prefs = patch_preferences(Preferences(), {"confirm_above": Decimal("0.15")})
    assert prefs.confirm_above == Decimal("0.15")


def test_activity_never_moves_backwards() -> None:
    """A late event does not make the session look older than it is."""
    document = record_activity(doc(), T0 + timedelta(minutes=5))
    assert record_activity(document, T0 + timedelta(minutes=1)).last_activity == T0 + timedelta(
        minutes=5
    )


def event(topic: str, data: dict[str, Any]) -> Event:
    """An event as the host decodes it."""
    return Event(topic=topic, source="w", seq=1, ts=T0, data=data)


def cost_data(cost: str | None) -> dict[str, Any]:
    """`cost.logged` data for one call costing `cost` dollars (None: unpriced)."""
    operation = {
        "timestamp": "2026-03-01T09:00:00Z",
        "operation": "scene_generation",
        "model": "claude-sonnet-3.5",
        "input_tokens": 1,
        "output_tokens": 1,
        "cost": None if cost is None else Decimal(cost),
        "priced": cost is not None,
    }
    return {"operation": operation, "totals": {}}


def test_activity_detail_picks_significant_events() -> None:
    """File saves and calls above the confirm threshold count; cheap or unpriced calls do not."""
    assert activity_detail(
        event("file.modified", {"path": "manuscript/a.md"}), Decimal("0.10")
    ) == {"path": "manuscript/a.md"}
    assert (
        activity_detail(event("file.deleted", {"path": "manuscript/a.md"}), Decimal("0.10")) is None
    )
    assert activity_detail(event("cost.logged", cost_data("0.10")), Decimal("0.10")) is None
    assert activity_detail(event("cost.logged", cost_data(None)), Decimal("0.10")) is None
    detail = activity_detail(event("cost.logged", cost_data("0.15")), Decimal("0.10"))
    assert detail == {"cost": Decimal("0.15"), "operation": "scene_generation"}
    with pytest.raises(ValueError):
        activity_detail(event("file.created", {"path": "../escape"}), Decimal(0))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (12.7, "12s"),
        (59, "59s"),
        (60, "1 min"),
        (185, "3 min"),
        (3600, "1 h"),
        (7300, "2 h"),
        (86_400 * 3, "3 d"),
    ],
)
def test_age_text(seconds: float, text: str) -> None:
    """Ages read as seconds, then minutes, hours, days."""
    assert age_text(seconds) == text


def test_indicator_texts_are_exact() -> None:
    """Each save state has the status-bar text the UI contract promises."""
    assert indicator_text(SaveState.SAVED, seconds_since_save=12) == "● Auto-saved 12s ago"
    assert indicator_text(SaveState.SAVED, seconds_since_save=200) == "● Auto-saved 3 min ago"
    assert indicator_text(SaveState.SAVING) == "◌ Saving…"
    assert indicator_text(SaveState.UNSAVED) == "○ Unsaved changes"
    assert indicator_text(SaveState.RETRYING, attempt=2, max_attempts=3) == (
        "⚠ Auto-save failed — retrying (2/3)"
    )
    assert indicator_text(SaveState.FAILED) == (
        "⚠ Auto-save failed — changes are safe in the journal; will retry"
    )
