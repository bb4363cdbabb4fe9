"""`supervisor`: start, stop, inspect the Writers Factory session service.

    supervisor start   [--project DIR] [--interval SECONDS] [--resume | --fresh] [--detach]
                       [--transport ipc|tcp] [--config FILE]
    supervisor stop    [--project DIR]
    supervisor status  [--project DIR] [--json]
    supervisor inspect {session,costs,history,preferences} [--project DIR] [--json]

Exit codes: 0 success; 1 failure (e.g. already running); 2 bad usage;
3 nothing is running (status, stop).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from services.cli.exits import EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK

__all__ = ["EXIT_FAILURE", "EXIT_NOT_RUNNING", "EXIT_OK", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supervisor", description="The Writers Factory storage and session service."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def project_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--project",
            type=Path,
            default=Path.cwd(),
            help="the writing project's folder (default: the current one)",
        )

    start = commands.add_parser("start", help="start the service for a project")
    project_option(start)
    start.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="auto-save interval (overrides the preference)",
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

    stop = commands.add_parser("stop", help="stop the service cleanly")
    project_option(stop)
    stop.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")

    status = commands.add_parser("status", help="show the workers and their state")
    project_option(status)
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")

    inspect = commands.add_parser("inspect", help="show a data file, running or not")
    inspect.add_argument("what", choices=("session", "costs", "history", "preferences"))
    project_option(inspect)
    inspect.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; the process exit code."""
    # pydantic scans every installed distribution for plugins at import (~15 ms);
    # we use none. Children inherit this, which keeps restarts fast too.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    options = _parser().parse_args(argv)
    if options.command == "start":
        from services.cli.start import start

        return start(options)
    if options.command == "stop":
        from services.cli.control import stop

        return stop(options.project, timeout_s=options.timeout)
    if options.command == "status":
        from services.cli.control import status

        return status(options.project, as_json=options.json)
    from services.cli.inspect import inspect

    return inspect(options.project, options.what, as_json=options.json)


if __name__ == "__main__":
    sys.exit(main())
