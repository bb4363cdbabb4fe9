"""The `supervisor` command line: every subcommand and option, in one place."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from config import default_value
from services.cli.exits import exit_code_table

__all__ = ["WORKER_NAMES", "build_parser", "version_text"]

WORKER_NAMES = ("session_writer", "cost_ledger", "file_watcher", "history_archiver")
_DISTRIBUTION = "writers-factory-session"


def version_text() -> str:
    """`supervisor X.Y.Z`: the installed distribution's version, else the checkout's."""
    # Imported here: importlib.metadata costs ~20-40 ms, and every command
    # builds this parser - `supervisor start` before it spawns the fork server.
    from importlib import metadata

    try:
        version = metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            version = str(tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            version = "unknown"
    return f"supervisor (Writers Factory session service) {version}"


class _VersionAction(argparse.Action):
    """`--version`: the version is looked up only when asked for (see `version_text`)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show the version and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(version_text())
        parser.exit()


def _project_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--project",
        type=Path,
        default=Path.cwd(),
        help="the writing project's folder (default: the current one)",
    )


def _json_option(sub: argparse.ArgumentParser, what: str = "one JSON document on stdout") -> None:
    sub.add_argument("--json", action="store_true", help=what)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 366:
        raise argparse.ArgumentTypeError("must be between 1 and 366")
    return value


def _add_start(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    start = commands.add_parser("start", help="start the service for a project")
    _project_option(start)
    start.add_argument(
        "--interval", type=float, metavar="SECONDS", help="auto-save interval (overrides)"
    )
    choice = start.add_mutually_exclusive_group()
    choice.add_argument("--resume", action="store_true", help="continue an interrupted session")
    choice.add_argument("--fresh", action="store_true", help="start a new session")
    start.add_argument(
        "--detach", action="store_true", help="run in the background; return once ready"
    )
    start.add_argument("--transport", choices=("ipc", "tcp"), help="socket transport (default ipc)")
    start.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML overriding config/defaults.toml (same sections)",
    )
    start.add_argument("--verbose", action="store_true", help="echo every log line on the console")
    _json_option(
        start, "once ready: pid, endpoints, session id, resumed or fresh, as one JSON document"
    )


def _add_control(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stop = commands.add_parser("stop", help="stop the service cleanly")
    _project_option(stop)
    stop_timeout_s = float(default_value("cli", "stop_timeout_s"))
    stop.add_argument(
        "--timeout",
        type=float,
        default=stop_timeout_s,
        help=f"seconds to wait (default {stop_timeout_s:g})",
    )
    _json_option(stop)

    status = commands.add_parser("status", help="show the workers; exit 4 if one is failed")
    _project_option(status)
    _json_option(status)

    restart = commands.add_parser(
        "restart", help="restart a worker (or all), bringing a failed one back"
    )
    restart.add_argument(
        "worker", nargs="?", default="all", choices=(*WORKER_NAMES, "all"), help="default: all"
    )
    _project_option(restart)
    _json_option(restart)

    inspect = commands.add_parser("inspect", help="show a data file, running or not")
    inspect.add_argument("what", choices=("session", "costs", "history", "preferences"))
    _project_option(inspect)
    _json_option(inspect)
    inspect.add_argument("--csv", action="store_true", help="costs: every operation as CSV")
    inspect.add_argument("--since", metavar="DATE", help="costs --csv: from this local date on")


def _add_observe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = commands.add_parser("logs", help="the workers' logs, readable and merged by time")
    logs.add_argument(
        "worker", nargs="?", choices=(*WORKER_NAMES, "supervisor", "fork_server"), help="one only"
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "-n", "--lines", type=_positive_int, default=None, metavar="N", help="the last N lines"
    )
    logs.add_argument(
        "--since",
        metavar="TIME",
        help="ISO time (2026-11-30T14:00, local unless it has an offset) "
        "or an age (90s, 10m, 2h, 1d)",
    )
    _project_option(logs)
    _json_option(logs, "the raw JSON lines, one per line (merged, filtered)")

    events = commands.add_parser("events", help="print events as they come, gaps reported")
    events.add_argument(
        "--topic", action="append", default=[], metavar="PREFIX", help="only these (repeatable)"
    )
    _project_option(events)
    _json_option(events, "one JSON event per line")

    watch = commands.add_parser("watch", help="a live status line, updated in place")
    _project_option(watch)
    _json_option(watch, "one JSON status document per change, one per line")

    report = commands.add_parser("report", help="an offline HTML report of spend and sessions")
    report.add_argument("--out", type=Path, metavar="FILE", help="default .session/report.html")
    report.add_argument("--open", action="store_true", help="open it in the default browser")
    days = int(default_value("cli", "report_days"))
    report.add_argument(
        "--days", type=_days, default=days, metavar="N", help=f"daily spend over N days ({days})"
    )
    _project_option(report)
    _json_option(report, "the report's figures as one JSON document (and its path)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the epilog holds the exit-code table."""
    parser = argparse.ArgumentParser(
        prog="supervisor",
        description="The Writers Factory storage and session service.",
        epilog="exit codes:\n" + exit_code_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_start(commands)
    _add_control(commands)
    _add_observe(commands)
    return parser
