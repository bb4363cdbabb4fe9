"""`cost.log` args checked by hand accept exactly what the model accepts, as the same model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.errors import ProtocolError
from protocol.ops import CostLogArgs, parse_args
from protocol.quick_args import quick_cost_log_args

_count = st.one_of(
    st.integers(0, 20_000),
    st.sampled_from([0, 10**12, 10**12 + 1, -1, 3.0, 2.5, True, "7", None, Decimal(4)]),
)
_text = st.one_of(
    st.sampled_from(["scene_generation", "claude-sonnet-3.5", "", " ", "x" * 200, "x" * 201]),
    st.sampled_from(["y" * 100, "y" * 101, "z" * 10_000, "z" * 10_001, None, 5]),
    st.text(max_size=12),
)
_FIELDS = (
    "operation",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "provider",
    "usage",
    "colour",
)


@st.composite
def _args(draw: st.DrawFn) -> dict[str, Any]:
    """Args near the common shape: each field given or not, right or wrong."""
    values = {
        "operation": _text,
        "model": _text,
        "input_tokens": _count,
        "output_tokens": _count,
        "cache_read_tokens": _count,
        "cache_write_tokens": _count,
        "reasoning_tokens": _count,
        "provider": _text,
        "usage": st.sampled_from([None, {"input_tokens": 3}]),
        "colour": st.just("red"),
    }
    common = ("operation", "model", "input_tokens", "output_tokens")
    given_keys = [key for key in _FIELDS if draw(st.booleans()) != (key in common)]
    if draw(st.booleans()):  # mostly the common shape, so the rules between fields are met
        given_keys = [*common, *[k for k in given_keys if k not in common and draw(st.booleans())]]
    return {key: draw(values[key]) for key in given_keys}


def _validated(args: dict[str, Any]) -> CostLogArgs | None:
    try:
        return CostLogArgs.model_validate(args)
    except ValidationError:
        return None


@settings(max_examples=800, deadline=None)
@given(args=_args())
@example(args={"operation": "o", "model": "m", "input_tokens": 10, "output_tokens": 5})
@example(
    args={
        "operation": "o",
        "model": "m",
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 6,
        "cache_write_tokens": 4,
        "reasoning_tokens": 5,
        "provider": "anthropic",
    }
)
@example(  # one token too many cached, one too many reasoning
    args={
        "operation": "o",
        "model": "m",
        "input_tokens": 9,
        "output_tokens": 5,
        "cache_read_tokens": 6,
        "cache_write_tokens": 4,
    }
)
@example(
    args={
        "operation": "o",
        "model": "m",
        "input_tokens": 9,
        "output_tokens": 4,
        "reasoning_tokens": 5,
    }
)
@example(args={"operation": "o", "model": "x" * 201, "input_tokens": 1, "output_tokens": 1})
@example(args={"operation": "o", "model": "x" * 200, "input_tokens": 1, "output_tokens": 1})
@example(args={"operation": "z" * 10_001, "model": "m", "input_tokens": 1, "output_tokens": 1})
@example(args={"operation": "", "model": "m", "input_tokens": 1, "output_tokens": 1})
@example(
    args={
        "operation": "o",
        "model": "m",
        "input_tokens": 1,
        "output_tokens": 1,
        "provider": "y" * 101,
    }
)
@example(
    args={"operation": "o", "model": "m", "input_tokens": 1, "output_tokens": 1, "provider": None}
)
@example(args={"operation": "o", "model": "m", "input_tokens": 10**12 + 1, "output_tokens": 1})
def test_quick_args_are_the_models_or_nothing(args: dict[str, Any]) -> None:
    """What the hand check accepts the model accepts, as an equal model with the same
    fields set; what it does not take is left to the model."""
    quick = quick_cost_log_args(args, CostLogArgs)
    validated = _validated(args)
    if quick is None:
        return
    assert validated is not None, args
    assert quick == validated
    assert quick.model_fields_set == validated.model_fields_set
    assert list(quick.__dict__) == list(validated.__dict__)
    assert quick.model_dump_json() == validated.model_dump_json()


def test_the_common_shape_takes_the_quick_way() -> None:
    """A plain `cost.log` is built by the hand check, and parse_args answers with it."""
    args = {"operation": "scene", "model": "gpt-4o", "input_tokens": 120, "output_tokens": 30}
    assert quick_cost_log_args(args, CostLogArgs) == CostLogArgs.model_validate(args)
    parsed = parse_args("cost.log", args)
    assert isinstance(parsed, CostLogArgs) and parsed.model_fields_set == set(args)


def test_a_broken_rule_is_still_named_by_the_model() -> None:
    """Args the hand check refuses get the model's `invalid_args` message, as before."""
    args = {
        "operation": "o",
        "model": "m",
        "input_tokens": 3,
        "output_tokens": 1,
        "cache_read_tokens": 4,
    }
    assert quick_cost_log_args(args, CostLogArgs) is None
    with pytest.raises(ProtocolError, match="exceed input_tokens"):
        parse_args("cost.log", args)
