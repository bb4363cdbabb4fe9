"""The exit codes of `supervisor`: one table, read by every command and by the docs test.

Scripts branch on these numbers (docs/protocol.md section 10, docs/cli.md and
the README list them, generated from here), so a code never changes meaning;
a new outcome gets a new number.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_RUNNING",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_WORKER_FAILED",
    "ExitCode",
    "exit_code_table",
]


class ExitCode(IntEnum):
    """What a `supervisor` command's exit status means."""

    OK = 0
    """Success; for `status`, the service runs and no worker is failed."""
    FAILURE = 1
    """The command could not do its job (already running, not ready, no answer, unreadable file)."""
    USAGE = 2
    """Unknown command or option (argparse's own code), or a bad value."""
    NOT_RUNNING = 3
    """Nothing is running for the project (`status`, `stop`, `restart`, `events`, `watch`)."""
    WORKER_FAILED = 4
    """`status`: the service runs but at least one worker is `failed` (as `systemctl is-failed`)."""
    INTERRUPTED = 130
    """Ctrl-C before the command finished (128 + SIGINT); not for `logs -f`, `events`, `watch`."""


EXIT_OK = ExitCode.OK
EXIT_FAILURE = ExitCode.FAILURE
EXIT_USAGE = ExitCode.USAGE
EXIT_NOT_RUNNING = ExitCode.NOT_RUNNING
EXIT_WORKER_FAILED = ExitCode.WORKER_FAILED
EXIT_INTERRUPTED = ExitCode.INTERRUPTED

_MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "success; `status`: running, no worker failed",
    ExitCode.FAILURE: (
        "failure, explained on stderr (already running, no reply, unreadable file, full disk...)"
    ),
    ExitCode.USAGE: "bad usage: unknown command or option, bad value",
    ExitCode.NOT_RUNNING: (
        "nothing is running for the project (`status`, `stop`, `restart`, `events`, `watch`)"
    ),
    ExitCode.WORKER_FAILED: "`status`: running, but at least one worker is `failed`",
    ExitCode.INTERRUPTED: (
        "interrupted by Ctrl-C (128 + SIGINT); `logs -f`, `events` and `watch` exit 0 instead"
    ),
}


def exit_code_table() -> str:
    """The table as Markdown, for `--help` and the docs (kept equal by a test)."""
    rows = [f"| `{code.value}` | {_MEANING[code]} |" for code in ExitCode]
    return "\n".join(["| code | meaning |", "|---|---|", *rows])
