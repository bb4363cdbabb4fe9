"""The real file watcher, real files, and saves written the way editors write them.

Each test performs one save exactly as the editor does it on disk (probe
files, backups, renames, swap churn) and expects one event: what the writer
did. The watcher runs in this process with real watchdog observers.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.names import WorkerName
from services.file_watcher import FileWatcher
from services.inprocess import Published, make_context, settled_events

CHAPTER = "manuscript/act-1/chapter-5.md"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with one chapter in manuscript/act-1/."""
    root = tmp_path / "book"
    (root / "manuscript" / "act-1").mkdir(parents=True)
    (root / CHAPTER).write_text("It was a dark night.\n")
    return root


@pytest.fixture
def watcher(project: Path) -> Iterator[tuple[FileWatcher, Published]]:
    """A started watcher on `project` and the list its events go to."""
    ctx, published = make_context(project, WorkerName.FILE_WATCHER)
    worker = FileWatcher(ctx)
    worker.start()
    yield worker, published
    worker.stop()


def _write(path: Path, text: str) -> None:
    with path.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def vim_save_backupcopy_no(path: Path, text: str) -> None:
    """Vim with backupcopy=no: probe, rename to backup, write new, drop backup, swap churn."""
    swap = path.with_name(f".{path.name}.swp")
    swap.write_bytes(b"b0VIM 9.1\x00" * 50)
    probe = path.with_name("4913")
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o644))
    probe.unlink()
    backup = path.with_name(f"{path.name}~")
    existed = path.exists()
    if existed:
        path.rename(backup)
    _write(path, text)
    path.chmod(0o644)
    if existed:
        backup.unlink()
    swap.write_bytes(b"b0VIM 9.1\x01" * 50)


def vim_save_backupcopy_yes(path: Path, text: str) -> None:
    """Vim with backupcopy=yes: copy to backup, overwrite the original in place."""
    swap = path.with_name(f".{path.name}.swp")
    swap.write_bytes(b"b0VIM 9.1")
    backup = path.with_name(f"{path.name}~")
    shutil.copy2(path, backup)
    _write(path, text)
    backup.unlink()
    swap.unlink()


def emacs_first_save(path: Path, text: str) -> None:
    """Emacs: lock symlink, auto-save file, backup by renaming, new file, cleanup."""
    lock = path.with_name(f".#{path.name}")
    lock.symlink_to(f"writer@host.4242:{os.getpid()}")
    autosave = path.with_name(f"#{path.name}#")
    autosave.write_text(text[:5])
    path.rename(path.with_name(f"{path.name}~"))
    _write(path, text)
    autosave.unlink()
    lock.unlink()


def vscode_safe_write(path: Path, text: str) -> None:
    """Safe write: a temp file beside the target, renamed over it."""
    temp = path.with_name(f"{path.name}.tmp")
    _write(temp, text)
    temp.replace(path)


def jetbrains_safe_write(path: Path, text: str) -> None:
    """JetBrains: write `___jb_tmp___`, target to `___jb_old___`, tmp to target, drop old."""
    temp = path.with_name(f"{path.name}___jb_tmp___")
    old = path.with_name(f"{path.name}___jb_old___")
    _write(temp, text)
    path.rename(old)
    temp.rename(path)
    old.unlink()


def in_place_burst(path: Path, text: str) -> None:
    """Several writes to one file in quick succession (truncate, then appends)."""
    with path.open("w") as handle:
        for line in text.splitlines(keepends=True):
            handle.write(line)
            handle.flush()


SAVES = [
    vim_save_backupcopy_no,
    vim_save_backupcopy_yes,
    emacs_first_save,
    vscode_safe_write,
    jetbrains_safe_write,
    in_place_burst,
]


@pytest.mark.parametrize("save", SAVES, ids=[save.__name__ for save in SAVES])
def test_one_save_is_one_modified_event(
    watcher: tuple[FileWatcher, Published], project: Path, save: object
) -> None:
    """Whatever the editor does on disk, saving a chapter publishes exactly one file.modified."""
    worker, published = watcher
    save(project / CHAPTER, "It was a dark and stormy night.\nThe end.\n")  # type: ignore[operator]
    assert settled_events(worker, published, 1) == [("file.modified", {"path": CHAPTER})]


def test_two_saves_are_two_events(watcher: tuple[FileWatcher, Published], project: Path) -> None:
    """Saves a moment apart are each reported: coalescing never swallows a later save."""
    worker, published = watcher
    vim_save_backupcopy_no(project / CHAPTER, "first\n")
    settled_events(worker, published, 1, quiet_s=0.05)
    vim_save_backupcopy_no(project / CHAPTER, "second, longer\n")
    events = settled_events(worker, published, 2)
    assert events == [("file.modified", {"path": CHAPTER})] * 2


@pytest.mark.parametrize(
    "save", [vim_save_backupcopy_no, vscode_safe_write], ids=["vim", "safe_write"]
)
def test_saving_a_new_file_is_one_created_event(
    watcher: tuple[FileWatcher, Published], project: Path, save: object
) -> None:
    """The first save of a new chapter publishes one file.created."""
    worker, published = watcher
    save(project / "manuscript" / "act-1" / "chapter-6.md", "New.\n")  # type: ignore[operator]
    events = settled_events(worker, published, 1)
    assert events == [("file.created", {"path": "manuscript/act-1/chapter-6.md"})]


def test_rename_and_delete(watcher: tuple[FileWatcher, Published], project: Path) -> None:
    """Renaming a chapter is one file.moved; deleting it is one file.deleted."""
    worker, published = watcher
    (project / CHAPTER).rename(project / "manuscript" / "act-1" / "chapter-05.md")
    renamed = "manuscript/act-1/chapter-05.md"
    assert settled_events(worker, published, 1) == [
        ("file.moved", {"path": CHAPTER, "dest_path": renamed})
    ]
    published.clear()
    (project / renamed).unlink()
    assert settled_events(worker, published, 1) == [("file.deleted", {"path": renamed})]


def test_attribute_change_alone_is_not_a_save(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """A chmod leaves content, size and mtime alone: nothing is published."""
    worker, published = watcher
    (project / CHAPTER).chmod(0o600)
    assert settled_events(worker, published, 1, timeout_s=0.2) == []


def test_event_arrives_within_a_tenth_of_a_second(
    watcher: tuple[FileWatcher, Published], project: Path
) -> None:
    """A save is announced quickly (settle window 20 ms; the benchmark measures p50/p99)."""
    import time

    worker, published = watcher
    started = time.monotonic()
    _write(project / CHAPTER, "quick\n")
    settled_events(worker, published, 1, quiet_s=0)
    assert published.events == [("file.modified", {"path": CHAPTER})]
    assert published.times[0] - started < 0.25  # generous: shared, noisy machines


VIM_SETTINGS = {
    "defaults": "set nobackup",
    "backupcopy=no": "set backup writebackup backupcopy=no backupdir=. backupskip=",
    "backupcopy=yes": "set backup writebackup backupcopy=yes backupdir=. backupskip=",
}


@pytest.mark.skipif(shutil.which("vim") is None, reason="Vim is not installed")
@pytest.mark.parametrize("settings", list(VIM_SETTINGS), ids=list(VIM_SETTINGS))
@pytest.mark.parametrize("new_file", [False, True], ids=["existing", "new"])
def test_real_vim_save_is_one_event(
    watcher: tuple[FileWatcher, Published], project: Path, settings: str, new_file: bool
) -> None:
    """The real Vim (swap file, backup, rename or copy) saving a chapter is one event."""
    import subprocess

    worker, published = watcher
    target = project / ("manuscript/act-1/chapter-9.md" if new_file else CHAPTER)
    vim = shutil.which("vim") or "vim"
    subprocess.run(
        [vim, "-u", "NONE", "-i", "NONE", "-N", "-es", "-c", VIM_SETTINGS[settings],
         "-c", "normal! Goa new line", "-c", "wq", str(target)],
        check=True, cwd=target.parent, timeout=10, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    rel = target.relative_to(project).as_posix()
    kind = "file.created" if new_file else "file.modified"
    assert settled_events(worker, published, 1) == [(kind, {"path": rel})]
