"""Atomic replacement of one JSON data file, and its careful reading.

A save writes a temp file in the same folder, fsyncs it, renames it over the
target and fsyncs the folder: after a crash at any point the file is the
whole old document or the whole new one. Retries come from tenacity; the final
failure is returned as a `SaveOutcome`, never swallowed and never raised past
the caller who must show it. A file that does not parse is moved aside to
`NAME.corrupt-<UTC>` (never overwritten, never deleted) and reported.

One file has one writing process (docs/protocol.md): only that process
constructs an `AtomicJsonFile` with `writer=True`, which also removes temp
files left by a crashed predecessor.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from config import default_value
from protocol.base import STORED_CONTEXT
from protocol.codec import dumps_pretty, loads_exact
from services.store.fileops import FileOps, ensure_private_dir

__all__ = [
    "AtomicJsonFile",
    "LoadOutcome",
    "RetryPolicy",
    "SaveOutcome",
    "corrupt_name",
    "previous_name",
    "read_document",
]

M = TypeVar("M", bound=BaseModel)

_counter = itertools.count()
_pid = os.getpid()
"""This process's id, for temp names; a forked child refreshes it (no getpid(2) per save)."""


def _forked() -> None:
    global _pid  # noqa: PLW0603 - one per-process value, reset in the child after fork
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)

AttemptFailed = Callable[[int, int, BaseException], None]
"""Called with (attempt, max_attempts, error) after each failed try."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a save tries before it reports failure."""

    attempts: int = int(default_value("store", "attempts"))
    wait_initial_s: float = float(default_value("store", "wait_initial_s"))
    wait_max_s: float = float(default_value("store", "wait_max_s"))


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    """What a save did; `ok=False` carries the last error for the status bar.

    Slotted: one is built per save, and a frozen dataclass with slots is
    built ~0.5 µs faster.
    """

    ok: bool
    attempts: int
    saved_at: datetime | None = None
    bytes_written: int = 0
    error: str | None = None


@dataclass(frozen=True)
class LoadOutcome(Generic[M]):
    """What a read found: a document, nothing, or a corrupt file moved aside."""

    status: Literal["ok", "missing", "corrupt"]
    value: M | None = None
    moved_to: Path | None = None
    error: str | None = None
    cleaned: list[Path] = field(default_factory=list)
    previous: M | None = None
    """For a corrupt file: the previous good generation (`NAME.prev`), if it reads."""


def corrupt_name(path: Path, when: datetime) -> Path:
    """`NAME.corrupt-<UTC timestamp>`, with a counter if that name is taken."""
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    for n in itertools.count(1):
        if not candidate.exists():
            return candidate
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    raise AssertionError("unreachable")  # pragma: no cover


def previous_name(path: Path) -> Path:
    """`NAME.prev`: the generation before the current one."""
    return path.with_name(f"{path.name}.prev")


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def read_document(path: Path, model: type[M], *, ops: FileOps | None = None) -> LoadOutcome[M]:
    """Read and validate `path` without changing anything (for readers, not owners).

    A file that exists but cannot be read (a folder in its place, permission
    denied, an I/O error) is reported as corrupt, like one that does not parse:
    either way its owner must move it aside and carry on.
    """
    try:
        data = (ops or FileOps()).read_bytes(path)
    except FileNotFoundError:
        return LoadOutcome(status="missing")
    except OSError as exc:
        return LoadOutcome(status="corrupt", error=f"unreadable: {_short(exc)}")
    try:
        return LoadOutcome(
            status="ok", value=model.model_validate(loads_exact(data), context=STORED_CONTEXT)
        )
    except (ValueError, ValidationError, UnicodeDecodeError) as exc:
        return LoadOutcome(status="corrupt", error=_short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class AtomicJsonFile:
    """One JSON data file, replaced atomically by its single owner."""

    def __init__(
        self,
        path: Path,
        *,
        retry: RetryPolicy | None = None,
        ops: FileOps | None = None,
        writer: bool = True,
    ) -> None:
        self.path = path
        self.retry = retry or RetryPolicy()
        self.ops = ops or FileOps()
        self.cleaned: list[Path] = []
        if writer:
            ensure_private_dir(path.parent)
            self.cleaned = self.clean_leftovers()

    @property
    def path(self) -> Path:
        """The data file this object replaces."""
        return self._path

    @path.setter
    def path(self, path: Path) -> None:
        # Every name a save uses, built once: a `Path` per save (with_name,
        # parent, str) cost ~10 µs, a seventh of an fsync on a fast disk.
        self._path = path
        self._folder = path.parent
        self._target = os.fspath(path)
        self._previous = os.fspath(previous_name(path))
        self._temp_stem = os.path.join(os.fspath(path.parent), _temp_prefix(path))
        # True while the file at `path` is the one this object's last save
        # renamed into place, with no other name: its next `.prev` link then
        # moves by rename and leaves no temp name to drop (see keep_previous).
        self._sole_name = False

    def clean_leftovers(self) -> list[Path]:
        """Remove temp files a crashed save left behind (only the owner may)."""
        removed = []
        prefix = _temp_prefix(self.path)
        for entry in self.path.parent.iterdir():
            if entry.name.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
        return removed

    def load(self, model: type[M]) -> LoadOutcome[M]:
        """Read the document; a file that does not parse is moved aside and reported.

        If even the move fails (a read-only folder), the outcome is still
        "corrupt" with `moved_to=None`: the caller carries on from defaults or
        a rebuild, and its next save reports the real trouble.
        """
        outcome = read_document(self.path, model, ops=self.ops)
        if outcome.status != "corrupt":
            return LoadOutcome(
                status=outcome.status, value=outcome.value, cleaned=list(self.cleaned)
            )
        previous = read_document(previous_name(self.path), model, ops=self.ops).value
        aside = corrupt_name(self.path, datetime.now(UTC))
        target: Path | None = aside
        error = outcome.error
        try:
            # Rename is atomic and never overwrites: `corrupt_name` picked a free
            # name. It also moves a folder that sits where the file should be.
            os.rename(self.path, aside)
            self.ops.fsync_dir(self.path.parent)
        except OSError as exc:
            target, error = None, f"{error}; could not move it aside: {_short(exc)}"
        return LoadOutcome(
            status="corrupt",
            moved_to=target,
            error=error,
            cleaned=list(self.cleaned),
            previous=previous,
        )

    def save(
        self, value: BaseModel | dict[str, Any], *, on_attempt_failed: AttemptFailed | None = None
    ) -> SaveOutcome:
        """Serialise (indented, human-readable) and replace the file atomically."""
        try:
            data = dumps_pretty(value)
        except TypeError as exc:  # e.g. an integer beyond 64 bits in an unknown field
            return SaveOutcome(ok=False, attempts=0, error=f"cannot encode: {_short(exc)}")
        return self.save_bytes(data, on_attempt_failed=on_attempt_failed)

    def save_bytes(
        self, data: bytes, *, on_attempt_failed: AttemptFailed | None = None
    ) -> SaveOutcome:
        """Replace the file with `data`, retrying per policy; never raises OSError.

        The first attempt runs directly, so a save that succeeds at once (nearly
        every save) pays nothing for the retry machinery: tenacity's set-up
        and bookkeeping cost ~30 µs a save, beside a ~70 µs fsync on a fast
        disk. The first OSError hands over to tenacity, which counts it as
        attempt 1 and applies the whole policy from there (waits, stop,
        reraise): the same attempts, waits and reports as a loop run by
        tenacity from the start. `on_attempt_failed` hears of each failure,
        the last one too.
        """
        try:
            self._replace_once(data)
        except OSError as exc:
            first = exc
        else:
            return SaveOutcome(
                ok=True, attempts=1, saved_at=datetime.now(UTC), bytes_written=len(data)
            )
        return self._retry(data, first, on_attempt_failed)

    def _retry(
        self, data: bytes, first: OSError, on_attempt_failed: AttemptFailed | None
    ) -> SaveOutcome:
        """Attempts 2 and on, under tenacity; attempt 1 failed with `first`."""
        attempts = max(1, self.retry.attempts)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if on_attempt_failed is not None and error is not None:
                on_attempt_failed(state.attempt_number, attempts, error)

        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(
                multiplier=self.retry.wait_initial_s,
                min=self.retry.wait_initial_s,
                max=self.retry.wait_max_s,
            ),
            retry=retry_if_exception_type(OSError),
            before_sleep=before_sleep,
            reraise=True,
        )
        made: OSError | None = first  # attempt 1, already made by save_bytes
        tries = 0
        try:
            for attempt in retrying:
                with attempt:
                    tries = attempt.retry_state.attempt_number
                    if made is not None:
                        error, made = made, None
                        raise error
                    self._replace_once(data)
        except OSError as exc:
            if on_attempt_failed is not None:
                on_attempt_failed(tries, attempts, exc)
            return SaveOutcome(ok=False, attempts=tries, error=_short(exc))
        return SaveOutcome(
            ok=True, attempts=tries, saved_at=datetime.now(UTC), bytes_written=len(data)
        )

    def _replace_once(self, data: bytes) -> None:
        ops = self.ops
        temp = f"{self._temp_stem}{_pid}-{next(_counter)}"
        fd = ops.open_new(temp)
        try:
            try:
                ops.write_all(fd, data)
                ops.fsync(fd)
            finally:
                ops.close(fd)
            # Both renames land in the one folder fsync that ends the save.
            sole, self._sole_name = self._sole_name, False
            ops.keep_previous(
                self._target, f"{temp}-prev", self._previous, may_share_inode=not sole
            )
            ops.replace(temp, self._target)
            self._sole_name = True
        except BaseException:
            # The old document is untouched; drop our half-written copy.
            with contextlib.suppress(OSError):
                Path(temp).unlink()
            raise
        ops.fsync_dir(self._folder)
