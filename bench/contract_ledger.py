"""The contract floor's cost ledger: the least plain Python that keeps `cost.log`'s promises.

`bench.cost_floor.MinimalLedger(work="contract")` runs this module as its
ledger process (`python -m bench.contract_ledger`; it imports nothing of the
product, only `bench.contract_call`, the standard library, pyzmq and orjson).
It answers what docs/protocol.md promises for `cost.log` and writes what our
ledger writes, with the framing of the plain floor (`REQ token request` in,
`REP token reply` and `PUB topic ts data` out):

- the args checked as the contract says, `invalid_args` with the reason
  (refusals are not remembered), and the price from a per-model table (one
  dict lookup, like a cached route), exact with Decimal (`contract_call`);
  an unknown model is recorded unpriced (`cost: null`) and announced with
  `cost.unpriced`;
- the totals the reply carries: session, by model, unpriced counts, and the
  day, ISO week and month of the local time zone, with the month-end
  projection; the calendar is worked out once per local day, not per call;
- the three budget limits (our defaults: 50, 200, 500, warning from 80%),
  the most severe warning's sentence in the reply, and a `warned` line and a
  `budget.warning` event the first time each level of each window is passed;
- the ledger line, the reply and the `cost.logged` data in our shapes, amounts
  as exact JSON numbers (`orjson.Fragment` of the Decimal's text);
- idempotency by request id (the last 100,000 answers, in memory), one fsync
  per batch of requests that arrived together, the replies before the events.

It does not read its ledger back at start (the bench starts it fresh), price
`usage` reports (the bench sends counts; `usage` is refused), serve the other
`cost.*` ops, rotate the ledger by month or write a `costs.json` snapshot.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
import zmq

from bench.contract_call import MONEY, PRICES, Call, checked_call

__all__ = ["LIMITS", "CostLedger", "local_zone"]

ROUNDED = Context(prec=28)
"""Shares and cents for people: rounding is the point there."""
CENT = Decimal("0.01")
SHARE = Decimal("0.0001")
REMEMBERED_IDS = 100_000
"""Answers kept for re-sent ids, as our ledger keeps them."""
WARN_FROM = Decimal("0.8")
"""A limit warns from this share of it (our preference's default)."""


LIMITS: tuple[tuple[str, str, Decimal], ...] = (
    ("daily", "Daily budget", Decimal(50)),
    ("weekly", "Weekly budget", Decimal(200)),
    ("monthly", "Monthly budget", Decimal(500)),
)
"""Our default budget, shortest period first (a tie in severity goes to the longest)."""

_WARN_AT = tuple(limit * WARN_FROM for _, _, limit in LIMITS)
"""Where each limit starts to warn, worked out once."""


def _number(amount: Decimal) -> orjson.Fragment:
    """An amount as an exact JSON number: its digits, no exponent, no trailing zeros."""
    return orjson.Fragment(format(MONEY.normalize(amount), "f"))


def _usd(amount: Decimal) -> str:
    """`$12.34`, or the digits of an amount under a cent (never `$0.00` for a cost)."""
    sign, magnitude = ("-" if amount < 0 else ""), abs(amount)
    if not magnitude:
        return "$0.00"
    if magnitude < CENT:
        return f"{sign}${format(MONEY.normalize(magnitude), 'f')}"
    return f"{sign}${magnitude.quantize(CENT, rounding=ROUND_HALF_EVEN, context=ROUNDED):,.2f}"


def local_zone() -> ZoneInfo:
    """The system's time zone with its rules: `$TZ`, else `/etc/localtime`, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as handle:  # noqa: PTH123 (once, at start)
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError, KeyError):
        return ZoneInfo("UTC")


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


class CostLedger:
    """The ledger's state and its answer to one batch of requests, as bytes."""

    def __init__(self, zone: ZoneInfo, now: datetime) -> None:
        self.zone = zone
        self.session_id = now.astimezone(zone).strftime("%Y-%m-%d-%H%M%S")
        self.session_total = Decimal(0)
        self.by_model: dict[str, Decimal] = {}
        self.unpriced = 0
        self.windows: list[list[Any]] = []
        """Per period as in LIMITS: [window key, total, unpriced]."""
        self.fired: set[tuple[str, str, str]] = set()
        self.answers: dict[str, bytes] = {}
        self.answered: deque[str] = deque()
        """The ids of `answers`, oldest first."""
        self.pace = (31, 1)
        """Days in the local month and days of it elapsed (today counted)."""
        self.until = now
        """When the local day ends: the calendar is worked out again then."""
        self._calendar(now)

    def _calendar(self, now: datetime) -> None:
        """The current day, week and month; a window that changed starts from zero."""
        today = now.astimezone(self.zone).date()
        monday = today - timedelta(days=today.weekday())
        iso = monday.isocalendar()
        first = today.replace(day=1)
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        keys = (today.isoformat(), f"{iso.year}-W{iso.week:02d}", f"{first:%Y-%m}")
        old = self.windows or [[None, Decimal(0), 0] for _ in keys]
        self.windows = [
            window if window[0] == key else [key, Decimal(0), 0]
            for window, key in zip(old, keys, strict=True)
        ]
        self.pace = ((after - first).days, today.day)
        self.until = _midnight(today + timedelta(days=1), self.zone)

    def batch(
        self, requests: list[bytes], now: datetime
    ) -> tuple[list[bytes], list[bytes], list[tuple[bytes, bytes]]]:
        """(ledger lines to fsync, replies in order, events as topic and data) for a batch
        that arrived at `now` (UTC), the time of each of its operations."""
        if now >= self.until:
            self._calendar(now)
        stamp = now.isoformat(timespec="microseconds")[:-6] + "Z"
        lines: list[bytes] = []
        replies: list[bytes] = []
        events: list[tuple[bytes, bytes]] = []
        for body in requests:
            request = orjson.loads(body)  # the broker checked the envelope
            request_id = request["id"]
            reply = self.answers.get(request_id)
            if reply is None:
                try:
                    call = checked_call(request.get("args", {}))
                except ValueError as problem:
                    replies.append(_refusal(request_id, "invalid_args", str(problem)))
                    continue
                reply = self._log(request_id, call, stamp, lines, events)
            replies.append(reply)
        return lines, replies, events

    def _log(
        self,
        request_id: str,
        call: Call,
        stamp: str,
        lines: list[bytes],
        events: list[tuple[bytes, bytes]],
    ) -> bytes:
        """Fold one call in; its ledger line, events and reply (remembered for a re-send)."""
        price = PRICES.get(call.model)
        cost_json: orjson.Fragment | None = None
        if price is None:
            self.unpriced += 1
            for window in self.windows:
                window[2] += 1
        else:
            cost = price.of(call)
            cost_json = _number(cost)
            self.session_total = MONEY.add(self.session_total, cost)
            self.by_model[call.model] = MONEY.add(self.by_model.get(call.model, 0), cost)
            for window in self.windows:
                window[1] = MONEY.add(window[1], cost)
        warning, fired = self._warning(stamp)
        totals = orjson.Fragment(orjson.dumps(self._totals()))
        source = None if price is None else price.source
        operation = orjson.Fragment(
            orjson.dumps(
                {
                    "timestamp": stamp,
                    "operation": call.operation,
                    "model": call.model,
                    "input_tokens": call.input_tokens,
                    "output_tokens": call.output_tokens,
                    "cost": cost_json,
                    "priced": price is not None,
                    "session_id": self.session_id,
                    "request_id": request_id,
                    "price_source": source,
                    "cache_read_tokens": call.cache_read_tokens,
                    "cache_write_tokens": call.cache_write_tokens,
                    "reasoning_tokens": call.reasoning_tokens,
                    "provider": call.provider,
                }
            )
        )
        lines.append(
            orjson.dumps(
                {
                    "kind": "op",
                    "id": request_id,
                    "ts": stamp,
                    "session_id": self.session_id,
                    "operation": call.operation,
                    "model": call.model,
                    "input_tokens": call.input_tokens,
                    "output_tokens": call.output_tokens,
                    "cache_read_tokens": call.cache_read_tokens,
                    "cache_write_tokens": call.cache_write_tokens,
                    "reasoning_tokens": call.reasoning_tokens,
                    "provider": call.provider,
                    "cost": cost_json,
                    "priced": price is not None,
                    "price_source": source,
                    "totals": totals,
                    "warning": warning,
                }
            )
        )
        events.append(
            (
                b"cost.logged",
                orjson.dumps({"operation": operation, "totals": totals, "cost": cost_json}),
            )
        )
        if price is None:
            message = f"no price for model {call.model!r}: the call was recorded unpriced"
            events.append(
                (b"cost.unpriced", orjson.dumps({"operation": operation, "message": message}))
            )
        for line, event in fired:  # after the operation that passed the limit
            lines.append(line)
            events.append((b"budget.warning", event))
        reply = orjson.dumps(
            {
                "v": 1,
                "id": request_id,
                "ok": True,
                "result": {"operation": operation, "totals": totals, "warning": warning},
            }
        )
        self.answers[request_id] = reply
        self.answered.append(request_id)
        if len(self.answered) > REMEMBERED_IDS:
            del self.answers[self.answered.popleft()]  # forget the oldest
        return reply

    def _totals(self) -> dict[str, Any]:
        """The `totals` of a reply: session, windows, by model, unpriced, projection."""
        (_, day_total, day_unpriced), (_, week_total, week_unpriced), month = self.windows
        days, elapsed = self.pace
        projection = ROUNDED.divide(month[1] * days, elapsed).quantize(CENT, ROUND_HALF_EVEN)
        return {
            "session_total": _number(self.session_total),
            "daily_total": _number(day_total),
            "weekly_total": _number(week_total),
            "monthly_total": _number(month[1]),
            "by_model": {model: _number(spent) for model, spent in self.by_model.items()},
            "unpriced_operations": self.unpriced,
            "daily_unpriced": day_unpriced,
            "weekly_unpriced": week_unpriced,
            "monthly_unpriced": month[2],
            "monthly_projection": _number(projection),
        }

    def _warning(self, stamp: str) -> tuple[str | None, list[tuple[bytes, bytes]]]:
        """The most severe warning in force, and the (line, event) of each that fired now."""
        worst: tuple[bool, Decimal, int] | None = None
        fired: list[tuple[bytes, bytes]] = []
        for rank, ((period, title, limit), (key, spent, unpriced)) in enumerate(
            zip(LIMITS, self.windows, strict=True)
        ):
            if spent < _WARN_AT[rank]:
                continue
            exceeded = spent >= limit
            share = ROUNDED.divide(spent, limit).quantize(SHARE, ROUND_HALF_EVEN)
            if worst is None or (exceeded, share, rank) > worst:
                worst = (exceeded, share, rank)
            level = "exceeded" if exceeded else "warning"
            if (period, key, level) in self.fired:
                continue
            self.fired.add((period, key, level))  # once per level of each window
            message = _sentence(title, spent, limit, exceeded=exceeded, unpriced=unpriced)
            line = {
                "kind": "warned",
                "ts": stamp,
                "period": period,
                "window": key,
                "level": level,
                "limit": _number(limit),
                "spent": _number(spent),
                "message": message,
            }
            event = {
                "period": period,
                "spent": _number(spent),
                "limit": _number(limit),
                "remaining": _number(limit - spent),
                "fraction": _number(share),
                "exceeded": exceeded,
                "window": key,
                "message": message,
                "unpriced_operations": unpriced,
            }
            fired.append((orjson.dumps(line), orjson.dumps(event)))
        if worst is None:
            return None, fired
        exceeded, share, rank = worst
        _, title, limit = LIMITS[rank]
        _, spent, unpriced = self.windows[rank]
        return _sentence(title, spent, limit, exceeded=exceeded, unpriced=unpriced), fired


def _sentence(title: str, spent: Decimal, limit: Decimal, *, exceeded: bool, unpriced: int) -> str:
    """The warning a writer reads: which limit, how much is spent, how much is left."""
    share = ROUNDED.divide(spent, limit) * 100  # rounded down: never "100%" before it is
    percent = f"{int(share.to_integral_value(rounding=ROUND_FLOOR))}%"
    if exceeded:
        text = (
            f"{title} exceeded: {_usd(spent)} spent of {_usd(limit)} ({percent}); "
            f"{_usd(spent - limit)} over the limit."
        )
    else:
        text = (
            f"{title}: {_usd(spent)} of {_usd(limit)} spent ({percent}); "
            f"{_usd(limit - spent)} left."
        )
    if unpriced:
        text += f" {unpriced} unpriced call{'' if unpriced == 1 else 's'} not included."
    return text


def _refusal(request_id: str, code: str, message: str) -> bytes:
    return orjson.dumps(
        {"v": 1, "id": request_id, "ok": False, "error": {"code": code, "message": message}}
    )


def _serve(backend: str, path: str) -> None:
    """Answer batches of requests forever: lines, one fsync, replies, then events."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, b"ledger")
    dealer.connect(backend)
    dealer.send(b"READY")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    ledger = CostLedger(local_zone(), datetime.now(UTC))
    events_flag, pollin = int(zmq.EVENTS), int(zmq.POLLIN)
    while True:
        batch = [dealer.recv_multipart()]
        while cast(int, dealer.getsockopt(events_flag)) & pollin:
            batch.append(dealer.recv_multipart())
        lines, replies, events = ledger.batch([frames[2] for frames in batch], datetime.now(UTC))
        if lines:
            os.write(fd, b"\n".join(lines) + b"\n")
            os.fsync(fd)  # group commit: one per batch, before any reply says ok
        for frames, reply in zip(batch, replies, strict=True):
            dealer.send_multipart([b"REP", frames[1], reply])
        if events:
            stamp = (datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z").encode()
            for topic, data in events:
                dealer.send_multipart([b"PUB", topic, stamp, data])


def _lifeline() -> None:
    """The bench holds our stdin: when it dies, so do we (even after its kill -9)."""
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=_lifeline, daemon=True).start()
    _serve(sys.argv[1], sys.argv[2])
