"""Exported JSON Schemas: complete, committed, and satisfied by what we write.

`jsonschema` is not a dependency, so `_validate` below checks instances against
the subset of JSON Schema that pydantic emits for our models; a test fails if
a schema ever uses a keyword outside that subset, so the check cannot become
silently partial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import strategies as s
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from protocol import OP_ARGS, TOPIC_DATA, Op, dumps, dumps_pretty, encode_event, encode_request
from protocol.codec import loads_exact
from protocol.schema import SCHEMA_DIR, all_schemas, main, render

SCHEMAS = all_schemas()

CHECKED = {
    "type",
    "anyOf",
    "oneOf",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "maxItems",
    "minItems",
    "prefixItems",
    "maxProperties",
    "maxLength",
    "minLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "enum",
    "const",
    "$ref",
    "propertyNames",
    "format",
}
ANNOTATIONS = {"$defs", "$id", "title", "description", "default", "discriminator"}


class SchemaViolationError(AssertionError):
    """An instance does not satisfy a schema."""


def _is_type(value: Any, name: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float | Decimal) and not isinstance(v, bool),
    }
    return checks[name](value)


def _validate(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    """Raise SchemaViolationError when `value` (as `loads_exact` returns it) breaks `schema`."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        _validate(value, root["$defs"][name], root, where)
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                _validate(value, option, root, where)
            except SchemaViolationError:
                continue
            break
        else:
            raise SchemaViolationError(f"{where}: {value!r} matches no anyOf option")
    if "oneOf" in schema:
        matching = 0
        for option in schema["oneOf"]:
            try:
                _validate(value, option, root, where)
            except SchemaViolationError:
                continue
            matching += 1
        if matching != 1:
            raise SchemaViolationError(f"{where}: {value!r} matches {matching} oneOf options")
    if "type" in schema and not _is_type(value, schema["type"]):
        raise SchemaViolationError(f"{where}: {value!r} is not of type {schema['type']}")
    if "const" in schema and value != schema["const"]:
        raise SchemaViolationError(f"{where}: {value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaViolationError(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            raise SchemaViolationError(f"{where}: longer than maxLength")
        if len(value) < schema.get("minLength", 0):
            raise SchemaViolationError(f"{where}: shorter than minLength")
        if schema.get("format") == "date-time":
            datetime.fromisoformat(value)
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaViolationError(f"{where}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaViolationError(f"{where}: above maximum")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise SchemaViolationError(f"{where}: not above exclusiveMinimum")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            raise SchemaViolationError(f"{where}: more than maxItems")
        if len(value) < schema.get("minItems", 0):
            raise SchemaViolationError(f"{where}: fewer than minItems")
        prefix = schema.get("prefixItems", [])
        for index, item in enumerate(value):
            rule = prefix[index] if index < len(prefix) else schema.get("items", {})
            _validate(item, rule, root, f"{where}[{index}]")
    if isinstance(value, dict):
        _validate_object(value, schema, root, where)


def _validate_object(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], where: str
) -> None:
    properties: dict[str, Any] = schema.get("properties", {})
    if len(value) > schema.get("maxProperties", len(value)):
        raise SchemaViolationError(f"{where}: more than maxProperties")
    missing = set(schema.get("required", [])) - set(value)
    if missing:
        raise SchemaViolationError(f"{where}: missing required {sorted(missing)}")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in schema:
            _validate(key, schema["propertyNames"], root, f"{where}.<key>")
        if key in properties:
            _validate(item, properties[key], root, f"{where}.{key}")
        elif extra is False:
            raise SchemaViolationError(f"{where}: unexpected property {key!r}")
        elif isinstance(extra, dict):
            _validate(item, extra, root, f"{where}.{key}")


def _conforms(model: BaseModel, stem: str) -> None:
    schema = SCHEMAS[stem]
    for data in (dumps(model), dumps_pretty(model)):
        _validate(loads_exact(data), schema, schema)


def _keywords(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key
            if key in {"properties", "$defs"}:
                for sub in value.values():
                    yield from _keywords(sub)
            elif key not in {"default", "enum", "const", "required", "discriminator"}:
                yield from _keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _keywords(item)


# --- the set of schemas ----------------------------------------------------------


def test_committed_schemas_match_the_models() -> None:
    """The files in protocol/schemas/ are exactly what the models generate (no drift)."""
    assert main(["--check"]) == 0


def test_every_op_topic_and_file_has_a_schema() -> None:
    """Clients in other languages find a schema for every op's args, topic's data, file and line."""
    expected = {f"args.{op.value}" for op in OP_ARGS} | {f"event.{t.value}" for t in TOPIC_DATA}
    expected |= {"file.current", "file.preferences", "file.costs", "file.history"}
    expected |= {"envelope.request", "envelope.ok_reply", "envelope.error_reply"}
    expected |= {"envelope.event", "record.cost_operation", "record.history_entry"}
    expected |= {"line.ledger", "line.session_journal", "line.history_journal"}
    expected |= {"file.ledger_checkpoint"}
    assert expected <= set(SCHEMAS)
    assert {path.name for path in SCHEMA_DIR.glob("*.schema.json")} == {
        f"{stem}.schema.json" for stem in SCHEMAS
    }


def test_every_schema_has_a_stable_id_and_is_valid_json() -> None:
    """Each schema names itself with a `$id` and renders to JSON that parses back equal."""
    for stem, schema in SCHEMAS.items():
        assert schema["$id"] == f"writers-factory/{stem}.schema.json"
        assert loads_exact(render(schema)) == loads_exact(dumps(schema))


def test_schemas_use_only_keywords_this_suite_checks() -> None:
    """No schema uses a keyword the validator here would ignore (so the checks are complete)."""
    used = {key for schema in SCHEMAS.values() for key in _keywords(schema)}
    assert used <= CHECKED | ANNOTATIONS, used - CHECKED - ANNOTATIONS


def test_stored_files_allow_and_messages_forbid_unknown_fields_in_the_schema() -> None:
    """The schemas publish the unknown-fields policy: files allow extras, args refuse them."""
    for stem in ("file.current", "file.preferences", "file.costs", "file.history"):
        assert SCHEMAS[stem].get("additionalProperties") is True
    for op in OP_ARGS:
        assert SCHEMAS[f"args.{op.value}"].get("additionalProperties") is False
    assert SCHEMAS["envelope.request"].get("additionalProperties") is False


def test_check_reports_a_drifted_and_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--check` passes on freshly written schemas and fails, naming the file, after a change."""
    folder = tmp_path / "schemas"
    assert main(["--dir", str(folder)]) == 0
    assert main(["--check", "--dir", str(folder)]) == 0
    (folder / "file.costs.schema.json").write_text("{}\n", encoding="utf-8")
    (folder / "file.gone.schema.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", "--dir", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "file.costs.schema.json" in err
    assert "file.gone.schema.json" in err
    assert main(["--dir", str(folder)]) == 0
    assert not (folder / "file.gone.schema.json").exists()
    assert main(["--check", "--dir", str(folder)]) == 0


def test_model_json_schema_is_what_is_exported() -> None:
    """Each exported schema is the model's own validation schema plus its `$id`."""
    from protocol.schema import _NAMED

    for stem, model in _NAMED.items():
        generated = model.model_json_schema(mode="validation")
        exported = dict(SCHEMAS[stem])
        assert exported.pop("$id")
        assert exported == generated


# --- instances conform -------------------------------------------------------------


@given(s.session_documents())
def test_session_document_conforms(model: BaseModel) -> None:
    """Every current.json we write satisfies file.current.schema.json."""
    _conforms(model, "file.current")


@given(s.with_extras(s.preferences()))
def test_preferences_conform(model: BaseModel) -> None:
    """Every preferences.json we write (even with a newer version's fields) satisfies its schema."""
    _conforms(model, "file.preferences")


@given(s.costs_documents())
def test_costs_document_conforms(model: BaseModel) -> None:
    """Every costs.json we write, money as JSON numbers, satisfies file.costs.schema.json."""
    _conforms(model, "file.costs")


@given(s.history_documents())
def test_history_document_conforms(model: BaseModel) -> None:
    """Every history.json we write satisfies file.history.schema.json."""
    _conforms(model, "file.history")


@given(s.endpoints_files())
def test_endpoints_file_conforms(model: BaseModel) -> None:
    """Every endpoints.json we write satisfies file.endpoints.schema.json."""
    _conforms(model, "file.endpoints")


@given(s.cost_operations())
def test_cost_operation_conforms(model: BaseModel) -> None:
    """Every operation in costs.json, replies and events satisfies record.cost_operation."""
    _conforms(model, "record.cost_operation")


@given(s.ledger_lines())
def test_ledger_line_conforms(model: BaseModel) -> None:
    """Every ledger line, of any kind, satisfies line.ledger.schema.json."""
    _conforms(model, "line.ledger")


@given(s.ledger_checkpoints())
def test_ledger_checkpoint_conforms(model: BaseModel) -> None:
    """Every ledger checkpoint satisfies file.ledger_checkpoint.schema.json."""
    _conforms(model, "file.ledger_checkpoint")


@given(s.series_caches())
def test_series_cache_conforms(model: BaseModel) -> None:
    """Every series index cache satisfies file.ledger_series.schema.json."""
    _conforms(model, "file.ledger_series")


@given(s.journal_lines())
def test_session_journal_line_conforms(model: BaseModel) -> None:
    """Every session journal line, of any kind, satisfies line.session_journal.schema.json."""
    _conforms(model, "line.session_journal")


@given(s.history_journal_lines())
def test_history_journal_line_conforms(model: BaseModel) -> None:
    """Every archiver journal line, of any kind, satisfies line.history_journal.schema.json."""
    _conforms(model, "line.history_journal")


@given(s.history_entries())
def test_history_entry_conforms(model: BaseModel) -> None:
    """Every history entry satisfies record.history_entry.schema.json."""
    _conforms(model, "record.history_entry")


_RESULTS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("result.budget", s.budgets()),
    ("result.budget_warning", s.budget_warnings()),
    ("result.cost_totals", s.cost_totals()),
    ("result.cost_log", s.cost_log_results()),
    ("result.cost_estimate", s.cost_estimate_results()),
    ("result.cost_warning", s.cost_warning_results()),
    ("result.session_status", s.session_status_results()),
    ("result.save", s.save_results()),
    ("result.significant_action", s.significant_action_results()),
    ("result.supervisor_status", s.supervisor_statuses()),
    ("result.supervisor_restart", s.supervisor_restart_results()),
]


@given(st.sampled_from(_RESULTS).flatmap(lambda pair: st.tuples(st.just(pair[0]), pair[1])))
def test_results_conform(stem_and_model: tuple[str, BaseModel]) -> None:
    """Every op result we send satisfies its result schema."""
    stem, model = stem_and_model
    _conforms(model, stem)


@given(s.op_requests())
def test_request_frames_and_their_args_conform(op_and_args: tuple[Op, dict[str, Any]]) -> None:
    """A client's request frame satisfies the envelope schema and its args the op's schema."""
    op, args = op_and_args
    frame = loads_exact(encode_request("c1-000001", op.value, args))
    _validate(frame, SCHEMAS["envelope.request"], SCHEMAS["envelope.request"])
    schema = SCHEMAS[f"args.{op.value}"]
    _validate(frame["args"], schema, schema)


@given(s.events())
def test_event_frames_and_their_data_conform(event: Any) -> None:
    """An event envelope satisfies envelope.event and its data its topic's schema."""
    body = loads_exact(encode_event(event.topic, event.source, event.seq, event.ts, event.data)[1])
    _validate(body, SCHEMAS["envelope.event"], SCHEMAS["envelope.event"])
    schema = SCHEMAS[f"event.{event.topic}"]
    _validate(body["data"], schema, schema)


@given(st.one_of(s.ok_replies(), s.error_replies()))
def test_reply_frames_conform(reply: BaseModel) -> None:
    """Ok and error replies satisfy their envelope schemas."""
    stem = "envelope.ok_reply" if reply.model_dump()["ok"] else "envelope.error_reply"
    _conforms(reply, stem)


@pytest.mark.parametrize(
    ("stem", "instance"),
    [
        ("args.session.set_stage", {"stage": "editing"}),
        ("args.session.set_stage", {"stage": "writing", "extra": 1}),
        ("args.cost.log", {"operation": "o", "model": "m", "input_tokens": -1, "output_tokens": 0}),
        ("args.cost.log", {"operation": "o", "model": "m", "input_tokens": 1.5}),
        ("envelope.request", {"v": 2, "id": "a", "op": "session.get"}),
        ("envelope.request", {"v": 1, "op": "session.get"}),
        ("file.preferences", {"autosave_interval_s": 0}),
    ],
)
def test_schemas_reject_what_the_service_rejects(stem: str, instance: dict[str, Any]) -> None:
    """A client validating with the schema catches the same mistakes the service refuses."""
    schema = SCHEMAS[stem]
    with pytest.raises(SchemaViolationError):
        _validate(loads_exact(dumps(instance)), schema, schema)
