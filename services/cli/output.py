"""How the `supervisor` command talks: JSON documents, colour, progress while waiting.

One place decides whether output is for a person (a terminal) or for a
program (a pipe, `--json`), so every command behaves the same way.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any, TextIO

__all__ = ["WaitNotice", "print_json", "use_color"]


def print_json(document: Any) -> None:
    """One JSON document on stdout (indented, exact numbers), as every `--json` prints."""
    from protocol.codec import dumps_pretty

    sys.stdout.write(dumps_pretty(document).decode())
    sys.stdout.flush()


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when `NO_COLOR` is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class WaitNotice:
    """`Waiting for ... 3s` on stderr, redrawn in place, only when stderr is a terminal.

    A person watching a 60 s stop should know what it waits for; a script
    reading stderr gets nothing extra.
    """

    def __init__(self, what: str, *, stream: TextIO | None = None) -> None:
        self.what = what
        self._stream = stream or sys.stderr
        isatty = getattr(self._stream, "isatty", None)
        self._active = bool(isatty and isatty())
        self._started = time.monotonic()
        self._shown = -1

    def __enter__(self) -> WaitNotice:
        self.tick()
        return self

    def tick(self) -> None:
        """Redraw when a new whole second has passed (cheap to call in a wait loop)."""
        if not self._active:
            return
        elapsed = int(time.monotonic() - self._started)
        if elapsed != self._shown:
            self._shown = elapsed
            self._stream.write(f"\r\x1b[2K{self.what}... {elapsed}s")
            self._stream.flush()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._active:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
