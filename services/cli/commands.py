"""Dispatch a parsed command line to its module, importing only that one.

Each command is a function taking the parsed options and returning the exit
code; importing late keeps `--version`, `status` and `logs` quick (the
supervisor's own imports cost ~0.2 s).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from services.cli.exits import ExitCode
from services.cli.failures import explain_os_error

__all__ = ["COMMANDS", "run"]

COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("services.cli.start", "start"),
    "stop": ("services.cli.control", "stop_command"),
    "status": ("services.cli.control", "status_command"),
    "restart": ("services.cli.restart", "restart_command"),
    "inspect": ("services.cli.inspect", "inspect_command"),
    "logs": ("services.cli.logs", "logs_command"),
    "events": ("services.cli.events", "events_command"),
    "watch": ("services.cli.watch", "watch_command"),
    "report": ("services.cli.report", "report_command"),
}
"""Command name to (module, function); the function takes the parsed options."""

_ENDED_BY_CTRL_C = frozenset({"logs", "events", "watch"})


def run(options: argparse.Namespace) -> int:
    """Run the chosen subcommand; its exit code (1 with one clear line on an OS error)."""
    module_name, function_name = COMMANDS[options.command]
    command: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(module_name), function_name
    )
    try:
        return int(command(options))
    except OSError as exc:
        project = getattr(options, "project", None)
        print(f"supervisor: {explain_os_error(exc, project)}", file=sys.stderr)
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        # Ctrl-C is how `logs -f`, `events` and `watch` end: what the user asked for.
        if options.command in _ENDED_BY_CTRL_C:
            return ExitCode.OK
        print(file=sys.stderr)
        return ExitCode.INTERRUPTED
