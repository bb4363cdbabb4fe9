"""Exact dollar arithmetic and how amounts read in a message.

Every sum in the ledger goes through `MONEY`, a Decimal context with room for
60 significant digits that *traps* `Inexact`: an addition that would have to
round raises instead of silently losing a digit. One gemini-flash token is
$0.00000007; a total of years of such calls keeps every one of them.
"""

from __future__ import annotations

from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

__all__ = ["CENT", "MONEY", "ZERO", "parse_money", "percent_text", "tidy", "usd"]

MONEY = Context(prec=60, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
"""The context of every money operation: exact or loud, never rounded."""

ZERO = Decimal(0)
CENT = Decimal("0.01")
_THOUSAND = Decimal(1000)


def tidy(amount: Decimal) -> Decimal:
    """The same amount without trailing zeros and without an exponent form.

    `0.150` -> `0.15`, `30.000` -> `30` (not `3E+1`): equal amounts look the
    same in replies and files.
    """
    value = MONEY.normalize(amount)
    if value.as_tuple().exponent > 0:  # type: ignore[operator]
        value = value.quantize(Decimal(1), context=MONEY)
    return value


def parse_money(text: str | int | Decimal) -> Decimal:
    """A Decimal from its exact text (checkpoints store money as strings)."""
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"money must be finite, got {text!r}")
    return value


def usd(amount: Decimal) -> str:
    """`$12.34` for a person: cents, or the exact digits of an amount under a cent.

    A message never says `$0.00` for a call that cost something: an amount
    that would round to zero cents is written with its own digits
    (`$0.00000007`).
    """
    sign = "-" if amount < 0 else ""
    magnitude = abs(amount)
    if magnitude == 0:
        return "$0.00"
    if magnitude < CENT:
        digits = format(MONEY.normalize(magnitude), "f")
        return f"{sign}${digits}"
    cents = magnitude.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if cents < _THOUSAND:  # no separator to write: its own text is `x.yz` (3x faster)
        return sign + "$" + str(cents)  # `str`: no format spec to parse (a budget sentence has two)
    return f"{sign}${cents:,.2f}"


def percent_text(fraction: Decimal) -> str:
    """`83%`, rounded down so a limit is never shown as reached before it is."""
    return f"{int((fraction * 100).to_integral_value(rounding=ROUND_FLOOR))}%"
