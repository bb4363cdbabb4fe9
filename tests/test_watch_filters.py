"""Which paths the watcher reports, and the tree it compares against."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.readonly.filters import is_ignored, is_ignored_name, top_folder
from services.readonly.tree import FileStat, Tree, scan_project, stat_file
from services.watch.coalesce import FileChange
from services.watch.scan import GONE, diff_trees


@pytest.mark.parametrize(
    "name",
    [
        ".chapter-5.md.swp",
        ".chapter-5.md.swo",
        ".chapter-5.md.swx",
        "chapter-5.md~",
        "chapter-5.md.~1~",
        ".#chapter-5.md",
        "#chapter-5.md#",
        "chapter-5.md___jb_tmp___",
        "chapter-5.md___jb_old___",
        "chapter-5.md.tmp",
        "CHAPTER.TMP",
        ".DS_Store",
        ".goutputstream-ABC123",
        ".~lock.notes.odt#",
        "~$notes.docx",
    ],
)
def test_editor_litter_is_ignored(name: str) -> None:
    """Swap, backup, lock and temp files of common editors are never the writer's."""
    assert is_ignored_name(name)
    assert is_ignored(f"manuscript/{name}")


@pytest.mark.parametrize(
    "path",
    [
        "manuscript/chapter-5.md",
        "reference/people/Mickey.md",
        "output/reports/r.md",
        "planning/4913",
    ],
)
def test_writers_files_are_reported(path: str) -> None:
    """Ordinary files inside the four folders are reported (even a file named 4913)."""
    assert not is_ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        "manuscript",
        "notes.md",
        ".session/current.json",
        "manuscript/.git/index",
        "manuscript/sub/.session/x",
        "drafts/ch1.md",
        "manuscript/back\\slash.md",
    ],
)
def test_paths_outside_or_tooling_are_ignored(path: str) -> None:
    """The folders themselves, other folders, .session/, .git/ and unsendable names are ignored."""
    assert is_ignored(path)


def test_top_folder_names_the_watched_folder() -> None:
    """A path's watched folder is its first component, when it is one of the four."""
    assert top_folder("reference/a/b.md") == "reference"
    assert top_folder("elsewhere/a.md") is None
    assert top_folder("manuscript") is None


def test_scan_records_files_and_skips_litter_and_symlinked_folders(tmp_path: Path) -> None:
    """The tree has the writer's files; swap files, .git and symlinks to folders are not walked."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("x")
    project = tmp_path / "book"
    (project / "manuscript" / "act1").mkdir(parents=True)
    (project / "manuscript" / "act1" / "ch1.md").write_text("one")
    (project / "manuscript" / ".ch1.md.swp").write_text("swap")
    (project / "manuscript" / ".git").mkdir()
    (project / "manuscript" / ".git" / "HEAD").write_text("ref")
    (project / "manuscript" / "elsewhere").symlink_to(outside, target_is_directory=True)
    (project / "notes.md").write_text("not watched")
    tree = scan_project(project)
    assert sorted(tree.files) == ["manuscript/act1/ch1.md", "manuscript/elsewhere"]
    assert tree.get("manuscript/act1/ch1.md") == stat_file(project / "manuscript/act1/ch1.md")


def test_scan_skips_a_watched_folder_that_is_a_symlink(tmp_path: Path) -> None:
    """A watched folder that is itself a symlink is not followed out of the project."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.md").write_text("x")
    project = tmp_path / "book"
    project.mkdir()
    (project / "manuscript").symlink_to(outside, target_is_directory=True)
    assert len(scan_project(project)) == 0


def test_diff_finds_moves_deletions_creations_and_edits() -> None:
    """A rescan's difference pairs a vanished and a new path of one inode into a move."""
    old = Tree(
        {
            "m/a.md": FileStat(1, 10, 100),
            "m/b.md": FileStat(1, 10, 101),
            "m/c.md": FileStat(1, 5, 102),
        }
    )
    # m/d.md reuses m/b.md's freed inode, as ext4 does: a new file, not a move.
    new = Tree(
        {
            "m/a2.md": FileStat(1, 10, 100),
            "m/c.md": FileStat(2, 6, 102),
            "m/d.md": FileStat(3, 1, 101),
        }
    )
    assert diff_trees(old, new) == [
        FileChange("moved", "m/a.md", "m/a2.md"),
        FileChange("deleted", "m/b.md"),
        FileChange("created", "m/d.md"),
        FileChange("modified", "m/c.md"),
    ]


def test_tree_tracks_inodes_through_changes() -> None:
    """The inode index follows sets and removals (used to pair moves between folders)."""
    tree = Tree()
    tree.set("m/a.md", FileStat(1, 1, 7))
    assert tree.path_with_inode(7) == "m/a.md"
    tree.set("m/a.md", FileStat(2, 1, 8))
    assert tree.path_with_inode(7) is None
    assert tree.path_with_inode(8) == "m/a.md"
    tree.set("m/b.md", GONE)
    tree.remove("m/a.md")
    assert tree.path_with_inode(8) is None
    assert tree.under("m") == ["m/b.md"]


def test_stat_file_does_not_follow_symlinks(tmp_path: Path) -> None:
    """A symlink is recorded as itself; a folder is not a file."""
    target = tmp_path / "t.md"
    target.write_text("abc")
    link = tmp_path / "l.md"
    link.symlink_to(target)
    assert stat_file(link) != stat_file(target)
    assert stat_file(tmp_path) is None
    assert stat_file(tmp_path / "missing") is None
