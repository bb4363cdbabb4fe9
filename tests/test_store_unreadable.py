"""Unreadable data files are moved aside like corrupt ones, and every snapshot keeps `.prev`
(issue 10, defects 6 and 7)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from protocol.session import Preferences
from services.store import AtomicJsonFile, FileOps, previous_name, read_document
from tests.service import running_service


class UnreadableOps(FileOps):
    """Reads of one file fail with the given errno, as a failing disk does."""

    def __init__(self, path: Path, code: int) -> None:
        self.path, self.code = path, code

    def read_bytes(self, path: Path) -> bytes:
        if path == self.path:
            raise OSError(self.code, os.strerror(self.code))
        return super().read_bytes(path)


def test_a_folder_where_the_file_should_be_is_moved_aside(tmp_path: Path) -> None:
    """A directory named preferences.json reads as corrupt, moves aside, and the next save works."""
    path = tmp_path / "preferences.json"
    path.mkdir()
    (path / "inside.txt").write_text("kept")
    store = AtomicJsonFile(path)
    loaded = store.load(Preferences)
    assert loaded.status == "corrupt" and loaded.moved_to is not None
    assert "unreadable" in (loaded.error or "")
    assert (loaded.moved_to / "inside.txt").read_text() == "kept", "nothing is deleted"
    assert store.save(Preferences(theme="dark")).ok
    assert store.load(Preferences).value == Preferences(theme="dark")


def test_an_io_error_on_read_is_reported_like_corruption(tmp_path: Path) -> None:
    """EIO while reading the file is status corrupt with the error, and the file is moved aside."""
    path = tmp_path / "current.json"
    path.write_text('{"theme": "dark"}')
    loaded = AtomicJsonFile(path, ops=UnreadableOps(path, errno.EIO)).load(Preferences)
    assert loaded.status == "corrupt" and "Input/output" in (loaded.error or "")
    assert not path.exists() and loaded.moved_to is not None and loaded.moved_to.exists()


def test_a_reader_reports_an_unreadable_file_without_raising(tmp_path: Path) -> None:
    """`read_document` on a folder answers corrupt instead of raising IsADirectoryError."""
    (tmp_path / "costs.json").mkdir()
    outcome = read_document(tmp_path / "costs.json", Preferences)
    assert outcome.status == "corrupt" and (tmp_path / "costs.json").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a 0000 file anyway; needs a normal user")
def test_permission_denied_is_reported_like_corruption(tmp_path: Path) -> None:
    """A file the user may not read is moved aside and reported, not a crash."""
    path = tmp_path / "preferences.json"
    path.write_text("{}")
    path.chmod(0)
    loaded = AtomicJsonFile(path).load(Preferences)
    assert loaded.status == "corrupt" and loaded.moved_to is not None


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root renames in a read-only folder; needs a normal user"
)
def test_a_folder_that_cannot_be_moved_is_still_only_reported(tmp_path: Path) -> None:
    """If moving aside fails too, load reports corrupt with moved_to None instead of raising."""

    class NoRename(FileOps):
        def read_bytes(self, path: Path) -> bytes:
            raise IsADirectoryError(errno.EISDIR, "Is a directory")

    path = tmp_path / "preferences.json"
    path.write_text("{}")
    store = AtomicJsonFile(path, ops=NoRename())
    tmp_path.chmod(0o500)
    try:
        loaded = store.load(Preferences)
    finally:
        tmp_path.chmod(0o700)
    assert loaded.status == "corrupt" and loaded.moved_to is None


def test_every_save_keeps_the_previous_generation(tmp_path: Path) -> None:
    """After saves A, B, C the file holds C and NAME.prev holds B, each whole."""
    path = tmp_path / "history.json"
    store = AtomicJsonFile(path)
    for theme in ("a", "b", "c"):
        assert store.save(Preferences(theme=theme)).ok
    assert read_document(path, Preferences).value == Preferences(theme="c")
    assert read_document(previous_name(path), Preferences).value == Preferences(theme="b")
    assert not list(tmp_path.glob(".history.json.tmp-*"))


def test_saves_after_a_crash_between_the_prev_link_and_the_rename_leave_no_temp_name(
    tmp_path: Path,
) -> None:
    """A crash can leave NAME and NAME.prev one file; the next owner's saves leave no stray link."""
    path = tmp_path / "history.json"
    AtomicJsonFile(path).save(Preferences(theme="a"))
    previous_name(path).unlink(missing_ok=True)
    os.link(path, previous_name(path))  # the state that crash leaves: one file, two names
    store = AtomicJsonFile(path)
    for theme in ("b", "c"):
        assert store.save(Preferences(theme=theme)).ok
        assert not list(tmp_path.glob(".history.json.tmp-*")), theme
    assert read_document(previous_name(path), Preferences).value == Preferences(theme="b")


def test_a_corrupt_file_offers_its_previous_generation(tmp_path: Path) -> None:
    """Loading a corrupt file returns the `.prev` document so the owner can rebuild from it."""
    path = tmp_path / "history.json"
    store = AtomicJsonFile(path)
    store.save(Preferences(theme="old"))
    store.save(Preferences(theme="new"))
    path.write_bytes(b'{"theme": "ne')
    loaded = store.load(Preferences)
    assert loaded.status == "corrupt" and loaded.previous == Preferences(theme="old")


def test_the_service_starts_with_folders_where_its_files_should_be(tmp_path: Path) -> None:
    """Folders named current.json, preferences.json, costs.json and history.json: every
    worker runs, none restarts, and each folder is moved aside."""
    project = tmp_path / "novel"
    session = project / ".session"
    names = ("current.json", "preferences.json", "costs.json", "history.json")
    for name in names:
        (session / name).mkdir(parents=True)
    with running_service(project) as svc:
        assert svc.request("session.set_stage", {"stage": "writing"})["ok"]
        assert svc.request("preferences.get")["ok"]
        assert svc.request("cost.totals")["ok"]
        assert svc.request("history.list")["ok"]
        workers = svc.status()["workers"]
        assert {w["state"] for w in workers} == {"running"}
        assert all(w["restarts"] == 0 for w in workers), workers
    for name in names:
        moved = list(session.glob(f"{name}.corrupt-*"))
        assert len(moved) == 1 and moved[0].is_dir(), name
        assert not (session / name).is_dir()
