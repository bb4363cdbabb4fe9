"""Run a workload under the recorder, then check every crash state it could leave.

`explore(workload, size, workdir)` records one run, turns every recorded
step into its crash states (`bench.crashfs.crash_states`), drops states
already seen (the same bytes reached another way), materialises each new one
in a scratch folder and runs the workload's check on it. Every
`restart_every`-th state also gets a full worker restart; the others the
worker's read-only recovery (same replay, a fraction of the cost).

The checks run with `fsync` switched off (`_no_fsync`): a state is thrown
away after its check, so the durability of the check's own writes proves
nothing, and skipping it makes each check ~5x faster. The scratch folder is
on tmpfs (`/dev/shm`) when there is one, for the same reason.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.crash_workloads import WORKLOADS, Workload, WorkloadRun
from bench.crashfs import crash_states, materialise
from services.store.fileops import FileOps

__all__ = ["CrashReport", "explore"]


@dataclass
class CrashReport:
    """What one exploration covered and found."""

    workload: str
    steps: int = 0
    generated: int = 0
    checked: int = 0
    restarts: int = 0
    acknowledged: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for a person."""
        return (
            f"{self.workload}: {self.steps} steps, {self.generated} crash states "
            f"({self.checked} distinct, checked; {self.restarts} with a full restart), "
            f"{self.acknowledged} ops acknowledged, {len(self.problems)} problems"
        )


@contextlib.contextmanager
def _no_fsync() -> Iterator[None]:
    saved = FileOps.fsync, FileOps.fsync_dir

    def skip(_ops: FileOps, _target: Any) -> None:
        return None

    FileOps.fsync = skip  # type: ignore[method-assign,assignment]
    FileOps.fsync_dir = skip  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        FileOps.fsync, FileOps.fsync_dir = saved  # type: ignore[method-assign]


def _scratch_root(workdir: Path) -> Path:
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs on purpose; a private mkdtemp inside
    if shm.is_dir():
        return Path(tempfile.mkdtemp(prefix="crash-states-", dir=shm))
    return workdir


def explore(
    name: str, size: int, workdir: Path, *, restart_every: int = 25, max_states: int | None = None
) -> CrashReport:
    """Record workload `name` at `size` in `workdir`, then check its crash states."""
    workload = WORKLOADS[name]
    report = CrashReport(workload=name)
    live = workdir / "live"
    run = workload.run(live, size)
    report.steps = len(run.recorder.snapshots)
    report.acknowledged = len(run.acknowledged)
    drift = run.recorder.verify()
    if drift:
        report.problems.append(f"the model and the disk disagree: {drift[:3]}")
        return report
    root = _scratch_root(workdir)
    try:
        with _no_fsync():
            _check_states(
                workload,
                run=run,
                scratch=root / "state",
                report=report,
                restart_every=restart_every,
                max_states=max_states,
            )
    finally:
        shutil.rmtree(root / "state", ignore_errors=True)
        if root != workdir:
            shutil.rmtree(root, ignore_errors=True)
    return report


def _check_states(
    workload: Workload,
    *,
    run: WorkloadRun,
    scratch: Path,
    report: CrashReport,
    restart_every: int,
    max_states: int | None,
) -> None:
    seen: set[str] = set()
    for snapshot in run.recorder.snapshots:
        for state in crash_states(snapshot):
            report.generated += 1
            digest = f"{state.acked}:{state.digest()}"
            if digest in seen:
                continue
            seen.add(digest)
            if max_states is not None and report.checked >= max_states:
                return
            report.checked += 1
            report.kinds[state.kind.split(" ")[0].split("@")[0]] += 1
            shutil.rmtree(scratch, ignore_errors=True)
            project = materialise(state, scratch, workload.folders)
            restart = report.checked % restart_every == 0
            report.restarts += restart
            try:
                found = workload.check(project, run.acknowledged[: state.acked], restart)
            except Exception as exc:  # a crash of the recovery is a finding, not an abort
                found = [f"recovery raised {type(exc).__name__}: {exc}"]
            report.problems.extend(
                f"step {state.step} ({snapshot.label}), {state.kind}: {problem}"
                for problem in found
            )
