"""The exit codes of `supervisor`: one table, read by every command and by the docs test.

Scripts branch on these numbers (docs/protocol.md section 10 lists them), so a
code never changes meaning; a new outcome gets a new number.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "EXIT_FAILURE",
    "EXIT_NOT_RUNNING",
    "EXIT_OK",
    "EXIT_USAGE",
    "ExitCode",
]


class ExitCode(IntEnum):
    """What a `supervisor` command's exit status means."""

    OK = 0
    """Success."""
    FAILURE = 1
    """The command could not do its job (already running, not ready, no answer, unreadable file)."""
    USAGE = 2
    """Unknown command or option (argparse's own code)."""
    NOT_RUNNING = 3
    """Nothing is running for the project (`status`, `stop`)."""


EXIT_OK = ExitCode.OK
EXIT_FAILURE = ExitCode.FAILURE
EXIT_USAGE = ExitCode.USAGE
EXIT_NOT_RUNNING = ExitCode.NOT_RUNNING
