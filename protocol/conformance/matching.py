"""The case language of `protocol/conformance/`: exact JSON, constructors and matchers.

A runner needs three things from this module, and a runner in another
language re-implements the same three (see README.md in this folder):

* `loads_exact` / `dumps_exact`: JSON whose numbers keep the digits they were
  written with, so `12.345678901234567890123456789` goes out and comes back
  digit for digit, and a `$decimal` matcher can compare the text.
* `build`: turns a request template into the value to send (`$id`,
  `$repeat`, `$concat`).
* `mismatches`: compares a reply or an event with an expected template and
  lists what differs, each with the path where it differs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "TIMESTAMP_PATTERN",
    "ExactNumber",
    "MatchContext",
    "build",
    "dumps_exact",
    "is_matcher",
    "loads_exact",
    "mismatches",
]

TIMESTAMP_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
"""What `$timestamp` accepts: the service's own form, UTC with `Z` and microseconds."""


class ExactNumber(Decimal):
    """A JSON number with a fraction or exponent, remembering the text it was written as."""

    text: str

    def __new__(cls, text: str) -> ExactNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


def loads_exact(data: bytes | str) -> Any:
    """Parse JSON keeping every number's digits (integers as `int`, others as `ExactNumber`)."""
    return json.loads(data, parse_float=ExactNumber)


def dumps_exact(value: Any) -> bytes:
    """Compact UTF-8 JSON that writes each `ExactNumber` with its original text."""
    return _dump(value).encode("utf-8")


def _dump(value: Any) -> str:
    if isinstance(value, ExactNumber):
        return value.text
    if isinstance(value, dict):
        items = (
            f"{json.dumps(str(key), ensure_ascii=False)}:{_dump(v)}" for key, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def is_matcher(value: Any) -> bool:
    """True for an object whose keys all start with `$` (a matcher or constructor)."""
    return isinstance(value, dict) and bool(value) and all(str(k).startswith("$") for k in value)


def build(template: Any, ids: Callable[[str], str]) -> Any:
    """The value a template stands for: `$id` labels become ids, `$repeat`/`$concat` strings."""
    if is_matcher(template):
        if "$id" in template:
            return ids(str(template["$id"]))
        if "$repeat" in template:
            text, count = template["$repeat"]
            return str(build(text, ids)) * int(count)
        if "$concat" in template:
            return "".join(str(build(part, ids)) for part in template["$concat"])
    if isinstance(template, dict):
        return {key: build(value, ids) for key, value in template.items()}
    if isinstance(template, list):
        return [build(item, ids) for item in template]
    return template


class MatchContext:
    """What matchers need from the runner: ids by label, earlier results, schemas."""

    def __init__(
        self,
        ids: Callable[[str], str],
        results: Mapping[str, Any],
        validate: Callable[[str, Any], str | None],
    ) -> None:
        self.ids = ids
        self.results = results
        self.validate = validate
        """`validate(schema_name, value)`: None when valid, else what is wrong."""


_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | Decimal) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}

_MISSING = object()


def mismatches(expected: Any, actual: Any, ctx: MatchContext, path: str = "$") -> list[str]:
    """Every way `actual` fails `expected` (empty when it matches)."""
    if is_matcher(expected):
        return _match_operator(expected, actual, ctx, path)
    if isinstance(expected, dict):
        return _match_object(expected, actual, ctx, path)
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {_show(actual)}"]
        return [
            problem
            for index, item in enumerate(expected)
            for problem in mismatches(item, actual[index], ctx, f"{path}[{index}]")
        ]
    if _equal(expected, actual):
        return []
    return [f"{path}: expected {_show(expected)}, got {_show(actual)}"]


def _match_operator(
    expected: dict[str, Any], actual: Any, ctx: MatchContext, path: str
) -> list[str]:
    if len(expected) != 1:
        return [f"{path}: a matcher has exactly one key, got {sorted(expected)}"]
    ((name, arg),) = expected.items()
    check = _MATCHERS.get(name)
    if check is None:
        return [f"{path}: unknown matcher {name}"]
    return check(arg, actual, ctx, path)


def _match_object(expected: dict[str, Any], actual: Any, ctx: MatchContext, path: str) -> list[str]:
    """Every listed key must be there and match; other keys are allowed (replies may grow)."""
    if not isinstance(actual, dict):
        return [f"{path}: expected an object, got {_show(actual)}"]
    found: list[str] = []
    for key, value in expected.items():
        if key not in actual:
            found.append(f"{path}.{key}: missing")
        else:
            found += mismatches(value, actual[key], ctx, f"{path}.{key}")
    return found


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | Decimal) and isinstance(actual, int | Decimal):
        return Decimal(expected) == Decimal(actual)
    return type(expected) is type(actual) and bool(expected == actual)


def _identical(a: Any, b: Any) -> bool:
    """Deep equality that also compares each number's written digits."""
    return dumps_exact(a) == dumps_exact(b)


Check = Callable[[Any, Any, MatchContext, str], list[str]]


def _unless(ok: object, problem: str) -> list[str]:
    return [] if ok else [problem]


def _type(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    kinds = [arg] if isinstance(arg, str) else list(arg)
    ok = any(_TYPES[kind](actual) for kind in kinds)
    return _unless(ok, f"{path}: expected {kinds}, got {_show(actual)}")


def _timestamp(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    ok = isinstance(actual, str) and TIMESTAMP_PATTERN.match(actual)
    return _unless(
        ok, f"{path}: expected a timestamp like 2026-11-24T00:23:29.316371Z, got {_show(actual)}"
    )


def _regex(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    ok = isinstance(actual, str) and re.search(str(arg), actual)
    return _unless(ok, f"{path}: expected text matching /{arg}/, got {_show(actual)}")


def _contains(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    ok = isinstance(actual, str) and str(arg) in actual
    return _unless(ok, f"{path}: expected text containing {arg!r}, got {_show(actual)}")


def _schema(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    problem = ctx.validate(str(arg), actual)
    return _unless(problem is None, f"{path}: does not match schema {arg}: {problem}")


def _constructed(name: str) -> Check:
    def check(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
        value = build({name: arg}, ctx.ids)
        return _unless(value == actual, f"{path}: expected {_show(value)}, got {_show(actual)}")

    return check


def _same_as(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    label, *keys = str(arg).split(".")
    earlier = ctx.results.get(label, _MISSING)
    for key in keys:  # "a.operation.cost": a field of that result
        earlier = earlier.get(key, _MISSING) if isinstance(earlier, dict) else _MISSING
    if earlier is _MISSING:
        return [f"{path}: no earlier result {arg!r}"]
    ok = _identical(earlier, actual)
    return _unless(
        ok, f"{path}: expected the result of {arg!r} ({_show(earlier)}), got {_show(actual)}"
    )


def _all(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    return [problem for part in arg for problem in mismatches(part, actual, ctx, path)]


def _one_of(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    ok = any(not mismatches(option, actual, ctx, path) for option in arg)
    return _unless(ok, f"{path}: matches none of {_show(arg)}: got {_show(actual)}")


def _not(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    ok = bool(mismatches(arg, actual, ctx, path))
    return _unless(ok, f"{path}: must not match {_show(arg)}, got {_show(actual)}")


def _exact(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    if not isinstance(actual, dict) or set(actual) != set(arg):
        keys = sorted(actual) if isinstance(actual, dict) else _show(actual)
        return [f"{path}: expected exactly the keys {sorted(arg)}, got {keys}"]
    return _match_object(dict(arg), actual, ctx, path)


def _has(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    return _unless(isinstance(actual, dict) and arg in actual, f"{path}: expected key {arg!r}")


def _array(check: Check) -> Check:
    def on_array(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
        if not isinstance(actual, list):
            return [f"{path}: expected an array, got {_show(actual)}"]
        return check(arg, actual, ctx, path)

    return on_array


def _includes(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    ok = any(not mismatches(arg, item, ctx, path) for item in actual)
    return _unless(ok, f"{path}: no item matches {_show(arg)}")


def _each(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    return [
        problem
        for index, item in enumerate(actual)
        for problem in mismatches(arg, item, ctx, f"{path}[{index}]")
    ]


def _at(index: int) -> Check:
    def check(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
        if not actual:
            return [f"{path}: expected a non-empty array"]
        where = index % len(actual)
        return mismatches(arg, actual[where], ctx, f"{path}[{where}]")

    return check


def _decimal(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    return _match_decimal(str(arg), actual, f"{path}: ")


def _number_text(arg: Any, actual: Any, ctx: MatchContext, path: str) -> list[str]:
    if isinstance(actual, bool) or not isinstance(actual, int | ExactNumber):
        return [f"{path}: expected a JSON number, got {_show(actual)}"]
    text = actual.text if isinstance(actual, ExactNumber) else str(actual)
    ok = re.search(str(arg), text)
    return _unless(ok, f"{path}: expected a number written to match /{arg}/, got {text}")


def _match_decimal(digits: str, actual: Any, here: str) -> list[str]:
    if isinstance(actual, bool) or not isinstance(actual, int | ExactNumber):
        return [f"{here}expected the JSON number {digits}, got {_show(actual)}"]
    text = actual.text if isinstance(actual, ExactNumber) else str(actual)
    return (
        []
        if text == digits
        else [f"{here}expected the number written exactly {digits}, got {text}"]
    )


_MATCHERS: dict[str, Check] = {
    "$any": lambda arg, actual, ctx, path: [],
    "$type": _type,
    "$timestamp": _timestamp,
    "$decimal": _decimal,
    "$number_text": _number_text,
    "$regex": _regex,
    "$contains": _contains,
    "$schema": _schema,
    "$id": _constructed("$id"),
    "$repeat": _constructed("$repeat"),
    "$concat": _constructed("$concat"),
    "$same_as": _same_as,
    "$all": _all,
    "$one_of": _one_of,
    "$not": _not,
    "$exact": _exact,
    "$has": _has,
    "$includes": _array(_includes),
    "$each": _array(_each),
    "$first": _array(_at(0)),
    "$last": _array(_at(-1)),
}
"""Every matcher, by name; README.md in this folder says what each one accepts."""


def _show(value: Any) -> str:
    text = _dump(value) if not isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + f"... ({len(text)} characters)"
