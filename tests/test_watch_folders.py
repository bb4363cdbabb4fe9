"""Watched folders coming and going, moves between them, and what is never reported."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.names import WorkerName
from services.file_watcher import FileWatcher
from services.inprocess import Published, make_context, settled_events


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with only manuscript/ (the other three folders do not exist yet)."""
    root = tmp_path / "book"
    (root / "manuscript").mkdir(parents=True)
    (root / "manuscript" / "ch1.md").write_text("one\n")
    return root


@pytest.fixture
def watcher(project: Path) -> Iterator[tuple[FileWatcher, Published]]:
    """A started watcher on `project`."""
    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx)
    worker.start()
    yield worker, published
    worker.stop()


def test_missing_folders_are_not_an_error(watcher: tuple[FileWatcher, Published]) -> None:
    """Starting with reference/, planning/ and output/ absent works and says so in health."""
    worker, _ = watcher
    health = worker.health()
    assert health["watched"] == ["manuscript"]
    assert health["missing"] == ["output", "planning", "reference"]
    assert health["backend"] == "native"


def test_a_folder_created_later_is_watched(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """Files in a watched folder created after start are reported, including nested ones."""
    worker, published = watcher
    (project / "reference" / "people").mkdir(parents=True)
    (project / "reference" / "people" / "mickey.md").write_text("Mickey\n")
    events = settled_events(worker, published, 1)
    assert events == [("file.created", {"path": "reference/people/mickey.md"})]
    published.clear()
    (project / "reference" / "places.md").write_text("Noni's house\n")
    assert settled_events(worker, published, 1) == [
        ("file.created", {"path": "reference/places.md"})
    ]
    assert "reference" in worker.health()["watched"]


def test_a_folder_moved_in_whole_is_reported_file_by_file(
    watcher: tuple[FileWatcher, Published], project: Path, tmp_path: Path
) -> None:
    """Moving a prepared folder into place as output/ reports each file in it."""
    worker, published = watcher
    staging = tmp_path / "staging"
    (staging / "reports").mkdir(parents=True)
    (staging / "reports" / "voice-test.md").write_text("r\n")
    (staging / "summary.md").write_text("s\n")
    staging.rename(project / "output")
    events = settled_events(worker, published, 2)
    assert sorted(events, key=str) == [
        ("file.created", {"path": "output/reports/voice-test.md"}),
        ("file.created", {"path": "output/summary.md"}),
    ]


def test_removing_a_subfolder_reports_each_file(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """`rm -r manuscript/act-2` is one file.deleted per chapter it held."""
    worker, published = watcher
    act = project / "manuscript" / "act-2"
    act.mkdir()
    (act / "a.md").write_text("a")
    (act / "b.md").write_text("b")
    settled_events(worker, published, 2)
    published.clear()
    shutil.rmtree(act)
    events = settled_events(worker, published, 2)
    assert sorted(events, key=str) == [
        ("file.deleted", {"path": "manuscript/act-2/a.md"}),
        ("file.deleted", {"path": "manuscript/act-2/b.md"}),
    ]


def test_renaming_a_subfolder_moves_each_file(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """Renaming act-1 to act-one reports a file.moved per file inside it."""
    worker, published = watcher
    act = project / "manuscript" / "act-1"
    act.mkdir()
    (act / "a.md").write_text("a")
    settled_events(worker, published, 1)
    published.clear()
    act.rename(project / "manuscript" / "act-one")
    assert settled_events(worker, published, 1) == [
        ("file.moved", {"path": "manuscript/act-1/a.md", "dest_path": "manuscript/act-one/a.md"})
    ]


def test_a_move_between_two_watched_folders_is_one_moved(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """manuscript/ to planning/ crosses two watches, yet reads as one file.moved."""
    worker, published = watcher
    (project / "planning").mkdir()
    settled_events(worker, published, 1, timeout_s=0.1)
    (project / "manuscript" / "ch1.md").rename(project / "planning" / "ch1.md")
    events = settled_events(
        worker, published, 1, quiet_s=0.7
    )  # watchdog holds an unpaired half 0.5 s
    assert events == [("file.moved", {"path": "manuscript/ch1.md", "dest_path": "planning/ch1.md"})]


def test_removing_a_watched_folder_then_recreating_it(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """Deleting manuscript/ reports its files deleted; a new manuscript/ is watched again."""
    worker, published = watcher
    shutil.rmtree(project / "manuscript")
    assert settled_events(worker, published, 1) == [("file.deleted", {"path": "manuscript/ch1.md"})]
    assert "manuscript" in worker.health()["missing"]
    published.clear()
    (project / "manuscript").mkdir()
    (project / "manuscript" / "ch1.md").write_text("again\n")
    assert settled_events(worker, published, 1) == [("file.created", {"path": "manuscript/ch1.md"})]


def test_session_git_and_outside_files_are_never_reported(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """Writes under .session/, .git/, the project root or editor litter publish nothing."""
    worker, published = watcher
    (project / ".session").mkdir()
    (project / ".session" / "current.json").write_text("{}")
    (project / "notes.md").write_text("not watched")
    (project / "manuscript" / ".git").mkdir()
    (project / "manuscript" / ".git" / "index").write_text("x")
    (project / "manuscript" / ".ch1.md.swp").write_text("swap")
    (project / "manuscript" / ".DS_Store").write_text("mac")
    assert settled_events(worker, published, 1, timeout_s=0.3) == []


def test_symlinks_are_not_followed_out_of_the_project(project: Path, tmp_path: Path) -> None:
    """Changes behind a symlink leaving the project (a folder or a watched root) are unreported."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.md").write_text("x")
    (project / "manuscript" / "linked").symlink_to(outside, target_is_directory=True)
    (project / "reference").symlink_to(outside, target_is_directory=True)
    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx)
    worker.start()
    try:
        assert "reference" in worker.health()["skipped"]
        (outside / "private.md").write_text("changed")
        (outside / "new.md").write_text("new")
        assert settled_events(worker, published, 1, timeout_s=0.3) == []
    finally:
        worker.stop()


def test_undecodable_names_are_skipped_not_fatal(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """A file name that cannot travel as UTF-8 is skipped; later events still flow."""
    worker, published = watcher
    os.close(
        os.open(os.fsencode(project / "manuscript") + b"/bad-\xff.md", os.O_CREAT | os.O_WRONLY)
    )
    (project / "manuscript" / "good.md").write_text("ok")
    assert settled_events(worker, published, 1) == [
        ("file.created", {"path": "manuscript/good.md"})
    ]
