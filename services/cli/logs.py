"""`supervisor logs [WORKER] [-f] [-n N] [--since TIME] [--json]`.

The service logs JSON lines; people read them through structlog's console
renderer (the same look as `start --verbose`), merged across workers by
time. Colour only on a terminal and never with `NO_COLOR`. `--json` prints
the stored lines themselves, so `jq` sees exactly what was logged.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from config import default_value
from services.cli.exits import ExitCode
from services.cli.logfiles import LOG_SOURCES, LogFollower, LogLine
from services.cli.output import use_color

__all__ = ["FOLLOW_POLL_S", "logs_command", "parse_since", "render_line"]

FOLLOW_POLL_S: Final = float(default_value("cli", "logs_follow_poll_s"))
"""How often `-f` looks for new lines (a log is for people: 0.2 s feels live)."""
_FOLLOW_DEFAULT_LINES: Final = int(default_value("cli", "logs_follow_lines"))
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`--since`: an age (`90s`, `10m`, `2h`, `1d`) or an ISO time (local unless offset given)."""
    match = _AGE.match(text.strip())
    moment = now or datetime.now(UTC)
    if match:
        return moment - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give an age (90s, 10m, 2h, 1d) or an ISO time "
            "(2026-11-30T14:00, local unless it has an offset)"
        ) from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def _exception_text(value: Any) -> str:
    """A `dict_tracebacks` exception (a list of frames) as a short traceback."""
    if isinstance(value, str):
        return value
    lines: list[str] = []
    for stack in value if isinstance(value, list) else []:
        for frame in stack.get("frames", []):
            lines.append(
                f'  File "{frame.get("filename")}", line {frame.get("lineno")}, '
                f"in {frame.get('name')}"
            )
        lines.append(f"{stack.get('exc_type')}: {stack.get('exc_value')}")
    return "\n".join(lines)


def render_line(line: LogLine, renderer: Any) -> str:
    """One line as structlog's console renderer shows it, tagged with its source."""
    event = dict(line.fields)
    if not line.structured:
        event = {"event": line.raw, "level": "raw"}
    event["timestamp"] = line.at.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if event.get("worker") == line.source:
        event.pop("worker")
    if event.get("component") == line.source:
        event.pop("component")
    event["logger"] = line.source
    if "exception" in event:
        event["exception"] = _exception_text(event["exception"])
    return str(renderer(None, str(event.get("level", "info")), event))


def _wanted(line: LogLine, worker: str | None, since: datetime | None) -> bool:
    if since is not None and line.at < since:
        return False
    if worker is None or line.source == worker:
        return True
    # The supervisor's lines about this worker (spawned, exited, failed) belong to it.
    return line.source == "supervisor" and line.fields.get("worker") == worker


def logs_command(options: argparse.Namespace) -> int:
    """Print the logs; with `-f`, keep printing until Ctrl-C."""
    from services.runtime.paths import ProjectPaths

    try:
        since = parse_since(options.since) if options.since else None
    except ValueError as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    paths = ProjectPaths.of(options.project)
    worker: str | None = options.worker
    sources = [worker, "supervisor"] if worker and worker != "supervisor" else [worker]
    follower = LogFollower(paths.logs_dir, [s for s in sources if s] or LOG_SOURCES)
    renderer: Any = None
    if not options.json:
        import structlog

        renderer = structlog.dev.ConsoleRenderer(colors=use_color(sys.stdout))

    def show(lines: list[LogLine]) -> None:
        for line in lines:
            sys.stdout.write(line.raw if options.json and line.structured else _as_text(line))
            sys.stdout.write("\n")
        sys.stdout.flush()

    def _as_text(line: LogLine) -> str:
        if options.json:  # a raw line, wrapped so every output line is JSON
            import orjson

            document = {"timestamp": line.at.isoformat(), "source": line.source, "raw": line.raw}
            return orjson.dumps(document).decode()
        return render_line(line, renderer)

    try:
        found = [line for line in follower.history() if _wanted(line, worker, since)]
        count = options.lines
        if count is None and options.follow:
            count = _FOLLOW_DEFAULT_LINES
        show(found[-count:] if count else [] if count == 0 else found)
        if not paths.logs_dir.is_dir() and not options.follow:
            print(f"supervisor: no logs yet in {paths.logs_dir}", file=sys.stderr)
        while options.follow:
            time.sleep(FOLLOW_POLL_S)
            show([line for line in follower.poll() if _wanted(line, worker, since)])
    except BrokenPipeError:  # `supervisor logs | head`: the reader has enough
        sys.stderr.close()
    finally:
        follower.close()
    return ExitCode.OK
