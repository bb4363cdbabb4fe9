"""Structured logging: JSON lines from every process, human lines on a terminal.

Workers log JSON lines to stderr; the supervisor reads those pipes and writes
each worker's lines to `.session/logs/<worker>.log` (one file, one writer,
and a crash's traceback is never lost). The supervisor's own lines go to
`.session/logs/supervisor.log`, rotated by size.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import MutableMapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

if TYPE_CHECKING:
    from logging.handlers import RotatingFileHandler

__all__ = ["RotatingLineFile", "configure_supervisor_logging", "configure_worker_logging"]

_SHARED: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_worker_logging(name: str, stream: TextIO | None = None) -> None:
    """JSON lines on stderr, read by the supervisor, each tagged with the worker."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *_SHARED,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(worker=name)


@cache
def _private_rotating_handler() -> type[RotatingFileHandler]:
    """The file handler class, defined on first use: `logging.handlers` is the
    supervisor's alone (workers log to stderr), and its imports are on every
    worker's cold start path otherwise (this module is shared with them)."""
    import logging.handlers

    class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
        """Log files are created 0600, like every file in `.session/` (docs/protocol.md)."""

        def _open(self) -> io.TextIOWrapper:
            fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            # A descriptor, not a path (PTH123 does not apply); the handler closes it.
            return open(fd, "a", encoding=self.encoding)  # noqa: PTH123

    return PrivateRotatingFileHandler


class RotatingLineFile:
    """Append lines to a file, rotating it by size (`name.log.1`, ...)."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._handler = _private_rotating_handler()(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, line: str) -> None:
        """Append one line (without its newline)."""
        record = logging.LogRecord("wf", logging.INFO, "", 0, line, None, None)
        self._handler.emit(record)

    def close(self) -> None:
        """Flush and close."""
        self._handler.close()


class _LineSink:
    """The structlog logger behind the supervisor: rendered lines go to its file."""

    def __init__(self, file: RotatingLineFile) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        self._file.write(message)

    log = debug = info = warn = warning = error = critical = exception = msg


def configure_supervisor_logging(
    log_file: RotatingLineFile, console: TextIO | None, *, verbose: bool = False
) -> None:
    """JSON lines to the supervisor's log file, and readable lines on the console."""
    pretty = structlog.dev.ConsoleRenderer(colors=bool(console and console.isatty()))
    json_renderer = structlog.processors.JSONRenderer()

    def render(_: Any, __: str, event: MutableMapping[str, Any]) -> str:
        if console is not None and (verbose or event.get("level") in {"warning", "error"}):
            print(pretty(None, "", dict(event)), file=console, flush=True)
        return str(json_renderer(None, "", event))

    structlog.configure(
        processors=[*_SHARED, structlog.processors.dict_tracebacks, render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_: _LineSink(log_file),
        cache_logger_on_first_use=True,
    )
