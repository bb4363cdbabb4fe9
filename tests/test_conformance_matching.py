"""The case language's matchers: exact digits, constructors, and what they refuse."""

from __future__ import annotations

from typing import Any

from protocol.conformance.matching import MatchContext, build, dumps_exact, loads_exact, mismatches


def _ctx(results: dict[str, Any] | None = None) -> MatchContext:
    return MatchContext(lambda label: f"run-{label}", results or {}, lambda name, value: None)


def test_numbers_keep_their_digits_through_a_round_trip() -> None:
    """A limit with 29 significant digits and 0.00000007 are sent back as written."""
    text = b'{"a":12.345678901234567890123456789,"b":0.00000007,"c":50,"d":"x\\u00e9"}'
    assert (
        dumps_exact(loads_exact(text))
        == '{"a":12.345678901234567890123456789,"b":0.00000007,"c":50,"d":"xé"}'.encode()
    )


def test_decimal_compares_the_written_digits_not_the_value() -> None:
    """`0.0853500` has the value of `0.08535` but not its digits, so `$decimal` refuses it."""
    assert not mismatches({"$decimal": "0.08535"}, loads_exact(b"0.08535"), _ctx())
    assert mismatches({"$decimal": "0.08535"}, loads_exact(b"0.0853500"), _ctx())
    assert mismatches({"$decimal": "0.00000007"}, loads_exact(b"7e-8"), _ctx())
    assert mismatches({"$decimal": "1"}, True, _ctx())


def test_objects_allow_extra_keys_but_exact_does_not() -> None:
    """Replies may gain fields; `$exact` pins the key set."""
    assert not mismatches({"a": 1}, {"a": 1, "b": 2}, _ctx())
    assert mismatches({"$exact": {"a": 1}}, {"a": 1, "b": 2}, _ctx())
    assert mismatches({"a": 1}, {"a": True}, _ctx())


def test_constructors_build_ids_and_long_strings() -> None:
    """`$id`, `$repeat` and `$concat` build the value both in requests and in expectations."""
    built = build(
        {"id": {"$id": "a"}, "s": {"$concat": ["x", {"$repeat": ["🐭", 3]}]}},
        lambda label: f"run-{label}",
    )
    assert built == {"id": "run-a", "s": "x🐭🐭🐭"}
    assert not mismatches({"$repeat": ["🐭", 3]}, "🐭🐭🐭", _ctx())


def test_structure_matchers() -> None:
    """Array and combination matchers each refuse what they should."""
    ctx = _ctx({"a": {"x": loads_exact(b"1.50")}})
    assert not mismatches({"$includes": {"n": 2}}, [{"n": 1}, {"n": 2}], ctx)
    assert mismatches({"$not": {"$includes": {"n": 2}}}, [{"n": 2}], ctx)
    assert mismatches({"$last": {"n": 1}}, [{"n": 1}, {"n": 2}], ctx)
    assert mismatches({"$same_as": "a"}, loads_exact(b'{"x":1.5}'), ctx)
    assert not mismatches({"$same_as": "a"}, loads_exact(b'{"x":1.50}'), ctx)
    assert mismatches({"$timestamp": True}, "2026-11-24T00:23:29Z", ctx)
    assert mismatches({"$type": ["null", "string"]}, 3, ctx)
    assert mismatches({"$bogus": 1}, 3, ctx)
