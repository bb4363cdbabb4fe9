"""`supervisor report [--out FILE] [--open] [--days N] [--json]`: the offline spend report.

Reads the files (ledger, budget, history), like `inspect`, so it works
whether or not the service runs; writes one HTML file atomically (0600, like
every file under `.session/`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from services.cli.exits import ExitCode
from services.cli.output import print_json

__all__ = ["DEFAULT_REPORT_NAME", "build_report", "report_command"]

DEFAULT_REPORT_NAME = "report.html"
"""Written in `.session/` unless `--out` says otherwise."""


def build_report(project: Path, out: Path, *, days: int) -> dict[str, Any]:
    """Gather the figures, write the page; a summary of what was written."""
    from services.report.figures import gather
    from services.report.page import render_page
    from services.runtime.paths import ProjectPaths
    from services.store.fileops import ensure_private_dir

    started = time.perf_counter()
    paths = ProjectPaths.of(project)
    figures = gather(paths, days=days)
    gathered = time.perf_counter()
    page = render_page(figures, project_name=paths.project.resolve().name)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.parent == paths.session_dir:
        ensure_private_dir(out.parent)
    _write_atomically(out, page.encode("utf-8"))
    finished = time.perf_counter()
    return {
        "path": str(out.resolve()),
        "days": [
            {"day": d.day.isoformat(), "total": d.total, "calls": d.calls} for d in figures.days
        ],
        "period_total": figures.period_total,
        "month_to_date": figures.month_to_date,
        "projection": figures.projection,
        "daily_limit": figures.daily_limit,
        "monthly_limit": figures.monthly_limit,
        "by_model": figures.by_model,
        "by_operation": figures.by_operation,
        "sessions": len(figures.sessions),
        "bytes": len(page.encode("utf-8")),
        "read_s": round(gathered - started, 4),
        "build_s": round(finished - started, 4),
    }


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: a reader never sees half a report."""
    import os

    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    temp.replace(path)


def report_command(options: argparse.Namespace) -> int:
    """`supervisor report`."""
    from services.runtime.paths import ProjectPaths

    project: Path = options.project
    if not project.is_dir():
        print(f"supervisor: {project} is not a folder (no project there)", file=sys.stderr)
        return ExitCode.FAILURE
    out: Path = options.out or ProjectPaths.of(project).session_dir / DEFAULT_REPORT_NAME
    summary = build_report(project, out, days=options.days)
    if options.json:
        print_json(summary)
    else:
        print(
            f"Report written to {summary['path']} ({summary['bytes'] / 1024:.0f} KB, "
            f"{len(summary['days'])} days, built in {summary['build_s'] * 1000:.0f} ms)"
        )
    if options.open:
        import webbrowser

        if not webbrowser.open(Path(summary["path"]).as_uri()):
            print("supervisor: no browser to open it with; open the file above", file=sys.stderr)
    return ExitCode.OK
