"""services.store.atomic: a data file is always the whole old or the whole new document."""

from __future__ import annotations

import errno
import os
import random
import select
import signal
import stat
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SpawnPython

from protocol import Preferences, dumps_pretty, loads_exact
from services.store import (
    DATA_FILE_MODE,
    DIR_MODE,
    AtomicJsonFile,
    FileOps,
    JsonLinesLog,
    RetryPolicy,
    corrupt_name,
    read_document,
)

OLD = Preferences(theme="old")
NEW = Preferences(theme="new " + "n" * 3000)
OLD_BYTES = dumps_pretty(OLD)
NEW_BYTES = dumps_pretty(NEW)
WRITE_CHUNK = len(NEW_BYTES) // 3 + 1  # three write calls: two short ones, then the rest
ONE_TRY = RetryPolicy(attempts=1, wait_initial_s=0, wait_max_s=0)

# Every syscall of one save, in order; a test below fails if the store adds a step.
STEPS = [
    ("open_new", 0),
    ("write", 0),
    ("write", 1),
    ("write", 2),
    ("fsync", 0),
    ("close", 0),
    ("replace", 0),
    ("fsync_dir", 0),
]
STEP_IDS = [f"{name}#{occurrence}" for name, occurrence in STEPS]
BEFORE_RENAME = {"open_new", "write", "fsync", "close", "replace"}


class SimulatedCrashError(BaseException):
    """The process 'dies' here: not an Exception, so no retry or handler may swallow it."""


class FaultyOps(FileOps):
    """Real file operations that record each step and fail the chosen one.

    Writes are cut to `WRITE_CHUNK` bytes, so a save takes several (short)
    write calls and a failure can land between them.
    """

    def __init__(
        self,
        fail_at: tuple[str, int] | None = None,
        error: Callable[[str], BaseException] | None = None,
        times: int = 1,
    ) -> None:
        self.fail_at = fail_at
        self.error = error or (lambda step: OSError(errno.EIO, f"injected EIO at {step}"))
        self.times = times
        self.calls: list[str] = []

    def _step(self, name: str) -> None:
        occurrence = self.calls.count(name)
        self.calls.append(name)
        if self.times > 0 and self.fail_at == (name, occurrence):
            self.times -= 1
            raise self.error(f"{name}#{occurrence}")

    def open_new(self, path: Path) -> int:
        self._step("open_new")
        return super().open_new(path)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self._step("write")
        return super().write(fd, data[:WRITE_CHUNK])

    def fsync(self, fd: int) -> None:
        self._step("fsync")
        super().fsync(fd)

    def close(self, fd: int) -> None:
        super().close(fd)  # close(2) releases the descriptor even when it reports an error
        self._step("close")

    def replace(self, source: Path, target: Path) -> None:
        self._step("replace")
        super().replace(source, target)

    def fsync_dir(self, folder: Path) -> None:
        self._step("fsync_dir")
        super().fsync_dir(folder)


class FlakyOps(FileOps):
    """Fails the first `failures` calls of `step` with a transient OSError."""

    def __init__(self, step: str, failures: int) -> None:
        self.step = step
        self.failures = failures

    def _maybe_fail(self, name: str) -> None:
        if name == self.step and self.failures > 0:
            self.failures -= 1
            raise OSError(errno.EAGAIN, f"transient failure of {name}")

    def open_new(self, path: Path) -> int:
        self._maybe_fail("open_new")
        return super().open_new(path)

    def fsync(self, fd: int) -> None:
        self._maybe_fail("fsync")
        super().fsync(fd)

    def replace(self, source: Path, target: Path) -> None:
        self._maybe_fail("replace")
        super().replace(source, target)


def _temps(folder: Path, name: str = "preferences.json") -> list[Path]:
    return sorted(folder.glob(f".{name}.tmp-*"))


def _prepare(folder: Path, old_exists: bool) -> Path:
    path = folder / "preferences.json"
    AtomicJsonFile(path)  # creates the private folder
    if old_exists:
        path.write_bytes(OLD_BYTES)
    return path


def _assert_whole(path: Path, old_exists: bool) -> bytes | None:
    """The file is the whole old document, the whole new one, or (if it never existed) absent."""
    if not path.exists():
        assert not old_exists, "a file that existed went missing"
        return None
    data = path.read_bytes()
    assert data in {OLD_BYTES, NEW_BYTES} if old_exists else data == NEW_BYTES
    return data


# --- crash points ---------------------------------------------------------------


def test_a_save_makes_exactly_the_expected_steps(tmp_path: Path) -> None:
    """One save opens, writes (short writes here), fsyncs, closes, renames, fsyncs the folder."""
    ops = FaultyOps()
    outcome = AtomicJsonFile(tmp_path / "preferences.json", ops=ops).save(NEW)
    assert outcome.ok
    assert [(name, ops.calls[:i].count(name)) for i, name in enumerate(ops.calls)] == STEPS


@pytest.mark.parametrize("old_exists", [True, False], ids=["overwrite", "create"])
@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
def test_os_error_at_any_step_leaves_a_whole_document(
    session_dir: Path, step: tuple[str, int], old_exists: bool
) -> None:
    """An OSError at any step reports failure, leaves a whole document and no temp file."""
    path = _prepare(session_dir, old_exists)
    errors: list[tuple[int, int, str]] = []
    store = AtomicJsonFile(path, ops=FaultyOps(fail_at=step), retry=ONE_TRY)
    outcome = store.save(NEW, on_attempt_failed=lambda a, m, e: errors.append((a, m, str(e))))
    assert not outcome.ok
    assert outcome.attempts == 1
    assert outcome.error is not None
    assert "injected EIO" in outcome.error
    assert errors == [(1, 1, f"[Errno 5] injected EIO at {step[0]}#{step[1]}")]
    data = _assert_whole(path, old_exists)
    if step[0] in BEFORE_RENAME:
        assert data == (OLD_BYTES if old_exists else None)
    else:
        assert data == NEW_BYTES  # renamed, but the folder fsync failed: reported, not hidden
    assert _temps(path.parent) == []
    assert AtomicJsonFile(path).cleaned == []  # the failed save cleaned up after itself


@pytest.mark.parametrize("old_exists", [True, False], ids=["overwrite", "create"])
@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
def test_transient_os_error_at_any_step_is_retried_to_success(
    session_dir: Path, step: tuple[str, int], old_exists: bool, fast_retry: RetryPolicy
) -> None:
    """With retries, one failure at any step still ends with the new document, on attempt 2."""
    path = _prepare(session_dir, old_exists)
    outcome = AtomicJsonFile(path, ops=FaultyOps(fail_at=step), retry=fast_retry).save(NEW)
    assert outcome.ok
    assert outcome.attempts == 2
    assert path.read_bytes() == NEW_BYTES
    assert _temps(path.parent) == []


@pytest.mark.parametrize("old_exists", [True, False], ids=["overwrite", "create"])
@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
def test_dying_at_any_step_leaves_a_whole_document(
    session_dir: Path, step: tuple[str, int], old_exists: bool, fast_retry: RetryPolicy
) -> None:
    """A BaseException (the process dying) at any step propagates, untried; the file is whole."""
    path = _prepare(session_dir, old_exists)
    ops = FaultyOps(fail_at=step, error=SimulatedCrashError)
    with pytest.raises(SimulatedCrashError):
        AtomicJsonFile(path, ops=ops, retry=fast_retry).save(NEW)
    assert ops.calls.count("open_new") == 1, "a dying process must not be retried"
    data = _assert_whole(path, old_exists)
    assert data == (NEW_BYTES if step[0] == "fsync_dir" else OLD_BYTES if old_exists else None)
    restarted = AtomicJsonFile(path)
    assert _temps(path.parent) == []
    assert restarted.load(Preferences).status == ("ok" if data else "missing")


@pytest.mark.parametrize("old_exists", [True, False], ids=["overwrite", "create"])
@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
def test_real_process_death_at_any_step_then_restart_cleans_up(
    session_dir: Path, step: tuple[str, int], old_exists: bool
) -> None:
    """A process dying at any step leaves a whole file, and the next owner removes its temp."""
    path = _prepare(session_dir, old_exists)

    def die(_: str) -> BaseException:
        os._exit(86)  # no cleanup, no finally: what kill -9 does

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            AtomicJsonFile(path, ops=FaultyOps(fail_at=step, error=die), retry=ONE_TRY).save(NEW)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 86
    data = _assert_whole(path, old_exists)
    leftovers = _temps(path.parent)
    if step[0] in {"write", "fsync", "close", "replace"}:
        assert len(leftovers) == 1  # the dead process's half- or fully-written copy
    restarted = AtomicJsonFile(path)
    assert sorted(restarted.cleaned) == leftovers
    assert _temps(path.parent) == []
    loaded = restarted.load(Preferences)
    assert loaded.status == ("ok" if data else "missing")
    assert loaded.cleaned == leftovers
    if data is not None:
        assert loaded.value is not None
        assert loaded.value.theme in {OLD.theme, NEW.theme}


def test_owner_removes_only_its_own_temp_files(session_dir: Path) -> None:
    """Leftover cleanup removes `.NAME.tmp-*` of its file only, never another file's or data."""
    folder = session_dir
    folder.mkdir(parents=True)
    mine = folder / ".preferences.json.tmp-4242-0"
    theirs = folder / ".costs.json.tmp-4242-0"
    kept = [theirs, folder / "preferences.json.corrupt-20260101T000000000000Z", folder / "notes"]
    for file in [mine, *kept]:
        file.write_bytes(b"{")
    store = AtomicJsonFile(folder / "preferences.json")
    assert store.cleaned == [mine]
    assert not mine.exists()
    assert all(file.exists() for file in kept)


def test_a_reader_never_removes_temp_files(session_dir: Path) -> None:
    """Only the writing owner cleans up: a reader (writer=False) leaves temp files alone."""
    folder = session_dir
    folder.mkdir(parents=True)
    temp = folder / ".preferences.json.tmp-1-0"
    temp.write_bytes(b"{}")
    reader = AtomicJsonFile(folder / "preferences.json", writer=False)
    assert reader.cleaned == []
    assert temp.exists()


# --- retries ---------------------------------------------------------------------


@pytest.mark.parametrize("step", ["open_new", "fsync", "replace"])
@pytest.mark.parametrize("failures", [1, 2])
def test_transient_errors_are_retried_until_success(
    tmp_path: Path, step: str, failures: int, fast_retry: RetryPolicy
) -> None:
    """A save that fails once or twice with an OSError succeeds on attempt 2 or 3 and says so."""
    path = tmp_path / "preferences.json"
    calls: list[tuple[int, int, BaseException]] = []
    store = AtomicJsonFile(path, ops=FlakyOps(step, failures), retry=fast_retry)
    outcome = store.save(NEW, on_attempt_failed=lambda *args: calls.append(args))
    assert outcome.ok
    assert outcome.attempts == failures + 1
    assert outcome.bytes_written == len(NEW_BYTES)
    assert outcome.saved_at is not None
    assert path.read_bytes() == NEW_BYTES
    assert [(attempt, limit) for attempt, limit, _ in calls] == [
        (n, 3) for n in range(1, failures + 1)
    ]
    assert all(isinstance(error, OSError) for _, _, error in calls)


def test_permanent_failure_is_reported_after_three_attempts(
    tmp_path: Path, fast_retry: RetryPolicy
) -> None:
    """A save that always fails returns ok=False after 3 attempts, reporting every failure."""
    path = tmp_path / "preferences.json"
    path.write_bytes(OLD_BYTES)
    calls: list[tuple[int, int, BaseException]] = []
    store = AtomicJsonFile(path, ops=FlakyOps("fsync", 99), retry=fast_retry)
    outcome = store.save(NEW, on_attempt_failed=lambda *args: calls.append(args))
    assert outcome.ok is False
    assert outcome.attempts == 3
    assert outcome.saved_at is None
    assert outcome.error is not None
    assert "transient failure of fsync" in outcome.error
    assert [(attempt, limit) for attempt, limit, _ in calls] == [(1, 3), (2, 3), (3, 3)]
    assert all("transient failure" in str(error) for _, _, error in calls)
    assert path.read_bytes() == OLD_BYTES
    assert _temps(tmp_path) == []


def test_permanent_failure_without_a_callback_still_returns_the_outcome(
    tmp_path: Path, fast_retry: RetryPolicy
) -> None:
    """A save never raises an OSError at its caller; the outcome carries the error."""
    store = AtomicJsonFile(tmp_path / "p.json", ops=FlakyOps("open_new", 99), retry=fast_retry)
    outcome = store.save({"a": 1})
    assert (outcome.ok, outcome.attempts) == (False, 3)


def test_retries_wait_between_attempts_per_policy(tmp_path: Path) -> None:
    """The policy's wait is honoured: two retries of 20 ms take at least 40 ms."""
    policy = RetryPolicy(attempts=3, wait_initial_s=0.02, wait_max_s=0.02)
    store = AtomicJsonFile(tmp_path / "p.json", ops=FlakyOps("open_new", 2), retry=policy)
    started = time.monotonic()
    assert store.save({"a": 1}).attempts == 3
    assert time.monotonic() - started >= 0.04


# --- corrupt files ---------------------------------------------------------------

_CORRUPT_CONTENTS = [
    pytest.param(b'{"theme": "dark", "colo', id="truncated"),
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
    pytest.param(b'{"autosave_interval_s": "soon"}', id="invalid-value"),
    pytest.param(b"[1, 2, 3]", id="not-an-object"),
]


@pytest.mark.parametrize("content", _CORRUPT_CONTENTS)
def test_corrupt_file_is_moved_aside_and_reported(session_dir: Path, content: bytes) -> None:
    """A file that does not parse is renamed to NAME.corrupt-<UTC>, kept intact, and reported."""
    path = session_dir / "preferences.json"
    store = AtomicJsonFile(path)
    path.write_bytes(content)
    before = datetime.now(UTC).strftime("%Y%m%dT")
    outcome = store.load(Preferences)
    assert outcome.status == "corrupt"
    assert outcome.value is None
    assert outcome.error
    assert outcome.moved_to is not None
    assert outcome.moved_to.parent == path.parent
    assert outcome.moved_to.name.startswith(f"preferences.json.corrupt-{before}")
    assert outcome.moved_to.name.endswith("Z")
    assert outcome.moved_to.read_bytes() == content
    assert not path.exists()
    assert store.load(Preferences).status == "missing"


def test_two_corruptions_in_a_row_give_two_files(tmp_path: Path) -> None:
    """A second corrupt file never overwrites the first one moved aside."""
    path = tmp_path / "preferences.json"
    store = AtomicJsonFile(path)
    path.write_bytes(b"first {")
    first = store.load(Preferences).moved_to
    assert store.save(OLD).ok
    path.write_bytes(b"second {")
    second = store.load(Preferences).moved_to
    assert first is not None
    assert second is not None
    assert first != second
    assert first.read_bytes() == b"first {"
    assert second.read_bytes() == b"second {"


def test_corrupt_name_never_reuses_a_taken_name(tmp_path: Path) -> None:
    """Two corruptions within the same microsecond still get distinct names."""
    path = tmp_path / "costs.json"
    moment = datetime(2026, 11, 23, 14, 30, 22, 123456, tzinfo=UTC)
    first = corrupt_name(path, moment)
    assert first.name == "costs.json.corrupt-20261123T143022123456Z"
    first.write_bytes(b"x")
    second = corrupt_name(path, moment)
    assert second != first
    assert second.name.startswith(first.name)
    assert not second.exists()


def test_a_reader_reports_corruption_without_moving_the_file(tmp_path: Path) -> None:
    """`read_document` (for readers such as `inspect`) reports corrupt but changes nothing."""
    path = tmp_path / "preferences.json"
    path.write_bytes(b"{oops")
    outcome = read_document(path, Preferences)
    assert outcome.status == "corrupt"
    assert outcome.moved_to is None
    assert path.read_bytes() == b"{oops"


def test_load_of_a_good_file_returns_the_document(tmp_path: Path) -> None:
    """A saved document loads back as the same model."""
    path = tmp_path / "preferences.json"
    store = AtomicJsonFile(path)
    assert store.save(NEW).ok
    outcome = store.load(Preferences)
    assert outcome.status == "ok"
    assert outcome.value == NEW


def test_save_writes_indented_human_readable_json(tmp_path: Path) -> None:
    """The file on disk is the indented form a person can read, ending with a newline."""
    path = tmp_path / "preferences.json"
    AtomicJsonFile(path).save({"theme": "dark", "confirm_above": loads_exact(b"0.10")})
    assert path.read_text(encoding="utf-8") == '{\n  "theme": "dark",\n  "confirm_above": 0.1\n}\n'


def test_deeply_nested_file_is_moved_aside_as_corrupt(tmp_path: Path) -> None:
    """A data file nested too deeply to parse is treated as corrupt, not a crash."""
    path = tmp_path / "preferences.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    assert AtomicJsonFile(path).load(Preferences).status == "corrupt"


# --- permissions -------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_data_files_are_0600_and_folders_0700(session_dir: Path, umask: int) -> None:
    """Whatever the umask, saved data files are private (0600) in a private folder (0700)."""
    previous = os.umask(umask)
    try:
        folder = session_dir
        path = folder / "current.json"
        assert AtomicJsonFile(path).save({"a": 1}).ok
        log = JsonLinesLog(folder / "journal" / "session.jsonl")
        log.append({"a": 1})
        log.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == DATA_FILE_MODE == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == DIR_MODE == 0o700
    assert stat.S_IMODE((folder / "journal").stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "journal" / "session.jsonl").stat().st_mode) == 0o600


def test_an_existing_open_folder_and_file_become_private(session_dir: Path) -> None:
    """A .session/ made 0755 and a data file made 0644 by hand are private after the next save."""
    folder = session_dir
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    path = folder / "preferences.json"
    path.write_bytes(OLD_BYTES)
    path.chmod(0o644)
    assert AtomicJsonFile(path).save(NEW).ok
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- a real crash --------------------------------------------------------------------


def _document(n: int) -> dict[str, Any]:
    return {"n": n, "payload": f"{n:08d}" * (50 + (n % 7) * 1500)}


_SAVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from services.store import AtomicJsonFile
    path, n = Path({path!r}), {start}
    store = AtomicJsonFile(path)
    while True:
        document = {{"n": n, "payload": f"{{n:08d}}" * (50 + (n % 7) * 1500)}}
        assert store.save(document).ok
        if n == {start}:
            os.write(1, b"saved\\n")
        n += 1
    """
)


def test_sigkill_during_saves_never_leaves_a_partial_file(
    session_dir: Path, spawn_python: SpawnPython
) -> None:
    """A process SIGKILLed while saving in a loop leaves a file that is one of its documents."""
    path = session_dir / "current.json"
    rng = random.Random(20261123)
    start = 0
    for _ in range(10):
        child = spawn_python(_SAVER.format(path=str(path), start=start))
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 15)
        assert ready, "the saver never reported its first save"
        assert child.stdout.readline() == b"saved\n"
        time.sleep(rng.uniform(0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        document = loads_exact(path.read_bytes())
        assert document == _document(document["n"])
        assert document["n"] >= start
        AtomicJsonFile(path)  # the next owner sweeps whatever temp file the kill left
        assert _temps(path.parent, "current.json") == []
        start = document["n"] + 1
