"""Where everything of one project lives (docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["WATCHED_FOLDERS", "ProjectPaths"]

WATCHED_FOLDERS: tuple[str, ...] = ("manuscript", "reference", "planning", "output")
"""The project folders the file watcher reports on, recursively."""


@dataclass(frozen=True)
class ProjectPaths:
    """The `.session/` layout of one project; pure path arithmetic, no I/O."""

    project: Path

    @classmethod
    def of(cls, project: Path | str) -> ProjectPaths:
        """Paths for `project`, made absolute (symlinks resolved) once."""
        return cls(Path(project).expanduser().resolve())

    @property
    def session_dir(self) -> Path:
        """`.session/`: everything the service stores."""
        return self.project / ".session"

    @property
    def current(self) -> Path:
        """The session document snapshot."""
        return self.session_dir / "current.json"

    @property
    def preferences(self) -> Path:
        """The writer's preferences."""
        return self.session_dir / "preferences.json"

    @property
    def costs(self) -> Path:
        """The cost snapshot (totals, the session's operations, budget)."""
        return self.session_dir / "costs.json"

    @property
    def history(self) -> Path:
        """The last sessions, newest first."""
        return self.session_dir / "history.json"

    @property
    def history_gz(self) -> Path:
        """history.json, compressed once it passes the size limit."""
        return self.session_dir / "history.json.gz"

    @property
    def journal_dir(self) -> Path:
        """The session writer's journal segments."""
        return self.session_dir / "journal"

    @property
    def ledger_dir(self) -> Path:
        """The cost ledger's monthly JSON Lines files."""
        return self.session_dir / "ledger"

    @property
    def archive_dir(self) -> Path:
        """Sessions older than the history keeps, compressed."""
        return self.session_dir / "archive"

    @property
    def run_dir(self) -> Path:
        """Sockets, the lock and endpoints.json of the running service."""
        return self.session_dir / "run"

    @property
    def logs_dir(self) -> Path:
        """Rotated JSON-lines logs of the supervisor and each worker."""
        return self.session_dir / "logs"

    @property
    def endpoints(self) -> Path:
        """Written atomically when every worker is ready; removed on a clean stop."""
        return self.run_dir / "endpoints.json"

    @property
    def lock(self) -> Path:
        """Held (flock) by the one live supervisor of this project."""
        return self.run_dir / "supervisor.lock"

    def watched(self) -> list[Path]:
        """The watched folders, whether or not they exist yet."""
        return [self.project / name for name in WATCHED_FOLDERS]
