"""`supervisor events [--topic PREFIX] [--json]`: the event stream, one line per event.

Like `circusctl listen`: events print as they come, and a jump in a source's
`seq` prints a line saying how many events were missed. It ends with Ctrl-C
(exit 0), or by itself once the service stops.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

import orjson

from config import default_value
from services.cli.control import running_pid
from services.cli.exits import ExitCode
from services.cli.feed import Gap, NotServing, open_feed

__all__ = ["LIVENESS_CHECK_S", "event_line", "events", "events_command", "gap_line"]

LIVENESS_CHECK_S: Final = float(default_value("cli", "liveness_check_s"))
"""After this long without an event, check that the service still runs."""


def _compact(data: dict[str, Any]) -> str:
    parts = []
    for key, value in data.items():
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        parts.append(f"{key}={text}")
    return " ".join(parts)


def event_line(event: Any) -> str:
    """`14:30:22.117  session_writer#41  session.saved  revision=7 ...` (local time)."""
    moment = event.ts.astimezone().strftime("%H:%M:%S.%f")[:-3]
    origin = f"{event.source}#{event.seq}"
    return f"{moment}  {origin:<22} {event.topic:<18} {_compact(event.data)}".rstrip()


def gap_line(gap: Gap) -> str:
    """The line that reports missed events."""
    plural = "event" if gap.missed == 1 else "events"
    return f"!! missed {gap.missed} {plural} from {gap.source} (seq {gap.first}..{gap.last})"


def events(project: Path, prefixes: tuple[str, ...], *, as_json: bool) -> int:
    """Print events until Ctrl-C or until the service stops."""
    try:
        feed = open_feed(project)
    except NotServing as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return ExitCode.NOT_RUNNING
    try:
        while True:
            got = feed.next(LIVENESS_CHECK_S)
            if got is None:
                if running_pid(project) is None:
                    print("supervisor: the service stopped", file=sys.stderr)
                    return ExitCode.OK
                continue
            event, gap = got
            if gap is not None:
                if as_json:
                    document = {
                        "gap": True,
                        "source": gap.source,
                        "missed": gap.missed,
                        "first_seq": gap.first,
                        "last_seq": gap.last,
                    }
                    print(orjson.dumps(document).decode())
                else:
                    print(gap_line(gap))
            if not prefixes or event.topic.startswith(prefixes):
                if as_json:
                    print(orjson.dumps(event.model_dump(mode="json")).decode())
                else:
                    print(event_line(event))
            sys.stdout.flush()
    except BrokenPipeError:  # `supervisor events | head`
        sys.stderr.close()
        return ExitCode.OK
    finally:
        feed.close()


def events_command(options: argparse.Namespace) -> int:
    """`supervisor events`."""
    return events(options.project, tuple(options.topic), as_json=options.json)
