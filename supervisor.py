"""`supervisor`: start, stop, watch and inspect the Writers Factory session service.

    supervisor start   [--project DIR] [--interval SECONDS] [--resume | --fresh] [--detach]
                       [--transport ipc|tcp] [--config FILE] [--json]
    supervisor stop    [--project DIR] [--timeout SECONDS] [--json]
    supervisor status  [--project DIR] [--json]
    supervisor restart [WORKER|all] [--project DIR] [--json]
    supervisor logs    [WORKER] [-f] [-n N] [--since TIME] [--project DIR] [--json]
    supervisor events  [--topic PREFIX] [--project DIR] [--json]
    supervisor watch   [--project DIR] [--json]
    supervisor inspect {session,costs,history,preferences} [--project DIR] [--json]
    supervisor report  [--out FILE] [--open] [--days N] [--project DIR] [--json]
    supervisor --version

Exit codes: see `services/cli/exits.py` (0 ok, 1 failure, 2 usage,
3 not running, 4 a worker is failed).
"""

from __future__ import annotations

import os
import sys

from services.cli.exits import EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK

__all__ = ["EXIT_FAILURE", "EXIT_NOT_RUNNING", "EXIT_OK", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run one command; the process exit code."""
    # pydantic scans every installed distribution for plugins at import (~15 ms);
    # we use none. Children inherit this, which keeps restarts fast too.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # A foreground `start` imports what it shares with the workers, then forks
    # its fork server before anything else: the server imports the workers'
    # own modules beside this process's remaining work (docs/benchmarks.md,
    # "Cold start"). `start` adopts it or lets it go.
    from services.runtime.forklaunch import launch_for_argv

    early = launch_for_argv(sys.argv[1:] if argv is None else argv)
    try:
        from services.cli.commands import run
        from services.cli.parser import build_parser

        options = build_parser().parse_args(argv)
        options.early_fork_server = early
        return run(options)
    finally:
        if early is not None:
            early.abandon()  # nothing when `start` took it


if __name__ == "__main__":
    sys.exit(main())
