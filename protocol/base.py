"""Base classes and field types shared by every model.

Two kinds of model, on purpose:

* `Message` - what we *receive* (requests' args, envelopes): frozen and
  `extra="forbid"`, so a typo in a field name is an error, not silently ignored.
* `Document` - what we *store* (current.json, costs.json...): frozen and
  `extra="allow"`. A file written by a newer version with fields this version
  does not know is read without error, and the unknown fields are written back
  unchanged, so an older writer never destroys a newer one's data.
* `Record` - one line of a journal or ledger: frozen and `extra="allow"` too.
  Lines are appended and never rewritten, so a field a newer writer adds
  (the ledger's cache tokens, say) is simply carried by the model of an older
  reader, never refused: refusing it would make a downgraded service skip a
  line that was acknowledged. A record's `kind` is its discriminator in every
  log, and its time is a `Timestamp` named `ts`.

One timestamp type (`Timestamp`), one parser (`parse_ts`), one formatter
(`utc_text`) and one age text (`age_text`) serve every model and module.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "MAX_CURSOR",
    "MAX_TEXT_CHARS",
    "MAX_WHOLE_NUMBER",
    "SESSION_DIR_NAME",
    "STORED_CONTEXT",
    "WHOLE_NUMBER",
    "ClientPath",
    "Document",
    "Message",
    "Money",
    "ProjectPath",
    "Record",
    "ShortText",
    "Timestamp",
    "age_text",
    "parse_ts",
    "path_problem",
    "utc_now",
    "utc_text",
]

MAX_TEXT_CHARS = 10_000
"""Longest free text (a query, a breadcrumb item) we accept; beyond it is abuse."""


MAX_WHOLE_NUMBER = 2**53 - 1
"""The largest integer any field accepts unless it says less: every JSON
parser (JavaScript's included) holds it exactly, and it always fits the 64 bits
our encoder writes."""

STORED_CONTEXT: dict[str, bool] = {"stored": True}
"""Validation context for a document read back from disk. A model may then be
lenient where a request is strict (preferences clamp an out-of-range value
rather than refuse the whole file)."""

MAX_CURSOR = 2**31 - 1
"""Largest cursor line or column: far beyond any manuscript, and a 32-bit int in any UI."""


def _whole(value: object) -> object:
    # JSON Schema counts 1.0 as the integer 1, so we do too; 1.5, true and
    # "1" stay refused by the strict check that follows.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value) if value.adjusted() < 32 else MAX_WHOLE_NUMBER + 1
    return value


WHOLE_NUMBER = BeforeValidator(_whole)
"""Put last in an `Annotated[StrictInt, Field(ge=..., le=...), WHOLE_NUMBER]`: an
integer as JSON Schema means it (`3` or `3.0`), with bounds the schema shows."""


class Message(BaseModel):
    """Something received from a client: strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Document(BaseModel):
    """Something stored in a file: tolerant of fields from newer versions."""

    model_config = ConfigDict(frozen=True, extra="allow")


class Record(BaseModel):
    """One stored line of a journal or ledger: tolerant of fields from newer versions."""

    model_config = ConfigDict(frozen=True, extra="allow")


def _to_utc(value: datetime) -> datetime:
    # A timestamp without an offset is taken as UTC: that is how we store them,
    # and a hand-edited file should not become unreadable for lack of a "Z".
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


Timestamp = Annotated[datetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC; written as ISO 8601 with `Z`."""


def utc_now() -> datetime:
    """The current time in UTC (the only clock models use)."""
    return datetime.now(UTC)


_second_text: list[tuple[int, str]] = [(-1, "")]
"""The last whole second `utc_text()` wrote and its text up to the point (one per second)."""


def utc_text(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with microseconds and `Z`, as every stored timestamp is (now by default).

    A naive moment is taken as UTC, as `Timestamp` takes it.
    """
    if moment is None:  # every event's stamp: its second's text is kept (isoformat is ~1.4 us)
        seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        second = _second_text[0]  # read once: another thread may replace it meanwhile
        if second[0] != seconds:
            whole = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
            second = _second_text[0] = (seconds, whole[:-6] + ".")  # without "+00:00"
        return f"{second[1]}{nanoseconds // 1000:06d}Z"  # microseconds rounded down, as `now`
    utc = _to_utc(moment)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_ts(value: str | datetime) -> datetime:
    """A stored timestamp (ISO 8601, any offset; none means UTC) as an aware UTC datetime.

    Raises ValueError for text that is not one, TypeError for anything not text.
    """
    if isinstance(value, datetime):
        return _to_utc(value)
    if not isinstance(value, str):
        raise TypeError(f"timestamp must be a string, got {type(value).__name__}")
    return _to_utc(datetime.fromisoformat(value))


def age_text(seconds: float) -> str:
    """`12s`, `3 min`, `2 h`, `4 d`: how long ago, short enough for a status bar or a table."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86_400:
        return f"{whole // 3600} h"
    return f"{whole // 86_400} d"


Money = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=40)]
"""US dollars as an exact Decimal; a JSON number with its exact digits on disk."""

ShortText = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


SESSION_DIR_NAME = ".session"
"""The service's own folder: its files are never a client's path."""

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def path_problem(value: str) -> str | None:
    """Why `value` cannot be a stored path (a control character, a backslash), or None.

    Shared by the requests' validation and the file watcher, so a name the
    watcher could never report (a newline in it, say) is refused up front
    rather than accepted and then silently never seen again.
    """
    if "\\" in value:
        return "path must use '/' separators"
    if _CONTROL_CHARS.search(value):
        return "path must not contain control characters (newline, tab, NUL ...)"
    return None


def _check_project_path(value: str) -> str:
    # Pure, syntactic confinement; symlinks that escape are the service's check
    # because only the service can look at the disk.
    if not value:
        raise ValueError("path must not be empty")
    problem = path_problem(value)
    if problem:
        raise ValueError(problem)
    if value.startswith("/") or _WINDOWS_DRIVE.match(value):
        raise ValueError("path must be relative to the project root")
    parts = value.split("/")
    if any(part == ".." for part in parts):
        raise ValueError("path must not leave the project root ('..')")
    cleaned = [part for part in parts if part not in {"", "."}]
    if not cleaned:
        raise ValueError("path must name a file inside the project")
    if cleaned[0] == SESSION_DIR_NAME:
        raise ValueError("paths under .session/ are the service's own files, not a writer's")
    return "/".join(cleaned)


ProjectPath = Annotated[str, Field(max_length=4096), AfterValidator(_check_project_path)]
"""A path relative to the project root with `/` separators, never escaping it."""


def _check_client_path(value: str) -> str:
    # An absolute path is accepted here and judged by the service, which knows
    # the project root (docs/protocol.md: only paths *outside* it are refused).
    if value.startswith("/") and path_problem(value) is None:
        if any(part == ".." for part in value.split("/")):
            raise ValueError("path must not leave the project root ('..')")
        return value
    return _check_project_path(value)


ClientPath = Annotated[str, Field(max_length=4096), AfterValidator(_check_client_path)]
"""A path as a client may send it: relative to the project root, or absolute
inside it (the service makes it relative before storing it)."""
