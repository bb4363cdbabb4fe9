"""Golden files: what 0.1.0 and this version really wrote, read by every model and reader.

`tests/golden/<version>/` holds one real sample of every stored file and line
kind, written by the real workers (`tests/golden/make_golden.py` says how).
Every model and every reader must read both versions; and the writers of
this version must still write exactly the shapes `tests/golden/current/`
shows, so a change of format on the writing side fails here until the
golden files are regenerated (and the 0.1.0 files are still read).
"""

from __future__ import annotations

import gzip
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from protocol.codec import loads, loads_exact
from protocol.costs import Budget, CostsDocument
from protocol.history import HistoryDocument
from protocol.history_journal import HistoryCheckpoint, decode_history_journal_line
from protocol.ledger import LedgerCheckpoint, LedgerOperation, decode_ledger_line
from protocol.session import Preferences, SessionDocument
from protocol.session_journal import decode_journal_line
from services.cost.budget import BudgetLimits
from services.cost.ledger_files import LedgerFiles
from services.cost.loader import load_state
from services.history.journal import LiveJournal
from services.readonly.history import read_archive, read_history_file
from services.runtime.paths import ProjectPaths
from services.session.journal import read_journal
from services.session.recovery import inspect_previous, new_session_id
from services.session.replay import replay

GOLDEN = Path(__file__).resolve().parent / "golden"
VERSIONS = ("0.1.0", "current")

sys.path.insert(0, str(GOLDEN))
from make_golden import generate  # noqa: E402

LEDGER_KINDS = {"op", "budget", "reset", "warned"}
JOURNAL_KINDS = {"segment", "begin", "op", "activity", "owner", "end"}
HISTORY_JOURNAL_KINDS = {"checkpoint", "event", "resume", "end"}
DOCUMENTS: dict[str, type[BaseModel]] = {
    "current.json": SessionDocument,
    "preferences.json": Preferences,
    "costs.json": CostsDocument,
    "history.json": HistoryDocument,
}


def _lines(path: Path) -> Iterator[bytes]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    yield from (line for line in data.splitlines() if line.strip())


def _project(tmp_path: Path, version: str) -> ProjectPaths:
    """A project whose `.session/` holds the golden files of `version`."""
    project = tmp_path / "novel"
    shutil.copytree(GOLDEN / version, project / ".session")
    return ProjectPaths.of(project)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_line_of_every_log_decodes_with_its_model(version: str) -> None:
    """Each ledger, journal and archive line of either version is one of its model's kinds."""
    folder = GOLDEN / version
    ledger = [decode_ledger_line(line) for line in _lines(folder / "ledger" / "2026-11.jsonl")]
    journal = [
        decode_journal_line(line)
        for path in sorted((folder / "journal").glob("*.jsonl"))
        for line in _lines(path)
    ]
    history = [decode_history_journal_line(line) for line in _lines(folder / "archive/live.jsonl")]
    archived = list(_lines(folder / "archive" / "sessions-2026.jsonl.gz"))
    assert {record.kind for record in ledger} == LEDGER_KINDS
    assert {record.kind for record in journal} == JOURNAL_KINDS
    assert {record.kind for record in history} == HISTORY_JOURNAL_KINDS
    assert len(read_archive(folder / "archive").entries) == len(archived) == 1
    checkpoint = LedgerCheckpoint.model_validate(
        loads((folder / "ledger/checkpoint.json").read_bytes())
    )
    assert checkpoint.position.file == "2026-11.jsonl"
    for name, model in DOCUMENTS.items():
        model.model_validate(loads_exact((folder / name).read_bytes()))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_ledger_rebuilds_its_state_from_either_version(version: str, tmp_path: Path) -> None:
    """The cost ledger's loader reads the month file and checkpoint of 0.1.0 and of today."""
    paths = _project(tmp_path, version)
    files = LedgerFiles(paths.ledger_dir)
    loaded = load_state(
        files,
        session_id="2026-11-21-090000",
        zone=ZoneInfo("UTC"),
        now=datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        default_budget=BudgetLimits(None, None, None),
    )
    assert files.bad_records == [] and loaded.checkpoint_problem is None
    assert loaded.state.budget.daily_limit is not None
    assert str(loaded.state.budget.daily_limit) == "0.2"
    assert len(loaded.state.applied) == 6
    # Without the checkpoint, the whole month file is replayed to the same ids.
    (paths.ledger_dir / "checkpoint.json").unlink()
    again = load_state(
        LedgerFiles(paths.ledger_dir),
        session_id="2026-11-21-090000",
        zone=ZoneInfo("UTC"),
        now=datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        default_budget=BudgetLimits(None, None, None),
    )
    assert again.replayed == 8 and again.state.applied.as_list() == loaded.state.applied.as_list()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_session_journal_replays_from_either_version(version: str, tmp_path: Path) -> None:
    """Replaying every segment of either version rebuilds the session current.json holds."""
    paths = _project(tmp_path, version)
    records = read_journal(paths.journal_dir)
    out = replay(None, Preferences(), records, project_name="novel")
    snapshot = SessionDocument.model_validate(loads_exact(paths.current.read_bytes()))
    assert out.document is not None
    assert out.document.session_id == snapshot.session_id == "2026-11-21-090000"
    assert out.document.owner_pid == snapshot.owner_pid
    assert [f.path for f in out.document.open_files] == ["manuscript/ch1.md"]
    assert out.preferences.confirm_above == Preferences(confirm_above="0.25").confirm_above
    assert {reply.id for reply in out.replies} >= {"c1-000006", "c1-000007", "c2-000001"}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_archiver_journal_replays_from_either_version(version: str, tmp_path: Path) -> None:
    """The archiver rebuilds its live entry from a live.jsonl of 0.1.0 (k/at) or of today."""
    paths = _project(tmp_path, version)
    journal = LiveJournal(paths.archive_dir)
    replayed = journal.replay()
    journal.close()
    assert replayed.skipped == 0 and replayed.live is not None
    entry = replayed.live.to_entry()
    assert entry.session_id == "2026-11-21-090000"
    assert entry.operations_count == {"brainstorm": 1}
    assert entry.files_created == [] and entry.status == "active"  # created then deleted
    history = read_history_file(paths)
    assert history.status == "ok" and history.document.sessions[0].session_id == entry.session_id


@pytest.mark.parametrize("version", VERSIONS)
def test_recovery_reads_either_version(version: str, tmp_path: Path) -> None:
    """`supervisor start`'s recovery finds the interrupted session and every id already used."""
    paths = _project(tmp_path, version)
    previous = inspect_previous(paths)
    assert previous is not None
    assert previous.session_id == "2026-11-21-090000" and previous.interrupted
    taken_at = datetime(2026, 11, 20, 9, 0, 0)  # naive: local time, as session ids are
    assert new_session_id(paths, taken_at) == "2026-11-20-090000-2"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("what", ["session", "costs", "history", "preferences"])
def test_supervisor_inspect_reads_either_version(
    version: str, what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`supervisor inspect` shows every file of 0.1.0 and of today, as text and as JSON."""
    from services.cli.inspect import inspect

    paths = _project(tmp_path, version)
    for as_json in (False, True):
        assert inspect(paths.project, what, as_json=as_json) == 0
        shown = capsys.readouterr().out
        assert "2026-11-2" in shown or what == "preferences"
        assert "corrupt" not in shown.lower()
    if what == "costs":
        assert inspect(paths.project, what, as_json=True) == 0
        costs = loads_exact(capsys.readouterr().out)
        assert (
            Budget.model_validate(costs["budget"]).daily_limit
            == Budget(daily_limit="0.2").daily_limit
        )


def _shapes(folder: Path) -> dict[str, set[Any]]:
    """Each file's kinds of line and the fields each kind carries (not the values)."""
    shapes: dict[str, set[Any]] = {}
    logs = {
        "ledger": sorted((folder / "ledger").glob("*.jsonl")),
        "journal": sorted((folder / "journal").glob("*.jsonl")),
        "archive/live.jsonl": [folder / "archive" / "live.jsonl"],
        "archive/sessions": sorted((folder / "archive").glob("sessions-*.jsonl.gz")),
    }
    for name, paths in logs.items():
        shapes[name] = set()
        for path in paths:
            for line in _lines(path):
                value = loads_exact(line)
                nested = {
                    key: tuple(sorted(item))
                    for key, item in value.items()
                    if isinstance(item, dict)
                }
                shapes[name].add(
                    (value.get("kind"), tuple(sorted(value)), tuple(sorted(nested.items())))
                )
    for name in (*DOCUMENTS, "ledger/checkpoint.json"):
        value = loads_exact((folder / name).read_bytes())
        shapes[name] = {tuple(sorted(value))}
    return shapes


def test_this_versions_writers_write_what_the_current_golden_files_show(tmp_path: Path) -> None:
    """The real writers run again write every kind and field `golden/current` shows, no other."""
    generate(tmp_path / "now")
    written, golden = _shapes(tmp_path / "now"), _shapes(GOLDEN / "current")
    for name in golden:
        assert written[name] == golden[name], (
            f"{name}: the writers changed its format; run "
            "`PYTHONPATH=$PWD python tests/golden/make_golden.py current`, "
            "keep the 0.1.0 files readable, and say so in docs/storage.md"
        )


def test_the_ledger_is_read_by_the_archiver_as_the_ledger_reads_it() -> None:
    """Every `op` line of the golden ledgers is an operation the archiver's reader recognises."""
    for version in VERSIONS:
        lines = _lines(GOLDEN / version / "ledger" / "2026-11.jsonl")
        operations = [r for r in map(decode_ledger_line, lines) if isinstance(r, LedgerOperation)]
        assert len(operations) == 4
        assert all(op.as_operation().request_id == op.id for op in operations)


def test_an_old_archiver_checkpoint_line_reads_as_the_new_one() -> None:
    """0.1.0's `k`/`at` checkpoint becomes `kind`/`ts` with the same entry."""
    old = next(_lines(GOLDEN / "0.1.0" / "archive" / "live.jsonl"))
    assert b'"k":"checkpoint"' in old
    record = decode_history_journal_line(old)
    assert isinstance(record, HistoryCheckpoint) and record.ts is not None
    assert record.entry.session_id == "2026-11-21-090000"


def test_every_current_golden_file_and_line_satisfies_its_committed_schema() -> None:
    """What this version writes validates against `protocol/schemas/` (for other languages)."""
    from test_schemas import SCHEMAS, _validate

    folder = GOLDEN / "current"
    by_schema: dict[str, list[Any]] = {
        "line.ledger": [loads_exact(x) for x in _lines(folder / "ledger" / "2026-11.jsonl")],
        "line.session_journal": [
            loads_exact(line)
            for path in sorted((folder / "journal").glob("*.jsonl"))
            for line in _lines(path)
        ],
        "line.history_journal": [loads_exact(x) for x in _lines(folder / "archive/live.jsonl")],
        "record.history_entry": [
            loads_exact(x) for x in _lines(folder / "archive" / "sessions-2026.jsonl.gz")
        ],
        "file.ledger_checkpoint": [loads_exact((folder / "ledger/checkpoint.json").read_bytes())],
        "file.current": [loads_exact((folder / "current.json").read_bytes())],
        "file.preferences": [loads_exact((folder / "preferences.json").read_bytes())],
        "file.costs": [loads_exact((folder / "costs.json").read_bytes())],
        "file.history": [loads_exact((folder / "history.json").read_bytes())],
    }
    for stem, instances in by_schema.items():
        assert instances, stem
        for instance in instances:
            _validate(instance, SCHEMAS[stem], SCHEMAS[stem])
