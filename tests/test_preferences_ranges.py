"""Every numeric preference has a documented range that is enforced (issue 10, defect 5)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from protocol.errors import ErrorCode, ProtocolError
from protocol.names import Op
from protocol.session import PREFERENCE_RANGES, Preferences
from protocol.session_journal import decode_journal_line
from services.session.replay import replay
from services.store import AtomicJsonFile
from tests.fake_context import ok, quiesce, start_session_writer

SID = "2026-03-01-090000"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project folder of one test."""
    return tmp_path / "novel"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("autosave_interval_s", 1e-300),
        ("autosave_interval_s", 0.5),
        ("autosave_interval_s", 3601),
        ("autosave_interval_s", 1e300),
        ("budget_warning_fraction", 1.5),
        ("confirm_above", 1_000_001),
    ],
)
def test_preferences_set_refuses_values_outside_their_range(
    project: Path, name: str, value: float
) -> None:
    """`preferences.set` with a value outside its range is invalid_args and changes nothing."""
    writer, harness = start_session_writer(project, session_id=SID)
    before = ok(harness.call(writer, Op.PREFERENCES_GET))
    refused = harness.call(writer, Op.PREFERENCES_SET, {"values": {name: value}})
    assert isinstance(refused, ProtocolError)
    assert refused.code is ErrorCode.INVALID_ARGS and name in refused.message
    assert ok(harness.call(writer, Op.PREFERENCES_GET)) == before


def test_preferences_set_accepts_both_ends_of_each_range(project: Path) -> None:
    """The documented bounds themselves are accepted."""
    writer, harness = start_session_writer(project, session_id=SID)
    for name, (low, high) in PREFERENCE_RANGES.items():
        for bound in (low, high):
            value: Any = float(bound) if name == "autosave_interval_s" else bound
            result = ok(harness.call(writer, Op.PREFERENCES_SET, {"values": {name: value}}))
            assert Decimal(str(result[name])) == bound


def test_a_tiny_interval_on_disk_is_clamped_and_the_writer_does_not_spin(project: Path) -> None:
    """preferences.json holding autosave 1e-300 starts the writer with a 1 s interval, file kept."""
    folder = project / ".session"
    folder.mkdir(parents=True)
    (folder / "preferences.json").write_text(
        json.dumps({"autosave_interval_s": 1e-300, "theme": "dark"})
    )
    writer, harness = start_session_writer(project, session_id=SID)
    assert writer.preferences.autosave_interval_s == 1.0
    assert writer.preferences.theme == "dark", "the user's other preferences survive"
    deadline = writer.next_deadline()  # None while nothing waits to be saved
    assert deadline is None or deadline >= time.monotonic() + 0.5
    quiesce(harness, writer)
    assert not list(folder.glob("preferences.json.corrupt-*"))


def test_out_of_range_values_on_disk_are_clamped_not_moved_aside(tmp_path: Path) -> None:
    """A hand-edited file with values past both ends reads as the nearest bound."""
    path = tmp_path / "preferences.json"
    path.write_text(
        '{"autosave_interval_s": 99999, "confirm_above": -4}'
    )
    loaded = AtomicJsonFile(path).load(Preferences)
    assert loaded.status == "ok" and loaded.value is not None
    assert loaded.value.autosave_interval_s == 3600
    assert loaded.value.confirm_above == 0


def test_a_journaled_out_of_range_preference_is_clamped_on_replay() -> None:
    """A preferences.set journaled by an older version with 1e-300 replays as 1 s, not a crash."""
    ts = "2026-03-01T09:00:00Z"
    records = [
        {"kind": "begin", "rev": 1, "ts": ts, "session_id": SID, "project_name": "novel"},
        {
            "kind": "op",
            "rev": 2,
            "ts": ts,
            "session_id": SID,
            "id": "c1",
            "op": Op.PREFERENCES_SET.value,
            "args": {"values": {"autosave_interval_s": 1e-300}},
        },
    ]
    lines = [decode_journal_line(json.dumps(record).encode()) for record in records]
    replayed = replay(None, Preferences(), lines, project_name="novel")
    assert replayed.problems == []
    assert replayed.preferences.autosave_interval_s == 1.0


def test_preference_maps_are_bounded(project: Path) -> None:
    """A shortcut map of more than 500 entries is invalid_args, not an ever-growing file."""
    writer, harness = start_session_writer(project, session_id=SID)
    shortcuts = {f"action-{n}": "ctrl+k" for n in range(501)}
    refused = harness.call(
        writer, Op.PREFERENCES_SET, {"values": {"keyboard_shortcuts": shortcuts}}
    )
    assert isinstance(refused, ProtocolError) and refused.code is ErrorCode.INVALID_ARGS


def test_the_preferences_schema_documents_every_range() -> None:
    """file.preferences carries minimum and maximum for each ranged preference."""
    properties = Preferences.model_json_schema()["properties"]
    for name, (low, high) in PREFERENCE_RANGES.items():
        entry = properties[name]
        number = next(e for e in [entry, *entry.get("anyOf", [])] if e.get("type") == "number")
        assert Decimal(str(number["minimum"])) == low and Decimal(str(number["maximum"])) == high
