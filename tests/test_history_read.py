"""Reading the history without the service: plain or compressed, and the inspect table."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from protocol.codec import dumps_pretty
from protocol.history import HistoryDocument, HistoryEntry
from services.history.archive import append_entries
from services.history.render import format_cost, format_duration, render_history
from services.readonly.history import list_sessions, read_history, read_history_file
from services.runtime.paths import ProjectPaths

START = datetime(2026, 11, 13, 14, 30, 22, tzinfo=UTC)


def entry(session_id: str, days: int = 0, **fields: object) -> HistoryEntry:
    """An ended session starting `days` after START."""
    start = START + timedelta(days=days)
    values: dict[str, object] = {
        "session_id": session_id,
        "start_time": start,
        "end_time": start + timedelta(minutes=165),
        "duration_minutes": 165,
        "status": "ended",
    }
    values.update(fields)
    return HistoryEntry.model_validate(values)


def write(paths: ProjectPaths, sessions: list[HistoryEntry], *, compressed: bool = False) -> None:
    """Write a history file as the archiver would."""
    paths.session_dir.mkdir(parents=True, exist_ok=True)
    data = dumps_pretty(HistoryDocument(sessions=sessions))
    if compressed:
        paths.history_gz.write_bytes(gzip.compress(data))
    else:
        paths.history.write_bytes(data)


def test_missing_history_reads_as_empty(tmp_path: Path) -> None:
    """A project without history yet reads as no sessions, and says so."""
    paths = ProjectPaths.of(tmp_path)
    assert read_history_file(paths).status == "missing"
    assert read_history(paths).sessions == []
    assert render_history(paths) == "No sessions recorded yet."


def test_compressed_history_reads_the_same(tmp_path: Path) -> None:
    """history.json.gz is read exactly like history.json, money exact."""
    paths = ProjectPaths.of(tmp_path)
    write(paths, [entry("s1", total_cost=Decimal("0.00000007"))], compressed=True)
    document = read_history(paths)
    assert document.sessions[0].total_cost == Decimal("0.00000007")


def test_when_both_forms_exist_the_newer_wins(tmp_path: Path) -> None:
    """A crash between writing one form and removing the other leaves the newer one current."""
    paths = ProjectPaths.of(tmp_path)
    write(paths, [entry("old")])
    write(paths, [entry("new")], compressed=True)
    os.utime(paths.history, ns=(1, 1))
    assert [e.session_id for e in read_history(paths).sessions] == ["new"]


def test_a_corrupt_history_is_reported_not_raised(tmp_path: Path) -> None:
    """An unreadable file gives an empty document and a clear status; nothing is changed."""
    paths = ProjectPaths.of(tmp_path)
    paths.session_dir.mkdir(parents=True)
    paths.history.write_text("{not json")
    found = read_history_file(paths)
    assert found.status == "corrupt" and found.error
    assert paths.history.read_text() == "{not json"
    assert "unreadable" in render_history(paths)


def test_list_sessions_reaches_into_the_archive_only_when_asked(tmp_path: Path) -> None:
    """A limit beyond history.json adds archived sessions, newest first, each once."""
    paths = ProjectPaths.of(tmp_path)
    write(paths, [entry("s3", 3), entry("s2", 2)])
    append_entries(paths.archive_dir, [entry("s1", 1), entry("s0", 0), entry("s2", 2)])
    assert [e.session_id for e in list_sessions(paths, 2)] == ["s3", "s2"]
    assert [e.session_id for e in list_sessions(paths, 10)] == ["s3", "s2", "s1", "s0"]


def test_render_is_a_readable_table(tmp_path: Path) -> None:
    """inspect history shows one row per session with status, duration, cost, files, operations."""
    paths = ProjectPaths.of(tmp_path)
    write(
        paths,
        [
            entry(
                "2024-11-13-143022",
                total_cost=Decimal("2.47"),
                files_modified=["manuscript/volume-2/ACT_4/chapter-5.md"],
                files_created=["output/reports/voice-test-2024-11-13.md"],
                operations_count={"scene_generation": 3, "scene_enhancement": 2, "voice_test": 1},
            ),
            entry("2024-11-12-090000", -1, status="interrupted", unpriced_operations=2),
        ],
    )
    text = render_history(paths)
    lines = text.splitlines()
    assert lines[0].startswith("History of")
    header = next(line for line in lines if line.startswith("Session"))
    assert header.split() == [
        "Session",
        "Status",
        "Started",
        "Duration",
        "Cost",
        "Files",
        "Operations",
    ]
    row = next(line for line in lines if line.startswith("2024-11-13-143022"))
    assert "ended" in row and "2h 45m" in row and "$2.47" in row and "+1 ~1 -0" in row
    assert "scene_generation 3, scene_enhancement 2, voice_test 1" in row
    assert "interrupted" in next(line for line in lines if line.startswith("2024-11-12-090000"))
    assert "Total $2.47 +2 unpriced" in text


def test_render_reads_the_archive_for_a_larger_limit(tmp_path: Path) -> None:
    """Asking inspect for more sessions than history.json holds shows archived ones too."""
    paths = ProjectPaths.of(tmp_path)
    write(paths, [entry("recent", 5)])
    append_entries(paths.archive_dir, [entry("archived", 1)])
    assert "archived" not in render_history(paths, limit=1)
    text = render_history(paths, limit=5)
    assert "archived" in text and "the archive of 1" in text


def test_money_and_durations_read_naturally() -> None:
    """Costs show cents, or exact digits below a cent; durations show hours and minutes."""
    assert format_cost(Decimal("2.4700")) == "$2.47"
    assert format_cost(Decimal("0.00000007")) == "$0.00000007"
    assert format_cost(Decimal(0), 3) == "$0.00 +3 unpriced"
    assert [format_duration(m) for m in (0.2, 12, 165)] == ["<1m", "12m", "2h 45m"]
