"""`supervisor watch [--json]`: a live status line, updated in place.

Driven by events: the line changes when the service publishes something
(`session.saved`, `cost.logged`, `worker.*`, `file.*`...), and only then asks
the service for the figures that event concerns. Once a second the line is
redrawn for the ages alone, which needs nothing from the service. On a
terminal the line is rewritten in place; elsewhere a line is printed per
change (and `--json` prints the state as one JSON document per change).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from config import default_value
from services.cli.control import query, running_pid
from services.cli.exits import ExitCode
from services.cli.feed import NotServing, open_feed
from services.cli.output import print_json
from services.cli.statusline import StatusLine

__all__ = ["REDRAW_S", "watch", "watch_command"]

REDRAW_S: Final = float(default_value("cli", "watch_redraw_s"))
"""The ages on the line are redrawn this often (nothing is asked of the service)."""


_UNANSWERED = (ConnectionError, TimeoutError, RuntimeError)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text.split(";", maxsplit=1)[0] if len(text) > 60 else text


class _Watcher:
    """The state of the line and how each event changes it."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.line = StatusLine()

    def refresh_session(self) -> None:
        try:
            self.line.apply_session_status(query(self.project, "session.status"))
            document = query(self.project, "session.get")
        except _UNANSWERED as exc:  # session_writer failed or restarting; the service stopping
            self.line.save_state = "unavailable"
            self.line.indicator = f"⚠ {_short(exc)}"
            return
        self.line.stage = str(document["current_state"]["stage"])

    def refresh_workers(self) -> None:
        with contextlib.suppress(*_UNANSWERED):  # stopping: the next quiet second says so
            self.line.apply_workers(query(self.project, "supervisor.status"))

    def refresh_all(self) -> None:
        from services.cost.render import costs_summary
        from services.runtime.paths import ProjectPaths

        self.refresh_session()
        self.refresh_workers()
        with contextlib.suppress(*_UNANSWERED):  # the next cost.logged brings the totals
            self.line.apply_totals(query(self.project, "cost.totals"))
        limit = costs_summary(ProjectPaths.of(self.project))["budget"].get("daily_limit")
        self.line.daily_limit = None if limit is None else Decimal(str(limit))

    def on_event(self, topic: str, data: dict[str, Any], at: datetime) -> bool:
        """Apply one event; True when the line may have changed."""
        if topic.startswith("file."):
            self.line.apply_file_event(topic, data, at)
        elif topic == "cost.logged":
            self.line.apply_totals(data.get("totals") or {})
        elif topic.startswith("session."):
            self.refresh_session()
        elif topic.startswith("worker."):
            self.refresh_workers()
        elif topic == "budget.warning":
            self.refresh_all()
        else:
            return False
        return True


def _columns() -> int:
    """The terminal's real width: a stale `COLUMNS` would cut or wrap the line."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return shutil.get_terminal_size().columns


class _Screen:
    """Where the line goes: rewritten in place on a terminal, appended elsewhere."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.in_place = sys.stdout.isatty() and not as_json
        self._last = ""

    def show(self, line: StatusLine, *, changed: bool) -> None:
        now = datetime.now(UTC)
        if self.as_json:
            if changed:
                print_json(line.document())
            return
        text = line.render(now)
        if self.in_place:
            width = max(20, _columns() - 1)
            sys.stdout.write("\r\x1b[2K" + text[:width])
            sys.stdout.flush()
        elif changed and text != self._last:
            print(text, flush=True)
        self._last = text

    def close(self) -> None:
        if self.in_place:
            sys.stdout.write("\n")
            sys.stdout.flush()


def watch(project: Path, *, as_json: bool) -> int:
    """Show the line until Ctrl-C (exit 0) or until the service stops (exit 0)."""
    try:
        feed = open_feed(project)
    except NotServing as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return ExitCode.NOT_RUNNING
    watcher = _Watcher(project)
    screen = _Screen(as_json)
    try:
        watcher.refresh_all()
        screen.show(watcher.line, changed=True)
        while True:
            got = feed.next(REDRAW_S)
            if got is None:  # a quiet second: only the ages move
                if running_pid(project) is None:
                    watcher.line.stopped = True
                    screen.show(watcher.line, changed=True)
                    return ExitCode.OK
                screen.show(watcher.line, changed=False)
                continue
            event, _ = got
            changed = watcher.on_event(event.topic, event.data, event.ts)
            screen.show(watcher.line, changed=changed)
    finally:
        screen.close()
        feed.close()


def watch_command(options: argparse.Namespace) -> int:
    """`supervisor watch`."""
    return watch(options.project, as_json=options.json)
