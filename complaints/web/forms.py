"""Forms made from the action models: the one pydantic model the workflow validates.

:func:`form_fields` reads a request model's JSON schema (``complaints.api.actions
.body_model``: the action less ``by``) into :class:`FormField` descriptions that the
``_form.html`` macro renders: text, long text, numbers, dates, yes/no, choices, lists of
lines, nested groups, and repeated groups for lists of objects (findings, remedies).
:func:`payload_from_form` turns the posted form back into the JSON the model validates,
so a new action appears in the app with no new page code, and the model's own
validation (through the API's ``perform``) is the only validation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

__all__ = ["FormField", "form_fields", "payload_from_form"]

#: Text fields allowing more than this many characters are shown as a text area.
LONG_TEXT = 300
#: How many rows a repeated group shows (empty rows are ignored when posted).
GROUP_ROWS = 3


@dataclass
class FormField:
    """One input (or group of inputs) of a form.

    Attributes:
        name: The form name (``definition.points``, ``findings.0.point``).
        label: What the person reads.
        kind: text, textarea, number, date, checkbox, select, lines, group or repeat.
        required: Whether the model requires it.
        hint: The field's description, if the model gives one.
        choices: For ``select``: the allowed values.
        children: For ``group``: its fields; for ``repeat``: one list of fields a row.
        value: A value to show (defaults, prefill).
    """

    name: str
    label: str
    kind: str
    required: bool = False
    hint: str | None = None
    choices: list[str] = field(default_factory=list)
    children: list[Any] = field(default_factory=list)
    value: Any = None
    #: In a repeated group's row: a choice starts empty, so an unused row posts nothing.
    in_row: bool = False

    @property
    def dom_id(self) -> str:
        """An HTML id for the input (label ``for``)."""
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow ``$ref`` and pick the non-null branch of ``anyOf`` (optional fields)."""
    if "$ref" in schema:
        return _resolve(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        numeric = [b for b in branches if b.get("type") in ("number", "integer")]
        if len(branches) > 1 and numeric:  # a Decimal: a number, or a string of one
            branches = numeric[:1]
        if len(branches) == 1:
            merged = {**_resolve(branches[0], defs)}
            for key in ("title", "description", "default"):
                if key in schema:
                    merged[key] = schema[key]
            return merged
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return {**_resolve(schema["allOf"][0], defs),
                **{k: v for k, v in schema.items() if k != "allOf"}}
    return schema


def _label(name: str, schema: Mapping[str, Any]) -> str:
    title = schema.get("title") or name.replace("_", " ")
    return str(title)[:1].upper() + str(title)[1:].lower()


def _field(name: str, key: str, schema: Mapping[str, Any], defs: Mapping[str, Any],
           required: bool) -> FormField:
    resolved = _resolve(schema, defs)
    label = _label(key, {**resolved, "title": schema.get("title") or resolved.get("title")})
    hint = schema.get("description") or resolved.get("description")
    kind = resolved.get("type")
    base: dict[str, Any] = {"name": name, "label": label, "required": required, "hint": hint,
            "value": resolved.get("default")}
    if "enum" in resolved:
        return FormField(kind="select", choices=[str(c) for c in resolved["enum"]], **base)
    if kind == "boolean":
        return FormField(kind="checkbox", **base)
    if kind in ("integer", "number"):
        return FormField(kind="number", **base)
    if kind == "string" and resolved.get("format") == "date":
        return FormField(kind="date", **base)
    if kind == "string" or (kind is None and "pattern" in resolved):
        long = resolved.get("maxLength", LONG_TEXT + 1) > LONG_TEXT
        return FormField(kind="textarea" if long else "text", **base)
    if kind == "object":
        return FormField(kind="group", children=_fields(resolved, defs, prefix=f"{name}."),
                         **base)
    if kind == "array":
        items = _resolve(resolved.get("items", {}), defs)
        if items.get("type") == "object":
            rows = max(GROUP_ROWS, resolved.get("minItems", 0))
            return FormField(kind="repeat", children=[
                _in_row(_fields(items, defs, prefix=f"{name}.{i}.")) for i in range(rows)],
                **base)
        if "enum" in items:
            return FormField(kind="multiselect", choices=[str(c) for c in items["enum"]],
                             **base)
        return FormField(kind="lines", **base)
    return FormField(kind="textarea", **base)  # anything else: typed as text, validated


def _in_row(fields: list[FormField]) -> list[FormField]:
    for f in fields:
        f.in_row = True
        _in_row(f.children if f.kind == "group" else [])
    return fields


def _fields(schema: Mapping[str, Any], defs: Mapping[str, Any], prefix: str = "") -> list[Any]:
    required = set(schema.get("required", []))
    return [_field(f"{prefix}{key}", key, sub, defs, key in required)
            for key, sub in schema.get("properties", {}).items()]


def form_fields(model: type[BaseModel]) -> list[FormField]:
    """The form of ``model``, field by field, from its JSON schema."""
    schema = model.model_json_schema()
    return _fields(schema, schema.get("$defs", {}))


def _kinds(fields: list[FormField], into: dict[str, FormField]) -> dict[str, FormField]:
    for f in fields:
        into[f.name] = f
        if f.kind == "group":
            _kinds(f.children, into)
        elif f.kind == "repeat":
            for row in f.children:
                _kinds(row, into)
    return into


def _set(target: dict[str, Any], path: list[str], value: Any) -> None:
    key, rest = path[0], path[1:]
    if not rest:
        target[key] = value
        return
    child = target.setdefault(key, {})
    _set(child, rest, value)


def _lists(value: Any) -> Any:
    """Turn dicts keyed 0, 1, 2 ... into lists, dropping rows left empty."""
    if isinstance(value, dict):
        converted = {k: _lists(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            rows = [converted[k] for k in sorted(converted, key=int)]
            return [r for r in rows if r not in ({}, None, "")]
        return converted
    return value


def payload_from_form(model: type[BaseModel], form: Mapping[str, Any],
                      multi: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """The JSON body a posted form means, for ``model`` to validate.

    Empty inputs are left out (the model's defaults apply); a checkbox is true when
    posted; a list of lines is split on new lines; multi-selects keep every value.
    """
    kinds = _kinds(form_fields(model), {})
    out: dict[str, Any] = {}
    for name, spec in kinds.items():
        if spec.kind in ("group", "repeat"):
            continue
        if spec.kind == "checkbox":
            if name in form:
                _set(out, name.split("."), True)
            continue
        if spec.kind == "multiselect":
            values = (multi or {}).get(name, [])
            if values:
                _set(out, name.split("."), values)
            continue
        raw = form.get(name)
        if raw is None or str(raw).strip() == "":
            continue
        text = str(raw).replace("\r\n", "\n")
        value: Any = ([line.strip() for line in text.split("\n") if line.strip()]
                      if spec.kind == "lines" else text.strip())
        _set(out, name.split("."), value)
    result = _lists(out)
    return result if isinstance(result, dict) else {}
