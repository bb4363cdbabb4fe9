"""The coalescer, fed the raw event sequences editors really produce.

Each sequence is what watchdog reports for one save (inotify order), with the
editor's litter included; the coalescer must answer what the writer did.
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.watch.coalesce import Coalescer, FileChange

T = "manuscript/ch1.md"
D = "manuscript"

Raw = tuple[str, str] | tuple[str, str, str]


def run(sequence: Iterable[Raw], known: Iterable[str] = (T,)) -> list[FileChange]:
    """Feed `sequence` 1 ms apart and return everything once settled."""
    existing = set(known)
    coalescer = Coalescer(existed=existing.__contains__)
    at = 0.0
    for raw in sequence:
        at += 0.001
        kind, path, *rest = raw
        coalescer.feed(kind, path, rest[0] if rest else None, at=at)  # type: ignore[arg-type]
    return coalescer.flush(at + 1.0)


def modified(path: str = T) -> list[FileChange]:
    return [FileChange("modified", path)]


# -- the editors ---------------------------------------------------------------------


def test_vim_backupcopy_no_save_is_one_modified() -> None:
    """Vim's probe, rename-to-backup, new file and swap churn read as one save."""
    sequence: list[Raw] = [
        ("modified", f"{D}/.ch1.md.swp"),
        ("created", f"{D}/4913"),
        ("closed", f"{D}/4913"),
        ("deleted", f"{D}/4913"),
        ("moved", T, f"{T}~"),
        ("created", T),
        ("modified", T),
        ("modified", T),
        ("closed", T),
        ("modified", T),  # chmod to the old mode (IN_ATTRIB)
        ("deleted", f"{T}~"),
        ("modified", f"{D}/.ch1.md.swp"),
    ]
    assert run(_closed_as_modified(sequence)) == modified()


def test_vim_backupcopy_yes_save_is_one_modified() -> None:
    """Vim copying to a backup, then overwriting in place, is one save."""
    sequence: list[Raw] = [
        ("created", f"{T}~"),
        ("modified", f"{T}~"),
        ("closed", f"{T}~"),
        ("modified", T),  # O_TRUNC
        ("modified", T),
        ("closed", T),
        ("deleted", f"{T}~"),
    ]
    assert run(_closed_as_modified(sequence)) == modified()


def test_vim_writing_a_new_file_is_one_created() -> None:
    """`:w` of a buffer never saved before creates the file, once."""
    sequence: list[Raw] = [
        ("created", f"{D}/.new.md.swp"),
        ("created", f"{D}/4913"),
        ("deleted", f"{D}/4913"),
        ("created", f"{D}/new.md"),
        ("modified", f"{D}/new.md"),
        ("modified", f"{D}/.new.md.swp"),
    ]
    assert run(sequence) == [FileChange("created", f"{D}/new.md")]


def test_emacs_first_save_is_one_modified() -> None:
    """Emacs: lock symlink, auto-save file, backup by renaming, new file, cleanup."""
    sequence: list[Raw] = [
        ("created", f"{D}/.#ch1.md"),
        ("created", f"{D}/#ch1.md#"),
        ("modified", f"{D}/#ch1.md#"),
        ("moved", T, f"{T}~"),
        ("created", T),
        ("modified", T),
        ("deleted", f"{D}/#ch1.md#"),
        ("deleted", f"{D}/.#ch1.md"),
    ]
    assert run(sequence) == modified()


def test_emacs_later_save_in_place_is_one_modified() -> None:
    """Once the backup exists Emacs writes in place: still one save."""
    assert run([("modified", T), ("modified", T), ("modified", T)]) == modified()


def test_safe_write_temp_renamed_over_target_is_one_modified() -> None:
    """VS Code-style safe write: temp file renamed over the target."""
    sequence: list[Raw] = [
        ("created", f"{T}.tmp"),
        ("modified", f"{T}.tmp"),
        ("moved", f"{T}.tmp", T),
    ]
    assert run(sequence) == modified()


def test_safe_write_of_a_new_file_is_one_created() -> None:
    """A safe write whose target did not exist creates it."""
    assert run([("created", f"{T}.tmp"), ("moved", f"{T}.tmp", T)], known=()) == [
        FileChange("created", T)
    ]


def test_jetbrains_safe_write_is_one_modified() -> None:
    """JetBrains: `___jb_tmp___` written, target to `___jb_old___`, tmp to target."""
    sequence: list[Raw] = [
        ("created", f"{T}___jb_tmp___"),
        ("modified", f"{T}___jb_tmp___"),
        ("moved", T, f"{T}___jb_old___"),
        ("moved", f"{T}___jb_tmp___", T),
        ("deleted", f"{T}___jb_old___"),
    ]
    assert run(sequence) == modified()


def test_vim_probe_alone_is_nothing() -> None:
    """Vim's 4913 write-permission probe, created and deleted, is not reported."""
    assert run([("created", f"{D}/4913"), ("deleted", f"{D}/4913")], known=()) == []


def test_litter_alone_is_nothing() -> None:
    """Swap, backup, lock, temp and .DS_Store files are never reported."""
    names = [".ch1.md.swp", ".ch1.md.swx", "ch1.md~", ".#ch1.md", "#ch1.md#", "x.tmp", ".DS_Store"]
    sequence: list[Raw] = [("created", f"{D}/{name}") for name in names]
    assert run(sequence, known=()) == []


# -- plain operations ----------------------------------------------------------------


def test_delete_then_create_of_one_path_is_one_modified() -> None:
    """Deleting and re-creating a file in one burst is a save."""
    assert run([("deleted", T), ("created", T), ("modified", T)]) == modified()


def test_create_then_delete_is_nothing() -> None:
    """A file that came and went within the window was never there for the writer."""
    assert run([("created", f"{D}/x.md"), ("deleted", f"{D}/x.md")], known=()) == []


def test_rename_is_one_moved() -> None:
    """A rename is `moved` with `dest_path`."""
    assert run([("moved", T, f"{D}/ch01.md")]) == [FileChange("moved", T, f"{D}/ch01.md")]


def test_rename_over_an_existing_file_is_one_moved() -> None:
    """Renaming onto an existing name reports the move, not a deletion too."""
    assert run([("moved", T, f"{D}/b.md")], known=(T, f"{D}/b.md")) == [
        FileChange("moved", T, f"{D}/b.md")
    ]


def test_rename_then_new_file_at_old_name() -> None:
    """`mv a b; touch a` is a move and a creation."""
    assert run([("moved", T, f"{D}/b.md"), ("created", T)]) == [
        FileChange("moved", T, f"{D}/b.md"),
        FileChange("created", T),
    ]


def test_rename_and_edit_is_moved_then_modified() -> None:
    """A file renamed and then written reports both."""
    assert run([("moved", T, f"{D}/b.md"), ("modified", f"{D}/b.md")]) == [
        FileChange("moved", T, f"{D}/b.md"),
        FileChange("modified", f"{D}/b.md"),
    ]


def test_a_swap_through_a_third_name_is_two_modified() -> None:
    """Swapping two chapters via a third name leaves both in place with new content: two
    `modified` (two moves applied in turn would lose one of them)."""
    a, b, x = f"{D}/a.md", f"{D}/b.md", f"{D}/x.md"
    out = run([("moved", a, x), ("moved", b, a), ("moved", x, b)], known=(a, b))
    assert out == [FileChange("modified", a), FileChange("modified", b)]


def test_a_rotation_of_three_files_is_three_modified() -> None:
    """`c -> b`, `a -> c`, `b -> a` with b's file overwritten: a and c swapped, b gone."""
    a, b, c = f"{D}/a.md", f"{D}/b.md", "planning/c.md"
    out = run([("moved", c, b), ("moved", a, c), ("moved", b, a)], known=(a, b, c))
    assert sorted(out, key=str) == [
        FileChange("deleted", b),
        FileChange("modified", a),
        FileChange("modified", c),
    ]


def test_a_long_chain_of_renames_is_reported_in_an_order_that_applies() -> None:
    """Chapters saved, then all renumbered upwards by a script in one burst: every move is
    reported, last one first, however long the chain."""
    names = [f"{D}/ch{n:04d}.md" for n in range(1500)]
    saved: list[Raw] = [("modified", name) for name in names[:-1]]
    shifted: list[Raw] = [("moved", names[n], names[n + 1]) for n in reversed(range(1499))]
    out = run(saved + shifted, known=names[:-1])
    moves = [change for change in out if change.kind == "moved"]
    assert moves == [FileChange("moved", names[n], names[n + 1]) for n in reversed(range(1499))]
    after = set(names[:-1])
    apply_changes(after, out)
    assert after == set(names[1:])


def test_rename_to_a_backup_name_is_a_deletion() -> None:
    """Renaming a chapter to `name~` leaves nothing the writer sees: deleted."""
    assert run([("moved", T, f"{T}~")]) == [FileChange("deleted", T)]


def test_rename_out_of_the_watched_folders_is_a_deletion() -> None:
    """A file moved to a folder we do not watch is gone from the project's view."""
    assert run([("moved", T, "drafts/ch1.md")]) == [FileChange("deleted", T)]


def test_nothing_under_session_or_git_or_outside() -> None:
    """Paths under .session/, .git/ or outside the four folders are never reported."""
    sequence: list[Raw] = [
        ("created", ".session/current.json"),
        ("created", "manuscript/.git/index"),
        ("created", "notes.md"),
        ("modified", "manuscript"),
    ]
    assert run(sequence, known=()) == []


# -- timing --------------------------------------------------------------------------


def test_changes_wait_for_the_settle_window() -> None:
    """Nothing is reported until the path has been quiet for the settle window."""
    coalescer = Coalescer(existed={T}.__contains__, settle_s=0.02)
    coalescer.feed("modified", T, at=1.0)
    assert coalescer.flush(1.01) == []
    coalescer.feed("modified", T, at=1.015)
    assert coalescer.next_deadline() == 1.015 + 0.02
    assert coalescer.flush(1.03) == []
    assert coalescer.flush(1.04) == modified()
    assert coalescer.next_deadline() is None


def test_a_file_written_continuously_is_still_reported() -> None:
    """A path that never goes quiet is reported after the maximum hold."""
    coalescer = Coalescer(existed={T}.__contains__, settle_s=0.02, max_hold_s=0.5)
    out: list[FileChange] = []
    for step in range(100):
        now = step * 0.01
        coalescer.feed("modified", T, at=now)
        out += coalescer.flush(now)
    assert out == modified(), "reported at the hold limit, while still being written"
    assert coalescer.flush_all() == modified()


def test_linked_paths_settle_together() -> None:
    """A rename waits for its destination to go quiet before it is reported."""
    coalescer = Coalescer(existed={T}.__contains__, settle_s=0.02)
    coalescer.feed("moved", T, f"{D}/b.md", at=1.0)
    coalescer.feed("modified", f"{D}/b.md", at=1.015)
    assert coalescer.flush(1.025) == []
    assert coalescer.flush(1.04) == [
        FileChange("moved", T, f"{D}/b.md"),
        FileChange("modified", f"{D}/b.md"),
    ]


def test_discard_forgets_pending_changes() -> None:
    """After a discard (a rescan follows) nothing pending is reported."""
    coalescer = Coalescer(existed=set().__contains__)
    coalescer.feed("created", T, at=0.0)
    coalescer.discard()
    assert coalescer.flush_all() == []
    assert len(coalescer) == 0


def _closed_as_modified(sequence: list[Raw]) -> list[Raw]:
    # The watcher feeds IN_CLOSE_WRITE as a modification.
    return [("modified", *raw[1:]) if raw[0] == "closed" else raw for raw in sequence]  # type: ignore[misc]


# -- properties ----------------------------------------------------------------------

NAMES = [
    "manuscript/a.md",
    "manuscript/b.md",
    "planning/c.md",
    "manuscript/a.md~",
    "manuscript/x.tmp",
]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(NAMES)),
        st.tuples(st.just("delete"), st.sampled_from(NAMES)),
        st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    ),
    max_size=12,
)


def apply_changes(known: set[str], changes: Iterable[FileChange]) -> None:
    """Update a set of existing paths with reported changes, as a subscriber would."""
    for change in changes:
        if change.kind == "deleted":
            known.discard(change.path)
        elif change.kind == "moved":
            known.discard(change.path)
            if change.dest_path is not None:
                known.add(change.dest_path)
        else:
            known.add(change.path)


def _simulate(initial: set[str], ops: list[tuple[str, ...]]) -> tuple[set[str], list[Raw]]:
    """Apply file operations to a model disk; return its end state and inotify's events."""
    disk = set(initial)
    raws: list[Raw] = []
    for op in ops:
        if op[0] == "write":
            raws += [] if op[1] in disk else [("created", op[1])]
            raws.append(("modified", op[1]))
            disk.add(op[1])
        elif op[0] == "delete" and op[1] in disk:
            disk.discard(op[1])
            raws.append(("deleted", op[1]))
        elif op[0] == "rename" and op[1] in disk and op[1] != op[2]:
            disk.discard(op[1])
            disk.add(op[2])
            raws.append(("moved", op[1], op[2]))
    return disk, raws


@settings(max_examples=300, deadline=None)
@given(initial=st.sets(st.sampled_from(NAMES)), ops=operations)
@example(  # a rotation: a and c swap through b, b's own file is overwritten
    initial={"manuscript/a.md", "manuscript/b.md", "planning/c.md"},
    ops=[
        ("rename", "planning/c.md", "manuscript/b.md"),
        ("rename", "manuscript/a.md", "planning/c.md"),
        ("rename", "manuscript/b.md", "manuscript/a.md"),
    ],
)
@example(  # a chain: a -> b must be reported before c -> a, or a is lost
    initial={"manuscript/a.md", "manuscript/b.md", "planning/c.md"},
    ops=[
        ("write", "planning/c.md"),
        ("rename", "manuscript/a.md", "manuscript/b.md"),
        ("rename", "planning/c.md", "manuscript/a.md"),
    ],
)
def test_reported_changes_lead_to_the_true_end_state(
    initial: set[str], ops: list[tuple[str, ...]]
) -> None:
    """Whatever the sequence, applying the reported changes gives the files that exist."""
    from services.readonly.filters import is_ignored

    visible = {name for name in initial if not is_ignored(name)}
    disk, raws = _simulate(initial, ops)
    changes = run(raws, known=visible)
    after = set(visible)
    apply_changes(after, changes)
    assert after == {name for name in disk if not is_ignored(name)}
    kinds_per_path = [(change.kind, change.path) for change in changes]
    assert len(kinds_per_path) == len(set(kinds_per_path)), "no change reported twice"
    assert all(not is_ignored(c.path) and not is_ignored(c.dest_path or c.path) for c in changes)
