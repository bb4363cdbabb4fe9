"""protocol.codec: bytes to and from JSON, with money exact to the last digit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import json_values, money

from protocol import (
    CostOperation,
    decimal_text,
    dumps,
    dumps_line,
    dumps_pretty,
    loads,
    loads_exact,
)
from protocol.base import utc_now

GEMINI_FLASH_INPUT_TOKEN = Decimal("0.00000007")


@given(money(max_value=10**9, max_places=20))
def test_decimal_text_is_exact_positional_digits(value: Decimal) -> None:
    """A Decimal is rendered with its exact digits, never in exponent notation."""
    text = decimal_text(value)
    assert "e" not in text.lower()
    assert Decimal(text) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.150"), "0.15"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.00"), "0"),
        (Decimal("7E-8"), "0.00000007"),
        (Decimal("12.5"), "12.5"),
    ],
)
def test_decimal_text_reads_the_same_for_equal_amounts(value: Decimal, text: str) -> None:
    """Equal amounts are written identically: no trailing zeros, no exponent, no minus zero."""
    assert decimal_text(value) == text


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_finite_money_is_refused(value: Decimal) -> None:
    """NaN and infinities are never written: JSON has no such numbers."""
    with pytest.raises(ValueError, match="finite"):
        decimal_text(value)
    with pytest.raises(TypeError):
        dumps({"cost": value})


def test_smallest_price_survives_encode_and_decode_exactly() -> None:
    """One gemini-flash input token ($0.00000007) is written as its digits and read back exactly."""
    for encode in (dumps, dumps_pretty, dumps_line):
        data = encode({"cost": GEMINI_FLASH_INPUT_TOKEN})
        assert b"0.00000007" in data
        assert b"e-" not in data.lower()
        assert loads_exact(data)["cost"] == GEMINI_FLASH_INPUT_TOKEN


def test_smallest_price_survives_a_cost_operation_round_trip() -> None:
    """A recorded operation costing $0.00000007 is the same amount after a save and a load."""
    operation = CostOperation(
        timestamp=utc_now(),
        operation="embed",
        model="gemini-flash",
        input_tokens=1,
        output_tokens=0,
        cost=GEMINI_FLASH_INPUT_TOKEN,
    )
    again = CostOperation.model_validate(loads_exact(dumps_pretty(operation)))
    assert again.cost == GEMINI_FLASH_INPUT_TOKEN
    assert again == operation


def test_thousand_exact_additions_equal_the_exact_total() -> None:
    """1,000 x (0.003 x 1.2) adds up to exactly 3.6 and is written as `3.6`."""
    total = Decimal(0)
    for _ in range(1000):
        total += Decimal("0.003") * Decimal("1.2")
    assert total == Decimal("3.6")
    assert dumps({"total": total}) == b'{"total":3.6}'
    assert loads_exact(dumps({"total": total}))["total"] == Decimal("3.6")


def test_float_accumulation_is_why_money_is_decimal() -> None:
    """The same sum in floats drifts, which is the error the Decimal ledger avoids."""
    total = 0.0
    for _ in range(1000):
        total += 0.003 * 1.2
    assert total != 3.6


def test_loads_is_fast_but_inexact_and_loads_exact_keeps_decimals() -> None:
    """`loads` gives floats for fractions; `loads_exact` gives Decimals and keeps integers int."""
    data = b'{"cost": 0.1, "tokens": 12}'
    assert isinstance(loads(data)["cost"], float)
    exact = loads_exact(data)
    assert exact["cost"] == Decimal("0.1")
    assert isinstance(exact["cost"], Decimal)
    assert exact["tokens"] == 12
    assert isinstance(exact["tokens"], int)


@given(json_values(max_leaves=20))
def test_any_json_value_round_trips_through_every_encoder(value: Any) -> None:
    """Compact, line and pretty encodings all decode (exactly) to the value encoded."""
    assert loads_exact(dumps(value)) == value
    assert loads_exact(dumps_line(value)) == value
    assert loads_exact(dumps_pretty(value)) == value


@given(json_values(max_leaves=20))
def test_encoding_is_a_fixpoint(value: Any) -> None:
    """Decoding then re-encoding gives the same bytes, so a re-save never churns a file."""
    data = dumps_pretty(value)
    assert dumps_pretty(loads_exact(data)) == data


@given(st.dictionaries(st.text(max_size=5), st.text(), max_size=4))
def test_a_line_record_is_exactly_one_line(value: dict[str, str]) -> None:
    """`dumps_line` writes one line ending in a newline, even when strings hold newlines."""
    line = dumps_line(value)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1


def test_pretty_output_is_indented_readable_utf8_with_final_newline() -> None:
    """Data files are indented by two spaces, keep accents readable and end with a newline."""
    data = dumps_pretty({"title": "Chapitre élégant", "tags": ["a"]})
    text = data.decode("utf-8")
    assert text.endswith("}\n")
    assert '\n  "title": "Chapitre élégant"' in text
    assert "\\u00e9" not in text


def test_timestamps_are_written_in_utc_with_z() -> None:
    """A UTC datetime is written as ISO 8601 ending in `Z`."""
    moment = utc_now().replace(microsecond=0)
    text = dumps({"at": moment}).decode()
    assert text == '{"at":"' + moment.strftime("%Y-%m-%dT%H:%M:%S") + 'Z"}'


def test_unencodable_values_fail_loudly() -> None:
    """An object with no JSON form raises instead of being written as something else."""
    with pytest.raises(TypeError):
        dumps({"value": object()})


def test_sets_enums_and_paths_are_written_as_plain_json() -> None:
    """Sets become sorted lists, enums their value, paths their `/` form."""
    from pathlib import PurePosixPath

    from protocol import Stage

    data = loads(dumps({"s": {"b", "a"}, "stage": Stage.WRITING, "p": PurePosixPath("a/b.md")}))
    assert data == {"s": ["a", "b"], "stage": "writing", "p": "a/b.md"}


def test_integers_beyond_64_bits_are_refused_not_rounded() -> None:
    """orjson refuses an integer it cannot write exactly rather than silently changing it."""
    with pytest.raises(orjson.JSONEncodeError):
        dumps({"n": 2**70})
