"""Every exit code of the `supervisor` command, in one table.

Scripts branch on these, as they do on `systemctl is-active` / `is-failed`:
the numbers are part of the public contract and only ever grow.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "exit_code_table"]


class ExitCode(IntEnum):
    """What a `supervisor` command's exit status means."""

    OK = 0
    """Done; for `status`, the service runs and no worker is failed."""
    FAILURE = 1
    """It did not work; the message on stderr says why."""
    USAGE = 2
    """Bad command line (argparse's code), or an argument that makes no sense."""
    NOT_RUNNING = 3
    """Nothing serves this project (`status`, `stop`, `restart`, `events`, `watch`)."""
    WORKER_FAILED = 4
    """`status`: the service runs but at least one worker is `failed`."""
    INTERRUPTED = 130
    """Ctrl-C before the command finished (not for `logs -f`, `events`, `watch`: 0)."""


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
